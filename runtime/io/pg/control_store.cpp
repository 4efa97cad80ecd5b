#include "runtime/io/pg/control_store.hpp"
#include "runtime/core/envelope.hpp"
#include "runtime/io/pg/session.hpp"

#include <boost/json.hpp>
#include <pqxx/pqxx>

namespace fraiseql {

namespace json = boost::json;

control_store::control_store(std::string dsn) : session_(std::move(dsn)) {}

template <class F>
auto control_store::run(F&& f) -> decltype(f(std::declval<pqxx::connection_base&>())) {
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
    // Bad input (a malformed --after timestamp, ...): PostgreSQL's own words.
    std::string msg = e.what();
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    throw std::runtime_error(msg);
  }
}

namespace {
json::value parse_text(const pqxx::field& f) {
  if (f.is_null()) return nullptr;
  return json::parse(f.c_str());
}

constexpr const char* dlq_columns =
    "id, event_id, observer_name, action_index, action_type, status, attempts, retry_count,"
    " last_error, idempotency_key, first_attempt_at, last_attempt_at, created_at, updated_at";
}  // namespace

json::value control_store::dlq_list(const dlq_filter& f) {
  return run([&](pqxx::connection_base& c) {
    pqxx::read_transaction tx{c};
    auto r = tx.exec_params(
        std::string("SELECT coalesce(json_agg(x ORDER BY x.id), '[]')::text FROM (SELECT ") +
            dlq_columns +
            " FROM observer_dlq WHERE ($1::text IS NULL OR observer_name = $1)"
            " AND ($2::timestamptz IS NULL OR created_at > $2::timestamptz)"
            " AND ($3 = 'all' OR status = $3) ORDER BY id LIMIT $4 OFFSET $5) x",
        f.observer, f.after, f.status, static_cast<int64_t>(f.limit),
        static_cast<int64_t>(f.offset));
    return parse_text(r[0][0]);
  });
}

std::optional<json::value> control_store::dlq_show(int64_t id) {
  return run([&](pqxx::connection_base& c) -> std::optional<json::value> {
    pqxx::read_transaction tx{c};
    auto r = tx.exec_params(std::string("SELECT row_to_json(x)::text FROM (SELECT ") + dlq_columns +
                                ", event FROM observer_dlq WHERE id = $1) x",
                            id);
    if (r.empty()) return std::nullopt;
    return parse_text(r[0][0]);
  });
}

json::value control_store::dlq_stats(bool by_observer, bool by_error) {
  return run([&](pqxx::connection_base& c) {
    pqxx::read_transaction tx{c};
    json::object out;
    auto s = tx.exec(
        "SELECT json_build_object('total', count(*),"
        " 'pending', count(*) FILTER (WHERE status = 'pending'),"
        " 'retrying', count(*) FILTER (WHERE status = 'retrying'),"
        " 'resolved', count(*) FILTER (WHERE status = 'resolved'),"
        " 'removed', count(*) FILTER (WHERE status = 'removed'),"
        " 'oldest_pending', min(created_at) FILTER (WHERE status = 'pending'))::text"
        " FROM observer_dlq");
    out = parse_text(s[0][0]).as_object();
    if (by_observer) {
      auto r = tx.exec(
          "SELECT coalesce(json_agg(x ORDER BY x.pending DESC, x.observer), '[]')::text FROM"
          " (SELECT observer_name AS observer, count(*) FILTER (WHERE status = 'pending') AS "
          "pending,"
          " count(*) AS total FROM observer_dlq GROUP BY observer_name) x");
      out["by_observer"] = parse_text(r[0][0]);
    }
    if (by_error) {
      auto r = tx.exec(
          "SELECT coalesce(json_agg(x ORDER BY x.pending DESC, x.error), '[]')::text FROM"
          " (SELECT left(last_error, 120) AS error, count(*) AS pending FROM observer_dlq"
          " WHERE status = 'pending' GROUP BY left(last_error, 120)) x");
      out["by_error"] = parse_text(r[0][0]);
    }
    return json::value(std::move(out));
  });
}

std::optional<dlq_row> control_store::dlq_claim(int64_t id, bool& claimed) {
  return run([&](pqxx::connection_base& c) -> std::optional<dlq_row> {
    pqxx::work tx{c};
    auto u = tx.exec_params(
        "UPDATE observer_dlq SET status = 'retrying', updated_at = now()"
        " WHERE id = $1 AND status = 'pending'"
        " RETURNING event::text, observer_name, action_index, status",
        id);
    claimed = !u.empty();
    auto r = claimed ? u
                     : tx.exec_params(
                           "SELECT event::text, observer_name, action_index, status"
                           " FROM observer_dlq WHERE id = $1",
                           id);
    tx.commit();
    if (r.empty()) return std::nullopt;
    dlq_row row;
    row.id = id;
    row.event_json = r[0][0].c_str();
    row.observer_name = r[0][1].c_str();
    row.action_index = r[0][2].as<uint32_t>();
    row.status = r[0][3].c_str();
    return row;
  });
}

std::vector<int64_t> control_store::dlq_pending_ids(const std::optional<std::string>& observer) {
  return run([&](pqxx::connection_base& c) {
    pqxx::read_transaction tx{c};
    auto r = tx.exec_params(
        "SELECT id FROM observer_dlq WHERE status = 'pending'"
        " AND ($1::text IS NULL OR observer_name = $1) ORDER BY id",
        observer);
    std::vector<int64_t> ids;
    for (const auto& row : r) ids.push_back(row[0].as<int64_t>());
    return ids;
  });
}

void control_store::dlq_resolved(int64_t id, uint32_t attempts) {
  run([&](pqxx::connection_base& c) {
    pqxx::work tx{c};
    tx.exec_params(
        "UPDATE observer_dlq SET status = 'resolved', retry_count = retry_count + 1,"
        " attempts = attempts + $2, last_attempt_at = now(), updated_at = now() WHERE id = $1",
        id, static_cast<int>(attempts));
    tx.commit();
    return 0;
  });
}

void control_store::dlq_failed_again(int64_t id, uint32_t attempts, const std::string& error) {
  run([&](pqxx::connection_base& c) {
    pqxx::work tx{c};
    tx.exec_params(
        "UPDATE observer_dlq SET status = 'pending', retry_count = retry_count + 1,"
        " attempts = attempts + $2, last_error = $3, last_attempt_at = now(), updated_at = now()"
        " WHERE id = $1",
        id, static_cast<int>(attempts), error);
    tx.commit();
    return 0;
  });
}

bool control_store::dlq_remove(int64_t id) {
  return run([&](pqxx::connection_base& c) {
    pqxx::work tx{c};
    auto r = tx.exec_params(
        "UPDATE observer_dlq SET status = 'removed', updated_at = now() WHERE id = $1 RETURNING id",
        id);
    tx.commit();
    return !r.empty();
  });
}

json::value control_store::dlq_for_event(const std::string& event_id) {
  return run([&](pqxx::connection_base& c) {
    pqxx::read_transaction tx{c};
    auto r = tx.exec_params(
        std::string("SELECT coalesce(json_agg(x ORDER BY x.id), '[]')::text FROM (SELECT ") +
            dlq_columns + " FROM observer_dlq WHERE event_id::text = $1) x",
        event_id);
    return parse_text(r[0][0]);
  });
}

int64_t control_store::dlq_pending_count() {
  return run([&](pqxx::connection_base& c) {
    pqxx::read_transaction tx{c};
    return tx.exec("SELECT count(*) FROM observer_dlq WHERE status = 'pending'")[0][0]
        .as<int64_t>();
  });
}

json::value control_store::checkpoint(const std::string& listener_id) {
  return run([&](pqxx::connection_base& c) {
    pqxx::read_transaction tx{c};
    auto r = tx.exec_params(
        "SELECT json_build_object('txid', txid::text, 'pk', event_id, 'events_total', events_total,"
        " 'saved_at', last_processed_at, 'pending_txids', pending_txids,"
        " 'age_seconds', extract(epoch FROM (now() AT TIME ZONE 'UTC') - last_processed_at))::text"
        " FROM observer_checkpoints WHERE listener_id = $1",
        listener_id);
    return r.empty() ? json::value(nullptr) : parse_text(r[0][0]);
  });
}

json::value control_store::lease(const std::string& listener_id) {
  return run([&](pqxx::connection_base& c) {
    pqxx::read_transaction tx{c};
    auto r = tx.exec_params(
        "SELECT json_build_object('holder', holder, 'epoch', epoch, 'acquired_at', "
        "acquired_at)::text"
        " FROM observer_leases WHERE listener_id = $1",
        listener_id);
    return r.empty() ? json::value(nullptr) : parse_text(r[0][0]);
  });
}

event_ptr control_store::change_log_event(const std::string& event_id) {
  return run([&](pqxx::connection_base& c) -> event_ptr {
    pqxx::read_transaction tx{c};
    auto r = tx.exec_params(
        "SELECT c.pk_entity_change_log, c.txid::text, c.id::text, c.object_type,"
        " c.modification_type, coalesce(c.object_id::text, ''), coalesce(c.object_data::text, ''),"
        " coalesce(c.object_data_before::text, ''),"
        " to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
        " c.tenant_id::text, c.user_id::text, c.trace_id::text"
        " FROM core.tb_entity_change_log c WHERE c.id::text = $1"
        // The original before its replayed copies (same id, docs/history.md).
        " ORDER BY c.extra_metadata -> 'fraiseql_replay' IS NOT NULL, c.txid,"
        " c.pk_entity_change_log LIMIT 1",
        event_id);
    if (r.empty()) return nullptr;
    const auto& row = r[0];
    auto opt = [&](int i) -> std::optional<std::string> {
      if (row[i].is_null()) return std::nullopt;
      return std::string(row[i].c_str());
    };
    position pos{std::stoull(row[1].c_str()), row[0].as<int64_t>()};
    return make_event(0, pos, row[2].c_str(), row[4].c_str(), row[3].c_str(), row[5].c_str(),
                      row[6].c_str(), row[7].c_str(), row[8].c_str(), opt(9), opt(10), opt(11));
  });
}

}  // namespace fraiseql
