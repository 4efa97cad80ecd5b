#include "runtime/core/job_rules.hpp"

#include "messages/attempt.hpp"
#include "runtime/core/backoff.hpp"

#include <algorithm>

namespace fraiseql {

job_decision decide_job(const attempt_outcome& o, uint32_t attempts, uint32_t max_attempts,
                        const retry_config& retry, double random01) {
  job_decision d;
  if (o.ok) return d;
  if (!o.retryable || attempts >= max_attempts) {
    d.kind = job_decision::dead_letter;
    return d;
  }
  d.kind = job_decision::retry;
  d.delay = backoff_delay(retry, std::max<uint32_t>(attempts, 1), random01);
  if (o.retry_after)
    d.delay = std::max(d.delay, std::min(*o.retry_after, std::chrono::milliseconds(3600 * 1000)));
  return d;
}

}  // namespace fraiseql
