#include "runtime/core/byte_budget.hpp"

#include <limits>

namespace fraiseql {

uint64_t byte_budget::room() const {
  if (limit_ == 0) return std::numeric_limits<uint64_t>::max();
  const auto used = in_use();
  return used >= limit_ ? 0 : limit_ - used;
}

void byte_budget::charge(uint64_t bytes) {
  const auto now = in_use_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  auto peak = peak_.load(std::memory_order_relaxed);
  while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  auto largest = largest_.load(std::memory_order_relaxed);
  while (bytes > largest &&
         !largest_.compare_exchange_weak(largest, bytes, std::memory_order_relaxed)) {
  }
}

void byte_budget::release(uint64_t bytes) {
  in_use_.fetch_sub(bytes, std::memory_order_relaxed);
}

namespace {

/// Owns the event and the charge; the event pointer handed out aliases it.
struct charged_event {
  event_ptr ev;
  std::shared_ptr<byte_budget> budget;
  uint64_t bytes = 0;
  charged_event(event_ptr e, std::shared_ptr<byte_budget> b, uint64_t n)
      : ev(std::move(e)), budget(std::move(b)), bytes(n) {
    budget->charge(bytes);
  }
  ~charged_event() { budget->release(bytes); }
  charged_event(const charged_event&) = delete;
  charged_event& operator=(const charged_event&) = delete;
};

}  // namespace

event_ptr charge_event(event_ptr ev, const std::shared_ptr<byte_budget>& budget) {
  if (!budget || !ev) return ev;
  const auto bytes = ev->footprint;
  auto holder = std::make_shared<charged_event>(std::move(ev), budget, bytes);
  const event* raw = holder->ev.get();
  return event_ptr(std::move(holder), raw);
}

}  // namespace fraiseql
