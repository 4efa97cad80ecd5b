#pragma once

// Replay and backfill in PostgreSQL (sql/0009_replay_backfill.sql,
// docs/history.md): the control plane validates and records requests
// (observer_replays, observer_backfills); the leader's history writer carries
// them out chunk by chunk, each chunk one transaction that writes its
// change-log rows and its progress together. One connection per instance,
// used from one thread. Throws pg_unavailable when the server cannot be
// reached, history_error for a request that cannot be carried out as given,
// std::runtime_error otherwise.

#include "messages/event.hpp"
#include "runtime/core/replay.hpp"
#include "runtime/io/pg/session.hpp"

#include <boost/json/value.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace fraiseql {

/// A request that cannot be carried out as given; `usage`: the arguments are
/// wrong (observerctl exits 2), else the data does not allow it (exit 1).
struct history_error : std::runtime_error {
  history_error(const std::string& what, bool usage_problem)
      : std::runtime_error(what), usage(usage_problem) {}
  bool usage;
};

struct replay_request {
  std::string listener_id;
  std::optional<replay_bound> from;
  std::optional<replay_bound> to;
  /// Empty: every observer.
  std::string observer;
  /// Replay even when the same request was made before.
  bool again = false;
};

/// A replay request resolved against the change log: bounds as positions or
/// times, the cap (last row at request time), what the range holds.
struct replay_plan {
  replay_request req;
  std::optional<std::string> from_time, to_time;  // normalized timestamptz text
  std::optional<position> from_pos, to_pos;
  position cap;
  int64_t events = 0;
  /// {"id", "timestamp", "txid", "pk"} of the first and last event in range.
  boost::json::value first, last;
  /// The key under which a repeated request finds the first one.
  std::string request_key;
};

/// What one chunk did.
struct chunk_result {
  /// False: the request is not running or another node holds its row.
  bool ran = false;
  uint64_t rows = 0;
  /// The request is complete (this chunk found nothing left).
  bool done = false;
  /// Backfill: the chunk was rolled back to keep per-entity order (a
  /// concurrent writer of one of its rows); it is written again later.
  bool conflict = false;
};

class history_store {
 public:
  explicit history_store(std::string dsn);

  // --- control plane ---

  /// Resolves and checks a replay request (unknown event, pruned range,
  /// --from after --to, nothing in range: history_error).
  replay_plan plan_replay(const replay_request& r);
  /// The events of a plan in change-log order, `chunk` at a time (dry run).
  void scan_replay(const replay_plan& p, uint32_t chunk,
                   const std::function<void(const std::vector<event_ptr>&)>& f);
  /// Records the replay (the node leading the listener id carries it out).
  /// `created` false: the same request was made before; that row is returned.
  boost::json::value create_replay(const replay_plan& p, bool& created);
  /// Replays of a listener id, newest first.
  boost::json::value replays(const std::string& listener_id, uint32_t limit);

  /// Checks and records a backfill of `table` (a captured table with a
  /// unique key column; `where` checked by sql_condition_problem() and an
  /// EXPLAIN in a read-only transaction). Returns the row.
  boost::json::value create_backfill(const std::string& table,
                                     const std::optional<std::string>& where, uint32_t batch);
  /// Backfills, newest first.
  boost::json::value backfills(uint32_t limit);

  // --- the history writer (leader) ---

  std::vector<int64_t> running_replays(const std::string& listener_id);
  std::vector<int64_t> running_backfills();
  /// Copies the next `batch` rows of replay `id` (one transaction).
  chunk_result replay_chunk(int64_t id, uint32_t batch);
  /// Emits the next chunk of backfill `id` (one transaction; at most
  /// `limit` rows, and at most its --batch), or rolls it
  /// back when a concurrent writer of one of its rows would see its change
  /// delivered in the wrong order (chunk_result::conflict).
  chunk_result backfill_chunk(int64_t id, uint32_t limit);
  /// Marks a request failed with `error` (a chunk that cannot succeed).
  void fail_replay(int64_t id, const std::string& error);
  void fail_backfill(int64_t id, const std::string& error);

 private:
  template <class F>
  auto run(F&& f) -> decltype(f(std::declval<pqxx::connection_base&>()));
  pg_session session_;
};

}  // namespace fraiseql
