#pragma once

#include "messages/actors.hpp"
#include "runtime/core/lease_clock.hpp"

#include <caf/fwd.hpp>
#include "runtime/core/adaptive_limit.hpp"
#include "runtime/core/circuit_breaker.hpp"
#include "runtime/core/journal.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/exec/executor.hpp"
#include "runtime/ops/metrics.hpp"

#include <memory>

namespace fraiseql {

class audit_queue;

struct action_pool_options {
  std::shared_ptr<const observer_registry> registry;
  /// One executor per action type (runtime/exec/executor.hpp); they outlive the actor.
  executor_map executors;
  /// Run the actions of one event for one observer concurrently (else in order).
  bool enable_concurrent = true;
  /// Bound on attempts in flight across all events.
  uint32_t max_concurrent_actions = 10;
  /// In concurrent mode, no attempt runs longer than this (nor longer than its
  /// own timeout); a cut attempt is a failed, retryable attempt.
  uint32_t concurrent_timeout_ms = 30000;
  /// One circuit breaker per endpoint (executor's endpoint()): while open,
  /// attempts fail fast as retryable failures, retried no earlier than the
  /// next probe.
  breaker_settings breakers;
  /// Bound on breakers kept (least recently used idle ones are forgotten).
  size_t max_breaker_endpoints = 4096;
  /// Adaptive concurrency: one limiter per endpoint (the breaker's key) learns
  /// how many attempts may be in flight to it, under max_concurrent_actions.
  /// An attempt its endpoint's limit refuses waits for a slot of that
  /// endpoint, not of the pool: a slow endpoint only holds back its own.
  bool adaptive = false;
  adaptive_limit_settings limits;
  /// Bound on limiters kept (least recently used idle ones are forgotten).
  size_t max_limit_endpoints = 4096;
  /// Log what would run, execute nothing.
  bool dry_run = false;
  /// Attempt, DLQ and processing-time metrics; may be null.
  std::shared_ptr<metrics> stats;
  /// Debug journal (`observerctl debug-event`); may be null.
  std::shared_ptr<journal> trace;
  /// How long this node may still lead; null: always (dry run, tests). Once it
  /// has passed, no attempt starts and no DLQ row is written: another node
  /// may lead by now, and it will deliver what is left here.
  std::shared_ptr<const lease_clock> lease;
  /// Audit trail: every ended attempt is recorded here (null: off).
  std::shared_ptr<audit_queue> audit;
  /// Job queue: actions with `async` set are enqueued here instead of run; the
  /// action counts as done once the job is durable. Null: queue disabled.
  job_writer_actor jobs;
};

/// Runs actions with per-lane ordering: a lane is (observer, entity type,
/// entity id), and a lane runs one event at a time in capture order, so events
/// of one entity reach each observer's actions in order while different
/// entities and observers proceed in parallel (a failing endpoint only holds
/// back its own lanes). Failed attempts are retried per the observer's retry
/// policy; exhausted ones go to the DLQ; an event is finished once every lane
/// it joined is done. Finished events go to `checkpointer` (the checkpointer,
/// or the dedup actor in front of it).
action_pool_actor spawn_action_pool(caf::actor_system& sys, action_pool_options cfg,
                                    finish_sink checkpointer, dlq_actor dlq);

}  // namespace fraiseql
