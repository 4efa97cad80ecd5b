#include "runtime/io/pg/checkpoint_store.hpp"

#include "messages/checkpoint.hpp"
#include "runtime/core/checkpoint_sink.hpp"
#include "runtime/core/cursor.hpp"
#include "runtime/io/pg/guard.hpp"

#include <boost/json.hpp>
#include <pqxx/pqxx>

namespace fraiseql {

namespace {

uint64_t parse_u64(const char* s) {
  return std::stoull(s);
}

}  // namespace

checkpoint_store::checkpoint_store(std::string dsn, std::string listener_id,
                                   std::string transport_name)
    : listener_id_(std::move(listener_id)),
      transport_name_(std::move(transport_name)),
      session_(std::move(dsn)) {}
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
      throw std::runtime_error("observer_checkpoints row of listener '" + listener_id_ +
                               "' is corrupt: " + e.what());
    }
    return rec;
  });
}

void checkpoint_store::save(const checkpoint_record& rec) {
  bool written = guarded(session_, [&](pqxx::connection_base& c) {
    // One statement in autocommit, never an open transaction across a round
    // trip: a leader frozen (or cut off) between statements must not hold the
    // lease row's lock, or a standby's takeover would wait for its session
    // to die (TCP keepalive: hours).
    pqxx::nontransaction tx{c};
    // No WAL flush wait: a checkpoint lost in a server crash only moves the
    // restart position back (those events are redelivered, dedup and the
    // idempotency keys absorb them); writers do not share their fsyncs with us.
    tx.exec0("SET synchronous_commit = off");
    // The lease row is read FOR SHARE: a takeover (which updates it) waits for
    // this statement to commit, then every later write of ours is refused.
    auto r = tx.exec_params(
        "INSERT INTO observer_checkpoints (listener_id, event_id, txid, events_total,"
        " last_processed_at, pending_txids, transport_name)"
        " SELECT $1::varchar, $2::bigint, $3::text::xid8, $4::bigint, now() AT TIME ZONE 'UTC',"
        " $6::text, $7::text"
        " WHERE $5::bigint IS NULL OR EXISTS (SELECT 1 FROM observer_leases"
        "   WHERE listener_id = $1::varchar AND epoch = $5::bigint FOR SHARE)"
        " ON CONFLICT (listener_id) DO UPDATE SET event_id = EXCLUDED.event_id,"
        " txid = EXCLUDED.txid, events_total = EXCLUDED.events_total,"
        " last_processed_at = EXCLUDED.last_processed_at, pending_txids = EXCLUDED.pending_txids,"
        " transport_name = EXCLUDED.transport_name,"
        // The spec's health check orders checkpoints by created_at and expects
        // it to move while events flow: it is the time of the latest save.
        " created_at = DEFAULT",
        listener_id_, rec.pos.pk, std::to_string(rec.pos.txid),
        static_cast<int64_t>(rec.events_total), epoch_, pending_text(rec.pending), transport_name_);
    return r.affected_rows() > 0;
  });
  if (!written)
    throw fenced_out("checkpoint for listener '" + listener_id_ + "' refused: epoch " +
                     std::to_string(epoch_.value_or(0)) +
                     " is no longer current (another node took over)");
}

}  // namespace fraiseql
