#pragma once

// Action executors: one per action type (webhook, log, ...). The action pool
// owns ordering, concurrency, retries and the DLQ; an executor only performs
// one attempt and classifies its outcome. Executors never block the caller:
// network and database work runs on threads of their own (the HTTP client's
// curl thread, a worker pool), and the completion callback only enqueues a
// message. No CAF here: executors are tested without an actor system.

#include "messages/attempt.hpp"
#include "messages/event.hpp"
#include "runtime/config/model.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace fraiseql {

class http_client;
class observer_registry;
struct http_response;

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

/// One attempt of one action for several events in one request (webhook
/// `batch_size` > 1): `events[i]` has `idempotency_keys[i]`, in capture order.
struct batch_request {
  std::vector<const event*> events;
  std::vector<std::string> idempotency_keys;
  uint32_t observer = 0;
  uint32_t action = 0;
  const observer_config* observer_cfg = nullptr;
  const action_config* action_cfg = nullptr;
  uint32_t attempt = 1;
  std::chrono::milliseconds timeout_cap{0};
};

/// What the result cache keys an attempt by (runtime/exec/caching.hpp).
struct action_cache_key {
  /// Identifies the rendered request (a hash of everything the call sends that
  /// does not vary per attempt): equal keys mean equal side effects.
  std::string key;
  /// This action's TTL; 0: the cache's default ([redis] cache_ttl_secs).
  std::chrono::milliseconds ttl{0};
};

class action_executor {
 public:
  virtual ~action_executor() = default;
  /// The cache key of this attempt, or nullopt when the action is not
  /// cacheable (its type never is, it is not configured `cache = true`, or it
  /// cannot be rendered: start() then reports why). Thread-safe.
  virtual std::optional<action_cache_key> cache_key(const attempt_request&) const {
    return std::nullopt;
  }
  /// Starts one attempt. A synchronous executor returns the outcome and never
  /// calls `done`; an asynchronous one returns nullopt and calls `done` once.
  virtual std::optional<attempt_outcome> start(const attempt_request& req,
                                               attempt_callback done) = 0;
  /// The circuit-breaker key of the endpoint this attempt would call; attempts
  /// with one key share a breaker (runtime/core/circuit_breaker.hpp). Override it
  /// when the action talks to a remote peer: "scheme://host:port" for HTTP,
  /// "smtp://host:port" for mail, and so on; never put credentials in it (it
  /// is a metrics label). Default: the action type, one breaker per type.
  virtual std::string endpoint(const attempt_request& req) const { return req.action_cfg->type; }
  /// Whether adaptive concurrency limits this executor's calls per endpoint
  /// (actors/pipeline/action_pool.hpp): true for remote calls whose latency
  /// tells the peer's load (HTTP, SMTP); false for local work (log) and for
  /// executors bounded by their own pool (database).
  virtual bool adaptive() const { return false; }
  /// Starts one attempt for a batch. Events it cannot render are left out of
  /// the request and listed in `rejected` (index into the batch, final error);
  /// when none is left, or the type cannot batch, the outcome is returned
  /// (synchronous) and `done` is never called. Otherwise nullopt and `done` is
  /// called once with the outcome of the request, which is every sent event's.
  virtual std::optional<attempt_outcome> start_batch(
      const batch_request& req, std::vector<std::pair<size_t, std::string>>& rejected,
      attempt_callback done);
};

/// Action type ("webhook", "log", ...) -> executor.
using executor_map = std::map<std::string, std::shared_ptr<action_executor>>;

/// Classifies an HTTP response: 2xx ok; transport errors (timeouts included)
/// retryable; other statuses retryable when `policy` says so (default: 5xx,
/// 429, 408), final otherwise. Retry-After is kept.
attempt_outcome classify_http(const http_response& r, const http_retry_config& policy = {});

struct smtp_result;
struct pg_call_result;
/// SMTP: success; 4xx replies, timeouts and transport errors retryable; 5xx
/// replies final.
attempt_outcome classify_smtp(const smtp_result& r);
/// Database calls: see pg_sqlstate_retryable; errors carry the SQLSTATE.
attempt_outcome classify_pg(const pg_call_result& r);

/// `own_ms` limited by an attempt's cap (0: no cap).
std::chrono::milliseconds attempt_timeout(uint32_t own_ms, std::chrono::milliseconds cap);

/// Lower-case hex HMAC-SHA256 of `data` under `key` (OpenSSL).
std::string hmac_sha256_hex(const std::string& key, const std::string& data);
/// The webhook signature header value: "sha256=" + hex HMAC-SHA256 of
/// `timestamp + "." + body` under `secret`.
std::string webhook_signature(const std::string& secret, const std::string& timestamp,
                              const std::string& body);

class smtp_client;
class pg_call_pool;

/// Webhooks: rendered by the registry, sent through the shared HTTP client.
std::shared_ptr<action_executor> make_webhook_executor(std::shared_ptr<const observer_registry> reg,
                                                       std::shared_ptr<http_client> http);
/// Slack incoming webhooks through the shared HTTP client.
std::shared_ptr<action_executor> make_slack_executor(std::shared_ptr<const observer_registry> reg,
                                                     std::shared_ptr<http_client> http);
/// Email over SMTP on the SMTP client's thread.
std::shared_ptr<action_executor> make_email_executor(std::shared_ptr<const observer_registry> reg,
                                                     std::shared_ptr<smtp_client> smtp);
/// PostgreSQL function calls on the worker pool.
std::shared_ptr<action_executor> make_database_executor(
    std::shared_ptr<const observer_registry> reg, std::shared_ptr<pg_call_pool> pool);
/// Log lines through spdlog at the configured level.
std::shared_ptr<action_executor> make_log_executor(std::shared_ptr<const observer_registry> reg);

/// NATS actions: the rendered payload published to JetStream with
/// Nats-Msg-Id = the idempotency key (runtime/exec/nats_action.cpp). One
/// connection per server list, opened on first use.
std::shared_ptr<action_executor> make_nats_executor(std::shared_ptr<const observer_registry> reg);

struct publish_result;
/// A JetStream publish completion: stored (ok or duplicate) succeeds;
/// transient statuses (no ack in time, connection lost or closed, no
/// responders) are retryable; anything the server refused is final.
attempt_outcome classify_nats(const publish_result& r);

struct executor_options {
  /// Worker threads (and connections per database) for database actions.
  size_t database_workers = 4;
};

/// Every executor the engine ships, wired to the node's shared clients. The
/// SMTP client and the database workers are only started when an observer
/// uses them.
executor_map make_executors(std::shared_ptr<const observer_registry> reg,
                            std::shared_ptr<http_client> http, const executor_options& opt = {});

}  // namespace fraiseql
