#pragma once

// JetStream management: ensure a stream or a durable pull consumer exists
// with a given configuration (idempotent: create, update when it differs,
// nothing when it matches), and read their state.
//
// Every call is one or two JetStream API requests, bounded by the
// connection's api_timeout; they throw nats_unavailable (server down or
// JetStream not answering) or nats_error (the server refused the
// configuration: the message names the stream or consumer and the reason).

#include "runtime/io/nats/connection.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fraiseql {

enum class stream_storage { file, memory };
enum class stream_retention { limits, interest, work_queue };

struct stream_config {
  std::string name;
  std::vector<std::string> subjects;
  int replicas = 1;
  stream_storage storage = stream_storage::file;
  stream_retention retention = stream_retention::limits;
  /// Window in which a Nats-Msg-Id seen before is reported as a duplicate
  /// (and not stored again). 0: the server's default (2 minutes).
  std::chrono::milliseconds duplicate_window{std::chrono::minutes(2)};
  /// Per message (headers + payload); -1: no stream limit (the server's
  /// max_payload still applies).
  int32_t max_msg_size = -1;
  /// -1: unlimited.
  int64_t max_msgs = -1;
  int64_t max_bytes = -1;
  /// 0: forever.
  std::chrono::milliseconds max_age{0};
};

struct stream_info {
  stream_config config;
  uint64_t messages = 0;
  uint64_t bytes = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  int64_t consumers = 0;
  /// Cluster: the leader's name and the replicas' (empty on a single server).
  std::string leader;
  std::vector<std::string> replica_names;
  /// max_payload of the server the connection is on (bytes).
  int64_t server_max_payload = 0;
};

enum class ensure_result { created, updated, unchanged };
const char* to_string(ensure_result r);

/// Creates the stream, or updates it when its configuration differs in a
/// field of stream_config. A difference the server cannot apply (storage,
/// retention, replicas on a single server...) throws nats_error naming the
/// field. `info` (optional) receives the state afterwards.
ensure_result ensure_stream(nats_connection& conn, const stream_config& cfg,
                            stream_info* info = nullptr);
/// nullopt when there is no such stream.
std::optional<stream_info> get_stream_info(nats_connection& conn, const std::string& name);
/// True when it existed.
bool delete_stream(nats_connection& conn, const std::string& name);

/// A durable pull consumer with explicit acks.
struct consumer_config {
  std::string stream;
  /// Letters, digits, '-' and '_' (no '.', no spaces).
  std::string durable;
  /// Subject filter (may hold wildcards); empty: the whole stream.
  std::string filter_subject;
  /// Unacked this long after delivery (or the last in-progress): redelivered.
  std::chrono::milliseconds ack_wait{30000};
  /// Deliveries before the server gives up on a message; -1: unlimited.
  int64_t max_deliver = -1;
  /// Delivered, unacked messages at most (the server stops delivering).
  int64_t max_ack_pending = 1000;
  enum class start { all, new_only } deliver = start::all;
};

struct consumer_info {
  std::string stream;
  std::string name;
  consumer_config config;
  /// Messages in the stream not yet delivered to this consumer.
  uint64_t num_pending = 0;
  /// Delivered, not yet acked.
  int64_t num_ack_pending = 0;
  /// Delivered more than once and not yet acked.
  int64_t num_redelivered = 0;
  /// Pull requests waiting at the server.
  int64_t num_waiting = 0;
  uint64_t delivered_stream_seq = 0;
  uint64_t delivered_consumer_seq = 0;
  uint64_t ack_floor_stream_seq = 0;
  uint64_t ack_floor_consumer_seq = 0;
};

/// Creates the durable consumer, or updates it when ack_wait, max_deliver or
/// max_ack_pending differ (the fields the server can change); a different
/// filter subject or deliver policy throws nats_error naming the field
/// (delete the consumer to change it). `info` (optional) receives the state.
ensure_result ensure_consumer(nats_connection& conn, const consumer_config& cfg,
                              consumer_info* info = nullptr);
std::optional<consumer_info> get_consumer_info(nats_connection& conn, const std::string& stream,
                                               const std::string& durable);
/// True when it existed.
bool delete_consumer(nats_connection& conn, const std::string& stream, const std::string& durable);

}  // namespace fraiseql
