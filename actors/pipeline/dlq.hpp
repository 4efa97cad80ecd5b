#pragma once

#include "messages/actors.hpp"

#include <caf/fwd.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace fraiseql {

struct dlq_options {
  /// libpq DSN of the database holding observer_dlq.
  std::string dsn;
  /// A write that fails because the database is unavailable is retried with
  /// this delay, doubling up to max_backoff: an exhausted action is never
  /// dropped, it waits for the database.
  std::chrono::milliseconds min_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
  /// Set when the node stops: an entry that still cannot be written is then
  /// answered with an error and its event stays unfinished (redelivered after
  /// restart) instead of blocking shutdown forever.
  std::shared_ptr<std::atomic<bool>> stopping = std::make_shared<std::atomic<bool>>(false);
  /// The leader's listener id and lease epoch: writes are fenced by them (a
  /// refused write is answered with an error at once, not retried). Unset:
  /// unfenced (dry run, tests).
  std::optional<std::string> listener_id;
  int64_t epoch = 0;
};

/// Detached: writes are blocking. Replies to `bury` only once the row is durable.
dlq_actor spawn_dlq(caf::actor_system& sys, dlq_options cfg);

}  // namespace fraiseql
