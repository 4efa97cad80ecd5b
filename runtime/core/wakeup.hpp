#pragma once

// The listener's wake-up decisions (docs/design.md, "Wake-up without
// serializing writers") as a pure state machine in simulated time: no clock of
// its own, no I/O, no CAF. The listener performs the step a decision asks for
// (read, take the wake-up mark, wait for a NOTIFY, release the mark, schedule
// the next read), reports its result, and gets the next decision; calls that
// need the time take `now`.
//
//   reading    reads return rows: read again at once after a full batch, after
//              `linger_poll` after a partial one (writers get a moment, so the
//              next read returns a batch instead of a row).
//   running    empty reads while the cursor remembers running transactions
//              (they may have written rows while the listener was awake, so
//              their writers did not notify), or a refused try_sleep (a
//              capture transaction holds the mark shared): poll after 1, 2, 4
//              ... 128 x linger_poll (64 ms at the default), one counter for
//              both reasons, reset by rows.
//   lingering  empty reads, nothing running: poll after 1, 2, 4 ... 16 x
//              linger_poll for `idle_linger`, then try to sleep.
//   asleep     the wake-up mark is held (sql/0005_wakeup_lock.sql, writers
//              NOTIFY): read once more at once (a writer that committed after
//              the last empty read saw "awake" and did not notify), then after
//              each empty read wait for a NOTIFY up to `poll_interval` and
//              read. Rows or a NOTIFY release the mark: awake again, and a
//              NOTIFY also restarts the linger.
//   degraded   a database call failed: the connection is reset (the mark ends
//              with its session); read again after min_backoff, doubling up to
//              max_backoff; a successful read resets the backoff.
//
// Throughout: at most one read is scheduled at a time; a read asks for at most
// batch_size rows and the room left in the in-flight window (max_in_flight
// events read and not yet credited back); with no room, the next credit
// schedules the read; after stop, nothing is read.
//
// Bytes: a read also asks for at most the bytes left in the byte budget
// (max_bytes_in_flight, what events still referenced hold: byte_budget.hpp),
// and at least one event's worth whenever no event is in flight, so an event
// larger than the whole budget still moves. With events in flight and the
// budget spent, the policy re-checks after `byte_recheck` (memory is released
// when the last reference to an event goes, which may be after its credit).

#include <chrono>
#include <cstdint>
#include <limits>

namespace fraiseql {

struct wakeup_settings {
  /// Rows per read.
  uint32_t batch_size = 1000;
  /// Bound on events read and not yet credited back.
  uint64_t max_in_flight = 10000;
  /// Bound on the bytes events hold (0: unbounded).
  uint64_t max_bytes_in_flight = 0;
  /// Re-check of a spent byte budget while events are in flight.
  std::chrono::microseconds byte_recheck{2000};
  /// Pause after a partial batch; unit of the polling backoffs.
  std::chrono::microseconds linger_poll{500};
  /// Empty polls (nothing running) last this long before trying to sleep.
  std::chrono::milliseconds idle_linger{50};
  /// Longest wait for a NOTIFY while asleep.
  std::chrono::milliseconds poll_interval{1000};
  /// Reconnect backoff bounds (min_backoff <= max_backoff).
  std::chrono::milliseconds min_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
};

/// The step the listener takes next.
enum class wakeup_step : uint8_t {
  /// Nothing until the next message: a read is already scheduled, the window
  /// is full (a credit resumes), or the listener stopped.
  none,
  /// Read now, at most `limit` rows; report with on_read().
  read,
  /// Schedule a read after `delay` (0: behind the messages already queued);
  /// report it with on_due() when it comes due.
  read_after,
  /// Take the wake-up mark; report with on_try_sleep().
  try_sleep,
  /// Wait for a NOTIFY up to `delay` (or until a message arrives); report
  /// with on_wait().
  wait,
};

struct wakeup_decision {
  wakeup_step step = wakeup_step::none;
  /// read_after: the pause before reading; wait: the longest wait.
  std::chrono::microseconds delay{0};
  /// read: the rows to ask for.
  uint32_t limit = 0;
  /// read: the bytes the rows may hold (the first row is read whatever its
  /// size; UINT64_MAX: unbounded).
  uint64_t byte_room = std::numeric_limits<uint64_t>::max();
  /// Release the wake-up mark before the step (writers stop notifying).
  bool wake = false;
};

/// Growth of the polling backoffs: delay = linger_poll << min(n, cap).
inline constexpr uint32_t wakeup_running_cap = 7;  // 128 x linger_poll
inline constexpr uint32_t wakeup_linger_cap = 4;   // 16 x linger_poll

class wakeup_policy {
 public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;

  explicit wakeup_policy(wakeup_settings s) : s_(s) {}

  /// A scheduled read came due (also the first one, sent from outside), with
  /// `bytes_in_use` held by events now: read (limit > 0), none (stopped, or
  /// the window is full), or read_after(byte_recheck) (the byte budget is
  /// spent while events are in flight).
  wakeup_decision on_due(uint64_t bytes_in_use = 0);
  /// A read asked for `limit` rows and returned `rows` at `now`; `running`:
  /// the cursor remembers running transactions (after this read).
  wakeup_decision on_read(time_point now, uint32_t rows, uint32_t limit, bool running);
  /// try_sleep granted (the mark is held) or refused.
  wakeup_decision on_try_sleep(bool granted);
  /// The wait ended: a NOTIFY arrived, or not (timed out, or a message waits).
  wakeup_decision on_wait(bool notified);
  /// A database call of the current step failed and the connection was
  /// reset: the mark is gone and a read the failed step decided was never
  /// scheduled.
  wakeup_decision on_error();
  /// `n` events finished: room in the window.
  wakeup_decision on_credit(uint64_t n);
  /// Stop reading.
  void on_stop() { stopped_ = true; }

  /// Holds the wake-up mark (writers notify).
  bool asleep() const { return asleep_; }
  /// The last database call failed.
  bool degraded() const { return degraded_; }
  /// A read is scheduled and not yet due.
  bool read_pending() const { return read_pending_; }
  /// The window was full when a read came due: a credit schedules the next.
  bool waiting_credit() const { return waiting_credit_; }
  /// The last read that came due found the byte budget spent (a re-check is
  /// scheduled).
  bool waiting_bytes() const { return waiting_bytes_; }
  bool stopped() const { return stopped_; }
  /// Events read and not yet credited back.
  uint64_t in_flight() const { return in_flight_; }
  /// The current reconnect backoff (0 after a successful read).
  std::chrono::milliseconds backoff() const { return backoff_; }
  const wakeup_settings& settings() const { return s_; }

 private:
  /// A read after `delay`, unless one is scheduled already or stopped.
  wakeup_decision schedule(std::chrono::microseconds delay);
  std::chrono::microseconds poll_delay(uint32_t& counter, uint32_t cap) const;

  wakeup_settings s_;
  uint64_t in_flight_ = 0;
  bool read_pending_ = false;
  bool waiting_credit_ = false;
  bool waiting_bytes_ = false;
  bool asleep_ = false;
  bool stopped_ = false;
  bool degraded_ = false;
  bool idle_ = false;        // empty reads with nothing running since idle_since_
  uint32_t idle_polls_ = 0;  // empty polls since idle_since_
  uint32_t running_waits_ =
      0;  // empty polls while running transactions or a refused sleep keep us awake
  time_point idle_since_{};
  std::chrono::milliseconds backoff_{0};
};

}  // namespace fraiseql
