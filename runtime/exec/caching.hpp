#pragma once

// The action-result cache around executors.
//
// An executor that can name the request an attempt would send
// (action_executor::cache_key: the webhook one hashes method, URL, headers and
// body) gets wrapped by a caching_executor. Before the call it looks the key
// up: a hit means an identical request succeeded within the TTL, so the call
// is skipped and the attempt succeeds at once; a miss runs the call and, when
// it succeeds, stores the key. Only successes are stored: a failure is never
// replayed from the cache.
//
// The cache is either process memory (lru_ttl_cache: looked up inline, under a
// microsecond) or Redis (redis_result_cache: shared by the nodes). Redis calls
// block, so they run on a blocking_runner's threads and never on the caller's
// (an actor on CAF's scheduler). A Redis error counts as a miss: the cache is
// an optimization, the call runs.

#include "runtime/exec/executor.hpp"

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace fraiseql {

class metrics;
class result_cache;

/// A few threads running posted tasks in order of posting (for blocking I/O
/// such as Redis calls). The destructor drops tasks not yet started and joins.
class blocking_runner {
 public:
  explicit blocking_runner(size_t threads, std::string name = "blocking");
  ~blocking_runner();
  blocking_runner(const blocking_runner&) = delete;
  blocking_runner& operator=(const blocking_runner&) = delete;

  /// Thread-safe. Exceptions escaping a task are logged and dropped. Ignored
  /// after shutdown().
  void post(std::function<void()> task);
  /// Drops the tasks not started, waits for the running ones. Call it before
  /// what the tasks use goes away. Idempotent.
  void shutdown();

 private:
  void loop();

  std::string name_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

/// Lowercase hex SHA-256 of `data` (the cache keys: fixed length, no request
/// content in Redis key names).
std::string sha256_hex(const std::string& data);

/// Wraps `inner` with the result cache. `runner` null: the cache is called
/// inline (an in-memory cache); otherwise lookups and stores run on it.
/// `default_ttl` applies to actions without their own cache_ttl_secs. `stats`
/// (may be null) counts hits and misses.
std::shared_ptr<action_executor> make_caching_executor(std::shared_ptr<action_executor> inner,
                                                       std::shared_ptr<result_cache> cache,
                                                       std::shared_ptr<blocking_runner> runner,
                                                       std::chrono::milliseconds default_ttl,
                                                       std::shared_ptr<metrics> stats);

}  // namespace fraiseql
