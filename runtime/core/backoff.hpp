#pragma once

#include "runtime/config/model.hpp"

#include <chrono>
#include <cstdint>

namespace fraiseql {

/// Delay before the next attempt after `failures` failed attempts (>= 1).
/// `random01` in [0, 1) draws the jitter: the delay d becomes d * (1 - jitter * random01),
/// so jitter only ever shortens a delay and never exceeds max_delay_ms.
///   exponential: initial * 2^(failures-1)
///   linear:      initial * failures
///   fixed:       initial
std::chrono::milliseconds backoff_delay(const retry_config& cfg, uint32_t failures,
                                        double random01);

/// The same without jitter (the schedule users configure).
inline std::chrono::milliseconds backoff_delay(const retry_config& cfg, uint32_t failures) {
  return backoff_delay(cfg, failures, 0.0);
}

/// `initial` doubled after each failure beyond the first, capped at `max`
/// (reconnect and outage delays).
std::chrono::milliseconds doubling_delay(std::chrono::milliseconds initial,
                                         std::chrono::milliseconds max, uint32_t failures);

}  // namespace fraiseql
