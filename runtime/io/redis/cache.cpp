#include "runtime/io/redis/cache.hpp"
#include "runtime/core/redis_url.hpp"
#include "runtime/core/result_cache.hpp"
#include "runtime/io/redis/connection.hpp"

namespace fraiseql {

redis_result_cache::redis_result_cache(redis_pool& pool, std::chrono::milliseconds ttl)
    : result_cache(ttl), pool_(pool) {}

std::optional<std::string> redis_result_cache::do_get(const std::string& key) {
  return do_get_many(std::vector<std::string>{key}).front();
}

std::vector<std::optional<std::string>> redis_result_cache::do_get_many(
    const std::vector<std::string>& keys) {
  std::vector<std::optional<std::string>> out(keys.size());
  if (keys.empty()) return out;
  std::vector<std::vector<std::string>> cmds;
  cmds.reserve(keys.size());
  for (const auto& k : keys) cmds.push_back({"GET", action_result_key(k)});
  auto c = pool_.acquire();
  const auto replies = c->pipeline(cmds, true);
  for (size_t i = 0; i < replies.size(); ++i) {
    if (replies[i].type == redis_reply::kind::string)
      out[i] = replies[i].str;
    else if (!replies[i].is_nil())
      throw redis_error("redis cache: GET of " + action_result_key(keys[i]) + " answered " +
                        describe(replies[i]));
  }
  return out;
}

void redis_result_cache::do_put(const std::string& key, const std::string& value,
                                std::chrono::milliseconds ttl) {
  if (ttl.count() <= 0) throw std::invalid_argument("redis cache: TTL must be positive");
  auto c = pool_.acquire();
  const redis_reply r =
      c->command({"SET", action_result_key(key), value, "PX", std::to_string(ttl.count())}, true);
  if (!r.is_ok())
    throw redis_error("redis cache: SET of " + action_result_key(key) + " answered " + describe(r));
}

}  // namespace fraiseql
