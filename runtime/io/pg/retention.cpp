#include "runtime/io/pg/retention.hpp"

#include "runtime/io/pg/guard.hpp"

#include <pqxx/pqxx>

namespace fraiseql {

namespace {
/// "{a,b,c}": a PostgreSQL array literal of numbers.
template <class F>
std::string array_text(const std::vector<pending_txid>& v, F f) {
  std::string out = "{";
  for (const auto& x : v) out += (out.size() > 1 ? "," : "") + f(x);
  return out + "}";
}

/// One key for every pruner of a database (any node, any listener id).
constexpr int64_t prune_lock_key = 0x6672707275;  // "frpru"
}  // namespace

change_log_retention::change_log_retention(std::string dsn) : session_(std::move(dsn)) {}

template <class F>
auto change_log_retention::run(F&& f) {
  return guarded(session_, std::forward<F>(f));
}

std::vector<checkpoint_bound> change_log_retention::checkpoints() {
  return run([](pqxx::connection_base& c) {
    pqxx::read_transaction tx{c};
    std::vector<checkpoint_bound> out;
    for (const auto& row : tx.exec(
             "SELECT listener_id, txid::text, event_id, pending_txids FROM observer_checkpoints"))
      out.push_back(checkpoint_bound{row[0].c_str(), row[1].as<uint64_t>(), row[2].as<int64_t>(),
                                     row[3].c_str()});
    return out;
  });
}

prune_batch_result change_log_retention::prune(const retention_cutoff& cutoff,
                                               std::chrono::seconds keep, uint32_t batch) {
  return run([&](pqxx::connection_base& c) {
    pqxx::work tx{c};
    prune_batch_result out;
    if (!tx.exec_params1("SELECT pg_try_advisory_xact_lock($1)", prune_lock_key)[0].as<bool>()) {
      out.locked = false;
      return out;
    }
    // The head of the log below the cutoff, in read order (the fence index),
    // of which the rows past the retention period go. Rows come roughly in
    // time order, so a young row in the head means the prunable part ends here.
    auto r = tx.exec_params1(
        "WITH head AS ("
        "  SELECT ctid, created_at FROM core.tb_entity_change_log"
        "  WHERE (txid, pk_entity_change_log) < ($1::text::xid8, $4::bigint)"
        // Of a transaction some checkpoint has pending, only what it has read.
        "  AND NOT EXISTS (SELECT 1 FROM unnest($5::text::xid8[], $6::text::bigint[]) p(t, k)"
        "   WHERE p.t = txid AND pk_entity_change_log > p.k)"
        "  ORDER BY txid, pk_entity_change_log LIMIT $3),"
        " victims AS (SELECT ctid FROM head WHERE created_at < clock_timestamp() - "
        "  make_interval(secs => $2)),"
        " gone AS (DELETE FROM core.tb_entity_change_log c USING victims v"
        "  WHERE c.ctid = v.ctid RETURNING 1)"
        " SELECT (SELECT count(*) FROM head), (SELECT count(*) FROM gone)",
        std::to_string(cutoff.txid), static_cast<double>(keep.count()), batch, cutoff.pk,
        array_text(cutoff.pending, [](const pending_txid& p) { return std::to_string(p.txid); }),
        array_text(cutoff.pending, [](const pending_txid& p) { return std::to_string(p.pk); }));
    out.examined = r[0].as<uint64_t>();
    out.deleted = r[1].as<uint64_t>();
    tx.commit();
    return out;
  });
}

change_log_figures change_log_retention::figures() {
  return run([](pqxx::connection_base& c) {
    pqxx::read_transaction tx{c};
    change_log_figures f;
    auto r = tx.exec1(
        "SELECT c.reltuples::bigint, pg_total_relation_size(c.oid),"
        " (SELECT extract(epoch FROM clock_timestamp() - created_at)::float8"
        "  FROM core.tb_entity_change_log ORDER BY txid, pk_entity_change_log LIMIT 1)"
        " FROM pg_class c WHERE c.oid = 'core.tb_entity_change_log'::regclass");
    f.rows_estimate = r[0].as<int64_t>();
    f.bytes = r[1].as<int64_t>();
    if (!r[2].is_null()) f.oldest_age_seconds = r[2].as<double>();
    return f;
  });
}

std::optional<double> change_log_retention::checkpoint_age_seconds(const std::string& listener_id) {
  return run([&](pqxx::connection_base& c) -> std::optional<double> {
    pqxx::read_transaction tx{c};
    auto r = tx.exec_params(
        "SELECT extract(epoch FROM (now() AT TIME ZONE 'UTC') - last_processed_at)::float8"
        " FROM observer_checkpoints WHERE listener_id = $1",
        listener_id);
    if (r.empty() || r[0][0].is_null()) return std::nullopt;
    return r[0][0].as<double>();
  });
}

}  // namespace fraiseql
