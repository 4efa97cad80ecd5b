#pragma once

#include "messages/actors.hpp"
#include "messages/checkpoint.hpp"
#include "runtime/core/checkpoint_sink.hpp"
#include "runtime/io/pg/lease.hpp"
#include "runtime/ops/metrics.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace fraiseql {

struct checkpointer_options {
  /// libpq DSN of the source database.
  std::string dsn;
  /// Row of observer_checkpoints this node writes.
  std::string listener_id = "default";
  /// Save after this many events finished since the last save...
  uint32_t batch_size = 100;
  /// ...or after this long (also the credit flush period).
  std::chrono::milliseconds interval{200};
  /// Window of the listener, to size credit batches.
  uint32_t max_in_flight = 10000;
  /// Where reading resumes (the loaded checkpoint).
  checkpoint_record resume;
  /// Dry run: track, never save.
  bool dry_run = false;
  /// Where to save; null means observer_checkpoints at `dsn`.
  std::shared_ptr<checkpoint_sink> sink;
  /// Leadership of this listener id, renewed every `renew_interval`. Losing it
  /// (another node took over), or failing to renew it before its deadline,
  /// stops the actor with an error, which stops the node: another node may be
  /// leading by now.
  std::shared_ptr<leader_lease> lease;
  std::chrono::milliseconds renew_interval{1000};
  /// Backlog and checkpoint-age gauges; may be null.
  std::shared_ptr<metrics> stats;
  /// Run on an own thread (saves block). Tests turn it off to step the actor
  /// deterministically on a test_coordinator.
  bool detached = true;
};

/// Detached (blocking saves run on its own thread). Owns the watermark tracker.
/// Send it its credit_sink (the listener) before the listener's first read;
/// credits it counts before that are kept and sent once it knows the sink.
checkpointer_actor spawn_checkpointer(caf::actor_system& sys, checkpointer_options cfg);

}  // namespace fraiseql
