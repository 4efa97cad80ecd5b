#include "runtime/io/pg/lease.hpp"

#include "runtime/io/pg/guard.hpp"
#include "runtime/io/pg/session.hpp"

#include <pqxx/pqxx>

namespace fraiseql {

namespace {

// The listener's advisory lock: held by a leader's lease connection whenever
// it can get it; PostgreSQL frees it when that session ends.
constexpr const char* lock_sql =
    "SELECT pg_try_advisory_lock(hashtext('fraiseql_observer'), hashtext($1))";
constexpr const char* unlock_sql =
    "SELECT pg_advisory_unlock(hashtext('fraiseql_observer'), hashtext($1))";

// Takes the lease if nobody holds it, or if its holder is gone: the lease
// expired, or ($4) we hold the advisory lock while the row says the leader
// held it, so the leader's session ended. The row lock of ON CONFLICT
// serializes concurrent standbys; the loser sees the winner's expiry.
constexpr const char* acquire_sql =
    "INSERT INTO observer_leases AS l (listener_id, epoch, holder, acquired_at, expires_at,"
    " lock_held) VALUES ($1, 1, $2, now(), now() + $3::bigint * interval '1 millisecond', $4)"
    " ON CONFLICT (listener_id) DO UPDATE SET epoch = l.epoch + 1, holder = EXCLUDED.holder,"
    " acquired_at = now(), expires_at = EXCLUDED.expires_at, lock_held = EXCLUDED.lock_held"
    " WHERE l.expires_at < now() OR ($4 AND l.lock_held)"
    " RETURNING epoch";

constexpr const char* renew_sql =
    "UPDATE observer_leases SET expires_at = now() + $3::bigint * interval '1 millisecond',"
    " lock_held = $4 WHERE listener_id = $1 AND epoch = $2 RETURNING epoch";

constexpr const char* release_sql =
    "UPDATE observer_leases SET expires_at = now(), lock_held = false"
    " WHERE listener_id = $1 AND epoch = $2";

}  // namespace

leader_lease::leader_lease(std::string dsn, std::string listener_id, std::string holder,
                           std::chrono::milliseconds ttl)
    : listener_id_(std::move(listener_id)),
      holder_(std::move(holder)),
      ttl_(ttl),
      session_(std::move(dsn)) {}
leader_lease::~leader_lease() = default;

bool leader_lease::try_lock(pqxx::connection_base& c) {
  if (session_.connected() && lock_held_) return true;
  pqxx::nontransaction tx{c};
  lock_held_ = tx.exec_params(lock_sql, listener_id_)[0][0].as<bool>();
  return lock_held_;
}

std::optional<int64_t> leader_lease::try_acquire() {
  return guarded(session_, [&](pqxx::connection_base& c) -> std::optional<int64_t> {
    const auto sent = lease_clock::clock::now();
    const bool locked = try_lock(c);
    pqxx::nontransaction tx{c};
    auto r = tx.exec_params(acquire_sql, listener_id_, holder_, static_cast<int64_t>(ttl_.count()),
                            locked);
    if (r.empty()) {
      // Somebody leads: do not keep the lock a leader of an expired-but-alive
      // session may want back (it only tells that its session ended).
      if (locked) tx.exec_params(unlock_sql, listener_id_);
      lock_held_ = false;
      return std::nullopt;
    }
    epoch_ = r[0][0].as<int64_t>();
    clock_->renewed(sent, ttl_);
    return epoch_;
  });
}

leader_lease::status leader_lease::renew() {
  if (!epoch_) return status::lost;
  try {
    return guarded(session_, [&](pqxx::connection_base& c) {
      const auto sent = lease_clock::clock::now();
      // A new connection lost the old one's lock: take it again when free
      // (the lock only speeds up a takeover after this session ends).
      const bool locked = try_lock(c);
      pqxx::nontransaction tx{c};
      auto r = tx.exec_params(renew_sql, listener_id_, *epoch_, static_cast<int64_t>(ttl_.count()),
                              locked);
      if (r.empty()) {
        clock_->revoke();
        return status::lost;
      }
      clock_->renewed(sent, ttl_);
      return status::held;
    });
  } catch (const pg_unavailable&) {
    lock_held_ = false;
    return status::unknown;
  }
}

void leader_lease::release() {
  if (!epoch_) return;
  clock_->revoke();
  try {
    guarded(session_, [&](pqxx::connection_base& c) {
      pqxx::nontransaction tx{c};
      tx.exec_params(release_sql, listener_id_, *epoch_);
      if (lock_held_) tx.exec_params(unlock_sql, listener_id_);
      lock_held_ = false;
      return 0;
    });
  } catch (const std::exception&) {
    // It expires on its own.
  }
}

}  // namespace fraiseql
