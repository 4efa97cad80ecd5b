#pragma once

// The in-flight window's byte budget (docs/design.md, "Memory bounded in
// bytes"). Every event the listener reads is charged its footprint (the
// memory its envelope holds, event_footprint() in envelope.hpp) and the charge
// is released when the last reference to the event goes, wherever that is:
// the router's batch, the action pool (attempts running or waiting for their
// backoff), the job queue writer's specs, the DLQ write, the debug journal.
// So `in_use()` is what events really hold, not an estimate of what the
// pipeline should hold. Thread-safe (atomics): references drop on any thread.
//
// The budget does not refuse anything: the listener asks `room()` before a
// read and reads at most that much (and always at least one event when nothing
// is in flight, so a single event larger than the budget still moves).

#include "messages/event.hpp"

#include <atomic>
#include <cstdint>
#include <memory>

namespace fraiseql {

class byte_budget {
 public:
  /// `limit` 0: unbounded (room() is always the maximum).
  explicit byte_budget(uint64_t limit) : limit_(limit) {}

  uint64_t limit() const { return limit_; }
  /// Bytes charged and not yet released.
  uint64_t in_use() const { return in_use_.load(std::memory_order_relaxed); }
  /// Highest in_use() so far.
  uint64_t peak() const { return peak_.load(std::memory_order_relaxed); }
  /// Largest single charge so far.
  uint64_t largest() const { return largest_.load(std::memory_order_relaxed); }
  /// Bytes that may still be charged before the limit (0 when at or over it).
  uint64_t room() const;

  void charge(uint64_t bytes);
  void release(uint64_t bytes);

 private:
  const uint64_t limit_;
  std::atomic<uint64_t> in_use_{0};
  std::atomic<uint64_t> peak_{0};
  std::atomic<uint64_t> largest_{0};
};

/// Charges `ev->footprint` to `budget` and returns a pointer to the same event
/// whose last copy releases the charge (it shares ownership of `ev`). A null
/// budget returns `ev` unchanged.
event_ptr charge_event(event_ptr ev, const std::shared_ptr<byte_budget>& budget);

}  // namespace fraiseql
