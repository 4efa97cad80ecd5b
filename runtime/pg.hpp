#pragma once

// PostgreSQL adapters used by the actors: the change-log reader, the checkpoint
// store and the DLQ store. Each owns one connection and is used from a single
// thread (a detached actor). All SQL is parameterized. Every call throws
// pg_unavailable when the server cannot be reached (the caller backs off and
// retries) and std::runtime_error for other failures.

#include "messages/event.hpp"

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace pqxx {
class connection_base;
}

namespace fraiseql {

/// The server is down or the connection broke; retrying later may succeed.
struct pg_unavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Converts a postgresql:// URL or a libpq keyword string into what libpq takes
/// (libpq accepts both; this only validates it is non-empty).
std::string normalize_dsn(const std::string& dsn);

/// A lazily (re)connected connection.
class pg_session {
public:
  explicit pg_session(std::string dsn);
  ~pg_session();
  pg_session(const pg_session&) = delete;
  pg_session& operator=(const pg_session&) = delete;

  /// Connects if needed; throws pg_unavailable.
  pqxx::connection_base& get();
  /// Drops the connection (after an error), the next get() reconnects.
  void reset();
  bool connected() const;

private:
  std::string dsn_;
  std::unique_ptr<pqxx::connection_base> conn_;
};

/// Reads change-log rows behind the visibility fence and turns them into events.
class change_log_reader {
public:
  explicit change_log_reader(std::string dsn);
  ~change_log_reader();

  /// Reads up to `limit` committed events not yet read by `cursor` (rows of
  /// transactions it remembers as running first, then rows after its position)
  /// and advances it (runtime/cursor.hpp); assigns sequence numbers starting at
  /// `next_seq` (advanced past the last one). Each event carries the cursor
  /// valid once it and every earlier event are finished.
  std::vector<event_ptr> read(read_cursor& cursor, uint32_t limit, uint64_t& next_seq);

  /// Takes the wake-up mark (sql/0005_wakeup_lock.sql): from now on writers
  /// NOTIFY. False when a capture transaction is running (it holds the mark
  /// shared and will not notify: keep polling). True also when another
  /// listener on this database holds the mark (writers notify already).
  bool try_sleep();
  /// Releases the mark: writers stop notifying.
  void wake();

  /// Waits up to `timeout` for a wake-up NOTIFY. True when one arrived.
  bool wait(std::chrono::milliseconds timeout);

  void reset();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Builds an event (envelope included) from change-log columns. Pure; exposed
/// for tests. `object_data_before` may be empty (no pre-image).
event_ptr make_event(uint64_t seq, position pos, std::string id, std::string event_type,
                     std::string entity_type, std::string entity_id,
                     const std::string& object_data, const std::string& object_data_before,
                     std::string timestamp, std::optional<std::string> tenant_id,
                     std::optional<std::string> user_id, std::optional<std::string> trace_id,
                     std::shared_ptr<const read_cursor> cursor = nullptr);

struct checkpoint_record {
  position pos;
  uint64_t events_total = 0;
  /// Transactions running at the last read, with what was read of them.
  std::vector<pending_txid> pending;
  read_cursor cursor() const { return read_cursor{pos, pending}; }
};

/// Where the checkpointer saves. Implementations throw on failure (the
/// checkpointer keeps the record dirty and retries).
class checkpoint_sink {
public:
  virtual ~checkpoint_sink() = default;
  virtual void save(const checkpoint_record& rec) = 0;
};

/// A checkpoint write was refused because another node took over this
/// listener id (its lease epoch is newer): this node must stop at once.
struct fenced_out : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// observer_checkpoints for one listener id. With an epoch set, every save is
/// conditional on that epoch still being current in observer_leases.
class checkpoint_store final : public checkpoint_sink {
public:
  checkpoint_store(std::string dsn, std::string listener_id);
  ~checkpoint_store() override;
  std::optional<checkpoint_record> load();
  /// Throws fenced_out when the epoch is no longer current.
  void save(const checkpoint_record& rec) override;
  void set_epoch(int64_t epoch) { epoch_ = epoch; }
  void reset();

private:
  std::string listener_id_;
  std::optional<int64_t> epoch_;
  pg_session session_;
};

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

/// observer_dlq writer.
class dlq_store {
public:
  explicit dlq_store(std::string dsn);
  ~dlq_store();
  /// Inserts (or, for a redelivered failure, updates) the row of this
  /// idempotency key. Durable when it returns. Returns the row id.
  int64_t insert(const dlq_entry& e);
  void reset();

private:
  pg_session session_;
};

}  // namespace fraiseql
