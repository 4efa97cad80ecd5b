#pragma once

// Asynchronous JetStream publisher: publish() sends a message with a
// Nats-Msg-Id header and returns at once; the server's acknowledgment (or an
// error, or a timeout) arrives later through the completion callback, once
// per accepted publish, with the caller's token (e.g. an event sequence).
//
// Guarantees:
//  - every accepted publish gets exactly one completion: ok, duplicate (the
//    server had seen this Msg-Id within the stream's duplicate window; the
//    message is stored once) or error (server error, no ack within
//    ack_timeout, publisher destroyed first). After an error the message may
//    or may not be stored: publish it again with the same Msg-Id.
//  - at most max_pending publishes are unacknowledged at once: publish()
//    returns `full` instead of blocking when one more would exceed it.
//  - a payload the server would refuse for its size (headers + payload above
//    the server's max_payload) is refused up front (`too_large`, the sizes in
//    the error text); nothing is sent.
//  - while the connection reconnects, publishes are buffered by nats.c (up to
//    the connection's reconnect_buffer_bytes; beyond: `failed` at once) and
//    sent after the reconnect; their ack_timeout keeps running.
//
// Completions run on nats.c's reply thread, or on the publisher's own
// ack-timeout thread; keep them short. They may call publish() again.
//
// Ack timeouts are tracked here, not with nats.c's jsPubOptions.MaxWait:
// nats.c 3.4.1 keeps one timeout entry per publish until its deadline passes,
// acked or not (~85 bytes each: 30 MB at 75k publishes/s and a 5 s timeout).
// Here an entry goes when the publish completes. A timed-out publish whose
// ack never comes stays in nats.c's pending map until the publisher is
// destroyed (a few per server crash).

#include "runtime/io/nats/connection.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>

struct __jsCtx;  // nats.c: jsCtx
struct __natsMsg;
struct jsPubAck;
struct jsPubAckErr;

namespace fraiseql {

struct publish_result {
  enum class status { ok, duplicate, error };
  status outcome = status::error;
  /// The caller's token given to publish().
  uint64_t token = 0;
  /// The stream sequence the message is stored at (ok, duplicate).
  uint64_t stream_seq = 0;
  /// Error: what went wrong (natsStatus text, the server's description,
  /// JetStream code); `status` is the natsStatus (NATS_TIMEOUT: no ack in time).
  std::string error;
  int nats_status = 0;
  int js_code = 0;

  /// Stored (a duplicate is stored too: once, earlier).
  bool stored() const { return outcome != status::error; }
};
const char* to_string(publish_result::status s);

struct publisher_options {
  /// Unacknowledged publishes at most (the in-flight window).
  size_t max_pending = 4096;
  /// A publish not acknowledged within this completes with an error
  /// (NATS_TIMEOUT). Must be > 0: without it an ack lost in a server crash
  /// would leave the publish pending forever.
  std::chrono::milliseconds ack_timeout{5000};
  /// When set, the server refuses (error completion) messages that would be
  /// stored in another stream (Nats-Expected-Stream header).
  std::string expect_stream;
};

class async_publisher {
 public:
  using completion = std::function<void(const publish_result&)>;

  enum class submit { accepted, full, too_large, failed };
  struct submit_result {
    submit status = submit::failed;
    /// too_large / failed: why (names the subject, the sizes or the status).
    std::string error;
    bool accepted() const { return status == submit::accepted; }
  };

  /// Throws nats_error on invalid options.
  async_publisher(std::shared_ptr<nats_connection> conn, publisher_options opts,
                  completion on_complete);
  /// Refuses new publishes, fails every still unacknowledged one (error
  /// "publisher closed", each through the completion) and waits (bounded,
  /// 5 s) for completions running on other threads to return.
  ~async_publisher();
  async_publisher(const async_publisher&) = delete;
  async_publisher& operator=(const async_publisher&) = delete;

  /// Publishes `payload` to `subject` with header Nats-Msg-Id: msg_id (must
  /// be non-empty). Thread-safe. accepted: the completion will follow;
  /// otherwise no completion follows.
  submit_result publish(const std::string& subject, std::string_view payload,
                        const std::string& msg_id, uint64_t token);

  /// Waits until the window has room for one more publish (true) or the
  /// timeout passed (false): what a producer does after `full`, instead of
  /// spinning.
  bool wait_room(std::chrono::milliseconds timeout);

  /// Waits until every accepted publish has completed (true) or the timeout
  /// passed (false).
  bool wait_all(std::chrono::milliseconds timeout);

  /// Accepted, not yet completed.
  size_t pending() const;
  const publisher_options& options() const { return opts_; }
  nats_connection& connection() const { return *conn_; }

  /// Bytes a message carries besides its payload (the headers this
  /// publisher sets), for callers that size payloads against max_payload.
  size_t header_overhead(const std::string& msg_id) const;

 private:
  static void on_ack(__jsCtx* js, __natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* self);
  void complete(__natsMsg* msg, publish_result r);
  void expire_loop();
  /// Drops deadline entries of completed publishes from the front (mu_ held).
  void trim_deadlines();

  struct in_flight {
    uint64_t token;
    uint64_t serial;  // tells a message apart from a later one at the same address
  };
  struct deadline_entry {
    std::chrono::steady_clock::time_point at;
    __natsMsg* msg;
    uint64_t serial;
  };

  std::shared_ptr<nats_connection> conn_;
  publisher_options opts_;
  completion on_complete_;
  __jsCtx* js_ = nullptr;

  mutable std::mutex mu_;
  std::condition_variable idle_cv_;
  /// Accepted and not yet completed (completion callbacks still running
  /// included), and the tokens of the messages nats.c holds.
  size_t outstanding_ = 0;
  std::unordered_map<__natsMsg*, in_flight> tokens_;
  /// Publish order = deadline order (one ack_timeout for all).
  std::deque<deadline_entry> deadlines_;
  uint64_t next_serial_ = 0;
  /// A publish was handed to nats.c (its pending map exists).
  std::atomic<bool> published_{false};
  bool closing_ = false;
  std::condition_variable expire_cv_;
  std::thread expirer_;
};

}  // namespace fraiseql
