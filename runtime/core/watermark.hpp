#pragma once

// Contiguous watermark over finished events.
//
// Events are admitted in read order (dense sequence numbers) with their
// change-log position, and finish in any order. The watermark is the position
// of the last event of the longest finished prefix: every event at or before it
// is finished, so saving it as the checkpoint can never skip an unfinished
// event. Finished prefix entries are dropped as the watermark passes them; the
// entries behind an unfinished event stay until it finishes (one small entry
// per event: the listener's window bounds unfinished events, not this span).

#include "messages/event.hpp"

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

namespace fraiseql {

class watermark_tracker {
 public:
  /// Starts after `resume` (the loaded checkpoint); the first admitted event
  /// gets sequence `first_seq`.
  explicit watermark_tracker(position resume = {}, uint64_t first_seq = 1,
                             std::vector<pending_txid> pending = {})
      : watermark_(resume),
        cursor_(std::make_shared<const read_cursor>(read_cursor{resume, std::move(pending)})),
        base_(first_seq) {}

  /// Admits the next event with the read cursor that becomes valid once it and
  /// every earlier event are finished (null: {pos, nothing pending}). Sequence
  /// numbers must be dense and increasing; a violation is a programming error
  /// (throws logic_error). Positions need not increase: rows of transactions
  /// that were running at an earlier read come later with lower txids.
  void admit(uint64_t seq, position pos, std::shared_ptr<const read_cursor> cursor = nullptr);

  /// Marks an admitted event finished. Returns true when the watermark moved.
  /// Finishing an unknown or already finished event throws logic_error.
  bool finish(uint64_t seq);

  /// Position of the last event of the finished prefix (for logs).
  position watermark() const { return watermark_; }
  /// The read cursor of the finished prefix: what a checkpoint saves.
  const read_cursor& cursor() const { return *cursor_; }
  /// Number of events finished into the watermark since construction.
  uint64_t finished_total() const { return finished_total_; }
  /// Admitted but not yet covered by the watermark.
  size_t pending() const { return slots_.size(); }
  /// Admitted and not finished.
  size_t in_flight() const { return in_flight_; }
  /// Next sequence number expected by admit().
  uint64_t next_seq() const { return base_ + slots_.size(); }

 private:
  struct slot {
    position pos;
    std::shared_ptr<const read_cursor> cursor;
    bool done = false;
  };
  position watermark_;
  std::shared_ptr<const read_cursor> cursor_;
  uint64_t base_;  // sequence number of slots_.front()
  std::deque<slot> slots_;
  size_t in_flight_ = 0;
  uint64_t finished_total_ = 0;
};

}  // namespace fraiseql
