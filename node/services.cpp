#include "node/services.hpp"

#include "runtime/core/redis_url.hpp"
#include "runtime/core/result_cache.hpp"
#include "runtime/exec/caching.hpp"
#include "runtime/io/net/http_client.hpp"
#include "runtime/io/redis/cache.hpp"
#include "runtime/io/redis/connection.hpp"
#include "runtime/ops/metrics.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace fraiseql {

std::shared_ptr<http_client> make_http_client(const performance_config& perf) {
  return std::make_shared<http_client>(0, std::max<long>(64, 2L * perf.max_concurrent_actions));
}

executor_map make_executors(const config& cfg, std::shared_ptr<const observer_registry> registry,
                            std::shared_ptr<http_client> http) {
  executor_options eo;
  eo.database_workers = std::min<size_t>(4, cfg.performance.max_concurrent_actions);
  return make_executors(std::move(registry), std::move(http), eo);
}

std::shared_ptr<redis_pool> make_redis_pool(const config& cfg, metrics& stats) {
  if (!cfg.redis) return nullptr;
  const auto& rc = *cfg.redis;
  redis_connection_options ro;
  ro.url = redis_url::parse(rc.url);
  ro.connect_timeout = std::chrono::seconds(rc.connect_timeout_secs);
  ro.command_timeout = std::chrono::seconds(rc.command_timeout_secs);
  auto pool = std::make_shared<redis_pool>(ro, rc.pool_size);
  try {
    pool->check();
    stats.redis_health(true);
    spdlog::info("node: Redis connected at {} (pool of {})", ro.url.to_string(), rc.pool_size);
  } catch (const redis_unavailable& e) {
    stats.redis_health(false);
    // Not fatal: the failure policy applies while it stays down.
    spdlog::warn("node: Redis is unavailable at start ({}); policy {}", e.what(),
                 rc.failure_policy);
  }
  return pool;
}

std::shared_ptr<blocking_runner> add_result_cache(const config& cfg,
                                                  std::shared_ptr<redis_pool> redis,
                                                  executor_map& executors,
                                                  std::shared_ptr<metrics> stats,
                                                  std::shared_ptr<result_cache>& cache) {
  std::shared_ptr<blocking_runner> runner;
  std::chrono::milliseconds ttl = std::chrono::seconds(redis_config{}.cache_ttl_secs);
  if (redis) {
    ttl = std::chrono::seconds(cfg.redis->cache_ttl_secs);
    cache = std::make_shared<redis_result_cache>(*redis, ttl);
    runner = std::make_shared<blocking_runner>(std::min<size_t>(redis->size(), 4), "redis cache");
  } else {
    cache = std::make_shared<lru_ttl_cache>(cfg.performance.cache_capacity, ttl);
  }
  for (auto& [type, ex] : executors) ex = make_caching_executor(ex, cache, runner, ttl, stats);
  spdlog::info("node: action-result cache on {} (default TTL {} s)",
               redis ? "Redis"
                     : "process memory (LRU, " + std::to_string(cfg.performance.cache_capacity) +
                           " entries)",
               ttl.count() / 1000);
  return runner;
}

void warn_uncached_webhooks(const config& cfg) {
  for (const auto& oc : cfg.observers)
    for (const auto& ac : oc.actions)
      if (ac.webhook && ac.webhook->cache && !cfg.performance.enable_caching)
        spdlog::warn(
            "node: {} of observer '{}' has cache = true, but [performance] "
            "enable_caching is false: it is not cached",
            ac.where, oc.name);
}

}  // namespace fraiseql
