#pragma once

// A durable pull consumer: fetch up to N messages (bounded wait), then ack,
// nak (optionally delayed), mark in progress or terminate each one.
//
// Fetch and the *_sync acks block the calling thread (bounded); call them
// from a worker thread or a detached actor. A pull_consumer is used by one
// thread at a time; its messages may be acked from any thread, also after
// the consumer object is gone (they keep the subscription alive).

#include "runtime/io/nats/connection.hpp"
#include "runtime/io/nats/jetstream.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct __natsMsg;
struct __natsSubscription;

namespace fraiseql {

namespace nats_detail {
struct subscription_holder;
}

/// Where a message sits in the stream and how often it was delivered.
struct message_metadata {
  uint64_t stream_seq = 0;
  uint64_t consumer_seq = 0;
  /// 1 on the first delivery.
  uint64_t num_delivered = 0;
  /// Messages after this one not yet delivered to the consumer.
  uint64_t num_pending = 0;
  /// Stored at (nanoseconds since the epoch, UTC).
  int64_t timestamp_ns = 0;
  std::string stream;
  std::string consumer;
};

/// One fetched message (move-only). Exactly one of ack / nak / term settles
/// it; in_progress may come before (it resets the server's ack-wait timer).
/// Any of them after the message is settled throws nats_error (nats.c 3.4.1
/// itself would ignore a second ack silently).
class jetstream_message {
 public:
  jetstream_message(jetstream_message&& other) noexcept;
  jetstream_message& operator=(jetstream_message&& other) noexcept;
  ~jetstream_message();
  jetstream_message(const jetstream_message&) = delete;
  jetstream_message& operator=(const jetstream_message&) = delete;

  std::string_view subject() const;
  std::string_view data() const;
  /// A header's first value; empty when absent.
  std::string header(const std::string& key) const;
  /// The Nats-Msg-Id the publisher set (empty when none).
  std::string msg_id() const { return header("Nats-Msg-Id"); }
  const message_metadata& metadata() const { return meta_; }
  uint64_t num_delivered() const { return meta_.num_delivered; }

  /// Settled by ack, ack_sync, nak or term.
  bool settled() const { return settled_; }

  /// Acknowledges without waiting for the server's confirmation.
  void ack();
  /// Acknowledges and waits (bounded) for the server to confirm: once it
  /// returns, the message will not be redelivered.
  void ack_sync(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  /// Asks for redelivery now, or after `delay`.
  void nak();
  void nak(std::chrono::milliseconds delay);
  /// Still working on it: restarts the ack-wait timer (may be repeated).
  void in_progress();
  /// Never redeliver (whatever max_deliver says).
  void term();

 private:
  friend class pull_consumer;
  jetstream_message(__natsMsg* msg, std::shared_ptr<nats_detail::subscription_holder> sub);
  void check(const char* op, int status, int js_code = 0) const;
  void require_unsettled(const char* op) const;

  __natsMsg* msg_ = nullptr;
  std::shared_ptr<nats_detail::subscription_holder> sub_;
  message_metadata meta_;
  bool settled_ = false;
};

class pull_consumer {
 public:
  /// Ensures the durable consumer (ensure_consumer: create, or update the
  /// changeable fields) and binds to it. Throws nats_error / nats_unavailable.
  pull_consumer(std::shared_ptr<nats_connection> conn, consumer_config cfg);
  /// Unbinds; the durable consumer stays on the server (and keeps its
  /// position and unacked messages): a new pull_consumer re-binds to it.
  ~pull_consumer();
  pull_consumer(const pull_consumer&) = delete;
  pull_consumer& operator=(const pull_consumer&) = delete;

  /// Up to `batch` messages; returns what arrived when `timeout` passes
  /// (empty when nothing did). Throws nats_unavailable when disconnected.
  std::vector<jetstream_message> fetch(int batch, std::chrono::milliseconds timeout);
  /// Up to `batch` messages available now, without waiting for more (a
  /// no-wait pull request: the server answers at once).
  std::vector<jetstream_message> fetch_available(int batch);

  consumer_info info();
  /// What ensure_consumer did at construction.
  ensure_result ensured() const { return ensured_; }
  const consumer_config& config() const { return cfg_; }

 private:
  std::shared_ptr<nats_connection> conn_;
  consumer_config cfg_;
  std::shared_ptr<nats_detail::subscription_holder> sub_;
  ensure_result ensured_ = ensure_result::unchanged;
};

}  // namespace fraiseql
