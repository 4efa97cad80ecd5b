#include "runtime/io/pg/dlq_store.hpp"

#include "runtime/core/checkpoint_sink.hpp"  // fenced_out
#include "runtime/io/pg/guard.hpp"

#include <pqxx/pqxx>

namespace fraiseql {

dlq_store::dlq_store(std::string dsn, std::optional<fence> f)
    : fence_(std::move(f)), session_(std::move(dsn)) {}
dlq_store::~dlq_store() = default;

void dlq_store::reset() {
  session_.reset();
}

int64_t dlq_store::insert(const dlq_entry& e) {
  return guarded(session_, [&](pqxx::connection_base& c) {
    // One statement in autocommit: a writer frozen between statements never
    // holds the lease row's lock (checkpoint_store.cpp says why).
    pqxx::nontransaction tx{c};
    auto r = tx.exec_params(
        "INSERT INTO observer_dlq (event_id, event, observer_name, action_index, action_type,"
        " idempotency_key, last_error, attempts, first_attempt_at, last_attempt_at)"
        " SELECT $1::uuid, $2::jsonb, $3, $4, $5, $6, $7, $8,"
        " to_timestamp($9::double precision / 1000), to_timestamp($10::double precision / 1000)"
        // The fence: the lease row is read FOR SHARE, as for checkpoint writes.
        " WHERE $11::varchar IS NULL OR EXISTS (SELECT 1 FROM observer_leases"
        "   WHERE listener_id = $11::varchar AND epoch = $12::bigint FOR SHARE)"
        " ON CONFLICT (idempotency_key) DO UPDATE SET last_error = EXCLUDED.last_error,"
        " attempts = observer_dlq.attempts + EXCLUDED.attempts,"
        " last_attempt_at = EXCLUDED.last_attempt_at, status = 'pending', updated_at = now()"
        " RETURNING id",
        e.ev->id, e.ev->envelope_json, e.observer_name, static_cast<int>(e.action_index),
        e.action_type, e.idempotency_key, e.last_error, static_cast<int>(e.attempts),
        e.first_attempt_ms, e.last_attempt_ms,
        fence_ ? std::optional<std::string>(fence_->listener_id) : std::nullopt,
        fence_ ? fence_->epoch : int64_t{0});
    if (r.empty())
      throw fenced_out("DLQ write refused: listener '" + fence_->listener_id +
                       "' is led by a newer lease epoch than " + std::to_string(fence_->epoch));
    return r[0][0].as<int64_t>();
  });
}

}  // namespace fraiseql
