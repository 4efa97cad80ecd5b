#pragma once

#include "messages/actors.hpp"

#include <caf/fwd.hpp>

#include "runtime/core/observers.hpp"
#include "runtime/exec/executor.hpp"
#include "runtime/ops/metrics.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace fraiseql {

struct job_runner_options {
  /// libpq DSN of the database holding observer_jobs.
  std::string dsn;
  /// The queue this runner serves (the node's listener id).
  std::string listener_id;
  /// Names this runner's leases (locked_by); unique per process run, so a
  /// restarted node never mistakes a dead run's lease for its own.
  std::string token;
  /// Jobs are run with the same observers and executors as the action pool.
  std::shared_ptr<const observer_registry> registry;
  executor_map executors;
  /// Jobs running at the same time.
  uint32_t workers = 4;
  /// Rows per claim.
  uint32_t batch_size = 100;
  /// Poll for due jobs this often (a local enqueue wakes the runner at once).
  std::chrono::milliseconds poll_interval{1000};
  /// Lease of a claimed job; renewed every lease / 3 while it runs.
  std::chrono::milliseconds lease{30000};
  std::shared_ptr<metrics> stats;
};

/// Detached (its store calls block). Claims due jobs in short transactions,
/// runs them through the executors (attempts complete on the executors'
/// threads and come back as messages), and writes each outcome in a short
/// transaction: delete on success, reschedule with the observer's backoff
/// (Retry-After honoured), or DLQ row + delete in one statement after the
/// last attempt. Never holds a transaction while an action runs.
job_runner_actor spawn_job_runner(caf::actor_system& sys, job_runner_options cfg);

}  // namespace fraiseql
