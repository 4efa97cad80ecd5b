#pragma once

// A bounded, thread-safe, in-memory record of the latest events a node routed:
// which observers fired (or whose condition failed to evaluate) and how each of
// their actions went, attempt by attempt. It feeds `observerctl debug-event`.
// The router and the action pool write; the control plane reads. Entries hold
// the event by shared pointer (no copy of the envelope), which keeps it alive
// and charged to the listener's byte budget: the oldest entry is evicted when
// `capacity` entries are kept or their events' footprints pass `max_bytes`
// (the newest entry is always kept). Capacity 0 disables recording.

#include "messages/event.hpp"

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace fraiseql {

struct journal_action {
  uint32_t observer = 0;  // registry index
  uint32_t action = 0;
  uint32_t attempts = 0;
  /// "running" | "succeeded" | "retrying" | "dead-lettered" | "redriven" | "redrive-failed"
  std::string state = "running";
  std::string last_error;
  int64_t updated_ms = 0;  // Unix epoch milliseconds
};

struct journal_entry {
  event_ptr ev;
  int64_t routed_ms = 0;
  /// Observers that fired (registry indices).
  std::vector<uint32_t> matched;
  /// Observers whose condition failed to evaluate, with the error.
  std::vector<std::pair<uint32_t, std::string>> condition_errors;
  std::vector<journal_action> actions;
};

class journal {
 public:
  /// `max_bytes` 0: bounded by entries only.
  explicit journal(size_t capacity, uint64_t max_bytes = 0)
      : capacity_(capacity), max_bytes_(max_bytes) {}
  size_t capacity() const { return capacity_; }
  uint64_t max_bytes() const { return max_bytes_; }
  /// Footprint of the events the entries hold.
  uint64_t bytes() const;

  /// The router matched `ev`.
  void routed(const event_ptr& ev, const std::vector<uint32_t>& matched,
              std::vector<std::pair<uint32_t, std::string>> condition_errors);
  /// One attempt of an action ended; `state` as in journal_action.
  void attempt(const std::string& event_id, uint32_t observer, uint32_t action, uint32_t attempts,
               const std::string& state, const std::string& error);

  std::optional<journal_entry> find(const std::string& event_id) const;
  /// The latest `n` entries, newest first.
  std::vector<journal_entry> latest(size_t n) const;
  size_t size() const;

 private:
  void evict_front();
  size_t capacity_;
  uint64_t max_bytes_;
  uint64_t bytes_ = 0;
  mutable std::mutex mu_;
  std::deque<journal_entry> ring_;  // oldest first
  uint64_t evicted_ = 0;            // entries dropped from the front so far
  /// event id -> absolute index (evicted_ + position in ring_).
  std::unordered_map<std::string, uint64_t> index_;
};

}  // namespace fraiseql
