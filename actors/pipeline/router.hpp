#pragma once

#include "messages/actors.hpp"

#include <caf/fwd.hpp>
#include "runtime/core/journal.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/ops/metrics.hpp"

#include <memory>

namespace fraiseql {

struct router_options {
  std::shared_ptr<const observer_registry> registry;
  /// Counters (events processed / matched, condition errors); may be null.
  std::shared_ptr<metrics> stats;
  /// Debug journal (`observerctl debug-event`); may be null.
  std::shared_ptr<journal> trace;
};

/// Matches each event against the registry; events that match nothing are
/// finished at once (to `checkpointer`), the others go with their observers
/// to `pool` (the action pool, or the dedup actor in front of it).
router_actor spawn_router(caf::actor_system& sys, router_options cfg, run_sink pool,
                          finish_sink checkpointer);

}  // namespace fraiseql
