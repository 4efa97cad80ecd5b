#include "runtime/io/pg/history_store.hpp"

#include "runtime/core/envelope.hpp"
#include "runtime/io/pg/guard.hpp"

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <algorithm>
#include <chrono>
#include <limits>
#include <thread>
#include <utility>

namespace fraiseql {

namespace json = boost::json;

namespace {

// The wake-up probe of the capture trigger (sql/0005_wakeup_lock.sql): a
// sleeping listener holds the mark, so NOTIFY it.
constexpr const char* wake_listener_sql =
    "SELECT CASE WHEN NOT pg_try_advisory_xact_lock_shared(-152985557, 0)"
    " THEN pg_notify('fraiseql_observer', '') END";

constexpr const char* ts_format = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

// The rows of a replay, in change-log order after a position: $1..$8 the
// bounds and the cap (replay_params()), $9/$10 the position after which to
// read, $11 how many. Copies are never replayed.
#define OBSERVER_REPLAY_ROWS(COLUMNS) "SELECT " COLUMNS OBSERVER_REPLAY_FROM
#define OBSERVER_REPLAY_FROM                                                                    \
  " FROM core.tb_entity_change_log c"                                                           \
  " WHERE (c.txid, c.pk_entity_change_log) > ($9::text::xid8, $10::bigint)"                     \
  " AND (c.txid, c.pk_entity_change_log) <= ($7::text::xid8, $8::bigint)"                       \
  " AND c.extra_metadata -> 'fraiseql_replay' IS NULL"                                          \
  " AND ($1::timestamptz IS NULL OR c.created_at >= $1::timestamptz)"                           \
  " AND ($2::text IS NULL OR (c.txid, c.pk_entity_change_log) >= ($2::text::xid8, $3::bigint))" \
  " AND ($4::timestamptz IS NULL OR c.created_at <= $4::timestamptz)"                           \
  " AND ($5::text IS NULL OR (c.txid, c.pk_entity_change_log) <= ($5::text::xid8, $6::bigint))" \
  " ORDER BY c.txid, c.pk_entity_change_log LIMIT $11"

constexpr const char* event_columns =
    "c.pk_entity_change_log, c.txid::text, c.id::text, c.object_type, c.modification_type,"
    " coalesce(c.object_id::text, ''), coalesce(c.object_data::text, ''),"
    " coalesce(c.object_data_before::text, ''),"
    " to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
    " c.tenant_id::text, c.user_id::text, c.trace_id::text";

std::optional<std::string> opt_text(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return std::string(f.c_str());
}

std::optional<std::string> pos_txid(const std::optional<position>& p) {
  if (!p) return std::nullopt;
  return std::to_string(p->txid);
}
std::optional<int64_t> pos_pk(const std::optional<position>& p) {
  if (!p) return std::nullopt;
  return p->pk;
}

json::value row_json(const pqxx::field& f) {
  if (f.is_null()) return nullptr;
  return json::parse(f.c_str());
}

/// "<id> at <time> (txid T, pk P)" of an event description.
std::string describe(const json::value& e) {
  const auto& o = e.as_object();
  return std::string(o.at("id").as_string()) + " at " + std::string(o.at("timestamp").as_string()) +
         " (txid " + std::string(o.at("txid").as_string()) + ", pk " +
         std::to_string(o.at("pk").to_number<int64_t>()) + ")";
}

/// The event description columns: {"id","timestamp","txid","pk"} as JSON text.
constexpr const char* describe_columns =
    "json_build_object('id', c.id::text, 'timestamp', to_char(c.created_at AT TIME ZONE 'UTC',"
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'txid', c.txid::text, 'pk',"
    " c.pk_entity_change_log)::text";

/// Splits a trigger's tgargs as encode(tgargs, 'escape') prints them
/// ("Order\000id\000true\000").
std::vector<std::string> trigger_args(const std::string& escaped) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < escaped.size(); ++i) {
    if (escaped.compare(i, 4, "\\000") == 0) {
      out.push_back(cur);
      cur.clear();
      i += 3;
    } else if (escaped.compare(i, 2, "\\\\") == 0) {
      cur += '\\';
      ++i;
    } else {
      cur += escaped[i];
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

}  // namespace

history_store::history_store(std::string dsn) : session_(std::move(dsn)) {}

template <class F>
auto history_store::run(F&& f) -> decltype(f(std::declval<pqxx::connection_base&>())) {
  return guarded(session_, std::forward<F>(f), [this] { session_.reset(); });
}

// --- replay ---

replay_plan history_store::plan_replay(const replay_request& r) {
  return run([&](pqxx::connection_base& c) {
    replay_plan p;
    p.req = r;
    if (!r.from) throw history_error("--from is required: a time or an event id", true);
    // Times first, each in its own statement: a malformed one is the
    // operator's to fix, and its error must not abort the reads below.
    auto normalize_time = [&](const replay_bound& b, const char* opt) {
      pqxx::nontransaction tx{c};
      try {
        return tx
            .exec_params1(std::string("SELECT to_char($1::timestamptz AT TIME ZONE 'UTC', ") +
                              ts_format + ")",
                          b.text)[0]
            .as<std::string>();
      } catch (const pqxx::data_exception&) {
        throw history_error(std::string(opt) + ": '" + b.text +
                                "' is neither an event id (uuid) nor a time PostgreSQL reads "
                                "(e.g. 2026-12-03T18:00:00Z, '2026-12-03 18:00+01', 'today')",
                            true);
      }
    };
    if (r.from->k == replay_bound::kind::time) p.from_time = normalize_time(*r.from, "--from");
    if (r.to && r.to->k == replay_bound::kind::time) p.to_time = normalize_time(*r.to, "--to");

    pqxx::read_transaction tx{c};
    auto oldest_r = tx.exec(std::string("SELECT ") + describe_columns +
                            ", c.created_at::text FROM core.tb_entity_change_log c"
                            " WHERE c.extra_metadata -> 'fraiseql_replay' IS NULL"
                            " ORDER BY c.txid, c.pk_entity_change_log LIMIT 1");
    if (oldest_r.empty())
      throw history_error("the change log holds no event: nothing to replay", false);
    const json::value oldest = row_json(oldest_r[0][0]);
    const std::string oldest_text = describe(oldest);
    const std::string oldest_time(oldest.as_object().at("timestamp").as_string());

    // An event bound: its position (and time, to compare with a time bound).
    auto locate = [&](const replay_bound& b, const char* opt) {
      auto e = tx.exec_params(
          "SELECT c.txid::text, c.pk_entity_change_log, to_char(c.created_at AT TIME ZONE 'UTC', " +
              std::string(ts_format) +
              ") FROM core.tb_entity_change_log c WHERE c.id::text = $1"
              " AND c.extra_metadata -> 'fraiseql_replay' IS NULL"
              " ORDER BY c.txid, c.pk_entity_change_log LIMIT 1",
          b.text);
      if (e.empty())
        throw history_error(std::string(opt) + ": event " + b.text +
                                " is not in the change log: it was pruned (change-log retention) "
                                "or never captured. The oldest retained event is " +
                                oldest_text,
                            false);
      return std::make_pair(position{std::stoull(e[0][0].c_str()), e[0][1].as<int64_t>()},
                            std::string(e[0][2].c_str()));
    };
    std::string from_at, to_at;  // times of the bounds, for --from after --to
    if (r.from->k == replay_bound::kind::event_id) {
      auto [pos, at] = locate(*r.from, "--from");
      p.from_pos = pos;
      from_at = at;
    } else {
      from_at = *p.from_time;
      // Earlier than the oldest retained event: that part of the range is gone.
      if (tx.exec_params1("SELECT $1::timestamptz < $2::timestamptz", *p.from_time, oldest_time)[0]
              .as<bool>())
        throw history_error("--from " + *p.from_time +
                                " is before the oldest retained event: events before it were "
                                "pruned (change-log retention) or never captured, so that range "
                                "cannot be replayed. The oldest retained event is " +
                                oldest_text + "; replay from " + oldest_time + " or later",
                            false);
    }
    if (r.to) {
      if (r.to->k == replay_bound::kind::event_id) {
        auto [pos, at] = locate(*r.to, "--to");
        p.to_pos = pos;
        to_at = at;
      } else {
        to_at = *p.to_time;
      }
      bool after = false;
      if (p.from_pos && p.to_pos)
        after = *p.to_pos < *p.from_pos;
      else
        after = tx.exec_params1("SELECT $1::timestamptz > $2::timestamptz", from_at, to_at)[0]
                    .as<bool>();
      if (after)
        throw history_error("--from (" + r.from->text + ", " + from_at + ") is after --to (" +
                                r.to->text + ", " + to_at + ")",
                            true);
    }
    auto cap = tx.exec(
        "SELECT c.txid::text, c.pk_entity_change_log FROM core.tb_entity_change_log c"
        " ORDER BY c.txid DESC, c.pk_entity_change_log DESC LIMIT 1");
    p.cap = position{std::stoull(cap[0][0].c_str()), cap[0][1].as<int64_t>()};
    const auto cap_txid = std::to_string(p.cap.txid);
    auto count = tx.exec_params1("SELECT count(*) FROM (" OBSERVER_REPLAY_ROWS("1") ") x",
                                 p.from_time, pos_txid(p.from_pos), pos_pk(p.from_pos), p.to_time,
                                 pos_txid(p.to_pos), pos_pk(p.to_pos), cap_txid, p.cap.pk, "0",
                                 int64_t{0}, std::numeric_limits<int64_t>::max());
    p.events = count[0].as<int64_t>();
    auto range_text = [&] {
      return std::string("between ") + (r.from ? r.from->text : "?") + " and " +
             (r.to ? r.to->text : std::string("now"));
    };
    if (p.events == 0)
      throw history_error("no retained event " + range_text() + ": nothing to replay", false);
    auto first = tx.exec_params1(
        std::string("SELECT ") + describe_columns + " FROM (" + OBSERVER_REPLAY_ROWS("c.*") + ") c",
        p.from_time, pos_txid(p.from_pos), pos_pk(p.from_pos), p.to_time, pos_txid(p.to_pos),
        pos_pk(p.to_pos), cap_txid, p.cap.pk, "0", int64_t{0}, int64_t{1});
    p.first = row_json(first[0]);
    // The last: the same bounds, read backwards.
    auto last = tx.exec_params1(
        std::string("SELECT ") + describe_columns +
            " FROM core.tb_entity_change_log c"
            " WHERE (c.txid, c.pk_entity_change_log) <= ($7::text::xid8, $8::bigint)"
            " AND c.extra_metadata -> 'fraiseql_replay' IS NULL"
            " AND ($1::timestamptz IS NULL OR c.created_at >= $1::timestamptz)"
            " AND ($2::text IS NULL OR (c.txid, c.pk_entity_change_log) >= ($2::text::xid8, "
            "$3::bigint))"
            " AND ($4::timestamptz IS NULL OR c.created_at <= $4::timestamptz)"
            " AND ($5::text IS NULL OR (c.txid, c.pk_entity_change_log) <= ($5::text::xid8, "
            "$6::bigint))"
            " ORDER BY c.txid DESC, c.pk_entity_change_log DESC LIMIT 1",
        p.from_time, pos_txid(p.from_pos), pos_pk(p.from_pos), p.to_time, pos_txid(p.to_pos),
        pos_pk(p.to_pos), cap_txid, p.cap.pk);
    p.last = row_json(last[0]);
    // The request as given: the same bounds and observer find the same row.
    // An open --to is part of the key as "open": asking again later for the
    // same start is the same request (use --again to replay once more).
    auto bound_key = [&](const std::optional<replay_bound>& b,
                         const std::optional<std::string>& t) {
      if (!b) return std::string("open");
      if (b->k == replay_bound::kind::event_id) return "event:" + b->text;
      return "time:" + *t;
    };
    p.request_key = "from=" + bound_key(r.from, p.from_time) + ";to=" + bound_key(r.to, p.to_time) +
                    ";observer=" + (r.observer.empty() ? std::string("*") : r.observer);
    return p;
  });
}

void history_store::scan_replay(const replay_plan& p, uint32_t chunk,
                                const std::function<void(const std::vector<event_ptr>&)>& f) {
  position after{0, 0};
  for (;;) {
    auto batch = run([&](pqxx::connection_base& c) {
      pqxx::read_transaction tx{c};
      auto rows =
          tx.exec_params(std::string("SELECT ") + event_columns + OBSERVER_REPLAY_FROM, p.from_time,
                         pos_txid(p.from_pos), pos_pk(p.from_pos), p.to_time, pos_txid(p.to_pos),
                         pos_pk(p.to_pos), std::to_string(p.cap.txid), p.cap.pk,
                         std::to_string(after.txid), after.pk, static_cast<int64_t>(chunk));
      std::vector<event_ptr> out;
      out.reserve(rows.size());
      for (const auto& row : rows) {
        position pos{std::stoull(row[1].c_str()), row[0].as<int64_t>()};
        out.push_back(make_event(0, pos, row[2].c_str(), row[4].c_str(), row[3].c_str(),
                                 row[5].c_str(), row[6].c_str(), row[7].c_str(), row[8].c_str(),
                                 opt_text(row[9]), opt_text(row[10]), opt_text(row[11])));
      }
      return out;
    });
    if (batch.empty()) return;
    after = batch.back()->pos;
    f(batch);
    if (batch.size() < chunk) return;
  }
}

json::value history_store::create_replay(const replay_plan& p, bool& created) {
  return run([&](pqxx::connection_base& c) {
    pqxx::work tx{c};
    const std::optional<std::string> observer =
        p.req.observer.empty() ? std::nullopt : std::optional<std::string>(p.req.observer);
    auto ins = tx.exec_params(
        "INSERT INTO observer_replays (listener_id, request_key, observer_name, from_time,"
        " from_txid, from_pk, to_time, to_txid, to_pk, cap_txid, cap_pk, events_total)"
        " VALUES ($1, $2 || CASE WHEN $12 THEN ';again:' || gen_random_uuid()::text ELSE '' END,"
        " $3, $4::timestamptz, $5::text::xid8, $6, $7::timestamptz, $8::text::xid8, $9,"
        " $10::text::xid8, $11, $13)"
        " ON CONFLICT (listener_id, request_key) DO NOTHING RETURNING id",
        p.req.listener_id, p.request_key, observer, p.from_time, pos_txid(p.from_pos),
        pos_pk(p.from_pos), p.to_time, pos_txid(p.to_pos), pos_pk(p.to_pos),
        std::to_string(p.cap.txid), p.cap.pk, p.req.again, p.events);
    created = !ins.empty();
    constexpr const char* columns =
        "SELECT row_to_json(x)::text FROM (SELECT id, listener_id, observer_name, status,"
        " events_total, events_written, chunks_done, error, created_at, finished_at"
        " FROM observer_replays WHERE ";
    auto row =
        created ? tx.exec_params1(std::string(columns) + "id = $1) x", ins[0][0].as<int64_t>())
                : tx.exec_params1(std::string(columns) + "listener_id = $1 AND request_key = $2) x",
                                  p.req.listener_id, p.request_key);
    tx.commit();
    return row_json(row[0]);
  });
}

json::value history_store::replays(const std::string& listener_id, uint32_t limit) {
  return run([&](pqxx::connection_base& c) {
    pqxx::read_transaction tx{c};
    auto r = tx.exec_params1(
        "SELECT coalesce(json_agg(x ORDER BY x.id DESC), '[]')::text FROM (SELECT id,"
        " listener_id, observer_name, request_key, status, events_total, events_written,"
        " chunks_done, error, created_at, updated_at, finished_at FROM observer_replays"
        " WHERE listener_id = $1 ORDER BY id DESC LIMIT $2) x",
        listener_id, static_cast<int64_t>(limit));
    return row_json(r[0]);
  });
}

std::vector<int64_t> history_store::running_replays(const std::string& listener_id) {
  return run([&](pqxx::connection_base& c) {
    pqxx::read_transaction tx{c};
    std::vector<int64_t> out;
    for (const auto& row :
         tx.exec_params("SELECT id FROM observer_replays WHERE listener_id = $1 AND status ="
                        " 'running' ORDER BY id",
                        listener_id))
      out.push_back(row[0].as<int64_t>());
    return out;
  });
}

chunk_result history_store::replay_chunk(int64_t id, uint32_t batch) {
  return run([&](pqxx::connection_base& c) {
    pqxx::work tx{c};
    chunk_result out;
    // The row lock serializes writers (two nodes that both believe they
    // lead): the second one skips it and finds the progress moved on later.
    auto req = tx.exec_params(
        "SELECT listener_id, observer_name, to_char(from_time AT TIME ZONE 'UTC', " +
            std::string(ts_format) + "), from_txid::text, from_pk, to_char(to_time AT TIME ZONE " +
            "'UTC', " + ts_format +
            "), to_txid::text, to_pk, cap_txid::text, cap_pk,"
            " coalesce(done_txid::text, '0'), coalesce(done_pk, 0)"
            " FROM observer_replays WHERE id = $1 AND status = 'running' FOR UPDATE SKIP LOCKED",
        id);
    if (req.empty()) return out;
    out.ran = true;
    const auto& q = req[0];
    auto ins = tx.exec_params1(
        "WITH src AS (" OBSERVER_REPLAY_ROWS("c.*") "),"
        " ins AS (INSERT INTO core.tb_entity_change_log (id, tenant_id, user_id, trace_id,"
        "  object_type, object_id, modification_type, object_data, object_data_before,"
        "  extra_metadata, created_at)"
        "  SELECT s.id, s.tenant_id, s.user_id, s.trace_id, s.object_type, s.object_id,"
        "   s.modification_type, s.object_data, s.object_data_before,"
        "   coalesce(s.extra_metadata, '{}'::jsonb) || jsonb_build_object('fraiseql_replay',"
        "    jsonb_build_object('id', $12::bigint, 'listener_id', $13::text, 'observer',"
        "    $14::text)), s.created_at"
        "  FROM src s ORDER BY s.txid, s.pk_entity_change_log RETURNING 1)"
        " SELECT (SELECT count(*) FROM ins),"
        " (SELECT s.txid::text FROM src s ORDER BY s.txid DESC, s.pk_entity_change_log DESC"
        "  LIMIT 1),"
        " (SELECT s.pk_entity_change_log FROM src s ORDER BY s.txid DESC,"
        "  s.pk_entity_change_log DESC LIMIT 1)",
        opt_text(q[2]), opt_text(q[3]), q[4].is_null() ? std::nullopt : opt_text(q[4]),
        opt_text(q[5]), opt_text(q[6]), q[7].is_null() ? std::nullopt : opt_text(q[7]),
        std::string(q[8].c_str()), q[9].as<int64_t>(), std::string(q[10].c_str()),
        q[11].as<int64_t>(), static_cast<int64_t>(batch), id, std::string(q[0].c_str()),
        opt_text(q[1]));
    out.rows = ins[0].as<uint64_t>();
    if (out.rows == 0) {
      tx.exec_params0(
          "UPDATE observer_replays SET status = 'done', updated_at = now(), finished_at = now()"
          " WHERE id = $1",
          id);
      out.done = true;
    } else {
      tx.exec_params0(
          "UPDATE observer_replays SET done_txid = $2::text::xid8, done_pk = $3,"
          " events_written = events_written + $4, chunks_done = chunks_done + 1,"
          " updated_at = now() WHERE id = $1",
          id, std::string(ins[1].c_str()), ins[2].as<int64_t>(), static_cast<int64_t>(out.rows));
      tx.exec(wake_listener_sql);
    }
    tx.commit();
    return out;
  });
}

void history_store::fail_replay(int64_t id, const std::string& error) {
  run([&](pqxx::connection_base& c) {
    pqxx::work tx{c};
    tx.exec_params0(
        "UPDATE observer_replays SET status = 'failed', error = $2, updated_at = now(),"
        " finished_at = now() WHERE id = $1 AND status = 'running'",
        id, error);
    tx.commit();
    return 0;
  });
}

// --- backfill ---

json::value history_store::create_backfill(const std::string& table,
                                           const std::optional<std::string>& where,
                                           uint32_t batch) {
  if (where)
    if (auto why = sql_condition_problem(*where)) throw history_error("--where: " + *why, true);
  return run([&](pqxx::connection_base& c) {
    std::string name, entity, key, key_type;
    {
      pqxx::nontransaction tx{c};
      pqxx::result t;
      try {
        t = tx.exec_params(
            "SELECT $1::regclass::text, $1::regclass::oid::bigint,"
            " (SELECT relkind::text FROM pg_class WHERE oid = $1::regclass)",
            table);
      } catch (const pqxx::sql_error& e) {
        if (e.sqlstate() != "42P01" && e.sqlstate() != "42602" && e.sqlstate() != "3F000") throw;
        throw history_error("table '" + table + "' does not exist (give it as schema.table)",
                            false);
      }
      name = t[0][0].c_str();
      const auto oid = t[0][1].as<int64_t>();
      auto trig = tx.exec_params(
          "SELECT encode(tgargs, 'escape') FROM pg_trigger WHERE tgrelid = $1::bigint::oid"
          " AND tgname = 'observer_capture_ins'",
          oid);
      if (trig.empty())
        throw history_error("table " + name +
                                " has no capture attached: run SELECT observer_attach('" + name +
                                "', 'Entity') first (a backfill emits its rows under the "
                                "capture's entity name and key column)",
                            false);
      const auto args = trigger_args(trig[0][0].c_str());
      if (args.empty())
        throw std::runtime_error("capture trigger of " + name + " has no arguments");
      entity = args[0];
      key = args.size() > 1 ? args[1] : "id";
      auto k = tx.exec_params(
          "SELECT format_type(a.atttypid, a.atttypmod), EXISTS (SELECT 1 FROM pg_index i"
          " WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indnkeyatts = 1"
          " AND i.indkey[0] = a.attnum AND i.indpred IS NULL)"
          " FROM pg_attribute a WHERE a.attrelid = $1::bigint::oid AND a.attname = $2"
          " AND NOT a.attisdropped",
          oid, key);
      if (k.empty())
        throw history_error(
            "table " + name + " has no column '" + key + "' (the key column its capture names)",
            false);
      if (!k[0][1].as<bool>())
        throw history_error("table " + name + ": the key column '" + key +
                                "' has no unique index; a backfill pages through the table by "
                                "that key and needs it unique",
                            false);
      key_type = k[0][0].c_str();
    }
    if (where) {
      // PostgreSQL checks the condition without running it: EXPLAIN plans the
      // statement, in a read-only transaction, with a short timeout.
      pqxx::read_transaction tx{c};
      tx.exec0("SET LOCAL statement_timeout = 5000");
      try {
        tx.exec_params("EXPLAIN SELECT 1 FROM " + name + " t WHERE (" + *where + ")");
      } catch (const pqxx::sql_error& e) {
        std::string msg = e.what();
        while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
        const auto pos = msg.find("\nLINE");
        if (pos != std::string::npos) msg = msg.substr(0, pos);
        throw history_error("--where: PostgreSQL rejects the condition on " + name + ": " + msg,
                            true);
      }
    }
    pqxx::work tx{c};
    auto row = tx.exec_params1(
        "WITH b AS (INSERT INTO observer_backfills (table_name, entity, key_column, where_sql,"
        " batch_size) VALUES ($1, $2, $3, $4, $5) RETURNING *)"
        " SELECT row_to_json(x)::text FROM (SELECT id, table_name, entity, key_column, where_sql,"
        " batch_size, status, rows_emitted, chunks_done, created_at FROM b) x",
        name, entity, key, where, static_cast<int64_t>(batch));
    tx.commit();
    (void)key_type;
    return row_json(row[0]);
  });
}

json::value history_store::backfills(uint32_t limit) {
  return run([&](pqxx::connection_base& c) {
    pqxx::read_transaction tx{c};
    auto r = tx.exec_params1(
        "SELECT coalesce(json_agg(x ORDER BY x.id DESC), '[]')::text FROM (SELECT id,"
        " table_name, entity, key_column, where_sql, batch_size, last_key, rows_emitted,"
        " chunks_done, chunk_retries, status, error, created_at, updated_at, finished_at"
        " FROM observer_backfills ORDER BY id DESC LIMIT $1) x",
        static_cast<int64_t>(limit));
    return row_json(r[0]);
  });
}

std::vector<int64_t> history_store::running_backfills() {
  return run([&](pqxx::connection_base& c) {
    pqxx::read_transaction tx{c};
    std::vector<int64_t> out;
    for (const auto& row :
         tx.exec("SELECT id FROM observer_backfills WHERE status = 'running' ORDER BY id"))
      out.push_back(row[0].as<int64_t>());
    return out;
  });
}

chunk_result history_store::backfill_chunk(int64_t id, uint32_t limit) {
  auto result = run([&](pqxx::connection_base& c) {
    pqxx::work tx{c};
    chunk_result out;
    // This transaction's id first: every row the chunk locks is compared
    // with it (below), and the listener delivers in txid order.
    tx.exec("SELECT pg_current_xact_id()");
    auto req = tx.exec_params(
        "SELECT table_name, entity, key_column, where_sql, batch_size, last_key"
        " FROM observer_backfills WHERE id = $1 AND status = 'running' FOR UPDATE SKIP LOCKED",
        id);
    if (req.empty()) return out;
    out.ran = true;
    const auto& q = req[0];
    const std::string table = q[0].c_str();
    const std::string entity = q[1].c_str();
    const std::string key = q[2].c_str();
    const auto where = opt_text(q[3]);
    const auto batch = std::min<int64_t>(q[4].as<int64_t>(), std::max<uint32_t>(1, limit));
    const auto last_key = opt_text(q[5]);
    auto kt = tx.exec_params(
        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
        " WHERE a.attrelid = $1::regclass AND a.attname = $2 AND NOT a.attisdropped",
        table, key);
    if (kt.empty()) throw std::runtime_error("table " + table + " has no column " + key + " now");
    const std::string key_type = kt[0][0].c_str();
    const std::string k = "t." + tx.quote_name(key);
    // The chunk: the next rows by key, locked FOR SHARE until this
    // transaction ends, so a concurrent UPDATE or DELETE of one of them
    // commits (and logs its change) after this chunk's READ rows; `newer`
    // flags a row whose last writer has a later txid than this transaction
    // (it committed after this transaction began: the listener would deliver
    // our READ, carrying its data, before its change).
    const std::string sql =
        "WITH c AS (SELECT " + k + " AS k, to_jsonb(t) AS j, age(t.xmin) < 0 AS newer FROM " +
        table + " t WHERE (" + (where ? *where : std::string("true")) + ")" +
        (last_key ? " AND " + k + " > $3::text::" + key_type : std::string(" AND $3::text = ''")) +
        " ORDER BY " + k +
        " LIMIT $4 FOR SHARE OF t),"
        " ins AS (INSERT INTO core.tb_entity_change_log (object_type, modification_type,"
        "  object_id, object_data, extra_metadata)"
        "  SELECT $1, 'READ', c.j ->> $2, c.j, jsonb_build_object('fraiseql_backfill', $5::bigint)"
        "  FROM c ORDER BY c.k RETURNING 1)"
        " SELECT (SELECT count(*) FROM ins), (SELECT c.k::text FROM c ORDER BY c.k DESC LIMIT 1),"
        " coalesce((SELECT bool_or(c.newer) FROM c), false)";
    auto r = tx.exec_params1(sql, entity, key, last_key.value_or(""), batch, id);
    out.rows = r[0].as<uint64_t>();
    const bool newer = r[2].as<bool>();
    // A writer with an older txid waiting for one of our row locks would
    // commit after us and be delivered before us (txid order): let it go first.
    // And a writer with an older txid that touches one of our rows after we
    // commit (not blocked: our locks are gone) is delivered before us too. So
    // the chunk commits only once no transaction older than it is running
    // (the snapshot's xmin is our own txid): none can then write after us and
    // be delivered before us. While it waits, an older writer that starts
    // waiting for our locks makes it roll back instead (it would wait for us
    // and we for it). The wait is bounded (500 ms): past it, with a long
    // transaction still open, the chunk commits and the narrow window stays
    // (docs/history.md).
    bool older_waiter = false;
    if (!newer && out.rows > 0) {
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
      while (true) {
        auto w = tx.exec1(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.wait_event_type ="
            " 'Lock' AND a.backend_xid IS NOT NULL AND age(a.backend_xid) > 0"
            " AND pg_backend_pid() = ANY (pg_blocking_pids(a.pid))),"
            " pg_snapshot_xmin(pg_current_snapshot()) = pg_current_xact_id()");
        older_waiter = w[0].as<bool>();
        if (older_waiter || w[1].as<bool>() || std::chrono::steady_clock::now() > give_up) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
    if (newer || older_waiter) {
      tx.abort();
      out.conflict = true;
      out.rows = 0;
      return out;
    }
    if (out.rows == 0) {
      tx.exec_params0(
          "UPDATE observer_backfills SET status = 'done', updated_at = now(), finished_at = now()"
          " WHERE id = $1",
          id);
      out.done = true;
    } else {
      tx.exec_params0(
          "UPDATE observer_backfills SET last_key = $2, rows_emitted = rows_emitted + $3,"
          " chunks_done = chunks_done + 1, updated_at = now() WHERE id = $1",
          id, std::string(r[1].c_str()), static_cast<int64_t>(out.rows));
      tx.exec(wake_listener_sql);
    }
    tx.commit();
    return out;
  });
  if (result.conflict)
    run([&](pqxx::connection_base& c) {
      pqxx::nontransaction tx{c};
      tx.exec_params0(
          "UPDATE observer_backfills SET chunk_retries = chunk_retries + 1, updated_at = now()"
          " WHERE id = $1",
          id);
      return 0;
    });
  return result;
}

void history_store::fail_backfill(int64_t id, const std::string& error) {
  run([&](pqxx::connection_base& c) {
    pqxx::work tx{c};
    tx.exec_params0(
        "UPDATE observer_backfills SET status = 'failed', error = $2, updated_at = now(),"
        " finished_at = now() WHERE id = $1 AND status = 'running'",
        id, error);
    tx.commit();
    return 0;
  });
}

}  // namespace fraiseql
