#pragma once

#include "messages/actors.hpp"

#include <caf/fwd.hpp>
#include "runtime/core/journal.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/ops/metrics.hpp"

#include <memory>
#include <string>

namespace fraiseql {

class audit_queue;

struct router_options {
  std::shared_ptr<const observer_registry> registry;
  /// Counters (events processed / matched, condition errors); may be null.
  std::shared_ptr<metrics> stats;
  /// Debug journal (`observerctl debug-event`); may be null.
  std::shared_ptr<journal> trace;
  /// Audit trail: every routed event is recorded here (null: off).
  std::shared_ptr<audit_queue> audit;
  /// Where oversize events go (event::oversize_limit); null in tests that
  /// send none. In a dry run they are logged and finished.
  dlq_actor dlq;
  bool dry_run = false;
  /// This node's listener id: replayed copies another listener id requested
  /// run no observer here (runtime/core/replay.hpp).
  std::string listener_id;
};

/// Matches each event against the registry; events that match nothing are
/// finished at once (to `checkpointer`), the others go with their observers
/// to `pool` (the action pool, or the dedup actor in front of it). An event
/// over the per-event size limit (its body was not read) is not matched: it
/// is written to the DLQ with the reason (observer "(listener)", action type
/// "oversize") and finished once that write is durable.
router_actor spawn_router(caf::actor_system& sys, router_options cfg, run_sink pool,
                          finish_sink checkpointer);

}  // namespace fraiseql
