#pragma once

// Leadership of one listener id (sql/0002_leases.sql).

#include "runtime/io/pg/session.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace fraiseql {

/// Leadership of one listener id: a session advisory lock held on a dedicated
/// connection, plus an epoch bumped at each takeover (see sql/0002_leases.sql).
class leader_lease {
 public:
  leader_lease(std::string dsn, std::string listener_id, std::string holder);
  ~leader_lease();
  /// Tries once; on success bumps and returns the new epoch. nullopt: another
  /// node leads. Throws pg_unavailable.
  std::optional<int64_t> try_acquire();
  enum class status { held, lost, unknown };
  /// Still leading? When the lock's connection ended (server restart, network)
  /// the lease is re-taken if nobody else took it meanwhile (same epoch):
  /// `held`. Another node has it or took it since: `lost`. The server cannot be
  /// reached: `unknown` (checkpoint writes fail too; ask again later).
  status check();
  std::optional<int64_t> epoch() const { return epoch_; }

 private:
  std::string listener_id_;
  std::string holder_;
  std::optional<int64_t> epoch_;
  bool lock_held_ = false;  // the current connection holds the advisory lock
  pg_session session_;
};

}  // namespace fraiseql
