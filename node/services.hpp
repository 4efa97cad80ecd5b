#pragma once

// What the node builds from its config besides actors: the HTTP client, the
// executors, the Redis pool and the action-result cache. No CAF here.

#include "runtime/config/model.hpp"
#include "runtime/exec/executor.hpp"

#include <memory>

namespace fraiseql {

class blocking_runner;
class http_client;
class metrics;
class observer_registry;
class redis_pool;
class result_cache;

/// Sized for the action pool's concurrency.
std::shared_ptr<http_client> make_http_client(const performance_config& perf);

/// One executor per action type.
executor_map make_executors(const config& cfg, std::shared_ptr<const observer_registry> registry,
                            std::shared_ptr<http_client> http);

/// [redis]: the connection pool, checked once (an unavailable Redis is logged,
/// not fatal: the failure policy applies). Null without [redis].
std::shared_ptr<redis_pool> make_redis_pool(const config& cfg, metrics& stats);

/// enable_caching: wraps every executor with the action-result cache, in Redis
/// when `redis` is set, else in process memory. Returns the runner of the Redis
/// cache's tasks (null for the in-memory cache); shut it down before the
/// executors go away. `cache` receives the cache (for cache-stats).
std::shared_ptr<blocking_runner> add_result_cache(const config& cfg,
                                                  std::shared_ptr<redis_pool> redis,
                                                  executor_map& executors,
                                                  std::shared_ptr<metrics> stats,
                                                  std::shared_ptr<result_cache>& cache);

/// Warns about webhooks with `cache = true` while enable_caching is off.
void warn_uncached_webhooks(const config& cfg);

}  // namespace fraiseql
