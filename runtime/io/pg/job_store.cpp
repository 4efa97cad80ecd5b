#include "runtime/io/pg/job_store.hpp"

#include "messages/job.hpp"
#include "runtime/io/pg/guard.hpp"

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <algorithm>

namespace fraiseql {

// --- job_store ------------------------------------------------------------------

namespace {

// One JSON document carries a whole batch of rows (one parameter, any size).
constexpr const char* enqueue_sql =
    "INSERT INTO observer_jobs (listener_id, idempotency_key, event_id, observer_name,"
    " action_index, action_type, event, max_attempts)"
    " SELECT $1, x.k, x.i, x.o, x.a, x.t, x.e, x.m"
    " FROM jsonb_to_recordset($2::jsonb) AS x(k text, i uuid, o text, a int, t text, e jsonb, m "
    "int)"
    " ON CONFLICT (listener_id, idempotency_key) DO NOTHING";

constexpr const char* claim_sql =
    "UPDATE observer_jobs j SET locked_by = $2,"
    " locked_until = now() + $4::bigint * interval '1 millisecond',"
    " attempts = j.attempts + 1, first_attempt_at = coalesce(j.first_attempt_at, now()),"
    " updated_at = now()"
    " WHERE j.id IN (SELECT id FROM observer_jobs"
    "   WHERE listener_id = $1 AND run_at <= now()"
    "     AND (locked_until IS NULL OR locked_until < now())"
    "   ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)"
    " RETURNING j.id, j.idempotency_key, j.observer_name, j.action_index, j.action_type,"
    " j.attempts, j.max_attempts, j.event::text";

constexpr const char* dead_letter_sql =
    "WITH j AS (DELETE FROM observer_jobs WHERE id = $1 AND locked_by = $2 RETURNING *)"
    " INSERT INTO observer_dlq (event_id, event, observer_name, action_index, action_type,"
    " idempotency_key, last_error, attempts, first_attempt_at, last_attempt_at)"
    " SELECT event_id, event, observer_name, action_index, action_type, idempotency_key, $3,"
    " attempts, coalesce(first_attempt_at, now()), now() FROM j"
    " ON CONFLICT (idempotency_key) DO UPDATE SET last_error = EXCLUDED.last_error,"
    " attempts = observer_dlq.attempts + EXCLUDED.attempts,"
    " last_attempt_at = EXCLUDED.last_attempt_at, status = 'pending', updated_at = now()"
    " RETURNING id";

void append_rows(std::string& out, const std::vector<job_spec>& jobs, size_t from, size_t to) {
  namespace bj = boost::json;
  out += '[';
  for (size_t i = from; i < to; ++i) {
    const auto& j = jobs[i];
    if (i > from) out += ',';
    out += "{\"k\":";
    out += bj::serialize(bj::string_view(j.idempotency_key));
    out += ",\"i\":";
    out += bj::serialize(bj::string_view(j.ev->id));
    out += ",\"o\":";
    out += bj::serialize(bj::string_view(j.observer_name));
    out += ",\"a\":";
    out += std::to_string(j.action_index);
    out += ",\"t\":";
    out += bj::serialize(bj::string_view(j.action_type));
    out += ",\"m\":";
    out += std::to_string(j.max_attempts);
    // The envelope as the engine serialized it (PostgreSQL's exact numbers).
    out += ",\"e\":";
    out += j.ev->envelope_json;
    out += '}';
  }
  out += ']';
}

}  // namespace

job_store::job_store(std::string dsn, std::string listener_id)
    : listener_id_(std::move(listener_id)), session_(std::move(dsn)) {}
job_store::~job_store() = default;

void job_store::reset() {
  session_.reset();
}

pqxx::connection_base& job_store::relaxed(pqxx::connection_base& c) {
  // A reconnect gets a new backend pid; a reused pid would only cost speed.
  if (c.backendpid() != relaxed_backend_) {
    pqxx::nontransaction tx{c};
    tx.exec0("SET synchronous_commit = off");
    relaxed_backend_ = c.backendpid();
  }
  return c;
}

uint64_t job_store::enqueue(const std::vector<job_spec>& jobs, uint32_t rows_per_statement) {
  if (jobs.empty()) return 0;
  const size_t step = std::max<uint32_t>(1, rows_per_statement);
  return guarded(session_, [&](pqxx::connection_base& c) {
    pqxx::work tx{c};
    tx.exec0("SET LOCAL synchronous_commit = on");  // the event finishes on this commit
    uint64_t added = 0;
    std::string rows;
    for (size_t from = 0; from < jobs.size(); from += step) {
      rows.clear();
      append_rows(rows, jobs, from, std::min(jobs.size(), from + step));
      added += tx.exec_params(enqueue_sql, listener_id_, rows).affected_rows();
    }
    tx.commit();
    return added;
  });
}

std::vector<claimed_job> job_store::claim(const std::string& token, uint32_t n,
                                          std::chrono::milliseconds lease) {
  if (n == 0) return {};
  auto r = guarded(session_, [&](pqxx::connection_base& c) {
    pqxx::nontransaction tx{relaxed(c)};  // one statement: autocommits, no open transaction
    return tx.exec_params(claim_sql, listener_id_, token, static_cast<int64_t>(n),
                          static_cast<int64_t>(lease.count()));
  });
  std::vector<claimed_job> out;
  out.reserve(r.size());
  for (const auto& row : r) {
    claimed_job j;
    j.id = row[0].as<int64_t>();
    j.idempotency_key = row[1].c_str();
    j.observer_name = row[2].c_str();
    j.action_index = static_cast<uint32_t>(row[3].as<int>());
    j.action_type = row[4].c_str();
    j.attempts = static_cast<uint32_t>(row[5].as<int>());
    j.max_attempts = static_cast<uint32_t>(row[6].as<int>());
    j.event_json = row[7].c_str();
    out.push_back(std::move(j));
  }
  std::sort(out.begin(), out.end(),
            [](const claimed_job& a, const claimed_job& b) { return a.id < b.id; });
  return out;
}

bool job_store::complete(int64_t id, const std::string& token) {
  return guarded(session_, [&](pqxx::connection_base& c) {
    pqxx::nontransaction tx{relaxed(c)};
    auto r =
        tx.exec_params("DELETE FROM observer_jobs WHERE id = $1 AND locked_by = $2", id, token);
    return r.affected_rows() == 1;
  });
}

std::vector<int64_t> job_store::complete(const std::vector<int64_t>& ids,
                                         const std::string& token) {
  if (ids.empty()) return {};
  std::string arr = "{";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) arr += ',';
    arr += std::to_string(ids[i]);
  }
  arr += '}';
  auto r = guarded(session_, [&](pqxx::connection_base& c) {
    pqxx::nontransaction tx{relaxed(c)};
    return tx.exec_params(
        "DELETE FROM observer_jobs WHERE id = ANY($1::bigint[]) AND locked_by = $2 RETURNING id",
        arr, token);
  });
  std::vector<int64_t> held;
  held.reserve(r.size());
  for (const auto& row : r) held.push_back(row[0].as<int64_t>());
  return held;
}

bool job_store::retry_later(int64_t id, const std::string& token, const std::string& error,
                            std::chrono::milliseconds delay) {
  return guarded(session_, [&](pqxx::connection_base& c) {
    pqxx::nontransaction tx{relaxed(c)};
    auto r = tx.exec_params(
        "UPDATE observer_jobs SET locked_by = NULL, locked_until = NULL, last_error = $3,"
        " run_at = now() + $4::bigint * interval '1 millisecond', updated_at = now()"
        " WHERE id = $1 AND locked_by = $2",
        id, token, error, static_cast<int64_t>(delay.count()));
    return r.affected_rows() == 1;
  });
}

std::optional<int64_t> job_store::dead_letter(int64_t id, const std::string& token,
                                              const std::string& error) {
  return guarded(session_, [&](pqxx::connection_base& c) -> std::optional<int64_t> {
    // One statement: the DELETE and the INSERT commit together, durably.
    pqxx::work tx{c};
    tx.exec0("SET LOCAL synchronous_commit = on");
    auto r = tx.exec_params(dead_letter_sql, id, token, error);
    tx.commit();
    if (r.empty()) return std::nullopt;
    return r[0][0].as<int64_t>();
  });
}

uint64_t job_store::renew(const std::string& token, std::chrono::milliseconds lease) {
  return guarded(session_, [&](pqxx::connection_base& c) {
    pqxx::nontransaction tx{relaxed(c)};
    return static_cast<uint64_t>(tx.exec_params("UPDATE observer_jobs SET locked_until = now() + "
                                                "$2::bigint * interval '1 millisecond'"
                                                " WHERE locked_by = $1",
                                                token, static_cast<int64_t>(lease.count()))
                                     .affected_rows());
  });
}

uint64_t job_store::release(const std::string& token) {
  return guarded(session_, [&](pqxx::connection_base& c) {
    pqxx::nontransaction tx{relaxed(c)};
    return static_cast<uint64_t>(
        tx.exec_params("UPDATE observer_jobs SET locked_by = NULL, locked_until = NULL,"
                       " attempts = greatest(attempts - 1, 0), updated_at = now()"
                       " WHERE locked_by = $1",
                       token)
            .affected_rows());
  });
}

uint64_t job_store::depth() {
  return guarded(session_, [&](pqxx::connection_base& c) {
    pqxx::nontransaction tx{c};
    auto r =
        tx.exec_params("SELECT count(*) FROM observer_jobs WHERE listener_id = $1", listener_id_);
    return r[0][0].as<uint64_t>();
  });
}

}  // namespace fraiseql
