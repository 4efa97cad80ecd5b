#pragma once

// What to do while Redis is unavailable: the failure policy and the tracker
// that applies it. Pure (time is passed in).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace fraiseql {

/// What to do while Redis is unavailable.
enum class redis_failure_policy {
  /// Process events without dedup (and without cache); log and count. Default:
  /// delivery stays at-least-once, only dedup is lost meanwhile.
  fail_open,
  /// Pause processing and keep retrying until Redis answers again.
  fail_closed
};
/// "fail_open" / "fail_closed" (also with '-'); nullopt otherwise.
std::optional<redis_failure_policy> parse_redis_failure_policy(std::string_view s);
const char* to_string(redis_failure_policy p);

/// The decision after a call threw redis_unavailable.
struct redis_outage_decision {
  /// fail-open: go on without Redis for this batch (treat every event as claimed).
  bool proceed_without_redis = false;
  /// fail-closed: wait this long, then retry the same call. (fail-open: when
  /// to try Redis again; calls before then fail fast anyway.)
  std::chrono::milliseconds retry_after{0};
  /// Log now: the first failure of an outage, then at most every `log_every`.
  bool log = false;
};

/// Counts and rate-limits an outage and applies the policy. Pure (time is
/// passed in); not thread-safe: one per actor.
class redis_outage_tracker {
 public:
  explicit redis_outage_tracker(
      redis_failure_policy policy,
      std::chrono::milliseconds initial_delay = std::chrono::milliseconds(100),
      std::chrono::milliseconds max_delay = std::chrono::milliseconds(5000),
      std::chrono::milliseconds log_every = std::chrono::seconds(10));

  redis_outage_decision on_unavailable(std::chrono::steady_clock::time_point now);
  /// A call succeeded. True when this ends an outage (log "redis recovered").
  bool on_success();

  redis_failure_policy policy() const { return policy_; }
  bool in_outage() const { return consecutive_ > 0; }
  /// Failures in the current outage (0 when none).
  uint32_t consecutive_failures() const { return consecutive_; }
  /// All redis_unavailable seen.
  uint64_t unavailable_total() const { return unavailable_total_; }
  /// Batches fail-open let through without Redis.
  uint64_t bypassed_total() const { return bypassed_total_; }
  uint64_t outages_total() const { return outages_total_; }

 private:
  redis_failure_policy policy_;
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  std::chrono::milliseconds log_every_;
  uint32_t consecutive_ = 0;
  std::chrono::steady_clock::time_point last_log_{};
  uint64_t unavailable_total_ = 0;
  uint64_t bypassed_total_ = 0;
  uint64_t outages_total_ = 0;
};

}  // namespace fraiseql
