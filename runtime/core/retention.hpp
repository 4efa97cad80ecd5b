#pragma once

// Change-log retention: which rows every reader is done with. Pure; the SQL
// lives in runtime/io/pg/retention.cpp, the schedule in actors/history/pruner.
//
// A checkpoint (txid hi, pk hpk, pending transactions) has read a row (t, pk)
// iff (t, pk) <= (hi, hpk) and t is not pending, or t is pending and pk <=
// its pending pk (runtime/core/cursor.hpp). Every transaction below hi that
// was still running when the position passed it is in the pending list, so
// every row before (hi, hpk + 1) in (txid, pk) order whose txid is below the
// smallest pending txid has been read, and (the checkpoint only covers
// finished events) handled. The cutoff is the minimum of that bound over every
// checkpoint of the database: rows before it may go, whoever they were for.

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
  /// Rows before (txid, pk) in (txid, pk) order are read by every checkpoint.
  uint64_t txid = 0;
  int64_t pk = 0;
  /// The checkpoint that sets it (the one holding retention back).
  std::string held_by;
};

/// nullopt when there is no checkpoint (nothing may go: a reader may start
/// from the beginning). Throws std::invalid_argument naming a checkpoint whose
/// pending list cannot be read.
std::optional<retention_cutoff> change_log_cutoff(const std::vector<checkpoint_bound>& rows);

}  // namespace fraiseql
