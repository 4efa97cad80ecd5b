#include "runtime/core/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace fraiseql {

std::chrono::milliseconds backoff_delay(const retry_config& cfg, uint32_t failures,
                                        double random01) {
  const double initial = cfg.initial_delay_ms;
  const double cap = std::max<double>(cfg.max_delay_ms, 0);
  const uint32_t n = std::max<uint32_t>(failures, 1);
  double d = initial;
  switch (cfg.strategy) {
    case backoff_strategy::exponential:
      // 2^63 already exceeds any uint32 cap; avoid inf for large n.
      d = initial * std::ldexp(1.0, static_cast<int>(std::min<uint32_t>(n - 1, 62)));
      break;
    case backoff_strategy::linear:
      d = initial * n;
      break;
    case backoff_strategy::fixed:
      d = initial;
      break;
  }
  d = std::min(d, cap);
  const double j = std::clamp(cfg.jitter, 0.0, 1.0);
  const double r = std::clamp(random01, 0.0, 1.0);
  d = d * (1.0 - j * r);
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(d)));
}

std::chrono::milliseconds doubling_delay(std::chrono::milliseconds initial,
                                         std::chrono::milliseconds max, uint32_t failures) {
  std::chrono::milliseconds d = initial;
  for (uint32_t i = 1; i < failures && d < max; ++i) d *= 2;
  return std::min(d, max);
}

}  // namespace fraiseql
