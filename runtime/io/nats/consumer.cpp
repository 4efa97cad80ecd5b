#include "runtime/io/nats/consumer.hpp"

#include "runtime/io/nats/internal.hpp"

namespace fraiseql {

namespace nats_detail {

/// The subscription, its JetStream context and its connection, alive as long
/// as the consumer or any message fetched through it.
struct subscription_holder {
  std::shared_ptr<nats_connection> conn;
  jsCtx* js = nullptr;
  natsSubscription* sub = nullptr;
  ~subscription_holder() {
    // Destroy (not Unsubscribe): since nats.c 3.4.0 Unsubscribe would delete
    // the durable consumer.
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
  }
};

}  // namespace nats_detail

jetstream_message::jetstream_message(natsMsg* msg,
                                     std::shared_ptr<nats_detail::subscription_holder> sub)
    : msg_(msg), sub_(std::move(sub)) {
  jsMsgMetaData* md = nullptr;
  if (natsMsg_GetMetaData(&md, msg_) == NATS_OK && md != nullptr) {
    meta_.stream_seq = md->Sequence.Stream;
    meta_.consumer_seq = md->Sequence.Consumer;
    meta_.num_delivered = md->NumDelivered;
    meta_.num_pending = md->NumPending;
    meta_.timestamp_ns = md->Timestamp;
    if (md->Stream != nullptr) meta_.stream = md->Stream;
    if (md->Consumer != nullptr) meta_.consumer = md->Consumer;
    jsMsgMetaData_Destroy(md);
  }
}

jetstream_message::jetstream_message(jetstream_message&& other) noexcept
    : msg_(other.msg_),
      sub_(std::move(other.sub_)),
      meta_(std::move(other.meta_)),
      settled_(other.settled_) {
  other.msg_ = nullptr;
}

jetstream_message& jetstream_message::operator=(jetstream_message&& other) noexcept {
  if (this != &other) {
    natsMsg_Destroy(msg_);
    msg_ = other.msg_;
    other.msg_ = nullptr;
    sub_ = std::move(other.sub_);
    meta_ = std::move(other.meta_);
    settled_ = other.settled_;
  }
  return *this;
}

jetstream_message::~jetstream_message() {
  natsMsg_Destroy(msg_);
}

std::string_view jetstream_message::subject() const {
  const char* s = natsMsg_GetSubject(msg_);
  return s != nullptr ? std::string_view(s) : std::string_view();
}

std::string_view jetstream_message::data() const {
  const char* d = natsMsg_GetData(msg_);
  return d != nullptr ? std::string_view(d, static_cast<size_t>(natsMsg_GetDataLength(msg_)))
                      : std::string_view();
}

std::string jetstream_message::header(const std::string& key) const {
  const char* v = nullptr;
  if (natsMsgHeader_Get(msg_, key.c_str(), &v) != NATS_OK || v == nullptr) return {};
  return v;
}

void jetstream_message::check(const char* op, int status, int js_code) const {
  if (status == NATS_OK) return;
  nats_throw(std::string(op) + " of message " + std::to_string(meta_.stream_seq) + " on '" +
                 std::string(subject()) + "'",
             status, js_code);
}

void jetstream_message::require_unsettled(const char* op) const {
  if (msg_ == nullptr)
    throw nats_error(std::string(op) + ": message moved from", NATS_INVALID_ARG, 0);
  if (settled_) {
    throw nats_error(std::string(op) + " of message " + std::to_string(meta_.stream_seq) + " on '" +
                         std::string(subject()) +
                         "': already settled (acked, nak'ed or terminated)",
                     NATS_ILLEGAL_STATE, 0);
  }
}

void jetstream_message::ack() {
  require_unsettled("ack");
  check("ack", natsMsg_Ack(msg_, nullptr));
  settled_ = true;
}

void jetstream_message::ack_sync(std::chrono::milliseconds timeout) {
  require_unsettled("ack (confirmed)");
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = timeout.count();
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = natsMsg_AckSync(msg_, &o, &jerr);
  check("ack (confirmed)", s, jerr);
  settled_ = true;
}

void jetstream_message::nak() {
  require_unsettled("nak");
  check("nak", natsMsg_Nak(msg_, nullptr));
  settled_ = true;
}

void jetstream_message::nak(std::chrono::milliseconds delay) {
  require_unsettled("nak with delay");
  check("nak with delay", natsMsg_NakWithDelay(msg_, delay.count(), nullptr));
  settled_ = true;
}

void jetstream_message::in_progress() {
  require_unsettled("in-progress");
  check("in-progress", natsMsg_InProgress(msg_, nullptr));
}

void jetstream_message::term() {
  require_unsettled("term");
  check("term", natsMsg_Term(msg_, nullptr));
  settled_ = true;
}

pull_consumer::pull_consumer(std::shared_ptr<nats_connection> conn, consumer_config cfg)
    : conn_(std::move(conn)), cfg_(std::move(cfg)) {
  if (!conn_) throw nats_error("JetStream pull consumer: no connection", NATS_INVALID_ARG, 0);
  ensured_ = ensure_consumer(*conn_, cfg_);
  auto holder = std::make_shared<nats_detail::subscription_holder>();
  holder->conn = conn_;
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = conn_->options().api_timeout.count();
  nats_throw("JetStream context", natsConnection_JetStream(&holder->js, conn_->raw(), &o));
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = cfg_.stream.c_str();
  so.Consumer = cfg_.durable.c_str();  // bind: the consumer exists (ensured above)
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const char* subject = cfg_.filter_subject.empty() ? nullptr : cfg_.filter_subject.c_str();
  natsStatus s = js_PullSubscribe(&holder->sub, holder->js, subject, cfg_.durable.c_str(), nullptr,
                                  &so, &jerr);
  nats_throw("bind to JetStream consumer '" + cfg_.durable + "' on stream '" + cfg_.stream + "'", s,
             jerr);
  sub_ = std::move(holder);
}

pull_consumer::~pull_consumer() = default;

std::vector<jetstream_message> pull_consumer::fetch(int batch, std::chrono::milliseconds timeout) {
  std::vector<jetstream_message> out;
  if (batch < 1) return out;
  natsMsgList list{};
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = natsSubscription_Fetch(&list, sub_->sub, batch, timeout.count(), &jerr);
  if (s == NATS_OK || (s == NATS_TIMEOUT && list.Count > 0)) {
    out.reserve(static_cast<size_t>(list.Count));
    for (int i = 0; i < list.Count; ++i) {
      out.push_back(jetstream_message(list.Msgs[i], sub_));
      list.Msgs[i] = nullptr;  // ours now
    }
    natsMsgList_Destroy(&list);
    return out;
  }
  natsMsgList_Destroy(&list);
  if (s == NATS_TIMEOUT) return out;
  nats_throw("fetch from JetStream consumer '" + cfg_.durable + "'", s, jerr);
  return out;
}

std::vector<jetstream_message> pull_consumer::fetch_available(int batch) {
  std::vector<jetstream_message> out;
  if (batch < 1) return out;
  jsFetchRequest req;
  jsFetchRequest_Init(&req);
  req.Batch = batch;
  req.NoWait = true;
  req.Expires = 1000LL * 1000000LL;  // bounds the client's wait should no answer come
  natsMsgList list{};
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = natsSubscription_FetchRequest(&list, sub_->sub, &req);
  if (s == NATS_OK) {
    out.reserve(static_cast<size_t>(list.Count));
    for (int i = 0; i < list.Count; ++i) {
      out.push_back(jetstream_message(list.Msgs[i], sub_));
      list.Msgs[i] = nullptr;
    }
    natsMsgList_Destroy(&list);
    return out;
  }
  natsMsgList_Destroy(&list);
  // Nothing available (the server's 404) or no answer in time: none.
  if (s == NATS_NOT_FOUND || s == NATS_TIMEOUT) return out;
  nats_throw("fetch from JetStream consumer '" + cfg_.durable + "'", s, jerr);
  return out;
}

consumer_info pull_consumer::info() {
  auto info = get_consumer_info(*conn_, cfg_.stream, cfg_.durable);
  if (!info) {
    throw nats_error("JetStream consumer '" + cfg_.durable + "' on stream '" + cfg_.stream +
                         "' no longer exists (deleted on the server?)",
                     NATS_NOT_FOUND, 0);
  }
  return *info;
}

}  // namespace fraiseql
