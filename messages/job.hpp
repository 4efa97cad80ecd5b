#pragma once

// A job on its way into the job queue (pool -> job writer).

#include "messages/event.hpp"

#include <cstdint>
#include <string>

namespace fraiseql {

/// One asynchronous action of one event, on its way into observer_jobs.
struct job_spec {
  event_ptr ev;
  std::string observer_name;
  uint32_t action_index = 0;
  std::string action_type;
  /// "<event id>:<observer>:<action index>"; unique per listener id, so a
  /// redelivered event enqueues nothing new.
  std::string idempotency_key;
  /// From the observer's [observers.retry].
  uint32_t max_attempts = 3;
};

}  // namespace fraiseql
