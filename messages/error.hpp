#pragma once

// One error enum for the engine. Errors are values: they travel in
// caf::expected / caf::error and land in logs, metrics or the DLQ.

#include <cstdint>

namespace fraiseql {

enum class ec : uint8_t {
  /// Not an error.
  none = 0,
  /// The configuration is invalid (the actor or node refuses to start).
  invalid_config,
  /// The database cannot be reached; the caller retries with backoff.
  database_unavailable,
  /// A query failed for a reason that retrying will not fix.
  database_error,
  /// The schema is missing or older than this binary needs (run `migrate`).
  schema_mismatch,
  /// An action attempt failed (transport error, timeout, bad status).
  action_failed,
  /// An action attempt failed in a way retrying cannot fix (e.g. 4xx).
  action_rejected,
  /// The node is shutting down and refuses new work.
  shutting_down,
};

const char* to_string(ec x);

}  // namespace fraiseql
