#pragma once

// Wall-clock helpers shared by the DLQ, the journal and the action pool.

#include <chrono>
#include <cstdint>

namespace fraiseql {

/// Milliseconds since the Unix epoch (wall clock: for records people read,
/// never for measuring durations).
inline int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace fraiseql
