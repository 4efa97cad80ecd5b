#include "runtime/http_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>

namespace fraiseql {

namespace {

constexpr size_t max_body_kept = 2048;

struct transfer {
  http_request req;
  http_client::callback cb;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string body_in;
  std::optional<std::chrono::seconds> retry_after;
  std::chrono::steady_clock::time_point started;
  char errbuf[CURL_ERROR_SIZE] = {0};
};

size_t on_body(char* ptr, size_t size, size_t n, void* user) {
  auto* t = static_cast<transfer*>(user);
  const size_t len = size * n;
  if (t->body_in.size() < max_body_kept)
    t->body_in.append(ptr, std::min(len, max_body_kept - t->body_in.size()));
  return len;
}

size_t on_header(char* ptr, size_t size, size_t n, void* user) {
  auto* t = static_cast<transfer*>(user);
  const size_t len = size * n;
  static constexpr char name[] = "retry-after:";
  if (len > sizeof(name) - 1 && strncasecmp(ptr, name, sizeof(name) - 1) == 0) {
    std::string v(ptr + sizeof(name) - 1, len - (sizeof(name) - 1));
    try {
      size_t used = 0;
      long secs = std::stol(v, &used);
      if (secs >= 0) t->retry_after = std::chrono::seconds(secs);
    } catch (...) {
      // HTTP-date form: not honoured (rare); the policy's own backoff applies.
    }
  }
  return len;
}

}  // namespace

void http_global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct http_client::impl {
  CURLM* multi = nullptr;
  std::mutex mtx;
  std::deque<std::unique_ptr<transfer>> incoming;
  std::unordered_map<CURL*, std::unique_ptr<transfer>> active;
  std::vector<CURL*> idle_handles;  // reused: keeps per-handle state warm
  std::atomic<bool> stop{false};
  std::atomic<bool> polling{false};  // the thread is (about to be) blocked in curl_multi_poll
  std::thread thread;

  void start(transfer& t) {
    CURL* h = nullptr;
    if (!idle_handles.empty()) {
      h = idle_handles.back();
      idle_handles.pop_back();
      curl_easy_reset(h);
    } else {
      h = curl_easy_init();
    }
    t.easy = h;
    curl_easy_setopt(h, CURLOPT_URL, t.req.url.c_str());
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, t.req.method.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, t.req.body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(t.req.body.size()));
    for (const auto& line : t.req.headers) t.headers = curl_slist_append(t.headers, line.c_str());
    // No "Expect: 100-continue" round trip for larger bodies.
    t.headers = curl_slist_append(t.headers, "Expect:");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, t.headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(t.req.timeout.count()));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min<int64_t>(t.req.timeout.count(), 10000)));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t.errbuf);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PRIVATE, &t);
    curl_multi_add_handle(multi, h);
  }

  void finish(CURL* h, CURLcode code) {
    auto it = active.find(h);
    if (it == active.end()) return;
    auto t = std::move(it->second);
    active.erase(it);
    curl_multi_remove_handle(multi, h);
    http_response resp;
    resp.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - t->started);
    if (code == CURLE_OK) {
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
    } else {
      resp.timed_out = code == CURLE_OPERATION_TIMEDOUT;
      resp.error = t->errbuf[0] ? t->errbuf : curl_easy_strerror(code);
    }
    resp.body = std::move(t->body_in);
    resp.retry_after = t->retry_after;
    curl_slist_free_all(t->headers);
    t->headers = nullptr;
    idle_handles.push_back(h);
    t->cb(std::move(resp));
  }

  void fail(std::unique_ptr<transfer> t, const std::string& why) {
    http_response resp;
    resp.error = why;
    t->cb(std::move(resp));
  }

  void run() {
    while (!stop.load()) {
      {
        std::deque<std::unique_ptr<transfer>> batch;
        {
          std::lock_guard<std::mutex> g{mtx};
          batch.swap(incoming);
        }
        for (auto& t : batch) {
          start(*t);
          CURL* h = t->easy;
          active.emplace(h, std::move(t));
        }
      }
      int running = 0;
      curl_multi_perform(multi, &running);
      int left = 0;
      while (CURLMsg* m = curl_multi_info_read(multi, &left))
        if (m->msg == CURLMSG_DONE) finish(m->easy_handle, m->data.result);
      // Announce the wait, then look once more: a submit either sees
      // `polling` and wakes us, or we see its request here (no lost wake-up,
      // and no wake-up syscall per request while we are busy).
      polling.store(true);
      bool more;
      {
        std::lock_guard<std::mutex> g{mtx};
        more = !incoming.empty();
      }
      if (!more) curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
      polling.store(false);
    }
    for (auto& kv : active) {
      curl_multi_remove_handle(multi, kv.first);
      curl_slist_free_all(kv.second->headers);
      curl_easy_cleanup(kv.first);
      fail(std::move(kv.second), "shutting down");
    }
    active.clear();
    std::deque<std::unique_ptr<transfer>> rest;
    {
      std::lock_guard<std::mutex> g{mtx};
      rest.swap(incoming);
    }
    for (auto& t : rest) fail(std::move(t), "shutting down");
    for (auto* h : idle_handles) curl_easy_cleanup(h);
    idle_handles.clear();
  }
};

http_client::http_client(long max_host_connections, long connection_cache)
  : impl_(std::make_unique<impl>()) {
  http_global_init();
  impl_->multi = curl_multi_init();
  if (!impl_->multi) throw std::runtime_error("curl_multi_init failed");
  curl_multi_setopt(impl_->multi, CURLMOPT_MAXCONNECTS, std::max(connection_cache, 1L));
  if (max_host_connections > 0)
    curl_multi_setopt(impl_->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host_connections);
  impl_->thread = std::thread([this] { impl_->run(); });
}

http_client::~http_client() {
  impl_->stop = true;
  curl_multi_wakeup(impl_->multi);
  if (impl_->thread.joinable()) impl_->thread.join();
  curl_multi_cleanup(impl_->multi);
}

void http_client::submit(http_request req, callback cb) {
  auto t = std::make_unique<transfer>();
  t->req = std::move(req);
  t->cb = std::move(cb);
  t->started = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> g{impl_->mtx};
    impl_->incoming.push_back(std::move(t));
  }
  if (impl_->polling.load()) curl_multi_wakeup(impl_->multi);
}


}  // namespace fraiseql
