#pragma once

// How one attempt of one action ended (executors -> action pool, job runner).

#include <chrono>
#include <optional>
#include <string>
#include <utility>

namespace fraiseql {

/// Outcome of one attempt, transport-independent.
struct attempt_outcome {
  bool ok = false;
  /// A failed attempt that may succeed later (5xx, 429, timeouts, transport
  /// errors); non-retryable failures go to the DLQ at once.
  bool retryable = false;
  std::string error;
  /// The peer asked for this delay before the next attempt (Retry-After).
  std::optional<std::chrono::milliseconds> retry_after;
  /// The endpoint served the call although it failed (an HTTP 4xx other than
  /// 429): its latency is a sample for adaptive concurrency. Implied by `ok`.
  bool served = false;
  /// The endpoint signalled overload (HTTP 429 or 503, a timeout): adaptive
  /// concurrency backs off.
  bool overloaded = false;

  static attempt_outcome success() { return attempt_outcome{true, false, {}, {}, false, false}; }
  static attempt_outcome failure(std::string error, bool retryable) {
    return attempt_outcome{false, retryable, std::move(error), {}, false, false};
  }
};

}  // namespace fraiseql
