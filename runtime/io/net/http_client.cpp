#include "runtime/io/net/http_client.hpp"

#include "runtime/io/net/curl_multi_worker.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace fraiseql {

namespace {

constexpr size_t max_body_kept = 2048;

struct transfer {
  http_request req;
  http_client::callback cb;
  CURL* easy = nullptr;
  /// The request's header lines as a curl_slist whose nodes point into
  /// `req.headers` (libcurl only reads the list): no allocation per header.
  std::vector<curl_slist> header_nodes;
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

struct http_client::impl final : curl_multi_worker<http_client::impl, transfer> {
  std::vector<CURL*> idle_handles;  // reused: keeps per-handle state warm

  impl(long max_host_connections, long connection_cache) {
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, std::max(connection_cache, 1L));
    if (max_host_connections > 0)
      curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host_connections);
    // HTTP/2 endpoints carry many requests over one connection (streams);
    // HTTP/1.1 ones get one request per connection at a time, connections
    // kept alive and reused (docs/configuration.md, [adaptive_concurrency]).
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_MULTIPLEX));
    launch();
  }
  ~impl() { shutdown(); }

  /// A reused handle keeps its options: the ones set here once are the same
  /// for every request, and start() sets every per-request one each time
  /// (no curl_easy_reset, which freed and re-copied ~20 strings a request).
  static CURL* new_handle() {
    CURL* h = curl_easy_init();
    if (!h) return nullptr;
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    // https: offer HTTP/2 by ALPN (HTTP/1.1 when the server declines);
    // http: HTTP/1.1 (no cleartext upgrade).
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
    return h;
  }

  CURL* start(transfer& t) {
    CURL* h = nullptr;
    if (!idle_handles.empty()) {
      h = idle_handles.back();
      idle_handles.pop_back();
    } else {
      h = new_handle();
      if (!h) throw std::runtime_error("curl_easy_init failed");
    }
    t.easy = h;
    // No "Expect: 100-continue" round trip for larger bodies.
    static char expect_off[] = "Expect:";
    t.header_nodes.resize(t.req.headers.size() + 1);
    for (size_t i = 0; i < t.req.headers.size(); ++i)
      t.header_nodes[i].data = t.req.headers[i].data();
    t.header_nodes.back().data = expect_off;
    for (size_t i = 0; i + 1 < t.header_nodes.size(); ++i)
      t.header_nodes[i].next = &t.header_nodes[i + 1];
    t.header_nodes.back().next = nullptr;
    curl_easy_setopt(h, CURLOPT_URL, t.req.url.c_str());
    // https: a request to an endpoint whose connection is still being set up
    // waits to share it (ALPN tells within the handshake whether it can).
    // Not for http://: there only the first answer tells, and waiting for it
    // would serialise the first burst of requests to a new endpoint.
    curl_easy_setopt(h, CURLOPT_PIPEWAIT, t.req.url.compare(0, 8, "https://") == 0 ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, t.req.method.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, t.req.body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(t.req.body.size()));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, t.header_nodes.data());
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(t.req.timeout.count()));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min<int64_t>(t.req.timeout.count(), 10000)));
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t.errbuf);
    curl_easy_setopt(h, CURLOPT_PRIVATE, &t);
    curl_multi_add_handle(multi, h);
    return h;
  }

  void finish(CURL* h, CURLcode code, std::unique_ptr<transfer> t) {
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
    // The handle outlives this transfer: drop its pointers into it.
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    idle_handles.push_back(h);
    t->cb(std::move(resp));
  }

  void abandon(CURL* h, std::unique_ptr<transfer> t) {
    curl_multi_remove_handle(multi, h);
    curl_easy_cleanup(h);
    fail(std::move(t), "shutting down");
  }

  void fail(std::unique_ptr<transfer> t, const std::string& why) {
    http_response resp;
    resp.error = why;
    t->cb(std::move(resp));
  }

  void stopped() {
    for (auto* h : idle_handles) curl_easy_cleanup(h);
    idle_handles.clear();
  }
};

http_client::http_client(long max_host_connections, long connection_cache) {
  http_global_init();
  impl_ = std::make_unique<impl>(max_host_connections, connection_cache);
}

http_client::~http_client() = default;

void http_client::submit(http_request req, callback cb) {
  auto t = std::make_unique<transfer>();
  t->req = std::move(req);
  t->cb = std::move(cb);
  t->started = std::chrono::steady_clock::now();
  impl_->enqueue(std::move(t));
}

}  // namespace fraiseql
