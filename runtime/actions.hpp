#pragma once

// Action executors: one per action type (webhook, log, ...). The action pool
// owns ordering, concurrency, retries and the DLQ; an executor only performs
// one attempt and classifies its outcome. Executors never block the caller:
// network and database work runs on threads of their own (the HTTP client's
// curl thread, a worker pool), and the completion callback only enqueues a
// message. No CAF here: executors are tested without an actor system.

#include "messages/event.hpp"
#include "runtime/config.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace fraiseql {

class http_client;
class observer_registry;
struct http_response;

/// Outcome of one attempt, transport-independent.
struct attempt_outcome {
  bool ok = false;
  /// A failed attempt that may succeed later (5xx, 429, timeouts, transport
  /// errors); non-retryable failures go to the DLQ at once.
  bool retryable = false;
  std::string error;
  /// The peer asked for this delay before the next attempt (Retry-After).
  std::optional<std::chrono::milliseconds> retry_after;

  static attempt_outcome success() { return attempt_outcome{true, false, {}, {}}; }
  static attempt_outcome failure(std::string error, bool retryable) {
    return attempt_outcome{false, retryable, std::move(error), {}};
  }
};

/// One attempt of one action for one event.
struct attempt_request {
  const event* ev = nullptr;
  uint32_t observer = 0;
  uint32_t action = 0;
  const observer_config* observer_cfg = nullptr;
  const action_config* action_cfg = nullptr;
  /// "<event id>:<observer>:<action>", stable across attempts and restarts.
  std::string idempotency_key;
  /// 1 for the first attempt.
  uint32_t attempt = 1;
  /// Upper bound for this attempt's duration (concurrent_timeout_ms), 0: none;
  /// the executor applies min(own timeout, this).
  std::chrono::milliseconds timeout_cap{0};
};

/// Called exactly once per asynchronous attempt, on any thread; must be cheap.
using attempt_callback = std::function<void(attempt_outcome)>;

class action_executor {
public:
  virtual ~action_executor() = default;
  /// Starts one attempt. A synchronous executor returns the outcome and never
  /// calls `done`; an asynchronous one returns nullopt and calls `done` once.
  virtual std::optional<attempt_outcome> start(const attempt_request& req,
                                               attempt_callback done) = 0;
  /// The circuit-breaker key of the endpoint this attempt would call; attempts
  /// with one key share a breaker (runtime/circuit_breaker.hpp). Override it
  /// when the action talks to a remote peer: "scheme://host:port" for HTTP,
  /// "smtp://host:port" for mail, and so on; never put credentials in it (it
  /// is a metrics label). Default: the action type, one breaker per type.
  virtual std::string endpoint(const attempt_request& req) const { return req.action_cfg->type; }
};

/// Action type ("webhook", "log", ...) -> executor.
using executor_map = std::map<std::string, std::shared_ptr<action_executor>>;

/// Classifies an HTTP response: 2xx ok; 5xx, 429, 408 and transport errors
/// (timeouts included) retryable; other statuses final. Retry-After is kept.
attempt_outcome classify_http(const http_response& r);

/// Webhooks: rendered by the registry, sent through the shared HTTP client.
std::shared_ptr<action_executor> make_webhook_executor(std::shared_ptr<const observer_registry> reg,
                                                       std::shared_ptr<http_client> http);
/// Log lines through spdlog at the configured level.
std::shared_ptr<action_executor> make_log_executor(std::shared_ptr<const observer_registry> reg);

/// Every executor the engine ships, wired to the node's shared clients.
executor_map make_executors(std::shared_ptr<const observer_registry> reg,
                            std::shared_ptr<http_client> http);

}  // namespace fraiseql
