#pragma once

// The persistent job queue of asynchronous actions (sql/0003_jobs.sql): the
// PostgreSQL store and the pure rules around it. No CAF here; the actors
// job_writer (enqueue) and job_runner (claim, run, complete) wrap it.
//
// Every statement is its own short transaction. In particular a claim is an
// UPDATE that sets a lease (locked_by, locked_until) and commits at once: no
// transaction or row lock is held while an action runs: a transaction holding
// an xid would stay "running" in the listener's snapshots (and hold back
// vacuum) for the whole action.

#include "messages/event.hpp"
#include "messages/job.hpp"
#include "runtime/io/pg/session.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fraiseql {

/// A job claimed by a runner (its lease is held until `locked_until`).
struct claimed_job {
  int64_t id = 0;
  std::string idempotency_key;
  std::string observer_name;
  uint32_t action_index = 0;
  std::string action_type;
  /// Attempts started, this one included (counted by the claim).
  uint32_t attempts = 0;
  uint32_t max_attempts = 0;
  /// The stored event envelope (JSON text).
  std::string event_json;
};

/// observer_jobs of one listener id. One connection, used from one thread.
/// Throws pg_unavailable when the server cannot be reached, std::runtime_error
/// otherwise (see runtime/io/pg/).
///
/// Durability: enqueue() and dead_letter() wait for their WAL flush (the
/// first is what lets an event finish, the second is the last trace of a
/// failed job). The runner's bookkeeping (claim, complete, retry_later, renew,
/// release) commits without waiting for it (synchronous_commit = off for
/// those statements): a server crash can only undo such a write, which makes a
/// job run again (same idempotency key), never lose it. Waiting would cost a
/// disk flush per job.
class job_store {
 public:
  job_store(std::string dsn, std::string listener_id);
  ~job_store();
  job_store(const job_store&) = delete;
  job_store& operator=(const job_store&) = delete;

  /// Inserts the jobs in one transaction, `rows_per_statement` rows per INSERT;
  /// keys already queued are skipped (ON CONFLICT DO NOTHING). Durable when it
  /// returns. Returns the number of new rows.
  uint64_t enqueue(const std::vector<job_spec>& jobs, uint32_t rows_per_statement);

  /// Claims up to `n` due jobs (run_at <= now, lease free or expired) in one
  /// short UPDATE ... FOR UPDATE SKIP LOCKED: sets the lease to now + `lease`
  /// for `token` and counts an attempt. Oldest due first.
  std::vector<claimed_job> claim(const std::string& token, uint32_t n,
                                 std::chrono::milliseconds lease);

  /// Deletes a job that succeeded. False when `token` no longer holds it
  /// (the lease expired and another claim took it).
  bool complete(int64_t id, const std::string& token);

  /// complete() for many jobs in one statement. Returns the ids `token` still
  /// held (and that are now deleted).
  std::vector<int64_t> complete(const std::vector<int64_t>& ids, const std::string& token);

  /// Releases the lease and makes the job due again after `delay`.
  bool retry_later(int64_t id, const std::string& token, const std::string& error,
                   std::chrono::milliseconds delay);

  /// Writes the job's DLQ row (observer_dlq, upsert on the idempotency key, as
  /// the DLQ actor writes it) and deletes the job, in one transaction. Returns
  /// the DLQ row id, or nullopt when `token` no longer holds the job.
  std::optional<int64_t> dead_letter(int64_t id, const std::string& token,
                                     const std::string& error);

  /// Extends the lease of every job `token` holds. Returns how many.
  uint64_t renew(const std::string& token, std::chrono::milliseconds lease);

  /// Gives up every lease `token` holds (graceful stop): the jobs are due at
  /// once and the interrupted attempts do not count. Returns how many.
  uint64_t release(const std::string& token);

  /// Jobs queued for this listener id (running ones included).
  uint64_t depth();

  void reset();

 private:
  /// The connection, with synchronous_commit = off for this session (set once
  /// per connection; the durable writes switch it on per transaction).
  pqxx::connection_base& relaxed(pqxx::connection_base& c);

  std::string listener_id_;
  pg_session session_;
  int relaxed_backend_ = 0;  // backend pid of the connection already relaxed
};

}  // namespace fraiseql
