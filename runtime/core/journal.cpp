#include "runtime/core/journal.hpp"

#include "runtime/core/clock.hpp"

#include <chrono>

namespace fraiseql {

void journal::routed(const event_ptr& ev, const std::vector<uint32_t>& matched,
                     std::vector<std::pair<uint32_t, std::string>> condition_errors) {
  if (capacity_ == 0) return;
  journal_entry e;
  e.ev = ev;
  e.routed_ms = unix_ms();
  e.matched = matched;
  e.condition_errors = std::move(condition_errors);
  std::lock_guard<std::mutex> lock(mu_);
  if (ring_.size() == capacity_) evict_front();
  bytes_ += ev->footprint;
  while (max_bytes_ > 0 && bytes_ > max_bytes_ && !ring_.empty()) evict_front();
  // A redelivered event (restart) gets a fresh entry; the index points to it.
  index_[ev->id] = evicted_ + ring_.size();
  ring_.push_back(std::move(e));
}

void journal::evict_front() {
  auto it = index_.find(ring_.front().ev->id);
  if (it != index_.end() && it->second == evicted_) index_.erase(it);
  bytes_ -= ring_.front().ev->footprint;
  ring_.pop_front();
  ++evicted_;
}

uint64_t journal::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

void journal::attempt(const std::string& event_id, uint32_t observer, uint32_t action,
                      uint32_t attempts, const std::string& state, const std::string& error) {
  if (capacity_ == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(event_id);
  if (it == index_.end()) return;  // evicted already
  auto& entry = ring_[it->second - evicted_];
  journal_action* a = nullptr;
  for (auto& x : entry.actions)
    if (x.observer == observer && x.action == action) a = &x;
  if (a == nullptr) {
    journal_action fresh;
    fresh.observer = observer;
    fresh.action = action;
    entry.actions.push_back(std::move(fresh));
    a = &entry.actions.back();
  }
  a->attempts = attempts;
  a->state = state;
  if (!error.empty()) a->last_error = error;
  a->updated_ms = unix_ms();
}

std::optional<journal_entry> journal::find(const std::string& event_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(event_id);
  if (it == index_.end()) return std::nullopt;
  return ring_[it->second - evicted_];
}

std::vector<journal_entry> journal::latest(size_t n) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<journal_entry> out;
  for (auto it = ring_.rbegin(); it != ring_.rend() && out.size() < n; ++it) out.push_back(*it);
  return out;
}

size_t journal::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ring_.size();
}

}  // namespace fraiseql
