#include "runtime/io/nats/publisher.hpp"

#include "runtime/io/nats/internal.hpp"

#include <vector>

namespace fraiseql {

namespace {

constexpr std::string_view header_line = "NATS/1.0\r\n";
constexpr std::string_view msg_id_key = "Nats-Msg-Id";
constexpr std::string_view expect_stream_key = "Nats-Expected-Stream";

struct msg_guard {
  natsMsg* m = nullptr;
  ~msg_guard() { natsMsg_Destroy(m); }
};

}  // namespace

const char* to_string(publish_result::status s) {
  switch (s) {
    case publish_result::status::ok:
      return "ok";
    case publish_result::status::duplicate:
      return "duplicate";
    case publish_result::status::error:
      return "error";
  }
  return "?";
}

async_publisher::async_publisher(std::shared_ptr<nats_connection> conn, publisher_options opts,
                                 completion on_complete)
    : conn_(std::move(conn)), opts_(std::move(opts)), on_complete_(std::move(on_complete)) {
  if (!conn_) throw nats_error("JetStream publisher: no connection", NATS_INVALID_ARG, 0);
  if (opts_.max_pending == 0) {
    throw nats_error("JetStream publisher: max_pending must be >= 1", NATS_INVALID_ARG, 0);
  }
  if (opts_.ack_timeout.count() <= 0) {
    throw nats_error("JetStream publisher: ack_timeout must be > 0", NATS_INVALID_ARG, 0);
  }
  if (!on_complete_)
    throw nats_error("JetStream publisher: no completion callback", NATS_INVALID_ARG, 0);
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = conn_->options().api_timeout.count();
  // The window is enforced here (publish() returns `full`); nats.c's own
  // limit would stall the caller for StallWait instead.
  o.PublishAsync.MaxPending = 0;
  o.PublishAsync.AckHandler = &on_ack;
  o.PublishAsync.AckHandlerClosure = this;
  nats_throw("JetStream publisher context", natsConnection_JetStream(&js_, conn_->raw(), &o));
  expirer_ = std::thread([this] { expire_loop(); });
}

async_publisher::~async_publisher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
  }
  expire_cv_.notify_all();
  expirer_.join();
  // Take back what nats.c still waits an ack for: from now on, acks and
  // timeouts of these find nothing and invoke no handler.
  natsMsgList pending{};
  // nats.c 3.4.1 crashes in js_PublishAsyncGetPendingList on a context that
  // never published asynchronously (its pending map was never created).
  if (published_.load() && js_PublishAsyncGetPendingList(&pending, js_) == NATS_OK) {
    for (int i = 0; i < pending.Count; ++i) {
      publish_result r;
      r.outcome = publish_result::status::error;
      r.nats_status = NATS_CONNECTION_CLOSED;
      r.error =
          "publisher closed before the server acknowledged the message (it may or may not be "
          "stored: publish it again with the same Msg-Id)";
      complete(pending.Msgs[i], std::move(r));
    }
    natsMsgList_Destroy(&pending);  // destroys the messages
  }
  // Handlers that removed their message before we did may still be running.
  {
    std::unique_lock<std::mutex> lock(mu_);
    idle_cv_.wait_for(lock, std::chrono::seconds(5), [&] { return outstanding_ == 0; });
  }
  jsCtx_Destroy(js_);
}

size_t async_publisher::header_overhead(const std::string& msg_id) const {
  size_t n = header_line.size() + msg_id_key.size() + 2 + msg_id.size() + 2 + 2;
  if (!opts_.expect_stream.empty()) {
    n += expect_stream_key.size() + 2 + opts_.expect_stream.size() + 2;
  }
  return n;
}

async_publisher::submit_result async_publisher::publish(const std::string& subject,
                                                        std::string_view payload,
                                                        const std::string& msg_id, uint64_t token) {
  if (msg_id.empty()) {
    return {submit::failed, "publish to '" + subject + "': empty Msg-Id"};
  }
  const int64_t max_payload = conn_->max_payload();
  const size_t headers = header_overhead(msg_id);
  if (max_payload > 0 && static_cast<int64_t>(payload.size() + headers) > max_payload) {
    return {submit::too_large, "message for '" + subject + "' (Msg-Id " + msg_id + ") is " +
                                   std::to_string(payload.size()) + " bytes of payload + " +
                                   std::to_string(headers) +
                                   " bytes of headers, above the server's max_payload of " +
                                   std::to_string(max_payload) + " bytes"};
  }
  msg_guard m;
  natsStatus s = natsMsg_Create(&m.m, subject.c_str(), nullptr, payload.data(),
                                static_cast<int>(payload.size()));
  if (s != NATS_OK) return {submit::failed, nats_error_text("publish to '" + subject + "'", s)};

  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) return {submit::failed, "publish to '" + subject + "': publisher closing"};
    if (outstanding_ >= opts_.max_pending) return {submit::full, {}};
    ++outstanding_;
    // Before the send: the ack may arrive before js_PublishMsgAsync returns.
    const uint64_t serial = ++next_serial_;
    tokens_[m.m] = in_flight{token, serial};
    trim_deadlines();
    const bool was_empty = deadlines_.empty();
    deadlines_.push_back({std::chrono::steady_clock::now() + opts_.ack_timeout, m.m, serial});
    if (was_empty) expire_cv_.notify_all();
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = msg_id.c_str();
  // No po.MaxWait: ack timeouts are tracked here (see publisher.hpp).
  if (!opts_.expect_stream.empty()) po.ExpectStream = opts_.expect_stream.c_str();
  natsMsg* sent = m.m;
  s = js_PublishMsgAsync(js_, &m.m, &po);  // on success nats.c owns it, m.m == nullptr
  if (s != NATS_OK) {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.erase(sent);
    --outstanding_;
    idle_cv_.notify_all();
    return {submit::failed,
            nats_error_text("publish to '" + subject + "' (Msg-Id " + msg_id + ")", s)};
  }
  published_.store(true, std::memory_order_relaxed);
  return {submit::accepted, {}};
}

void async_publisher::on_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* self) {
  auto* me = static_cast<async_publisher*>(self);
  publish_result r;
  if (pa != nullptr) {
    r.outcome = pa->Duplicate ? publish_result::status::duplicate : publish_result::status::ok;
    r.stream_seq = pa->Sequence;
  } else {
    r.outcome = publish_result::status::error;
    r.nats_status = pae != nullptr ? pae->Err : NATS_ERR;
    r.js_code = pae != nullptr ? pae->ErrCode : 0;
    std::string text = pae != nullptr && pae->ErrText != nullptr ? pae->ErrText : "unknown error";
    if (r.nats_status == NATS_TIMEOUT) {
      text = "no acknowledgment within " + std::to_string(me->opts_.ack_timeout.count()) +
             " ms (the message may or may not be stored: publish it again with the same Msg-Id)";
    } else if (r.nats_status == NATS_NO_RESPONDERS) {
      text += " (no stream captures subject '" + std::string(natsMsg_GetSubject(msg)) +
              "', or JetStream is not available)";
    }
    if (r.js_code != 0) text += " [JetStream error " + std::to_string(r.js_code) + "]";
    r.error = std::move(text);
  }
  me->complete(msg, std::move(r));
  natsMsg_Destroy(msg);  // ours to destroy with an AckHandler
}

void async_publisher::complete(natsMsg* msg, publish_result r) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tokens_.find(msg);
    if (it == tokens_.end()) return;  // not ours, or already completed (timed out)
    r.token = it->second.token;
    tokens_.erase(it);
  }
  try {
    on_complete_(r);
  } catch (...) {
    // A completion must not throw into nats.c.
  }
  std::lock_guard<std::mutex> lock(mu_);
  --outstanding_;
  // Wakes wait_all (at 0) and wait_room (when the window opens up again).
  if (outstanding_ == 0 || outstanding_ + 1 == opts_.max_pending) idle_cv_.notify_all();
}

void async_publisher::trim_deadlines() {
  while (!deadlines_.empty()) {
    const auto& d = deadlines_.front();
    auto it = tokens_.find(d.msg);
    if (it != tokens_.end() && it->second.serial == d.serial) break;  // still waiting
    deadlines_.pop_front();
  }
}

void async_publisher::expire_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!closing_) {
    trim_deadlines();
    if (deadlines_.empty()) {
      expire_cv_.wait(lock);
      continue;
    }
    const deadline_entry d = deadlines_.front();
    if (std::chrono::steady_clock::now() < d.at) {
      expire_cv_.wait_until(lock, d.at);
      continue;
    }
    deadlines_.pop_front();
    auto it = tokens_.find(d.msg);
    if (it == tokens_.end() || it->second.serial != d.serial) continue;
    // No ack in time. nats.c keeps the message in its pending map: an ack
    // arriving later finds no token and is dropped (the caller republishes
    // with the same Msg-Id; the duplicate window absorbs the second copy).
    publish_result r;
    r.outcome = publish_result::status::error;
    r.token = it->second.token;
    r.nats_status = NATS_TIMEOUT;
    r.error = "no acknowledgment within " + std::to_string(opts_.ack_timeout.count()) +
              " ms (the message may or may not be stored: publish it again with the same Msg-Id)";
    tokens_.erase(it);
    lock.unlock();
    try {
      on_complete_(r);
    } catch (...) {
    }
    lock.lock();
    --outstanding_;
    if (outstanding_ == 0 || outstanding_ + 1 == opts_.max_pending) idle_cv_.notify_all();
  }
}

bool async_publisher::wait_room(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [&] { return outstanding_ < opts_.max_pending; });
}

bool async_publisher::wait_all(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [&] { return outstanding_ == 0; });
}

size_t async_publisher::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return outstanding_;
}

}  // namespace fraiseql
