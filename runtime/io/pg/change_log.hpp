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

/// Reads change-log rows behind the visibility fence and turns them into events.
class change_log_reader {
 public:
  explicit change_log_reader(std::string dsn);
  ~change_log_reader();

  /// Reads up to `limit` committed events not yet read by `cursor` (rows of
  /// transactions it remembers as running first, then rows after its position)
  /// and advances it (runtime/core/cursor.hpp); assigns sequence numbers starting at
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

}  // namespace fraiseql
