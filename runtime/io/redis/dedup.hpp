#pragma once

// The deduplication protocol (runtime/core/dedup.hpp) on Redis.

#include "runtime/core/dedup.hpp"
#include "runtime/io/redis/connection.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace fraiseql {

/// The protocol on Redis: one pipeline per batch call (claims needing a
/// second look cost one more round trip, and taking over a predecessor's
/// claims one more); confirm, release and extend run Lua
/// scripts through EVALSHA, one script run per chunk of 256 events (reloaded
/// after NOSCRIPT, e.g. after a restart). A script run touches many keys: this
/// needs a standalone Redis (or one whose keys all live on one node), not
/// Redis Cluster, which hiredis 0.14 does not speak anyway. All its commands
/// are safe to resend, so a connection found dead is retried once on a new one.
class redis_dedup final : public dedup_store {
 public:
  redis_dedup(redis_pool& pool, std::chrono::milliseconds window);

  std::vector<claim_status> claim(const std::vector<std::string>& event_ids,
                                  const std::string& owner,
                                  std::chrono::milliseconds claim_ttl) override;
  std::vector<bool> extend(const std::vector<std::string>& event_ids, const std::string& owner,
                           std::chrono::milliseconds claim_ttl) override;
  std::vector<confirm_status> confirm_all(const std::vector<std::string>& event_ids,
                                          const std::string& owner) override;
  std::vector<bool> release_all(const std::vector<std::string>& event_ids,
                                const std::string& owner) override;

 private:
  enum script_id : size_t {
    confirm_script,
    release_script,
    extend_script,
    takeover_script,
    script_count
  };
  /// Runs script `id` once per event id (KEYS[1] = event key, ARGV = owner, arg).
  std::vector<long long> run_script(script_id id, const std::vector<std::string>& event_ids,
                                    const std::string& owner, const std::string& arg);
  std::string script_sha(redis_connection& c, script_id id, bool reload);

  redis_pool& pool_;
  std::mutex sha_mtx_;
  std::string sha_[script_count];
};

}  // namespace fraiseql
