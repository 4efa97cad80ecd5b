#pragma once

// The PostgreSQL -> NATS bridge (transport "nats", role bridge): takes the
// listener's events in place of the router and publishes each to the stream
// (runtime/core/bus.hpp names the subject and the Msg-Id). An event is
// finished, so the checkpoint may pass it, only once the stream acknowledged
// it (runtime/core/publish_tracker.hpp has the rules: failed publishes go
// again, in order, with the same Msg-Id; a disconnect pauses publishing).
// An event the server cannot take for its size is dead-lettered with the
// reason and finished.

#include "messages/actors.hpp"
#include "runtime/io/nats/publisher.hpp"

#include <caf/fwd.hpp>

#include <memory>
#include <string>

namespace fraiseql {

class metrics;
class nats_connection;

struct bridge_options {
  std::shared_ptr<nats_connection> conn;
  /// Window (max_pending), ack timeout, expected stream.
  publisher_options publish;
  std::string subject_prefix;
  /// This database's name in subjects and Msg-Ids.
  std::string source;
  uint32_t partitions = 1;
  std::shared_ptr<metrics> stats;
  /// Where events too large for the server go.
  dlq_actor dlq;
};

/// Looks like a router to the listener.
router_actor spawn_bridge(caf::actor_system& sys, bridge_options cfg, finish_sink checkpointer);

}  // namespace fraiseql
