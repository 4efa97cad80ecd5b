#pragma once

// Replay and backfill (docs/history.md): a detached actor on the leader that
// carries out the requests the control plane records (observer_replays of
// this listener id, observer_backfills of the database), chunk by chunk,
// each chunk one transaction that writes its change-log rows and its
// progress (runtime/io/pg/history_store.cpp). The rows then travel the
// normal pipeline. Chunks are paced against the pipeline
// (runtime/core/replay.hpp, chunk_pacer) so live events keep flowing.

#include "messages/actors.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace fraiseql {

/// What the writer asks the checkpointer: (events in flight, finished since start).
using pipeline_status = caf::typed_actor<status_reply>;

using history_writer_actor = caf::typed_actor<caf::reacts_to<tick_atom>>;

struct history_writer_options {
  std::string dsn;
  std::string listener_id;
  /// Most rows per replay chunk (a backfill has its own --batch); the pacer
  /// sizes chunks below it (runtime/core/replay.hpp).
  uint32_t replay_batch = 1000;
  /// How often running requests are looked for while none runs.
  std::chrono::milliseconds idle_poll{500};
  /// The pipeline's checkpointer: paces the chunks.
  pipeline_status checkpointer;
};

/// Detached: its queries block its own thread only.
history_writer_actor spawn_history_writer(caf::actor_system& sys, history_writer_options o);

}  // namespace fraiseql
