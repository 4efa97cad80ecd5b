#include "runtime/pg.hpp"

#include "runtime/config.hpp"
#include "runtime/pg_guard.hpp"
#include "runtime/cursor.hpp"

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <algorithm>

namespace fraiseql {

namespace {

uint64_t parse_u64(const char* s) { return std::stoull(s); }

}  // namespace

std::string normalize_dsn(const std::string& dsn) {
  if (dsn.empty()) throw std::runtime_error("database url is empty");
  return dsn;
}


// --- pg_session --------------------------------------------------------------

pg_session::pg_session(std::string dsn) : dsn_(std::move(dsn)) {}
pg_session::~pg_session() = default;

pqxx::connection_base& pg_session::get() {
  if (conn_ && conn_->is_open()) return *conn_;
  conn_.reset();
  try {
    conn_ = std::make_unique<pqxx::connection>(dsn_);  // pqxx::connection derives from connection_base
  } catch (const pqxx::broken_connection& e) {
    throw pg_unavailable(std::string("cannot connect to ") + redact_url(dsn_) + ": " + e.what());
  }
  return *conn_;
}

void pg_session::reset() {
  conn_.reset();
}

bool pg_session::connected() const {
  return conn_ && conn_->is_open();
}

// --- events --------------------------------------------------------------------

event_ptr make_event(uint64_t seq, position pos, std::string id, std::string event_type,
                     std::string entity_type, std::string entity_id,
                     const std::string& object_data, const std::string& object_data_before,
                     std::string timestamp, std::optional<std::string> tenant_id,
                     std::optional<std::string> user_id, std::optional<std::string> trace_id,
                     std::shared_ptr<const read_cursor> cursor) {
  namespace json = boost::json;
  auto ev = std::make_shared<event>();
  ev->seq = seq;
  ev->pos = pos;
  ev->cursor = std::move(cursor);
  ev->read_at = std::chrono::steady_clock::now();
  json::object env;
  env.reserve(13);
  env["id"] = id;
  env["event_type"] = event_type;
  env["entity_type"] = entity_type;
  env["entity_id"] = entity_id;
  json::value data = object_data.empty() ? json::value(nullptr) : json::parse(object_data);
  if (!object_data_before.empty()) {
    json::value old = json::parse(object_data_before);
    if (event_type == "UPDATE" && data.is_object() && old.is_object()) {
      json::object changes;
      const auto& n = data.get_object();
      const auto& o = old.get_object();
      for (const auto& kv : n) {
        auto it = o.find(kv.key());
        if (it == o.end() || it->value() != kv.value())
          changes[kv.key()] = json::object{
            {"old", it == o.end() ? json::value(nullptr) : it->value()}, {"new", kv.value()}};
      }
      for (const auto& kv : o)
        if (!n.contains(kv.key()))
          changes[kv.key()] = json::object{{"old", kv.value()}, {"new", nullptr}};
      env["changes"] = std::move(changes);
    }
    env["old"] = std::move(old);
  } else {
    env["old"] = nullptr;
  }
  env["data"] = std::move(data);
  env["timestamp"] = timestamp;
  auto opt = [](const std::optional<std::string>& s) {
    return s ? json::value(*s) : json::value(nullptr);
  };
  env["tenant_id"] = opt(tenant_id);
  env["user_id"] = opt(user_id);
  env["trace_id"] = opt(trace_id);
  env["position"] = json::object{{"txid", std::to_string(pos.txid)}, {"pk", pos.pk}};
  ev->envelope = std::move(env);
  // The serialized envelope splices PostgreSQL's own JSON text for `data` and
  // `old`, so webhook bodies carry numbers exactly as stored (a numeric(30,10)
  // survives; a round trip through double would not). The parsed `envelope`
  // serves conditions and templates.
  std::string out;
  out.reserve(256 + object_data.size() + object_data_before.size());
  auto str = [&](const char* key, const std::string& v) {
    out += '"';
    out += key;
    out += "\":";
    out += json::serialize(json::string_view(v));
    out += ',';
  };
  auto opt_str = [&](const char* key, const std::optional<std::string>& v) {
    if (v) return str(key, *v);
    out += '"';
    out += key;
    out += "\":null,";
  };
  out += '{';
  str("id", id);
  str("event_type", event_type);
  str("entity_type", entity_type);
  str("entity_id", entity_id);
  str("timestamp", timestamp);
  out += "\"data\":";
  out += object_data.empty() ? "null" : object_data;
  out += ",\"old\":";
  out += object_data_before.empty() ? "null" : object_data_before;
  out += ',';
  if (auto it = ev->envelope.as_object().find("changes"); it != ev->envelope.as_object().end()) {
    out += "\"changes\":";
    out += json::serialize(it->value());
    out += ',';
  }
  opt_str("tenant_id", tenant_id);
  opt_str("user_id", user_id);
  opt_str("trace_id", trace_id);
  out += "\"position\":{\"txid\":\"";
  out += std::to_string(pos.txid);
  out += "\",\"pk\":";
  out += std::to_string(pos.pk);
  out += "}}";
  ev->id = std::move(id);
  ev->event_type = std::move(event_type);
  ev->entity_type = std::move(entity_type);
  ev->entity_id = std::move(entity_id);
  ev->envelope_json = std::move(out);
  return ev;
}

// --- change_log_reader -----------------------------------------------------------

namespace {

constexpr const char* wake_channel = "fraiseql_observer";

/// Counts NOTIFYs on the wake-up channel; the payload carries nothing.
struct wake_receiver final : pqxx::notification_receiver {
  uint64_t count = 0;
  wake_receiver(pqxx::connection_base& c, const std::string& ch)
    : pqxx::notification_receiver(c, ch) {}
  void operator()(const std::string&, int) override { ++count; }
};

// One statement, one snapshot: branch 0 returns the snapshot itself, branch 2
// the unread rows of transactions that were running at earlier reads
// (runtime/cursor.hpp), branch 1 the rows after the cursor's position. Every
// row a statement sees is committed, so nothing waits for older transactions.
// Output columns carry distinct aliases: an ORDER BY name matching an output
// column would sort by that column (txid::text sorts "1003" before "999").
#define OBSERVER_ROW_COLUMNS                                                                  \
  " c.pk_entity_change_log AS pk_value, c.txid::text AS txid_text, c.id::text AS id_text,"    \
  " c.object_type::text AS type_text, c.modification_type::text AS mod_text,"                 \
  " coalesce(c.object_id::text, '') AS object_id_text,"                                       \
  " coalesce(c.object_data::text, '') AS data_text,"                                          \
  " coalesce(c.object_data_before::text, '') AS before_text,"                                 \
  " to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS ts_text," \
  " c.tenant_id::text AS tenant_text, c.user_id::text AS user_text,"                          \
  " c.trace_id::text AS trace_text, NULL::text AS snap_text"
#define OBSERVER_SNAPSHOT_ROW                                                                 \
  "SELECT 0 AS part, NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text,"           \
  " NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,"      \
  " pg_current_snapshot()::text"
#define OBSERVER_MAIN_ROWS                                                                    \
  " UNION ALL (SELECT 1," OBSERVER_ROW_COLUMNS " FROM core.tb_entity_change_log c"            \
  " WHERE (c.txid, c.pk_entity_change_log) > ($1::text::xid8, $2::bigint)"                    \
  " ORDER BY c.txid, c.pk_entity_change_log LIMIT $3)"

constexpr const char* read_sql = OBSERVER_SNAPSHOT_ROW OBSERVER_MAIN_ROWS;

constexpr const char* read_pending_sql =
  OBSERVER_SNAPSHOT_ROW
  " UNION ALL (SELECT 2," OBSERVER_ROW_COLUMNS " FROM core.tb_entity_change_log c"
  " JOIN unnest($4::text::xid8[], $5::text::bigint[]) AS u(t, k)"
  "   ON c.txid = u.t AND c.pk_entity_change_log > u.k"
  " ORDER BY c.txid, c.pk_entity_change_log LIMIT $3)" OBSERVER_MAIN_ROWS;

// The wake-up mark (sql/0005_wakeup_lock.sql): held exclusively by a sleeping
// listener's session; capture triggers probe it in shared mode.
#define OBSERVER_WAKEUP_CLASS "-152985557"  // hashtext('fraiseql_observer_wakeup')
#define OBSERVER_WAKEUP_KEY OBSERVER_WAKEUP_CLASS ", 0"
constexpr const char* sleep_sql = "SELECT pg_try_advisory_lock(" OBSERVER_WAKEUP_KEY ")";
constexpr const char* wake_sql = "SELECT pg_advisory_unlock(" OBSERVER_WAKEUP_KEY ")";
// Another listener (another listener id on this database) holds the mark:
// writers notify already.
constexpr const char* mark_held_sql =
  "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
  " WHERE d.datname = current_database() AND l.locktype = 'advisory'"
  " AND l.classid = (" OBSERVER_WAKEUP_CLASS ")::int::oid AND l.objid = 0 AND l.objsubid = 2"
  " AND l.mode = 'ExclusiveLock' AND l.granted)";

}  // namespace

struct change_log_reader::impl {
  explicit impl(std::string dsn) : session(std::move(dsn)) {}
  pg_session session;
  std::unique_ptr<wake_receiver> receiver;
  uint64_t seen = 0;
  bool holds_mark = false;  // this session holds the wake-up mark (asleep)

  pqxx::connection_base& conn() {
    if (!session.connected() || !receiver) {
      // The receiver unregisters from its connection when destroyed: it must
      // go before the connection it was attached to.
      receiver.reset();
      session.reset();
      holds_mark = false;  // a session lock ends with its session
      auto& c = session.get();
      // Generic plans: a read is planned once per connection, not once per
      // execution. Both read statements order by the fence index and stop at
      // a LIMIT, so their generic plan is the same index range scan as any
      // custom one (EXPLAIN in docs/performance.md), while planning each read
      // cost the busy listener's backend ~50 µs (the planner probes the index
      // end for the txid range, which a stream of inserts keeps moving) and
      // PostgreSQL alone would keep custom plans here (their estimated cost is
      // lower), i.e. plan every read.
      {
        pqxx::nontransaction tx{c};
        tx.exec0("SET plan_cache_mode = force_generic_plan");
      }
      receiver = std::make_unique<wake_receiver>(c, wake_channel);
      c.prepare("observer_read", read_sql);
      c.prepare("observer_read_pending", read_pending_sql);
      c.prepare("observer_sleep", sleep_sql);
      c.prepare("observer_wake", wake_sql);
      c.prepare("observer_mark_held", mark_held_sql);
    }
    return session.get();
  }
  void drop() {
    receiver.reset();
    session.reset();
    holds_mark = false;
  }
};

change_log_reader::change_log_reader(std::string dsn)
  : impl_(std::make_unique<impl>(std::move(dsn))) {}
change_log_reader::~change_log_reader() {
  impl_->drop();
}

void change_log_reader::reset() {
  impl_->drop();
}

std::vector<event_ptr> change_log_reader::read(read_cursor& cursor, uint32_t limit,
                                               uint64_t& next_seq) {
  auto r = guarded(
    impl_->session,
    [&](pqxx::connection_base&) {
      auto& c = impl_->conn();
      pqxx::nontransaction tx{c};
      if (cursor.pending.empty())
        return tx.exec_prepared("observer_read", std::to_string(cursor.pos.txid), cursor.pos.pk,
                                static_cast<int64_t>(limit));
      std::string txids = "{", pks = "{";
      for (const auto& p : cursor.pending) {
        if (txids.size() > 1) {
          txids += ',';
          pks += ',';
        }
        txids += std::to_string(p.txid);
        pks += std::to_string(p.pk);
      }
      txids += '}';
      pks += '}';
      return tx.exec_prepared("observer_read_pending", std::to_string(cursor.pos.txid),
                              cursor.pos.pk, static_cast<int64_t>(limit), txids, pks);
    },
    [this] { impl_->drop(); });
  // Bucket the rows by branch; each branch is ordered (sorted again in case a
  // parallel plan interleaved them).
  std::optional<snapshot_info> snap;
  std::vector<pqxx::row> pending_rows, main_rows;
  for (const auto& row : r) {
    auto part = row[0].as<int>();
    if (part == 0)
      snap = snapshot_info::parse(row[13].c_str());
    else
      (part == 2 ? pending_rows : main_rows).push_back(row);
  }
  if (!snap) throw std::runtime_error("change log read returned no snapshot row");
  auto pos_of = [](const pqxx::row& row) {
    return position{parse_u64(row[2].c_str()), row[1].as<int64_t>()};
  };
  auto by_pos = [&](const pqxx::row& a, const pqxx::row& b) { return pos_of(a) < pos_of(b); };
  if (!std::is_sorted(pending_rows.begin(), pending_rows.end(), by_pos))
    std::sort(pending_rows.begin(), pending_rows.end(), by_pos);
  if (!std::is_sorted(main_rows.begin(), main_rows.end(), by_pos))
    std::sort(main_rows.begin(), main_rows.end(), by_pos);
  read_result rr;
  rr.pending_rows.reserve(pending_rows.size());
  rr.main_rows.reserve(main_rows.size());
  for (const auto& row : pending_rows) rr.pending_rows.push_back(pos_of(row));
  for (const auto& row : main_rows) rr.main_rows.push_back(pos_of(row));
  rr.pending_exhausted = pending_rows.size() < limit;
  const size_t take = std::min<size_t>(limit, pending_rows.size() + main_rows.size());
  // Advance a copy: if building an event fails, the caller retries the same rows.
  read_cursor next = cursor;
  auto cursors = advance_cursor(next, *snap, rr, take);
  std::vector<event_ptr> out;
  out.reserve(take);
  for (size_t i = 0; i < take; ++i) {
    const auto& row = i < pending_rows.size() ? pending_rows[i] : main_rows[i - pending_rows.size()];
    auto pos = i < pending_rows.size() ? rr.pending_rows[i] : rr.main_rows[i - pending_rows.size()];
    auto opt = [&](int col) -> std::optional<std::string> {
      if (row[col].is_null()) return std::nullopt;
      return std::string(row[col].c_str());
    };
    event_ptr ev;
    try {
      ev = make_event(next_seq + i, pos, row[3].c_str(), row[5].c_str(), row[4].c_str(),
                      row[6].c_str(), row[7].c_str(), row[8].c_str(), row[9].c_str(), opt(10),
                      opt(11), opt(12),
                      std::make_shared<const read_cursor>(std::move(cursors[i])));
    } catch (const std::exception& e) {
      // jsonb always holds valid JSON; reaching this means corruption we must not hide.
      throw std::runtime_error("change log row pk=" + std::to_string(pos.pk)
                               + " cannot be turned into an event: " + e.what());
    }
    out.push_back(std::move(ev));
  }
  next_seq += take;
  cursor = std::move(next);
  return out;
}

bool change_log_reader::try_sleep() {
  return guarded(
    impl_->session,
    [&](pqxx::connection_base&) {
      auto& c = impl_->conn();
      pqxx::nontransaction tx{c};
      if (impl_->holds_mark) return true;
      if (tx.exec_prepared1("observer_sleep")[0].as<bool>()) {
        impl_->holds_mark = true;
        return true;
      }
      // Refused: a capture transaction is running (it may commit rows without
      // notifying, so stay awake), or another listener sleeps holding the
      // mark (writers notify it, and us: sleep too).
      return tx.exec_prepared1("observer_mark_held")[0].as<bool>();
    },
    [this] { impl_->drop(); });
}

void change_log_reader::wake() {
  guarded(
    impl_->session,
    [&](pqxx::connection_base&) {
      if (!impl_->holds_mark) return 0;
      auto& c = impl_->conn();
      pqxx::nontransaction tx{c};
      tx.exec_prepared1("observer_wake");
      impl_->holds_mark = false;
      return 0;
    },
    [this] { impl_->drop(); });
}

bool change_log_reader::wait(std::chrono::milliseconds timeout) {
  return guarded(
    impl_->session,
    [&](pqxx::connection_base&) {
      auto& c = impl_->conn();
      auto before = impl_->receiver->count;
      // Drain what already arrived, then block.
      c.get_notifs();
      if (impl_->receiver->count == before) {
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
        c.await_notification(static_cast<long>(us / 1000000), static_cast<long>(us % 1000000));
      }
      // A connection the server closed reports no error here: surface it, so
      // the caller reconnects (and re-LISTENs) instead of polling a dead socket.
      if (!c.is_open()) throw pqxx::broken_connection("connection closed while waiting");
      return impl_->receiver->count != before;
    },
    [this] { impl_->drop(); });
}

// --- checkpoint_store ---------------------------------------------------------------

checkpoint_store::checkpoint_store(std::string dsn, std::string listener_id)
  : listener_id_(std::move(listener_id)), session_(std::move(dsn)) {}
checkpoint_store::~checkpoint_store() = default;

void checkpoint_store::reset() {
  session_.reset();
}

std::optional<checkpoint_record> checkpoint_store::load() {
  return guarded(session_, [&](pqxx::connection_base& c) -> std::optional<checkpoint_record> {
    pqxx::nontransaction tx{c};
    auto r = tx.exec_params(
      "SELECT txid::text, event_id, events_total, pending_txids FROM observer_checkpoints"
      " WHERE listener_id = $1",
      listener_id_);
    if (r.empty()) return std::nullopt;
    checkpoint_record rec;
    rec.pos.txid = parse_u64(r[0][0].c_str());
    rec.pos.pk = r[0][1].as<int64_t>();
    rec.events_total = r[0][2].as<uint64_t>();
    try {
      rec.pending = parse_pending(r[0][3].c_str());
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error("observer_checkpoints row of listener '" + listener_id_
                               + "' is corrupt: " + e.what());
    }
    return rec;
  });
}

void checkpoint_store::save(const checkpoint_record& rec) {
  bool written = guarded(session_, [&](pqxx::connection_base& c) {
    pqxx::work tx{c};
    // No WAL flush wait: a checkpoint lost in a server crash only moves the
    // restart position back (those events are redelivered, dedup and the
    // idempotency keys absorb them); writers do not share their fsyncs with us.
    tx.exec0("SET LOCAL synchronous_commit = off");
    // The lease row is read FOR SHARE: a takeover (which updates it) waits for
    // this write to commit, then every later write of ours is refused.
    auto r = tx.exec_params(
      "INSERT INTO observer_checkpoints (listener_id, event_id, txid, events_total,"
      " last_processed_at, pending_txids)"
      " SELECT $1::varchar, $2::bigint, $3::text::xid8, $4::bigint, now() AT TIME ZONE 'UTC',"
      " $6::text"
      " WHERE $5::bigint IS NULL OR EXISTS (SELECT 1 FROM observer_leases"
      "   WHERE listener_id = $1::varchar AND epoch = $5::bigint FOR SHARE)"
      " ON CONFLICT (listener_id) DO UPDATE SET event_id = EXCLUDED.event_id,"
      " txid = EXCLUDED.txid, events_total = EXCLUDED.events_total,"
      " last_processed_at = EXCLUDED.last_processed_at, pending_txids = EXCLUDED.pending_txids",
      listener_id_, rec.pos.pk, std::to_string(rec.pos.txid),
      static_cast<int64_t>(rec.events_total), epoch_, pending_text(rec.pending));
    tx.commit();
    return r.affected_rows() > 0;
  });
  if (!written)
    throw fenced_out("checkpoint for listener '" + listener_id_ + "' refused: epoch "
                     + std::to_string(epoch_.value_or(0))
                     + " is no longer current (another node took over)");
}

// --- leader_lease ---------------------------------------------------------------------

leader_lease::leader_lease(std::string dsn, std::string listener_id, std::string holder)
  : listener_id_(std::move(listener_id)), holder_(std::move(holder)), session_(std::move(dsn)) {}
leader_lease::~leader_lease() = default;

std::optional<int64_t> leader_lease::try_acquire() {
  return guarded(session_, [&](pqxx::connection_base& c) -> std::optional<int64_t> {
    {
      pqxx::nontransaction tx{c};
      auto r = tx.exec_params(
        "SELECT pg_try_advisory_lock(hashtext('fraiseql_observer'), hashtext($1))", listener_id_);
      if (!r[0][0].as<bool>()) return std::nullopt;
    }
    lock_held_ = true;
    pqxx::work tx{c};
    auto r = tx.exec_params(
      "INSERT INTO observer_leases (listener_id, epoch, holder) VALUES ($1, 1, $2)"
      " ON CONFLICT (listener_id) DO UPDATE SET epoch = observer_leases.epoch + 1,"
      " holder = EXCLUDED.holder, acquired_at = now() RETURNING epoch",
      listener_id_, holder_);
    tx.commit();
    epoch_ = r[0][0].as<int64_t>();
    return epoch_;
  });
}

leader_lease::status leader_lease::check() {
  if (!epoch_) return status::lost;
  try {
    return guarded(session_, [&](pqxx::connection_base& c) {
      if (session_.connected() && lock_held_) {
        pqxx::nontransaction tx{c};
        tx.exec("SELECT 1");
        return status::held;
      }
      // A new connection: the old one's lock is gone. Take it again, and only
      // keep leading if no takeover happened in between.
      pqxx::nontransaction tx{c};
      auto r = tx.exec_params(
        "SELECT pg_try_advisory_lock(hashtext('fraiseql_observer'), hashtext($1))", listener_id_);
      if (!r[0][0].as<bool>()) return status::lost;
      lock_held_ = true;
      auto e = tx.exec_params("SELECT epoch FROM observer_leases WHERE listener_id = $1",
                              listener_id_);
      if (e.empty() || e[0][0].as<int64_t>() != *epoch_) return status::lost;
      return status::held;
    });
  } catch (const pg_unavailable&) {
    lock_held_ = false;
    return status::unknown;
  }
}

// --- dlq_store -----------------------------------------------------------------------

dlq_store::dlq_store(std::string dsn) : session_(std::move(dsn)) {}
dlq_store::~dlq_store() = default;

void dlq_store::reset() {
  session_.reset();
}

int64_t dlq_store::insert(const dlq_entry& e) {
  return guarded(session_, [&](pqxx::connection_base& c) {
    pqxx::work tx{c};
    auto r = tx.exec_params(
      "INSERT INTO observer_dlq (event_id, event, observer_name, action_index, action_type,"
      " idempotency_key, last_error, attempts, first_attempt_at, last_attempt_at)"
      " VALUES ($1::uuid, $2::jsonb, $3, $4, $5, $6, $7, $8,"
      " to_timestamp($9::double precision / 1000), to_timestamp($10::double precision / 1000))"
      " ON CONFLICT (idempotency_key) DO UPDATE SET last_error = EXCLUDED.last_error,"
      " attempts = observer_dlq.attempts + EXCLUDED.attempts,"
      " last_attempt_at = EXCLUDED.last_attempt_at, status = 'pending', updated_at = now()"
      " RETURNING id",
      e.ev->id, e.ev->envelope_json, e.observer_name, static_cast<int>(e.action_index),
      e.action_type, e.idempotency_key, e.last_error, static_cast<int>(e.attempts),
      e.first_attempt_ms, e.last_attempt_ms);
    tx.commit();
    return r[0][0].as<int64_t>();
  });
}

}  // namespace fraiseql
