#pragma once

#include "messages/actors.hpp"
#include "runtime/core/byte_budget.hpp"
#include "runtime/ops/metrics.hpp"

#include <caf/fwd.hpp>

#include <chrono>
#include <string>

namespace fraiseql {

struct listener_options {
  /// libpq DSN of the source database.
  std::string dsn;
  /// Rows per read.
  uint32_t batch_size = 1000;
  /// Longest sleep without a NOTIFY (a lost wake-up costs at most this).
  std::chrono::milliseconds poll_interval{1000};
  /// Bound on events read and not yet finished.
  uint32_t max_in_flight = 10000;
  /// Bound on the bytes events hold while referenced anywhere in the node
  /// (runtime/core/byte_budget.hpp); 0: unbounded. At least one event is read
  /// when none is in flight.
  uint64_t max_bytes_in_flight = 0;
  /// Rows whose body is larger go to the DLQ unread (0: no limit).
  uint64_t max_event_bytes = 0;
  /// The budget events are charged to (created from max_bytes_in_flight when
  /// null); shared with whoever reports it.
  std::shared_ptr<byte_budget> budget;
  /// Where reading starts (the loaded checkpoint).
  read_cursor resume;
  /// After the log runs dry, keep polling (every `linger_poll`) for this long
  /// before marking the listener asleep: under a steady stream the listener
  /// then stays "awake" and writers never pay for NOTIFY.
  std::chrono::milliseconds idle_linger{50};
  /// Pause between reads while rows trickle in (a partial batch): long enough
  /// that a read returns several rows, short enough to add little latency.
  /// 500 µs measured better than 1 ms once reads stopped being planned each
  /// time (docs/performance.md); 250 µs cost more than it saved.
  std::chrono::microseconds linger_poll{500};
  /// Health gauge; may be null.
  std::shared_ptr<metrics> stats;
  /// Reconnect backoff bounds.
  std::chrono::milliseconds min_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
};

/// Detached: owns its connection and blocks only its own thread (reads and the
/// NOTIFY wait). Starts reading when it receives its first `read`.
///
/// Wake-up protocol (no NOTIFY cost for writers while busy): while reads return
/// rows the listener is awake; once reads have been empty for `idle_linger` it
/// takes the wake-up mark (an advisory lock, sql/0005_wakeup_lock.sql; refused
/// while a capture transaction runs, then it polls on), reads once more
/// (closing the race with a writer that saw "awake"), and only then waits for
/// a NOTIFY or the poll interval. The mark ends with its session, so a stopped
/// or killed listener never leaves writers notifying. The decisions (when to
/// read, back off, sleep, wake, reconnect) are runtime/core/wakeup.hpp's; the
/// actor performs the I/O they ask for.
///
/// Memory: each read asks for at most the byte budget's room (at least one
/// event when none is in flight), converted to row-body bytes with the
/// footprint per body byte of recent events, and at most an eighth of the
/// budget per query (so the rows' text held while the events are built stays
/// small beside the budget); each event is charged its footprint until its
/// last reference goes (byte_budget.hpp).
listener_actor spawn_listener(caf::actor_system& sys, listener_options cfg,
                              admission_sink checkpointer, router_actor router);

}  // namespace fraiseql
