#pragma once

// One libcurl multi handle driven by a thread of its own: the loop shared by
// the HTTP and SMTP clients. Transfers are queued from any thread and started,
// driven and completed on the worker thread; completion callbacks run there
// and must be cheap. Internal to runtime/ (includes curl).
//
// The loop uses libcurl's multi_socket API on an epoll set: libcurl is told
// which socket is ready, so it neither polls every socket of every transfer
// on each pass (curl_multi_poll) nor probes each one with a zero-timeout
// poll() before reading (curl_multi_perform): on this kind of machine a system
// call costs several microseconds, and those probes were 2.5 poll() calls per
// webhook. Wake-ups come through an eventfd, written only while the loop
// blocks.
//
// `Derived` (CRTP) supplies, all called on the worker thread:
//   CURL* start(Transfer&)                                  configure and add an easy handle
//   void finish(CURL*, CURLcode, std::unique_ptr<Transfer>)  a transfer ended (handle still added)
//   void abandon(CURL*, std::unique_ptr<Transfer>)           shutdown: an active transfer is cut
//   void fail(std::unique_ptr<Transfer>, const std::string&) shutdown: a queued one never started
//   void stopped()                                            after the loop (free idle handles)

#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
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
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (epoll_ < 0 || wake_ < 0) {
      const std::string why = std::strerror(errno);
      close_fds();
      curl_multi_cleanup(multi);
      throw std::runtime_error("curl worker: epoll/eventfd: " + why);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev);
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &curl_multi_worker::on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &curl_multi_worker::on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
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
    wake();
    if (thread_.joinable()) thread_.join();
    curl_multi_cleanup(multi);
    multi = nullptr;
    close_fds();
  }

 public:
  /// Thread-safe.
  void enqueue(std::unique_ptr<Transfer> t) {
    {
      std::lock_guard<std::mutex> g{mtx_};
      incoming_.push_back(std::move(t));
    }
    // Only a blocked loop needs the wake-up syscall; a busy one looks again.
    if (polling_.load()) wake();
  }

 private:
  using clock = std::chrono::steady_clock;
  static constexpr int max_events = 64;

  Derived& self() { return static_cast<Derived&>(*this); }

  void wake() {
    const uint64_t one = 1;
    // EAGAIN means the counter is already non-zero: a wake-up is pending.
    [[maybe_unused]] auto n = ::write(wake_, &one, sizeof one);
  }

  void close_fds() {
    if (epoll_ >= 0) ::close(epoll_);
    if (wake_ >= 0) ::close(wake_);
    epoll_ = wake_ = -1;
  }

  // libcurl: watch `s` for `what` (or stop watching it). Runs on the worker thread.
  static int on_socket(CURL*, curl_socket_t s, int what, void* userp, void* socketp) {
    auto* w = static_cast<curl_multi_worker*>(userp);
    if (what == CURL_POLL_REMOVE) {
      // The socket may already be closed (then epoll forgot it by itself).
      epoll_ctl(w->epoll_, EPOLL_CTL_DEL, s, nullptr);
      curl_multi_assign(w->multi, s, nullptr);
      return 0;
    }
    epoll_event ev{};
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    ev.data.fd = s;
    if (socketp == nullptr) {
      if (epoll_ctl(w->epoll_, EPOLL_CTL_ADD, s, &ev) != 0 && errno == EEXIST)
        epoll_ctl(w->epoll_, EPOLL_CTL_MOD, s, &ev);
      curl_multi_assign(w->multi, s, w);  // non-null: "registered"
    } else if (epoll_ctl(w->epoll_, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT) {
      epoll_ctl(w->epoll_, EPOLL_CTL_ADD, s, &ev);
    }
    return 0;
  }

  // libcurl: call socket_action(CURL_SOCKET_TIMEOUT) after `ms` (-1: no timer).
  static int on_timer(CURLM*, long ms, void* userp) {
    auto* w = static_cast<curl_multi_worker*>(userp);
    w->timer_set_ = ms >= 0;
    if (ms >= 0) w->timer_at_ = clock::now() + std::chrono::milliseconds(ms);
    return 0;
  }

  void collect_done() {
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      auto it = active_.find(m->easy_handle);
      if (it == active_.end()) continue;
      auto t = std::move(it->second);
      active_.erase(it);
      self().finish(m->easy_handle, m->data.result, std::move(t));
    }
  }

  void run_timer_if_due() {
    if (timer_set_ && clock::now() >= timer_at_) {
      timer_set_ = false;
      int running = 0;
      curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
  }

  int wait_ms() const {
    if (!timer_set_) return 1000;
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(timer_at_ - clock::now()).count();
    return static_cast<int>(std::clamp<int64_t>(left, 0, 1000));
  }

  void run() {
    epoll_event events[max_events];
    while (!stop_.load()) {
      {
        std::deque<std::unique_ptr<Transfer>> batch;
        {
          std::lock_guard<std::mutex> g{mtx_};
          batch.swap(incoming_);
        }
        for (auto& t : batch) {
          CURL* h = self().start(*t);  // adds the handle: libcurl sets a 0 ms timer
          active_.emplace(h, std::move(t));
        }
      }
      run_timer_if_due();
      collect_done();
      // Announce the wait, then look once more: an enqueue either sees
      // `polling` and wakes us, or we see its transfer here (no lost wake-up,
      // and no wake-up syscall per transfer while we are busy).
      polling_.store(true);
      bool more;
      {
        std::lock_guard<std::mutex> g{mtx_};
        more = !incoming_.empty();
      }
      const int timeout = more || stop_.load() ? 0 : wait_ms();
      const int n = epoll_wait(epoll_, events, max_events, timeout);
      polling_.store(false);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == wake_) {
          uint64_t v;
          [[maybe_unused]] auto r = ::read(wake_, &v, sizeof v);
          continue;
        }
        const uint32_t e = events[i].events;
        int flags = 0;
        if (e & (EPOLLIN | EPOLLHUP)) flags |= CURL_CSELECT_IN;
        if (e & EPOLLOUT) flags |= CURL_CSELECT_OUT;
        if (e & EPOLLERR) flags |= CURL_CSELECT_ERR;
        int running = 0;
        curl_multi_socket_action(multi, fd, flags, &running);
      }
      run_timer_if_due();
      collect_done();
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
  std::atomic<bool> polling_{false};  // the loop is (about to be) blocked in epoll_wait
  int epoll_ = -1;
  int wake_ = -1;           // eventfd: written by enqueue()/shutdown() while polling
  bool timer_set_ = false;  // libcurl's timer (worker thread only)
  clock::time_point timer_at_{};
  std::thread thread_;
};

}  // namespace fraiseql
