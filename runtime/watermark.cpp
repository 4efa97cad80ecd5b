#include "runtime/watermark.hpp"

#include <string>

namespace fraiseql {

void watermark_tracker::admit(uint64_t seq, position pos) {
  if (seq != next_seq())
    throw std::logic_error("watermark: admitted seq " + std::to_string(seq) + ", expected "
                           + std::to_string(next_seq()));
  const position last = slots_.empty() ? watermark_ : slots_.back().pos;
  if (!(last < pos))
    throw std::logic_error("watermark: positions must increase (seq " + std::to_string(seq)
                           + ": (" + std::to_string(pos.txid) + ", " + std::to_string(pos.pk)
                           + ") after (" + std::to_string(last.txid) + ", "
                           + std::to_string(last.pk) + "))");
  slots_.push_back({pos, false});
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
    slots_.pop_front();
    ++base_;
    ++finished_total_;
    moved = true;
  }
  return moved;
}

}  // namespace fraiseql
