#pragma once

// Calls of PostgreSQL functions for database actions, on a small pool of
// worker threads with their own connections (one per database url and
// worker), so actor threads never wait for a query. Each call runs in its own
// transaction with `SET LOCAL statement_timeout` = the attempt's timeout: a
// timeout cancels the query on the server. A lost connection is dropped and
// re-opened by the next call.

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace fraiseql {

struct pg_call {
  /// libpq connection string or URL.
  std::string url;
  /// Quoted, validated function name ("app"."on_order").
  std::string function;
  /// Arguments, passed as jsonb.
  std::string envelope;
  std::string params;
  std::chrono::milliseconds timeout{10000};
};

struct pg_call_result {
  bool ok = false;
  /// SQLSTATE of a failed statement ("" for connection failures).
  std::string sqlstate;
  std::string error;
  /// The connection failed or was lost (retry on a new one).
  bool connection_lost = false;
};

class pg_call_pool {
 public:
  using callback = std::function<void(pg_call_result)>;

  explicit pg_call_pool(size_t workers);
  /// Finishes the calls running now; queued ones complete with "shutting down".
  ~pg_call_pool();
  pg_call_pool(const pg_call_pool&) = delete;
  pg_call_pool& operator=(const pg_call_pool&) = delete;

  /// Thread-safe; `cb` is called exactly once, on a worker thread.
  void submit(pg_call call, callback cb);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The statement a database action runs.
std::string pg_call_sql(const std::string& quoted_function);

/// Retryable: connection failures, serialization failures and deadlocks
/// (40001, 40P01), statement timeouts / cancels (57014), server shutdown
/// (57P*), lock timeouts (55P03), too many connections (53300). Anything else
/// is final.
bool pg_sqlstate_retryable(const std::string& sqlstate);

}  // namespace fraiseql
