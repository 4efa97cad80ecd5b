#include "runtime/core/watermark.hpp"

#include <string>

namespace fraiseql {

void watermark_tracker::admit(uint64_t seq, position pos,
                              std::shared_ptr<const read_cursor> cursor) {
  if (seq != next_seq())
    throw std::logic_error("watermark: admitted seq " + std::to_string(seq) + ", expected " +
                           std::to_string(next_seq()));
  if (!cursor) cursor = std::make_shared<const read_cursor>(read_cursor{pos, {}});
  slots_.push_back({pos, std::move(cursor), false});
  ++in_flight_;
}

bool watermark_tracker::finish(uint64_t seq) {
  if (seq < base_ || seq >= next_seq())
    throw std::logic_error("watermark: finish of unknown seq " + std::to_string(seq));
  auto& s = slots_[seq - base_];
  if (s.done) throw std::logic_error("watermark: seq " + std::to_string(seq) + " finished twice");
  s.done = true;
  --in_flight_;
  bool moved = false;
  while (!slots_.empty() && slots_.front().done) {
    watermark_ = slots_.front().pos;
    cursor_ = std::move(slots_.front().cursor);
    slots_.pop_front();
    ++base_;
    ++finished_total_;
    moved = true;
  }
  return moved;
}

}  // namespace fraiseql
