#pragma once

#include "messages/actors.hpp"

#include <caf/fwd.hpp>
#include "runtime/core/journal.hpp"
#include "runtime/ops/metrics.hpp"
#include "runtime/core/observers.hpp"

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
/// finished at once, the others go to the action pool with their observers.
router_actor spawn_router(caf::actor_system& sys, router_options cfg, action_pool_actor pool, checkpointer_actor checkpointer);

}  // namespace fraiseql
