#pragma once

// Asynchronous HTTP client over one libcurl multi handle driven by its own
// thread: keep-alive connections are reused across requests, many requests are
// in flight at once, and no actor thread ever blocks on the network.
// Completion callbacks run on the client thread and must be cheap (the action
// pool's callback only enqueues a message to the actor).

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace fraiseql {

struct http_request {
  std::string method = "POST";
  std::string url;
  /// "Name: value" lines.
  std::vector<std::string> headers;
  std::string body;
  std::chrono::milliseconds timeout{10000};
};

struct http_response {
  /// HTTP status, 0 when no response was received.
  long status = 0;
  /// Transport error (connect refused, timeout, ...); empty when a response came.
  std::string error;
  /// True when the attempt hit its timeout.
  bool timed_out = false;
  /// First bytes of the response body (for the DLQ's last_error).
  std::string body;
  /// Parsed Retry-After (delta seconds), when present.
  std::optional<std::chrono::seconds> retry_after;
  /// Time from submit to completion.
  std::chrono::microseconds elapsed{0};
};

class http_client {
 public:
  using callback = std::function<void(http_response)>;

  /// `max_host_connections` bounds parallel connections per host (0: no bound);
  /// `connection_cache` keeps that many idle keep-alive connections (it must be
  /// at least the number of requests in flight, or connections churn).
  explicit http_client(long max_host_connections = 0, long connection_cache = 64);
  /// Stops the thread; requests still in flight complete with error "shutting down".
  ~http_client();
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// Thread-safe; `cb` is called exactly once.
  void submit(http_request req, callback cb);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Once per process, before threads start (libcurl's global init is not thread-safe).
void http_global_init();

}  // namespace fraiseql
