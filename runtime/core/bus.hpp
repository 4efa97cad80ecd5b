#pragma once

// The NATS bus's naming rules, shared by the bridge (which publishes) and the
// workers (which consume): subjects, partitions and message ids. Pure.
//
// Subject of an event: <prefix>.<source>.<partition>.<entity type>.<operation>
//   e.g. fraiseql.shop.7.Order.insert
// - source: the bridged database's name ([nats] source_name), so one stream
//   carries several databases and operators can filter by database;
// - partition: partition_of(entity type, entity id): every event of one
//   entity lands in one partition, whose one owning worker keeps their order;
// - entity type and operation: for filtering (`nats stream view`, consumers
//   of other tools); characters a subject token cannot hold become '_'.
// Msg-Id: <source>:<event id>, so a republished event (a bridge restart, a
// timed-out ack) is stored once within the stream's duplicate window.

#include <cstdint>
#include <string>
#include <string_view>

namespace fraiseql {

/// The partition of an entity (FNV-1a 64 of "<type>\x1f<id>" modulo
/// `partitions`): stable across processes, versions and platforms.
uint32_t partition_of(std::string_view entity_type, std::string_view entity_id,
                      uint32_t partitions);

/// `text` as one subject token: '.', '*', '>', whitespace and control
/// characters become '_'; an empty text becomes "_".
std::string subject_token(std::string_view text);

/// <prefix>.<source>.<partition>.<entity type>.<operation in lower case>
std::string event_subject(const std::string& prefix, const std::string& source, uint32_t partition,
                          std::string_view entity_type, std::string_view event_type);

/// Every subject of partition `p`, any source: <prefix>.*.<p>.>
std::string partition_filter(const std::string& prefix, uint32_t partition);

/// What the stream captures: <prefix>.>
std::string stream_subjects(const std::string& prefix);

/// <source>:<event id>
std::string event_msg_id(const std::string& source, const std::string& event_id);

/// The durable consumer of partition `p`: <consumer>_<p>.
std::string partition_consumer(const std::string& consumer, uint32_t partition);

/// The database name of a libpq DSN or postgresql:// URL ("" when absent),
/// as a subject token: the default source name of a bridge.
std::string source_name_of_dsn(const std::string& dsn);

}  // namespace fraiseql
