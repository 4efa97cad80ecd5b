#include "runtime/core/wakeup.hpp"

#include <algorithm>

namespace fraiseql {

wakeup_decision wakeup_policy::schedule(std::chrono::microseconds delay) {
  if (read_pending_ || stopped_) return {};
  read_pending_ = true;
  wakeup_decision d;
  d.step = wakeup_step::read_after;
  d.delay = delay;
  return d;
}

std::chrono::microseconds wakeup_policy::poll_delay(uint32_t& counter, uint32_t cap) const {
  return s_.linger_poll * (1 << std::min<uint32_t>(counter++, cap));
}

wakeup_decision wakeup_policy::on_due(uint64_t bytes_in_use) {
  read_pending_ = false;
  waiting_bytes_ = false;
  if (stopped_) return {};
  const uint64_t room = s_.max_in_flight > in_flight_ ? s_.max_in_flight - in_flight_ : 0;
  if (room == 0) {
    waiting_credit_ = true;
    return {};
  }
  wakeup_decision d;
  if (s_.max_bytes_in_flight > 0) {
    const uint64_t bytes_room =
        s_.max_bytes_in_flight > bytes_in_use ? s_.max_bytes_in_flight - bytes_in_use : 0;
    if (bytes_room == 0 && in_flight_ > 0) {
      // Events in flight will release their bytes as they finish.
      waiting_bytes_ = true;
      return schedule(s_.byte_recheck);
    }
    // Nothing in flight: at least one event, whatever it holds.
    d.byte_room = std::max<uint64_t>(bytes_room, 1);
  }
  d.step = wakeup_step::read;
  d.limit = static_cast<uint32_t>(std::min<uint64_t>(room, s_.batch_size));
  return d;
}

wakeup_decision wakeup_policy::on_read(time_point now, uint32_t rows, uint32_t limit,
                                       bool running) {
  degraded_ = false;
  backoff_ = std::chrono::milliseconds(0);
  if (rows > 0) {
    idle_ = false;
    running_waits_ = 0;
    in_flight_ += rows;
    // Writers are active: be awake, so their next commits skip NOTIFY.
    const bool wake = asleep_;
    asleep_ = false;
    // A full batch means a backlog: read on at once. A partial one means we
    // are caught up: give writers a moment so the next read returns a batch
    // instead of a row (fewer queries, same order, <= linger_poll added).
    auto d = schedule(rows >= limit ? std::chrono::microseconds(0) : s_.linger_poll);
    d.wake = wake;
    return d;
  }
  if (!asleep_ && running) {
    // Transactions seen running may have written rows while we were awake
    // (so their writers did not notify): stay awake until they end, backing
    // off so a transaction left open for minutes (an idle session holding an
    // xid) costs a few queries a second; its rows arrive within 128 x
    // linger_poll of its commit.
    idle_ = false;
    return schedule(poll_delay(running_waits_, wakeup_running_cap));
  }
  if (!idle_) {
    idle_ = true;
    idle_since_ = now;
    idle_polls_ = 0;
  }
  if (!asleep_ && now - idle_since_ < s_.idle_linger) {
    // Back off while idle: cheap when the stream has really stopped, quick
    // when it resumes.
    return schedule(poll_delay(idle_polls_, wakeup_linger_cap));
  }
  wakeup_decision d;
  if (!asleep_) {
    d.step = wakeup_step::try_sleep;
    return d;
  }
  d.step = wakeup_step::wait;
  d.delay = s_.poll_interval;
  return d;
}

wakeup_decision wakeup_policy::on_try_sleep(bool granted) {
  if (!granted) {
    // A capture transaction is running (it did not notify and may commit rows
    // any moment): poll on with the backoff of remembered running transactions.
    return schedule(poll_delay(running_waits_, wakeup_running_cap));
  }
  // Read once more before waiting: a writer that committed after the last
  // empty read but saw "awake" did not notify.
  asleep_ = true;
  return schedule(std::chrono::microseconds(0));
}

wakeup_decision wakeup_policy::on_wait(bool notified) {
  bool wake = false;
  if (notified) {
    // Writers are active: be awake before reading, so the next commits skip
    // NOTIFY even if the fence still holds back their rows.
    wake = true;
    asleep_ = false;
    idle_ = false;
  }
  auto d = schedule(std::chrono::microseconds(0));
  d.wake = wake;
  return d;
}

wakeup_decision wakeup_policy::on_error() {
  read_pending_ = false;  // the failed step's read, if any, was never scheduled
  asleep_ = false;        // re-marked after reconnecting
  backoff_ = std::clamp(backoff_ * 2, s_.min_backoff, s_.max_backoff);
  degraded_ = true;
  return schedule(backoff_);
}

wakeup_decision wakeup_policy::on_credit(uint64_t n) {
  in_flight_ = n > in_flight_ ? 0 : in_flight_ - n;
  if (!waiting_credit_) return {};
  waiting_credit_ = false;
  return schedule(std::chrono::microseconds(0));
}

}  // namespace fraiseql
