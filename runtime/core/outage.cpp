#include "runtime/core/outage.hpp"

#include "runtime/core/backoff.hpp"

#include <stdexcept>
#include <string>

namespace fraiseql {

std::optional<redis_failure_policy> parse_redis_failure_policy(std::string_view s) {
  if (s == "fail_open" || s == "fail-open") return redis_failure_policy::fail_open;
  if (s == "fail_closed" || s == "fail-closed") return redis_failure_policy::fail_closed;
  return std::nullopt;
}

const char* to_string(redis_failure_policy p) {
  return p == redis_failure_policy::fail_open ? "fail_open" : "fail_closed";
}

redis_outage_tracker::redis_outage_tracker(redis_failure_policy policy,
                                           std::chrono::milliseconds initial_delay,
                                           std::chrono::milliseconds max_delay,
                                           std::chrono::milliseconds log_every)
    : policy_(policy), initial_(initial_delay), max_(max_delay), log_every_(log_every) {
  if (initial_.count() <= 0 || max_ < initial_)
    throw std::invalid_argument("redis outage: need 0 < initial_delay <= max_delay");
}

redis_outage_decision redis_outage_tracker::on_unavailable(
    std::chrono::steady_clock::time_point now) {
  redis_outage_decision d;
  ++unavailable_total_;
  if (consecutive_ == 0) {
    ++outages_total_;
    d.log = true;
    last_log_ = now;
  } else if (now - last_log_ >= log_every_) {
    d.log = true;
    last_log_ = now;
  }
  if (consecutive_ < UINT32_MAX) ++consecutive_;
  d.retry_after = doubling_delay(initial_, max_, consecutive_);
  if (policy_ == redis_failure_policy::fail_open) {
    d.proceed_without_redis = true;
    ++bypassed_total_;
  }
  return d;
}

bool redis_outage_tracker::on_success() {
  const bool ended = consecutive_ > 0;
  consecutive_ = 0;
  return ended;
}

}  // namespace fraiseql
