#pragma once

// Contiguous watermark over finished events.
//
// Events are admitted in read order (dense sequence numbers) with their
// change-log position, and finish in any order. The watermark is the position
// of the last event of the longest finished prefix: every event at or before it
// is finished, so saving it as the checkpoint can never skip an unfinished
// event. Memory is bounded by the in-flight window (finished prefix entries are
// dropped as the watermark passes them).

#include "messages/event.hpp"

#include <cstdint>
#include <deque>
#include <optional>
#include <stdexcept>

namespace fraiseql {

class watermark_tracker {
public:
  /// Starts after `resume` (the loaded checkpoint); the first admitted event
  /// gets sequence `first_seq`.
  explicit watermark_tracker(position resume = {}, uint64_t first_seq = 1)
    : watermark_(resume), base_(first_seq) {}

  /// Admits the next event. Sequence numbers must be dense and increasing and
  /// positions increasing; violations are programming errors (throws logic_error).
  void admit(uint64_t seq, position pos);

  /// Marks an admitted event finished. Returns true when the watermark moved.
  /// Finishing an unknown or already finished event throws logic_error.
  bool finish(uint64_t seq);

  /// Position below (and at) which every admitted event is finished.
  position watermark() const { return watermark_; }
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
    bool done = false;
  };
  position watermark_;
  uint64_t base_;  // sequence number of slots_.front()
  std::deque<slot> slots_;
  size_t in_flight_ = 0;
  uint64_t finished_total_ = 0;
};

}  // namespace fraiseql
