#pragma once

// Change-log retention in PostgreSQL: the checkpoints that bound it, batched
// deletes of rows every reader is done with, and the figures behind the
// metrics. One connection, used from the pruner's own thread. Throws
// pg_unavailable when the server cannot be reached.

#include "runtime/core/retention.hpp"
#include "runtime/io/pg/session.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fraiseql {

struct change_log_figures {
  /// The planner's estimate (pg_class.reltuples; -1 before the first ANALYZE).
  int64_t rows_estimate = -1;
  /// Table, indexes and TOAST.
  int64_t bytes = 0;
  /// Age of the first row in read order; nullopt when the log is empty.
  std::optional<double> oldest_age_seconds;
};

struct prune_batch_result {
  /// Rows looked at (the head of the log below the cutoff, in read order).
  uint64_t examined = 0;
  uint64_t deleted = 0;
  /// False when another node's pruner held the lock: nothing was done.
  bool locked = true;
};

class change_log_retention {
 public:
  explicit change_log_retention(std::string dsn);

  /// Every checkpoint of this database (listeners, and later bridges).
  std::vector<checkpoint_bound> checkpoints();
  /// Deletes, among the first `batch` rows (read order) before the cutoff,
  /// those older than `keep`, in one short transaction. Serialized across
  /// nodes by a transaction-level advisory lock.
  prune_batch_result prune(const retention_cutoff& cutoff, std::chrono::seconds keep,
                           uint32_t batch);
  change_log_figures figures();
  /// When the checkpoint of `listener_id` was last saved (seconds ago).
  std::optional<double> checkpoint_age_seconds(const std::string& listener_id);

 private:
  template <class F>
  auto run(F&& f);
  pg_session session_;
};

}  // namespace fraiseql
