#include "runtime/io/nats/jetstream.hpp"

#include "runtime/io/nats/internal.hpp"

#include <algorithm>
#include <memory>

namespace fraiseql {

using nats_detail::from_nanos;
using nats_detail::js_context;
using nats_detail::to_nanos;

namespace {

// JetStream error codes (server/errors.json of nats-server 2.9).
constexpr int js_stream_not_found = 10059;
constexpr int js_stream_name_exists = 10058;
constexpr int js_consumer_not_found = 10014;

struct stream_info_ptr {
  jsStreamInfo* p = nullptr;
  ~stream_info_ptr() { jsStreamInfo_Destroy(p); }
};
struct consumer_info_ptr {
  jsConsumerInfo* p = nullptr;
  ~consumer_info_ptr() { jsConsumerInfo_Destroy(p); }
};

/// jsStreamConfig pointing into `cfg` (which must outlive it).
struct c_stream_config {
  jsStreamConfig c;
  std::vector<const char*> subjects;
  explicit c_stream_config(const stream_config& cfg) {
    jsStreamConfig_Init(&c);
    c.Name = cfg.name.c_str();
    for (const auto& s : cfg.subjects) subjects.push_back(s.c_str());
    c.Subjects = subjects.data();
    c.SubjectsLen = static_cast<int>(subjects.size());
    c.Replicas = cfg.replicas;
    c.Storage = cfg.storage == stream_storage::file ? js_FileStorage : js_MemoryStorage;
    switch (cfg.retention) {
      case stream_retention::limits:
        c.Retention = js_LimitsPolicy;
        break;
      case stream_retention::interest:
        c.Retention = js_InterestPolicy;
        break;
      case stream_retention::work_queue:
        c.Retention = js_WorkQueuePolicy;
        break;
    }
    c.Duplicates = to_nanos(cfg.duplicate_window);
    c.MaxMsgSize = cfg.max_msg_size;
    c.MaxMsgs = cfg.max_msgs;
    c.MaxBytes = cfg.max_bytes;
    c.MaxAge = to_nanos(cfg.max_age);
  }
};

stream_config from_c(const jsStreamConfig& c) {
  stream_config cfg;
  cfg.name = c.Name != nullptr ? c.Name : "";
  for (int i = 0; i < c.SubjectsLen; ++i) cfg.subjects.emplace_back(c.Subjects[i]);
  cfg.replicas = static_cast<int>(c.Replicas);
  cfg.storage = c.Storage == js_FileStorage ? stream_storage::file : stream_storage::memory;
  cfg.retention = c.Retention == js_InterestPolicy    ? stream_retention::interest
                  : c.Retention == js_WorkQueuePolicy ? stream_retention::work_queue
                                                      : stream_retention::limits;
  cfg.duplicate_window = from_nanos(c.Duplicates);
  cfg.max_msg_size = c.MaxMsgSize;
  cfg.max_msgs = c.MaxMsgs;
  cfg.max_bytes = c.MaxBytes;
  cfg.max_age = from_nanos(c.MaxAge);
  return cfg;
}

stream_info from_c(const jsStreamInfo& si, const nats_connection& conn) {
  stream_info info;
  if (si.Config != nullptr) info.config = from_c(*si.Config);
  info.messages = si.State.Msgs;
  info.bytes = si.State.Bytes;
  info.first_seq = si.State.FirstSeq;
  info.last_seq = si.State.LastSeq;
  info.consumers = si.State.Consumers;
  if (si.Cluster != nullptr) {
    if (si.Cluster->Leader != nullptr) info.leader = si.Cluster->Leader;
    for (int i = 0; i < si.Cluster->ReplicasLen; ++i) {
      if (si.Cluster->Replicas[i] != nullptr && si.Cluster->Replicas[i]->Name != nullptr) {
        info.replica_names.emplace_back(si.Cluster->Replicas[i]->Name);
      }
    }
  }
  info.server_max_payload = conn.max_payload();
  return info;
}

/// The first field of stream_config in which `want` and `have` differ
/// (empty: none). A zero duplicate window means "the server's default".
std::string stream_difference(const stream_config& want, const stream_config& have) {
  auto a = want.subjects;
  auto b = have.subjects;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  if (a != b) return "subjects";
  if (want.replicas != have.replicas) return "replicas";
  if (want.storage != have.storage) return "storage";
  if (want.retention != have.retention) return "retention";
  if (want.duplicate_window.count() != 0 && want.duplicate_window != have.duplicate_window) {
    return "duplicate_window";
  }
  if (want.max_msg_size != have.max_msg_size) return "max_msg_size";
  if (want.max_msgs != have.max_msgs) return "max_msgs";
  if (want.max_bytes != have.max_bytes) return "max_bytes";
  if (want.max_age != have.max_age) return "max_age";
  return {};
}

void validate(const stream_config& cfg) {
  if (cfg.name.empty()) throw nats_error("JetStream stream: empty name", NATS_INVALID_ARG, 0);
  if (cfg.name.find_first_of(".*> \t") != std::string::npos) {
    throw nats_error("JetStream stream '" + cfg.name +
                         "': a stream name cannot contain '.', '*', '>' or white space",
                     NATS_INVALID_ARG, 0);
  }
  if (cfg.subjects.empty()) {
    throw nats_error("JetStream stream '" + cfg.name + "': no subjects", NATS_INVALID_ARG, 0);
  }
  if (cfg.replicas < 1 || cfg.replicas > 5) {
    throw nats_error("JetStream stream '" + cfg.name + "': replicas must be 1..5, not " +
                         std::to_string(cfg.replicas),
                     NATS_INVALID_ARG, 0);
  }
}

consumer_config from_c(const jsConsumerConfig& c, const std::string& stream) {
  consumer_config cfg;
  cfg.stream = stream;
  cfg.durable = c.Durable != nullptr ? c.Durable : (c.Name != nullptr ? c.Name : "");
  cfg.filter_subject = c.FilterSubject != nullptr ? c.FilterSubject : "";
  cfg.ack_wait = from_nanos(c.AckWait);
  cfg.max_deliver = c.MaxDeliver;
  cfg.max_ack_pending = c.MaxAckPending;
  cfg.deliver = c.DeliverPolicy == js_DeliverNew ? consumer_config::start::new_only
                                                 : consumer_config::start::all;
  return cfg;
}

consumer_info from_c(const jsConsumerInfo& ci) {
  consumer_info info;
  info.stream = ci.Stream != nullptr ? ci.Stream : "";
  info.name = ci.Name != nullptr ? ci.Name : "";
  if (ci.Config != nullptr) info.config = from_c(*ci.Config, info.stream);
  info.num_pending = ci.NumPending;
  info.num_ack_pending = ci.NumAckPending;
  info.num_redelivered = ci.NumRedelivered;
  info.num_waiting = ci.NumWaiting;
  info.delivered_stream_seq = ci.Delivered.Stream;
  info.delivered_consumer_seq = ci.Delivered.Consumer;
  info.ack_floor_stream_seq = ci.AckFloor.Stream;
  info.ack_floor_consumer_seq = ci.AckFloor.Consumer;
  return info;
}

void validate(const consumer_config& cfg) {
  const std::string what =
      "JetStream consumer '" + cfg.durable + "' on stream '" + cfg.stream + "'";
  if (cfg.stream.empty()) throw nats_error(what + ": empty stream name", NATS_INVALID_ARG, 0);
  if (cfg.durable.empty()) throw nats_error(what + ": empty durable name", NATS_INVALID_ARG, 0);
  if (cfg.durable.find_first_of(".*> \t") != std::string::npos) {
    throw nats_error(what + ": a durable name cannot contain '.', '*', '>' or white space",
                     NATS_INVALID_ARG, 0);
  }
  if (cfg.ack_wait.count() <= 0)
    throw nats_error(what + ": ack_wait must be > 0", NATS_INVALID_ARG, 0);
  if (cfg.max_deliver == 0 || cfg.max_deliver < -1) {
    throw nats_error(what + ": max_deliver must be >= 1 or -1 (unlimited)", NATS_INVALID_ARG, 0);
  }
  if (cfg.max_ack_pending < 1) {
    throw nats_error(what + ": max_ack_pending must be >= 1", NATS_INVALID_ARG, 0);
  }
}

}  // namespace

const char* to_string(ensure_result r) {
  switch (r) {
    case ensure_result::created:
      return "created";
    case ensure_result::updated:
      return "updated";
    case ensure_result::unchanged:
      return "unchanged";
  }
  return "?";
}

std::optional<stream_info> get_stream_info(nats_connection& conn, const std::string& name) {
  js_context ctx(conn, conn.options().api_timeout);
  stream_info_ptr si;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si.p, ctx.js, name.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND || jerr == js_stream_not_found) return std::nullopt;
  nats_throw("JetStream stream info '" + name + "'", s, jerr);
  return from_c(*si.p, conn);
}

ensure_result ensure_stream(nats_connection& conn, const stream_config& cfg, stream_info* info) {
  validate(cfg);
  js_context ctx(conn, conn.options().api_timeout);
  c_stream_config want(cfg);
  const std::string what = "JetStream stream '" + cfg.name + "'";

  for (int attempt = 0; attempt < 3; ++attempt) {
    stream_info_ptr si;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&si.p, ctx.js, cfg.name.c_str(), nullptr, &jerr);
    if (s == NATS_NOT_FOUND || jerr == js_stream_not_found) {
      stream_info_ptr created;
      jerr = static_cast<jsErrCode>(0);
      s = js_AddStream(&created.p, ctx.js, &want.c, nullptr, &jerr);
      if (jerr == js_stream_name_exists) continue;  // created meanwhile by someone else: compare
      nats_throw("create " + what, s, jerr);
      if (info != nullptr) *info = from_c(*created.p, conn);
      return ensure_result::created;
    }
    nats_throw(what + " info", s, jerr);
    const stream_config have = from_c(*si.p->Config);
    const std::string diff = stream_difference(cfg, have);
    if (diff.empty()) {
      if (info != nullptr) *info = from_c(*si.p, conn);
      return ensure_result::unchanged;
    }
    if (diff == "storage" || diff == "retention") {
      throw nats_error(what + " exists with another " + diff +
                           "; the server cannot change it (delete the stream to recreate it)",
                       NATS_ERR, 0);
    }
    stream_info_ptr updated;
    jerr = static_cast<jsErrCode>(0);
    s = js_UpdateStream(&updated.p, ctx.js, &want.c, nullptr, &jerr);
    nats_throw("update " + what + " (" + diff + " differs)", s, jerr);
    if (info != nullptr) *info = from_c(*updated.p, conn);
    return ensure_result::updated;
  }
  throw nats_unavailable(what + ": created and deleted concurrently, gave up", NATS_ERR, 0);
}

bool delete_stream(nats_connection& conn, const std::string& name) {
  js_context ctx(conn, conn.options().api_timeout);
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_DeleteStream(ctx.js, name.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND || jerr == js_stream_not_found) return false;
  nats_throw("delete JetStream stream '" + name + "'", s, jerr);
  return true;
}

std::optional<consumer_info> get_consumer_info(nats_connection& conn, const std::string& stream,
                                               const std::string& durable) {
  js_context ctx(conn, conn.options().api_timeout);
  consumer_info_ptr ci;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&ci.p, ctx.js, stream.c_str(), durable.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND || jerr == js_consumer_not_found) return std::nullopt;
  nats_throw("JetStream consumer info '" + durable + "' on stream '" + stream + "'", s, jerr);
  return from_c(*ci.p);
}

ensure_result ensure_consumer(nats_connection& conn, const consumer_config& cfg,
                              consumer_info* info) {
  validate(cfg);
  js_context ctx(conn, conn.options().api_timeout);
  const std::string what =
      "JetStream consumer '" + cfg.durable + "' on stream '" + cfg.stream + "'";
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = cfg.durable.c_str();
  cc.AckPolicy = js_AckExplicit;
  cc.AckWait = to_nanos(cfg.ack_wait);
  cc.MaxDeliver = cfg.max_deliver;
  cc.MaxAckPending = cfg.max_ack_pending;
  cc.DeliverPolicy =
      cfg.deliver == consumer_config::start::new_only ? js_DeliverNew : js_DeliverAll;
  if (!cfg.filter_subject.empty()) cc.FilterSubject = cfg.filter_subject.c_str();

  consumer_info_ptr ci;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s =
      js_GetConsumerInfo(&ci.p, ctx.js, cfg.stream.c_str(), cfg.durable.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND || jerr == js_consumer_not_found) {
    consumer_info_ptr created;
    jerr = static_cast<jsErrCode>(0);
    s = js_AddConsumer(&created.p, ctx.js, cfg.stream.c_str(), &cc, nullptr, &jerr);
    nats_throw("create " + what, s, jerr);
    if (info != nullptr) *info = from_c(*created.p);
    return ensure_result::created;
  }
  if (jerr == js_stream_not_found) {
    throw nats_error(what + ": no such stream", s, jerr);
  }
  nats_throw(what + " info", s, jerr);
  const consumer_config have = from_c(*ci.p->Config, cfg.stream);
  if (have.filter_subject != cfg.filter_subject) {
    throw nats_error(what + " exists with filter subject '" + have.filter_subject + "', not '" +
                         cfg.filter_subject + "' (delete the consumer to change it)",
                     NATS_ERR, 0);
  }
  if (have.deliver != cfg.deliver) {
    throw nats_error(
        what + " exists with another deliver policy (delete the consumer to change it)", NATS_ERR,
        0);
  }
  if (have.ack_wait == cfg.ack_wait && have.max_deliver == cfg.max_deliver &&
      have.max_ack_pending == cfg.max_ack_pending) {
    if (info != nullptr) *info = from_c(*ci.p);
    return ensure_result::unchanged;
  }
  consumer_info_ptr updated;
  jerr = static_cast<jsErrCode>(0);
  s = js_UpdateConsumer(&updated.p, ctx.js, cfg.stream.c_str(), &cc, nullptr, &jerr);
  nats_throw("update " + what, s, jerr);
  if (info != nullptr) *info = from_c(*updated.p);
  return ensure_result::updated;
}

bool delete_consumer(nats_connection& conn, const std::string& stream, const std::string& durable) {
  js_context ctx(conn, conn.options().api_timeout);
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_DeleteConsumer(ctx.js, stream.c_str(), durable.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND || jerr == js_consumer_not_found) return false;
  nats_throw("delete JetStream consumer '" + durable + "' on stream '" + stream + "'", s, jerr);
  return true;
}

}  // namespace fraiseql
