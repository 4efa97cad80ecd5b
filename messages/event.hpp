#pragma once

// Payload types that flow between actors. Plain structs, no CAF: the pure logic
// in runtime/ uses them too. Events travel as shared pointers to immutable
// objects, so fanning one event out to many actions copies nothing.

#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace fraiseql {

/// Where an event sits in the change log's fence order: (writer txid, row pk).
/// Every row below the listener's fence is visible and immutable, so this order
/// is total and stable; the checkpoint is one of these.
struct position {
  uint64_t txid = 0;
  int64_t pk = 0;
  friend bool operator==(const position& a, const position& b) {
    return a.txid == b.txid && a.pk == b.pk;
  }
  friend bool operator!=(const position& a, const position& b) { return !(a == b); }
  friend bool operator<(const position& a, const position& b) {
    return std::tie(a.txid, a.pk) < std::tie(b.txid, b.pk);
  }
};

/// A transaction that was running at a read: its rows are read up to `pk`
/// (0: none yet). See runtime/core/cursor.hpp.
struct pending_txid {
  uint64_t txid = 0;
  int64_t pk = 0;
  friend bool operator==(const pending_txid& a, const pending_txid& b) {
    return a.txid == b.txid && a.pk == b.pk;
  }
};

/// The listener's read cursor: every row at or below `pos` has been read except
/// those of `pending` transactions, which are read up to their own pk. This is
/// what a checkpoint saves.
struct read_cursor {
  position pos;
  /// Sorted by txid, all below pos.txid.
  std::vector<pending_txid> pending;
  friend bool operator==(const read_cursor& a, const read_cursor& b) {
    return a.pos == b.pos && a.pending == b.pending;
  }
  friend bool operator!=(const read_cursor& a, const read_cursor& b) { return !(a == b); }
};

/// One captured change, as conditions, templates, webhooks and the DLQ see it.
struct event {
  /// Process-local admission number (dense, increasing in read order).
  uint64_t seq = 0;
  position pos;
  /// Change-log uuid: the stable identity used in idempotency keys.
  std::string id;
  /// INSERT | UPDATE | DELETE | CUSTOM
  std::string event_type;
  std::string entity_type;
  std::string entity_id;
  /// The envelope (object): id, event_type, entity_type, entity_id, data, old,
  /// changes, timestamp, tenant_id, user_id, trace_id, position.
  boost::json::value envelope;
  /// The envelope serialized once, the default webhook body.
  std::string envelope_json;
  /// The read cursor once this event and every event read before it are
  /// finished (what the checkpoint saves when the watermark passes it).
  std::shared_ptr<const read_cursor> cursor;
  /// When the listener read it (for the processing-duration metric).
  std::chrono::steady_clock::time_point read_at;
  /// Size of the change-log row's body as stored: the text of object_data plus
  /// object_data_before, in bytes (what `listener.max_event_bytes` limits).
  uint64_t row_bytes = 0;
  /// Nonzero: the row was larger than this limit (`listener.max_event_bytes`),
  /// so its body was not read (`data` and `old` are null, the envelope says
  /// why under `oversize`); the event goes to the DLQ instead of being routed.
  uint64_t oversize_limit = 0;
  /// Memory this event holds (envelope tree and text, strings), approximate:
  /// what it counts against the listener's byte budget while referenced.
  uint64_t footprint = 0;
  /// Nonzero: a replayed copy of the change-log event `id` (observerctl
  /// replay; docs/history.md), requested by the listener `replay_listener`
  /// for `replay_observer` (empty: every observer). The envelope carries the
  /// marker as "replay"; the idempotency keys are the original ones.
  uint64_t replay_id = 0;
  std::string replay_listener;
  std::string replay_observer;
};

using event_ptr = std::shared_ptr<const event>;
using event_batch = std::vector<event_ptr>;

/// Idempotency key of one action of one observer for one event: stable across
/// redeliveries, restarts and nodes. Sent as the `Idempotency-Key` header.
inline std::string idempotency_key(const std::string& event_id, const std::string& observer,
                                   size_t action_index) {
  return event_id + ":" + observer + ":" + std::to_string(action_index);
}

/// The identity deduplication claims for an event (`event:<this>` in Redis):
/// its id, and for a replayed copy its id and the replay's, so that a replay
/// passes the claims of the original delivery while a copy redelivered after
/// a crash is still deduplicated against itself.
inline std::string dedup_identity(const event& ev) {
  return ev.replay_id == 0 ? ev.id : ev.id + ":replay:" + std::to_string(ev.replay_id);
}

/// An action that exhausted its attempts, on its way to the DLQ.
struct dlq_entry {
  event_ptr ev;
  std::string observer_name;
  uint32_t action_index = 0;
  std::string action_type;
  std::string idempotency_key;
  std::string last_error;
  uint32_t attempts = 0;
  /// Unix epoch milliseconds.
  int64_t first_attempt_ms = 0;
  int64_t last_attempt_ms = 0;
};

}  // namespace fraiseql
