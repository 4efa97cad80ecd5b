#pragma once

#include "messages/actors.hpp"

#include <caf/fwd.hpp>

#include "runtime/ops/metrics.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace fraiseql {

struct job_writer_options {
  /// libpq DSN of the database holding observer_jobs.
  std::string dsn;
  /// The queue jobs go to (this node's listener id).
  std::string listener_id;
  /// Rows per INSERT statement ([job_queue] batch_size).
  uint32_t rows_per_statement = 100;
  /// A write that fails because the database is unavailable is retried with
  /// this delay, doubling up to max_backoff: an enqueue is never dropped.
  std::chrono::milliseconds min_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
  /// Set when the node stops: an enqueue that still cannot be written is then
  /// answered with an error (its events stay unfinished and are redelivered).
  std::shared_ptr<std::atomic<bool>> stopping = std::make_shared<std::atomic<bool>>(false);
  /// Woken after each commit so enqueued jobs start without waiting for a poll.
  job_runner_actor runner;
  std::shared_ptr<metrics> stats;
};

/// Detached (blocking writes). One request, one transaction: the pool sends
/// every async action of a mailbox burst in one `enqueue`, written as
/// multi-row INSERT ... ON CONFLICT DO NOTHING statements; the reply comes
/// only after the commit.
job_writer_actor spawn_job_writer(caf::actor_system& sys, job_writer_options cfg);

}  // namespace fraiseql
