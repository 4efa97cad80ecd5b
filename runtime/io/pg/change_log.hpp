#pragma once

// The change-log reader (core.tb_entity_change_log behind the visibility
// fence) and the listener's wake-up mark and NOTIFY channel.

#include "messages/event.hpp"
#include "runtime/io/pg/session.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

namespace fraiseql {

/// Byte bounds of one read.
struct read_bounds {
  /// Rows are taken while they start within this many body bytes (the first
  /// row always is): a read holds at most this plus one row.
  uint64_t max_bytes = UINT64_MAX;
  /// A row whose body (object_data plus object_data_before, as text) is over
  /// this is not transferred: its event carries only its size and the limit
  /// (event::oversize_limit) and holds nothing of the room. 0: no limit.
  uint64_t max_event_bytes = 0;
};

/// What one read did, for the caller's policy.
struct read_stats {
  /// Rows asked of the database (the limit, lowered when recent rows were large).
  uint32_t rows_asked = 0;
  /// Body bytes of the rows taken (oversize rows count 0).
  uint64_t bytes = 0;
  /// The byte room, not the row limit, ended this read: more rows may be there.
  bool cut_by_bytes = false;
};

/// Reads change-log rows behind the visibility fence and turns them into events.
class change_log_reader {
 public:
  explicit change_log_reader(std::string dsn);
  ~change_log_reader();

  /// Reads up to `limit` committed events not yet read by `cursor` (rows of
  /// transactions it remembers as running first, then rows after its position)
  /// and advances it (runtime/core/cursor.hpp); assigns sequence numbers starting at
  /// `next_seq` (advanced past the last one). Each event carries the cursor
  /// valid once it and every earlier event are finished. `bounds` limit the
  /// bytes transferred (read_bounds); `stats`, when given, says what happened.
  std::vector<event_ptr> read(read_cursor& cursor, uint32_t limit, uint64_t& next_seq,
                              read_bounds bounds = {}, read_stats* stats = nullptr);

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

}  // namespace fraiseql
