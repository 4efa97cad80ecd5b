#include "runtime/io/pg/audit_store.hpp"

#include "runtime/core/audit_query.hpp"

#include <boost/json.hpp>
#include <pqxx/pqxx>

namespace fraiseql {

namespace json = boost::json;

namespace {

void append_string(std::string& out, const std::string& s) {
  out += json::serialize(json::string_view(s.data(), s.size()));
}

/// The envelope's text as it is: the node serialized it (envelope_json), so
/// it is JSON; parsing it again here would only cost the writer's CPU. An
/// empty text (never seen) becomes null rather than failing the batch.
void append_raw_json(std::string& out, const std::string& raw) {
  out += raw.empty() || raw.front() != '{' ? std::string("null") : raw;
}

}  // namespace

std::string audit_events_json(const std::vector<audit_event_record>& events) {
  std::string out = "[";
  for (size_t i = 0; i < events.size(); ++i) {
    const auto& e = events[i];
    if (i > 0) out += ',';
    out += "{\"id\":";
    append_string(out, e.event_id);
    out += ",\"ts\":";
    append_string(out, e.timestamp);
    out += ",\"type\":";
    append_string(out, e.event_type);
    out += ",\"kind\":";
    append_string(out, audit_event_kind(e.event_type));
    out += ",\"et\":";
    append_string(out, e.entity_type);
    out += ",\"eid\":";
    append_string(out, e.entity_id);
    out += ",\"txid\":\"" + std::to_string(e.pos.txid) + "\",\"pk\":" + std::to_string(e.pos.pk);
    out += ",\"obs\":[";
    for (size_t j = 0; j < e.observers.size(); ++j) {
      if (j > 0) out += ',';
      append_string(out, e.observers[j]);
    }
    out += "],\"n\":" + std::to_string(e.actions) + ",\"env\":";
    append_raw_json(out, e.envelope_json);
    out += '}';
  }
  return out + "]";
}

std::string audit_attempts_json(const std::vector<audit_attempt_record>& attempts) {
  json::array out;
  out.reserve(attempts.size());
  for (const auto& a : attempts) {
    json::object o;
    o["id"] = a.event_id;
    o["ets"] = a.event_timestamp;
    o["et"] = a.entity_type;
    o["eid"] = a.entity_id;
    o["kind"] = audit_event_kind(a.event_type);
    o["ms"] = a.ended_ms;
    o["o"] = a.observer;
    o["i"] = a.action_index;
    o["t"] = a.action_type;
    o["n"] = a.attempt;
    o["s"] = a.status;
    if (a.http_status > 0) o["h"] = a.http_status;
    if (!a.error.empty()) o["err"] = a.error;
    o["lat"] = a.latency_ms;
    o["k"] = a.idempotency_key;
    out.push_back(std::move(o));
  }
  return json::serialize(out);
}

audit_store::audit_store(std::string dsn, std::string listener_id)
    : session_(std::move(dsn)), listener_id_(std::move(listener_id)) {}

template <class F>
auto audit_store::run(F&& f) {
  try {
    return f(session_.get());
  } catch (const pqxx::broken_connection& e) {
    session_.reset();
    throw pg_unavailable(e.what());
  } catch (const pqxx::sql_error& e) {
    const std::string& st = e.sqlstate();
    if (st.rfind("57P", 0) == 0 || st.rfind("08", 0) == 0 || !session_.connected()) {
      session_.reset();
      throw pg_unavailable(e.what());
    }
    std::string msg = e.what();
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    throw std::runtime_error(msg);
  }
}

namespace {

// Events of a redelivered event are recorded once (same id, same timestamp).
constexpr const char* insert_events =
    "INSERT INTO observer_audit_events (event_id, ts, listener_id, txid, pk, event_type,"
    " event_kind, entity_type, entity_id, observers, actions, data, tenant_id, user_id)"
    " SELECT (r->>'id')::uuid, coalesce(nullif(r->>'ts', ''), now()::text)::timestamptz, $2, "
    "(r->>'txid')::xid8,"
    " (r->>'pk')::bigint, r->>'type', r->>'kind', r->>'et', r->>'eid',"
    " ARRAY(SELECT jsonb_array_elements_text(r->'obs')), (r->>'n')::int, r->'env'->'data',"
    " r->'env'->>'tenant_id', r->'env'->>'user_id'"
    " FROM jsonb_array_elements($1::jsonb) r"
    " ON CONFLICT (event_id, ts) DO NOTHING";

constexpr const char* insert_attempts =
    "INSERT INTO observer_audit_attempts (event_id, event_ts, ts, entity_type, entity_id,"
    " event_kind, listener_id, observer_name,"
    " action_index, action_type, attempt, status, http_status, error, latency_ms,"
    " idempotency_key)"
    " SELECT (r->>'id')::uuid, coalesce(nullif(r->>'ets', ''), now()::text)::timestamptz,"
    " to_timestamp((r->>'ms')::double precision / 1000), r->>'et', r->>'eid', r->>'kind', $2,"
    " r->>'o', (r->>'i')::int,"
    " r->>'t', (r->>'n')::int, r->>'s', (r->>'h')::int, r->>'err',"
    " (r->>'lat')::double precision, r->>'k'"
    " FROM jsonb_array_elements($1::jsonb) r";

/// The days (UTC) the batch's timestamps fall on.
constexpr const char* ensure_days =
    "SELECT observer_audit_ensure_partitions(min(d), max(d)) FROM ("
    " SELECT (coalesce(nullif(r->>'ts', ''), now()::text)::timestamptz AT TIME ZONE 'UTC')::date "
    "AS d"
    " FROM jsonb_array_elements($1::jsonb) r"
    " UNION ALL SELECT (coalesce(nullif(r->>'ets', ''), now()::text)::timestamptz AT TIME ZONE "
    "'UTC')::date"
    " FROM jsonb_array_elements($2::jsonb) r) x";

}  // namespace

void audit_store::insert(const audit_queue::batch& b) {
  const std::string ev = audit_events_json(b.events);
  const std::string at = audit_attempts_json(b.attempts);
  run([&](pqxx::connection_base& c) {
    try {
      pqxx::work tx{c};
      // The trail may lose its latest records in a server crash (redelivery
      // writes them again), never the events themselves: no flush wait.
      tx.exec("SET LOCAL synchronous_commit = off");
      if (!b.events.empty()) tx.exec_params(insert_events, ev, listener_id_);
      if (!b.attempts.empty()) tx.exec_params(insert_attempts, at, listener_id_);
      tx.commit();
    } catch (const pqxx::check_violation&) {
      // "no partition of relation ... found for row": a day without
      // partitions yet (an old event, or the clock passed the days made
      // ahead). Make them, then write again.
      {
        pqxx::work tx{c};
        tx.exec_params(ensure_days, ev, at);
        tx.commit();
      }
      pqxx::work tx{c};
      tx.exec("SET LOCAL synchronous_commit = off");
      if (!b.events.empty()) tx.exec_params(insert_events, ev, listener_id_);
      if (!b.attempts.empty()) tx.exec_params(insert_attempts, at, listener_id_);
      tx.commit();
    }
    return 0;
  });
}

void audit_store::write(const audit_queue::batch& b) {
  if (b.empty()) return;
  insert(b);
}

int audit_store::ensure_partitions(int from_days, int to_days) {
  return run([&](pqxx::connection_base& c) {
    pqxx::work tx{c};
    auto r = tx.exec_params(
        "SELECT observer_audit_ensure_partitions("
        "(now() AT TIME ZONE 'UTC')::date + $1::int, (now() AT TIME ZONE 'UTC')::date + $2::int)",
        from_days, to_days);
    tx.commit();
    return r[0][0].as<int>();
  });
}

std::vector<audit_retention_day> audit_store::drop_expired(uint32_t keep_days) {
  return run([&](pqxx::connection_base& c) {
    pqxx::work tx{c};
    auto r = tx.exec_params(
        "SELECT day::text, dropped, unfinished FROM observer_audit_drop_expired($1::int)",
        static_cast<int64_t>(keep_days));
    tx.commit();
    std::vector<audit_retention_day> out;
    for (const auto& row : r)
      out.push_back(
          audit_retention_day{row[0].as<std::string>(), row[1].as<bool>(), row[2].as<int64_t>()});
    return out;
  });
}

json::value audit_store::search(const audit_search_sql& q) {
  return run([&](pqxx::connection_base& c) {
    pqxx::read_transaction tx{c};
    tx.exec("SET LOCAL statement_timeout = '30s'");
    auto r = tx.exec_params(q.sql, pqxx::prepare::make_dynamic_params(q.params));
    return json::parse(r[0][0].c_str());
  });
}

}  // namespace fraiseql
