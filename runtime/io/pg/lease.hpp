#pragma once

// Leadership of one listener id (sql/0002_leases.sql, sql/0006_lease_deadline.sql).

#include "runtime/core/lease_clock.hpp"
#include "runtime/io/pg/session.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace fraiseql {

/// Leadership of one listener id: a row of observer_leases with an epoch
/// (bumped at each takeover, fencing every checkpoint write of a former
/// leader) and an expiry the leader renews, plus the listener's session
/// advisory lock on a dedicated connection when the leader can get it.
///
/// A standby takes over when the leader's lease expired (the leader froze, or
/// lost its way to the database), or at once when it gets the advisory lock
/// while the row says the leader holds it (the leader's session ended: a
/// crash, a kill). Both are one conditional statement, so two standbys never
/// both win. Times in the row are PostgreSQL's; the local deadline
/// (lease_clock) is this process's view of how long it may still lead.
class leader_lease {
 public:
  /// `ttl`: how long a renewal keeps the lease ([failover] failover_threshold_ms).
  leader_lease(std::string dsn, std::string listener_id, std::string holder,
               std::chrono::milliseconds ttl);
  ~leader_lease();
  /// Tries once; on success bumps and returns the new epoch. nullopt: another
  /// node leads. Throws pg_unavailable.
  std::optional<int64_t> try_acquire();
  enum class status { held, lost, unknown };
  /// Renews the lease: `held` (and the local deadline moves on), `lost`
  /// (another node took over: stop at once), `unknown` (the database cannot be
  /// reached: keep going only while deadline() has not passed).
  status renew();
  /// Graceful stop: the lease expires now, so a standby takes over at its
  /// next attempt. Best effort (a failure leaves it to expire).
  void release();
  std::optional<int64_t> epoch() const { return epoch_; }
  /// This node's deadline, shared with the actors that must stop with it.
  std::shared_ptr<const lease_clock> deadline() const { return clock_; }
  std::chrono::milliseconds ttl() const { return ttl_; }

 private:
  bool try_lock(pqxx::connection_base& c);

  std::string listener_id_;
  std::string holder_;
  std::chrono::milliseconds ttl_;
  std::optional<int64_t> epoch_;
  bool lock_held_ = false;  // the current connection holds the advisory lock
  std::shared_ptr<lease_clock> clock_ = std::make_shared<lease_clock>();
  pg_session session_;
};

}  // namespace fraiseql
