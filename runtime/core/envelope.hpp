#pragma once

// The event envelope: the JSON document every action receives (the webhook
// body, the database action's argument, the job queue's stored event), built
// from change-log columns, and read back from its stored form. Pure.

#include "messages/event.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace fraiseql {

/// Builds an event (envelope included) from change-log columns. Pure; exposed
/// for tests. `object_data_before` may be empty (no pre-image). `row_bytes`:
/// the row body's size as stored (0: the size of the two texts given).
/// `oversize_limit` nonzero: the row's body (`row_bytes`) was over this limit
/// and not read; the texts are empty and the envelope carries
/// `"oversize": {"bytes": row_bytes, "limit": oversize_limit}`. The event's
/// footprint is set (event_footprint()). `replay` non-empty: the JSON object
/// of a replayed copy's marker ({"id", "listener_id", "observer"}; see
/// parse_replay_marker()), carried by the envelope as "replay".
event_ptr make_event(uint64_t seq, position pos, std::string id, std::string event_type,
                     std::string entity_type, std::string entity_id, const std::string& object_data,
                     const std::string& object_data_before, std::string timestamp,
                     std::optional<std::string> tenant_id, std::optional<std::string> user_id,
                     std::optional<std::string> trace_id,
                     std::shared_ptr<const read_cursor> cursor = nullptr, uint64_t row_bytes = 0,
                     uint64_t oversize_limit = 0, const std::string& replay = {});

/// A replay marker as stored in a copy's extra_metadata -> 'fraiseql_replay'.
struct replay_marker {
  uint64_t id = 0;
  std::string listener_id;
  std::string observer;  // empty: every observer
};
/// Parses a marker's JSON text; throws std::runtime_error naming what is wrong.
replay_marker parse_replay_marker(const std::string& json);

/// Memory an event holds, approximately: its strings, its serialized envelope
/// and a walk of its parsed envelope (values, object entries, keys, strings),
/// with allocator granularity ignored. What it counts against the byte budget.
uint64_t event_footprint(const event& ev);

/// Why an oversize event went to the DLQ: names its size and the limit.
std::string oversize_reason(uint64_t bytes, uint64_t limit);

/// Rebuilds an event from an envelope stored by the enqueue path (the JSON an
/// event's envelope_json holds). Throws std::runtime_error naming what is
/// missing or malformed.
event_ptr event_from_envelope(const std::string& json, uint64_t seq);

}  // namespace fraiseql
