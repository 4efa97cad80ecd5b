#include "runtime/io/redis/cache.hpp"
#include "runtime/core/redis_url.hpp"
#include "runtime/core/result_cache.hpp"
#include "runtime/io/redis/connection.hpp"

#include <string>

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

cache_usage redis_result_cache::usage() {
  cache_usage u;
  auto c = pool_.acquire();
  uint64_t entries = 0;
  std::string cursor = "0";
  do {
    const redis_reply r =
        c->command({"SCAN", cursor, "MATCH", action_result_key("*"), "COUNT", "1000"}, true);
    if (r.type != redis_reply::kind::array || r.elements.size() != 2)
      throw redis_error("redis cache: SCAN answered " + describe(r));
    cursor = r.elements[0].str;
    entries += r.elements[1].elements.size();
  } while (cursor != "0" && entries < 1000000);
  u.entries = entries;
  const redis_reply info = c->command({"INFO", "stats"}, true);
  if (info.type == redis_reply::kind::string) {
    auto field = [&](const std::string& name) -> std::optional<uint64_t> {
      const auto at = info.str.find("\n" + name + ":");
      if (at == std::string::npos) return std::nullopt;
      try {
        return std::stoull(info.str.substr(at + name.size() + 2));
      } catch (const std::exception&) {
        return std::nullopt;
      }
    };
    u.evictions = field("evicted_keys");
    u.expired = field("expired_keys");
  }
  return u;
}

}  // namespace fraiseql
