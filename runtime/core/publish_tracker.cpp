#include "runtime/core/publish_tracker.hpp"

#include <algorithm>

namespace fraiseql {

void publish_tracker::add(uint64_t seq, uint32_t partition) {
  entries_[seq] = entry{partition, state::queued, false};
  queue_.push_back(seq);
}

bool publish_tracker::paused() const {
  return !connected_ || refused_ || draining_ || !failed_.empty();
}

std::vector<uint64_t> publish_tracker::take(size_t max) {
  std::vector<uint64_t> out;
  if (paused()) return out;
  while (!queue_.empty() && out.size() < max && in_flight_ < window_) {
    const uint64_t seq = queue_.front();
    queue_.pop_front();
    auto& e = entries_[seq];
    e.st = state::in_flight;
    order_[e.partition].outstanding.insert(seq);
    ++in_flight_;
    out.push_back(seq);
  }
  return out;
}

void publish_tracker::refused(uint64_t seq) {
  auto it = entries_.find(seq);
  if (it == entries_.end() || it->second.st != state::in_flight) return;
  it->second.st = state::queued;
  --in_flight_;
  queue_.push_front(seq);
  refused_ = true;
}

bool publish_tracker::stored(uint64_t seq, [[maybe_unused]] bool duplicate, uint64_t stream_seq) {
  auto it = entries_.find(seq);
  if (it == entries_.end() || it->second.st != state::in_flight) return false;
  --in_flight_;
  auto po = order_.find(it->second.partition);
  if (po != order_.end()) {
    auto& o = po->second;
    o.outstanding.erase(seq);
    // A duplicate's ack names where its first copy was stored: as telling.
    if (stream_seq > 0) {
      bool behind = false;
      if (it->second.retry)  // this one behind a later event already stored?
        for (auto l = o.later.upper_bound(seq); l != o.later.end() && !behind; ++l)
          behind = l->second.stream_seq < stream_seq;
      if (behind) ++reordered_;
      // An earlier republished event stored behind this one?
      for (auto r = o.retried.begin(); r != o.retried.end() && r->first < seq; ++r)
        if (!r->second.counted && r->second.stream_seq > stream_seq) {
          r->second.counted = true;
          ++reordered_;
        }
      if (!o.outstanding.empty()) {
        const stored_pos pos{stream_seq, behind};
        if (seq > *o.outstanding.begin()) o.later[seq] = pos;
        if (it->second.retry && o.retried.size() < 100000) o.retried[seq] = pos;
      }
    }
    if (o.outstanding.empty())
      order_.erase(po);
    else
      o.later.erase(o.later.begin(), o.later.lower_bound(*o.outstanding.begin()));
  }
  entries_.erase(it);
  finished_.push_back(seq);
  refused_ = false;
  settle();
  return true;
}

void publish_tracker::failed(uint64_t seq) {
  auto it = entries_.find(seq);
  if (it == entries_.end() || it->second.st != state::in_flight) return;
  --in_flight_;
  it->second.st = state::failed;
  it->second.retry = true;
  failed_.push_back(seq);
  refused_ = false;
  settle();
}

void publish_tracker::abandon(uint64_t seq) {
  auto it = entries_.find(seq);
  if (it == entries_.end() || it->second.st != state::in_flight) return;
  --in_flight_;
  auto po = order_.find(it->second.partition);
  if (po != order_.end()) {
    po->second.outstanding.erase(seq);
    if (po->second.outstanding.empty()) order_.erase(po);
  }
  entries_.erase(it);
  settle();
}

void publish_tracker::settle() {
  if (in_flight_ > 0) return;
  draining_ = false;
  if (failed_.empty()) return;
  // Everything outstanding has completed: the failed events go first, in
  // admission order, ahead of the events not yet published.
  std::sort(failed_.begin(), failed_.end());
  for (auto s = failed_.rbegin(); s != failed_.rend(); ++s) {
    entries_[*s].st = state::queued;
    queue_.push_front(*s);
  }
  republished_ += failed_.size();
  failed_.clear();
}

std::vector<uint64_t> publish_tracker::drain_finished() {
  std::vector<uint64_t> out;
  out.swap(finished_);
  return out;
}

}  // namespace fraiseql
