#pragma once

// The audit trail in PostgreSQL (sql/0008_audit.sql): batched writes of event
// and attempt records, day partitions created ahead, retention by dropping
// whole expired partitions, and search. One connection, used from one thread
// (the audit actor's, or the control actor's for search). Throws
// pg_unavailable when the server cannot be reached and std::runtime_error for
// other failures.

#include "runtime/core/audit.hpp"
#include "runtime/io/pg/session.hpp"

#include <boost/json/value.hpp>

#include <string>
#include <vector>

namespace fraiseql {

struct audit_search_sql;

struct audit_retention_day {
  std::string day;  // YYYY-MM-DD
  bool dropped = false;
  int64_t unfinished = 0;
};

class audit_store {
 public:
  audit_store(std::string dsn, std::string listener_id);

  /// Writes the batch in one transaction (one multi-row INSERT per table;
  /// an event already recorded is skipped). A day without partitions gets
  /// them first.
  void write(const audit_queue::batch& b);
  /// Creates the partitions of the days from `from_days` to `to_days`
  /// relative to today (UTC); returns how many were created.
  int ensure_partitions(int from_days, int to_days);
  /// Drops the expired day partitions without unfinished events.
  std::vector<audit_retention_day> drop_expired(uint32_t keep_days);
  /// Runs a compiled search (runtime/core/audit_query.hpp); a JSON array of hits.
  boost::json::value search(const audit_search_sql& q);

 private:
  template <class F>
  auto run(F&& f);
  void insert(const audit_queue::batch& b);
  pg_session session_;
  std::string listener_id_;
};

/// The JSON array of event records the INSERT reads (envelopes embedded as
/// they are). Exposed for tests.
std::string audit_events_json(const std::vector<audit_event_record>& events);
std::string audit_attempts_json(const std::vector<audit_attempt_record>& attempts);

}  // namespace fraiseql
