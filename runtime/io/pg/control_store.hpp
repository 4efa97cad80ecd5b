#pragma once

// The control plane's queries: DLQ administration, checkpoint and lease
// inspection, change-log lookups for `debug-event`. One connection, used from
// the control actor's own thread (a detached actor). PostgreSQL builds the JSON
// answers (json_agg), so rows go to observerctl without a hand-written mapping.
// Throws pg_unavailable when the server cannot be reached and
// std::runtime_error for other failures (message from PostgreSQL).

#include "messages/event.hpp"
#include "runtime/io/pg/session.hpp"

#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <vector>

namespace fraiseql {

struct dlq_row {
  int64_t id = 0;
  std::string event_json;
  std::string observer_name;
  uint32_t action_index = 0;
  std::string status;
};

struct dlq_filter {
  uint32_t limit = 50;
  uint32_t offset = 0;
  std::optional<std::string> observer;
  /// Created after this timestamp (any format PostgreSQL's timestamptz takes).
  std::optional<std::string> after;
  /// pending | retrying | resolved | removed | all
  std::string status = "pending";
};

class control_store {
 public:
  explicit control_store(std::string dsn);

  boost::json::value dlq_list(const dlq_filter& f);
  /// The row with its stored envelope; nullopt when no such id.
  std::optional<boost::json::value> dlq_show(int64_t id);
  boost::json::value dlq_stats(bool by_observer, bool by_error);
  /// Claims a pending row for a redrive (status -> retrying). nullopt when the
  /// row does not exist; the row with its current status when it is not pending.
  std::optional<dlq_row> dlq_claim(int64_t id, bool& claimed);
  /// Ids of pending rows, optionally of one observer, oldest first.
  std::vector<int64_t> dlq_pending_ids(const std::optional<std::string>& observer);
  /// A redrive delivered: status resolved.
  void dlq_resolved(int64_t id, uint32_t attempts);
  /// A redrive failed again: back to pending with the new error and attempts.
  void dlq_failed_again(int64_t id, uint32_t attempts, const std::string& error);
  /// Soft delete (status removed). False when no such row.
  bool dlq_remove(int64_t id);
  /// Rows of one event (all statuses).
  boost::json::value dlq_for_event(const std::string& event_id);
  /// Pending rows (the DLQ size).
  int64_t dlq_pending_count();

  /// {"txid","pk","events_total","age_seconds"} or null when never saved.
  boost::json::value checkpoint(const std::string& listener_id);
  /// {"holder","epoch","acquired_at"} or null.
  boost::json::value lease(const std::string& listener_id);
  /// The change-log row with this uuid as an event; nullopt when absent.
  event_ptr change_log_event(const std::string& event_id);

 private:
  template <class F>
  auto run(F&& f) -> decltype(f(std::declval<pqxx::connection_base&>()));
  pg_session session_;
};

}  // namespace fraiseql
