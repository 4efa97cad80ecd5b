#pragma once

// One libcurl multi handle driven by a thread of its own: the loop shared by
// the HTTP and SMTP clients. Transfers are queued from any thread and started,
// driven and completed on the worker thread; completion callbacks run there
// and must be cheap. Internal to runtime/ (includes curl).
//
// `Derived` (CRTP) supplies, all called on the worker thread:
//   CURL* start(Transfer&)                                  configure and add an easy handle
//   void finish(CURL*, CURLcode, std::unique_ptr<Transfer>)  a transfer ended (handle still added)
//   void abandon(CURL*, std::unique_ptr<Transfer>)           shutdown: an active transfer is cut
//   void fail(std::unique_ptr<Transfer>, const std::string&) shutdown: a queued one never started
//   void stopped()                                            after the loop (free idle handles)

#include <curl/curl.h>

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>

namespace fraiseql {

template <class Derived, class Transfer>
class curl_multi_worker {
protected:
  CURLM* multi = nullptr;

  /// Creates the multi handle; call launch() once the derived object is set up.
  curl_multi_worker() {
    multi = curl_multi_init();
    if (!multi) throw std::runtime_error("curl_multi_init failed");
  }
  ~curl_multi_worker() { shutdown(); }

  void launch() {
    thread_ = std::thread([this] { run(); });
  }

  /// Stops the loop (active transfers are abandoned, queued ones failed).
  /// Idempotent; the derived destructor calls it while its members still live.
  void shutdown() {
    if (multi == nullptr) return;
    stop_.store(true);
    curl_multi_wakeup(multi);
    if (thread_.joinable()) thread_.join();
    curl_multi_cleanup(multi);
    multi = nullptr;
  }

public:
  /// Thread-safe.
  void enqueue(std::unique_ptr<Transfer> t) {
    {
      std::lock_guard<std::mutex> g{mtx_};
      incoming_.push_back(std::move(t));
    }
    // Only a blocked loop needs the wake-up syscall; a busy one looks again.
    if (polling_.load()) curl_multi_wakeup(multi);
  }

private:
  Derived& self() { return static_cast<Derived&>(*this); }

  void run() {
    while (!stop_.load()) {
      {
        std::deque<std::unique_ptr<Transfer>> batch;
        {
          std::lock_guard<std::mutex> g{mtx_};
          batch.swap(incoming_);
        }
        for (auto& t : batch) {
          CURL* h = self().start(*t);
          active_.emplace(h, std::move(t));
        }
      }
      int running = 0;
      curl_multi_perform(multi, &running);
      int left = 0;
      while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
        if (m->msg != CURLMSG_DONE) continue;
        auto it = active_.find(m->easy_handle);
        if (it == active_.end()) continue;
        auto t = std::move(it->second);
        active_.erase(it);
        self().finish(m->easy_handle, m->data.result, std::move(t));
      }
      // Announce the wait, then look once more: an enqueue either sees
      // `polling` and wakes us, or we see its transfer here (no lost wake-up,
      // and no wake-up syscall per transfer while we are busy).
      polling_.store(true);
      bool more;
      {
        std::lock_guard<std::mutex> g{mtx_};
        more = !incoming_.empty();
      }
      if (!more && !stop_.load()) curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
      polling_.store(false);
    }
    for (auto& kv : active_) self().abandon(kv.first, std::move(kv.second));
    active_.clear();
    std::deque<std::unique_ptr<Transfer>> rest;
    {
      std::lock_guard<std::mutex> g{mtx_};
      rest.swap(incoming_);
    }
    for (auto& t : rest) self().fail(std::move(t), "shutting down");
    self().stopped();
  }

  std::mutex mtx_;
  std::deque<std::unique_ptr<Transfer>> incoming_;
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> active_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> polling_{false};  // the loop is (about to be) blocked in curl_multi_poll
  std::thread thread_;
};

}  // namespace fraiseql
