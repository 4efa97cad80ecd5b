#pragma once

// The action-result cache (runtime/core/result_cache.hpp) on Redis.

#include "runtime/core/result_cache.hpp"
#include "runtime/io/redis/connection.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace fraiseql {

/// On Redis: GET / SET PX of `action_result:<key>` (GETs of a batch pipelined).
class redis_result_cache final : public result_cache {
 public:
  redis_result_cache(redis_pool& pool, std::chrono::milliseconds ttl);
  /// entries: `action_result:*` keys (SCAN, counted up to 1000000);
  /// evictions / expired: the server's INFO stats.
  cache_usage usage() override;

 private:
  std::optional<std::string> do_get(const std::string& key) override;
  std::vector<std::optional<std::string>> do_get_many(
      const std::vector<std::string>& keys) override;
  void do_put(const std::string& key, const std::string& value,
              std::chrono::milliseconds ttl) override;

  redis_pool& pool_;
};

}  // namespace fraiseql
