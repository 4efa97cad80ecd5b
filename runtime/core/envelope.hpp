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
/// for tests. `object_data_before` may be empty (no pre-image).
event_ptr make_event(uint64_t seq, position pos, std::string id, std::string event_type,
                     std::string entity_type, std::string entity_id, const std::string& object_data,
                     const std::string& object_data_before, std::string timestamp,
                     std::optional<std::string> tenant_id, std::optional<std::string> user_id,
                     std::optional<std::string> trace_id,
                     std::shared_ptr<const read_cursor> cursor = nullptr);

/// Rebuilds an event from an envelope stored by the enqueue path (the JSON an
/// event's envelope_json holds). Throws std::runtime_error naming what is
/// missing or malformed.
event_ptr event_from_envelope(const std::string& json, uint64_t seq);

}  // namespace fraiseql
