#pragma once

// NATS workers (transport "nats", role worker): durable pull consumers in
// front of the unchanged pipeline (router -> [dedup ->] action pool -> DLQ).
//
// Partitions. The bridge spreads events over `partitions` subjects by entity
// (runtime/core/bus.hpp); each partition has one durable consumer and at most
// one owning worker at a time, so one entity's events run in stream order.
// Ownership is a lease in the KV bucket <stream>_owners: the key
// owner.<p> exists while its holder renews it (partition_lease_ms); members
// register under member.<name> the same way. Which worker should own which
// partition is rendezvous hashing over the live members
// (runtime/core/partitions.hpp): workers joining or leaving move only what
// they gain or lose.
//
// Hand-off. A worker gives a partition up by stopping its fetches, letting
// what it holds finish and be acked, and then deleting its key; the next
// owner finds no message outstanding and starts at once. A worker that dies
// leaves its key to expire; the next owner then waits for the consumer's
// outstanding deliveries to be acked or to pass their ack wait (they are
// redelivered first, in stream order) before it fetches. A worker that
// cannot renew in time (frozen, cut off) starts no action past its lease's
// local deadline (the pool's lease_clock); if it finds its key taken while
// it still holds messages of that partition, it exits (crash-only: a
// supervisor restarts it) rather than run them beside the new owner.
//
// Messages. Fetch never asks for more than the free slots of the worker's
// window ([performance] max_concurrent_actions when set, else 10:
// performance_config::worker_window); held messages get
// in-progress acks every ack_wait / 4 once they are older than half of it,
// so they never expire while the worker lives. A message is acked once its
// event finished (every action done or durably in the DLQ). An unparseable
// message and one delivered more than max_deliver times go to the DLQ and
// are terminated.

#include "messages/actors.hpp"
#include "runtime/config/model.hpp"

#include <caf/fwd.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace fraiseql {

class lease_clock;
class metrics;
class nats_connection;

/// What the ownership actor saw in its last round (for `observerctl
/// status`); thread-safe.
struct worker_report {
  struct snapshot {
    std::vector<std::string> members;  // live workers, sorted
    std::vector<uint32_t> owned;       // partitions this worker holds
    bool round_ok = false;             // the last round reached NATS
  };
  void set(snapshot s) {
    std::lock_guard<std::mutex> lock(mu);
    last = std::move(s);
  }
  snapshot get() const {
    std::lock_guard<std::mutex> lock(mu);
    return last;
  }

 private:
  mutable std::mutex mu;
  snapshot last;
};

struct worker_options {
  std::shared_ptr<nats_connection> conn;
  nats_config nats;
  /// This worker's name in the ownership bucket (unique among workers).
  std::string name;
  /// Messages held at most (fetched and not yet acked).
  uint32_t window = 10;
  std::shared_ptr<metrics> stats;
  /// Renewed by every successful ownership round; the action pool starts
  /// nothing once it has passed.
  std::shared_ptr<lease_clock> ownership;
  dlq_actor dlq;
  /// Written after every ownership round (may be null).
  std::shared_ptr<worker_report> report;
};

/// The worker: finish_sink of the router and the pool.
using worker_actor = caf::typed_actor<
    /// Wiring, sent once by the node before anything is fetched: where
    /// fetched events go.
    caf::reacts_to<router_actor>,
    /// Events finished: their messages are acked.
    caf::reacts_to<finish_atom, std::vector<uint64_t>>,
    /// Stops fetching, waits up to `timeout_ms` for held messages to finish,
    /// gives up every partition. True when nothing was left held.
    caf::replies_to<stop_atom, uint64_t>::with<bool>,
    /// (messages held, messages acked since start).
    status_reply>;

/// Spawns the worker and its ownership actor (which starts fetch actors per
/// partition). Send it its router (a router_actor message) first: the
/// router finishes into the worker, so it is spawned after it.
worker_actor spawn_worker(caf::actor_system& sys, worker_options cfg);

}  // namespace fraiseql
