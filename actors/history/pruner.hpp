#pragma once

// Change-log retention ([change_log]): every prune_interval, deletes in short
// batches the change-log rows that every checkpoint of the database has passed
// and that are older than the retention period (runtime/core/retention.hpp,
// runtime/io/pg/retention.cpp). Runs on the leader; pruners of other listener
// ids on the same database take turns through an advisory lock. It reports the
// log's size and the age of its oldest row, and names the checkpoint that
// holds pruning back when rows past the retention period remain.

#include "messages/actors.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <memory>
#include <string>

namespace fraiseql {

class metrics;

struct pruner_options {
  std::string dsn;
  /// False: only report the log's figures.
  bool prune = true;
  std::chrono::seconds retention{std::chrono::hours(168)};
  std::chrono::milliseconds interval{std::chrono::seconds(60)};
  uint32_t batch_size = 5000;
  /// A round stops after this long (the rest waits for the next round), so
  /// a stop never waits long for it.
  std::chrono::milliseconds max_round{std::chrono::seconds(2)};
  /// A pause between batches: autovacuum and the writers get their turn.
  std::chrono::milliseconds pause{std::chrono::milliseconds(20)};
  std::shared_ptr<metrics> stats;
  /// This node's listener id (a blocked pruning held by it is a backlog).
  std::string listener_id;
};

/// Detached: its queries block its own thread only.
pruner_actor spawn_pruner(caf::actor_system& sys, pruner_options o);

}  // namespace fraiseql
