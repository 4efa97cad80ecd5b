#include "runtime/io/pg/lease.hpp"

#include "runtime/io/pg/guard.hpp"
#include "runtime/io/pg/session.hpp"

#include <pqxx/pqxx>

namespace fraiseql {

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
      auto e =
          tx.exec_params("SELECT epoch FROM observer_leases WHERE listener_id = $1", listener_id_);
      if (e.empty() || e[0][0].as<int64_t>() != *epoch_) return status::lost;
      return status::held;
    });
  } catch (const pg_unavailable&) {
    lock_held_ = false;
    return status::unknown;
  }
}

}  // namespace fraiseql
