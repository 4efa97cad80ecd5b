#pragma once

// Change-log retention: which rows every reader is done with. Pure; the SQL
// lives in runtime/io/pg/retention.cpp, the schedule in actors/history/pruner.
//
// A checkpoint (txid hi, pk hpk, pending transactions) has read a row (t, pk)
// iff (t, pk) <= (hi, hpk) and t is not pending, or t is pending and pk <=
// its pending pk (runtime/core/cursor.hpp), and (the checkpoint only covers
// finished events) handled it. So a row is done for every reader iff it comes
// before the lowest (hi, hpk + 1) of all checkpoints, and for each pending
// transaction of any checkpoint, its pk is at most that checkpoint's pending
// pk. The pending lists stay in the rule rather than lowering the bound:
// txids are cluster-wide, and a long transaction in another database (which
// writes nothing here) must not hold this database's retention back.

#include "messages/event.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fraiseql {

struct checkpoint_bound {
  std::string listener_id;
  uint64_t txid = 0;
  int64_t pk = 0;
  /// As stored: "txid:pk,txid:pk" (runtime/core/cursor.hpp).
  std::string pending_txids;
};

struct retention_cutoff {
  /// Only rows before (txid, pk) in (txid, pk) order may go...
  uint64_t txid = 0;
  int64_t pk = 0;
  /// ...and of these transactions only rows up to pk (the lowest pending pk
  /// any checkpoint holds for it; 0: none).
  std::vector<pending_txid> pending;
  /// The checkpoint that sets the bound (the one holding retention back).
  std::string held_by;
  /// Whether the rule lets row (txid, pk) go.
  bool allows(uint64_t txid, int64_t pk) const;
};

/// nullopt when there is no checkpoint (nothing may go: a reader may start
/// from the beginning). Throws std::invalid_argument naming a checkpoint whose
/// pending list cannot be read.
std::optional<retention_cutoff> change_log_cutoff(const std::vector<checkpoint_bound>& rows);

}  // namespace fraiseql
