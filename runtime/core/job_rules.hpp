#pragma once

// The job queue's rules, apart from its store: what happens to a job after
// an attempt. Pure.

#include "messages/attempt.hpp"
#include "runtime/config/model.hpp"

#include <chrono>
#include <cstdint>

namespace fraiseql {

/// What to do with a job after an attempt. Pure; see decide_job().
struct job_decision {
  enum kind_t { complete, retry, dead_letter } kind = complete;
  /// For `retry`: not claimable before now + delay.
  std::chrono::milliseconds delay{0};
};

/// Success completes; a retryable failure with attempts left is retried after
/// the observer's backoff (or the peer's Retry-After when longer, capped at an
/// hour); anything else goes to the DLQ. `random01` in [0, 1) draws the jitter.
job_decision decide_job(const attempt_outcome& o, uint32_t attempts, uint32_t max_attempts,
                        const retry_config& retry, double random01);

}  // namespace fraiseql
