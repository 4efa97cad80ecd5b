#pragma once

// A circuit breaker's state as reported (pool -> node -> control plane).

#include <cstdint>
#include <string>

namespace fraiseql {

enum class breaker_state : uint8_t { closed = 0, open = 1, half_open = 2 };

/// "closed" | "open" | "half_open".
inline const char* to_string(breaker_state s) {
  switch (s) {
    case breaker_state::closed:
      return "closed";
    case breaker_state::open:
      return "open";
    case breaker_state::half_open:
      return "half_open";
  }
  return "closed";
}

/// One row of the breaker status (observerctl status, metrics).
struct breaker_status {
  std::string endpoint;
  breaker_state state = breaker_state::closed;
  uint32_t failures = 0;
  uint32_t calls = 0;
  uint64_t trips = 0;
  /// Calls rejected without touching the endpoint since creation.
  uint64_t rejected = 0;
  /// While open: milliseconds until the next probe is possible (0 otherwise).
  int64_t retry_in_ms = 0;
};

/// For CAF's serialization (the control plane), without CAF headers here.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, breaker_status& x) {
  // The state travels as its number (0 closed, 1 open, 2 half-open).
  auto state = static_cast<uint8_t>(x.state);
  if constexpr (Inspector::writes_state) {
    auto res = f(x.endpoint, state, x.failures, x.calls, x.trips, x.rejected, x.retry_in_ms);
    x.state = static_cast<breaker_state>(state);
    return res;
  } else {
    return f(x.endpoint, state, x.failures, x.calls, x.trips, x.rejected, x.retry_in_ms);
  }
}

}  // namespace fraiseql
