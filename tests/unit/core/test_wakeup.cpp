// The listener's wake-up policy in simulated time: example-based tests that
// walk it step by step (each decision asserted), and a RapidCheck property
// that drives it with random read results, sleeps, NOTIFYs, credits, errors
// and stops against a model of the wake-up mark, the window and the bytes
// its events hold.

#include "runtime/core/wakeup.hpp"

#include <doctest/doctest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <limits>
#include <vector>

using namespace fraiseql;
using us = std::chrono::microseconds;
using ms = std::chrono::milliseconds;
using tp = wakeup_policy::time_point;

namespace {

/// The listener's defaults: 500 µs pause, 50 ms linger, 1 s poll interval,
/// reconnect backoff 100 ms .. 5 s.
wakeup_settings defaults() {
  return wakeup_settings{};
}

bool read_after(const wakeup_decision& d, us delay, bool wake = false) {
  return d.step == wakeup_step::read_after && d.delay == delay && d.wake == wake;
}

/// The scheduled read comes due: returns the rows it may ask for.
uint32_t due(wakeup_policy& p) {
  auto d = p.on_due();
  REQUIRE(d.step == wakeup_step::read);
  CHECK_FALSE(d.wake);
  return d.limit;
}

/// A scheduled read comes due and returns nothing.
wakeup_decision empty_read(wakeup_policy& p, tp now, bool running = false) {
  const auto limit = due(p);
  return p.on_read(now, 0, limit, running);
}

/// Polls empty reads (nothing running) from `t`, following the policy's
/// delays, until it asks for something other than a read: the delays seen.
std::vector<us> linger(wakeup_policy& p, tp& t, wakeup_decision& last) {
  std::vector<us> delays;
  for (;;) {
    last = empty_read(p, t);
    if (last.step != wakeup_step::read_after) return delays;
    delays.push_back(last.delay);
    t += last.delay;
  }
}

/// Lingers from `t` until the policy asks to take the mark.
void linger_to_try_sleep(wakeup_policy& p, tp& t) {
  wakeup_decision d;
  linger(p, t, d);
  REQUIRE(d.step == wakeup_step::try_sleep);
}

/// Lingers and takes the mark: the listener is asleep at `t` and its last
/// read (the one after taking the mark) came back empty.
void fall_asleep(wakeup_policy& p, tp& t) {
  linger_to_try_sleep(p, t);
  REQUIRE(read_after(p.on_try_sleep(true), us(0)));
  REQUIRE(p.asleep());
  REQUIRE(empty_read(p, t).step == wakeup_step::wait);
}

}  // namespace

TEST_SUITE("wakeup") {
  TEST_CASE("a full batch -> read again at once; a partial batch -> read again after 500 µs") {
    wakeup_policy p(defaults());
    tp t{};
    CHECK(due(p) == 1000);
    CHECK(read_after(p.on_read(t, 1000, 1000, false), us(0)));
    CHECK(p.read_pending());
    CHECK(due(p) == 1000);
    CHECK(read_after(p.on_read(t, 999, 1000, false), us(500)));
    CHECK(due(p) == 1000);
    CHECK(read_after(p.on_read(t, 1, 1000, true), us(500)));  // rows: running txns do not matter
    CHECK(p.in_flight() == 2000);
  }

  TEST_CASE(
      "empty reads with remembered running transactions: 0.5, 1, 2 ... capped at 64 ms, never "
      "asleep") {
    wakeup_policy p(defaults());
    tp t{};
    std::vector<us> delays;
    for (int i = 0; i < 12; ++i) {
      auto d = empty_read(p, t, true);
      REQUIRE(d.step == wakeup_step::read_after);  // never try_sleep, although far past idle_linger
      delays.push_back(d.delay);
      t += d.delay;
    }
    CHECK(delays == std::vector<us>{us(500), us(1000), us(2000), us(4000), us(8000), us(16000),
                                    us(32000), us(64000), us(64000), us(64000), us(64000),
                                    us(64000)});
    CHECK(t > tp{} + ms(300));
    CHECK_FALSE(p.asleep());
    // Rows reset the backoff.
    CHECK(due(p) == 1000);
    CHECK(read_after(p.on_read(t, 3, 1000, true), us(500)));
    CHECK(read_after(empty_read(p, t, true), us(500)));
  }

  TEST_CASE("idle: polls back off 0.5 .. 8 ms for idle_linger (50 ms), then try to sleep") {
    wakeup_policy p(defaults());
    tp t{};
    CHECK(due(p) == 1000);
    CHECK(read_after(p.on_read(t, 5, 1000, false), us(500)));
    t += us(500);
    wakeup_decision last;
    auto delays = linger(p, t, last);
    CHECK(delays == std::vector<us>{us(500), us(1000), us(2000), us(4000), us(8000), us(8000),
                                    us(8000), us(8000), us(8000), us(8000)});
    CHECK(last.step == wakeup_step::try_sleep);
    CHECK_FALSE(last.wake);
    CHECK_FALSE(p.read_pending());  // nothing scheduled while the step runs
  }

  TEST_CASE("a running transaction ends: the linger starts over, then sleep") {
    wakeup_policy p(defaults());
    tp t{};
    for (int i = 0; i < 3; ++i) t += empty_read(p, t, true).delay;
    // Nothing running any more: 50 ms of lingering from here, not from the first empty read.
    wakeup_decision last;
    auto delays = linger(p, t, last);
    CHECK(delays.front() == us(500));
    CHECK(delays.size() == 10);
    CHECK(last.step == wakeup_step::try_sleep);
  }

  TEST_CASE(
      "sleep refused -> keep polling with the running backoff, one counter for both reasons") {
    wakeup_policy p(defaults());
    tp t{};
    linger_to_try_sleep(p, t);
    CHECK(read_after(p.on_try_sleep(false), us(500)));
    CHECK_FALSE(p.asleep());
    t += us(500);
    // Still idle past the linger: the next empty read tries again at once.
    auto d = empty_read(p, t);
    REQUIRE(d.step == wakeup_step::try_sleep);
    CHECK(read_after(p.on_try_sleep(false), us(1000)));
    t += us(1000);
    // A remembered running transaction continues the same backoff...
    CHECK(read_after(empty_read(p, t, true), us(2000)));
    t += us(2000);
    // ...and so does the next refusal (after the linger starts over).
    linger_to_try_sleep(p, t);
    CHECK(read_after(p.on_try_sleep(false), us(4000)));
    for (int i = 0; i < 10; ++i) {
      d = empty_read(p, t);
      REQUIRE(d.step == wakeup_step::try_sleep);
      d = p.on_try_sleep(false);
      REQUIRE(d.step == wakeup_step::read_after);
      CHECK(d.delay <= us(64000));
    }
    CHECK(d.delay == us(64000));
    // Granted at last: read once more at once, then wait.
    d = empty_read(p, t);
    REQUIRE(d.step == wakeup_step::try_sleep);
    CHECK(read_after(p.on_try_sleep(true), us(0)));
    CHECK(p.asleep());
  }

  TEST_CASE("after taking the mark: one more read at once; empty -> wait up to poll_interval") {
    wakeup_policy p(defaults());
    tp t{};
    linger_to_try_sleep(p, t);
    CHECK(read_after(p.on_try_sleep(true), us(0)));
    CHECK(p.asleep());
    auto d = empty_read(p, t);
    CHECK(d.step == wakeup_step::wait);
    CHECK(d.delay == ms(1000));
    CHECK_FALSE(d.wake);
    CHECK_FALSE(p.read_pending());
  }

  TEST_CASE("asleep, a NOTIFY -> release the mark and read now; the linger starts over") {
    wakeup_policy p(defaults());
    tp t{};
    fall_asleep(p, t);
    t += ms(300);
    CHECK(read_after(p.on_wait(true), us(0), true));
    CHECK_FALSE(p.asleep());
    // The fence may still hold the rows back: awake, lingering again.
    CHECK(read_after(empty_read(p, t), us(500)));
  }

  TEST_CASE("asleep, no NOTIFY -> read after poll_interval, still asleep, and wait again") {
    wakeup_policy p(defaults());
    tp t{};
    fall_asleep(p, t);
    t += ms(1000);
    CHECK(read_after(p.on_wait(false), us(0)));
    CHECK(p.asleep());
    auto d = empty_read(p, t);
    CHECK(d.step == wakeup_step::wait);
    CHECK(d.delay == ms(1000));
    // A remembered running transaction does not keep a sleeping listener
    // polling: its writer notifies.
    t += ms(1000);
    CHECK(read_after(p.on_wait(false), us(0)));
    d = empty_read(p, t, true);
    CHECK(d.step == wakeup_step::wait);
  }

  TEST_CASE("asleep, rows -> release the mark with the read that found them") {
    wakeup_policy p(defaults());
    tp t{};
    fall_asleep(p, t);
    CHECK(read_after(p.on_wait(false), us(0)));
    CHECK(due(p) == 1000);
    CHECK(read_after(p.on_read(t, 2, 1000, false), us(500), true));
    CHECK_FALSE(p.asleep());
    // Rows found by the read right after taking the mark release it too.
    fall_asleep(p, t);
    CHECK(read_after(p.on_wait(false), us(0)));
    CHECK(due(p) == 1000);
    CHECK(read_after(p.on_read(t, 1000, 1000, false), us(0), true));
  }

  TEST_CASE(
      "database errors: reconnect after 100, 200, 400 ... 5000 ms; the mark is gone; a read "
      "resets") {
    wakeup_policy p(defaults());
    tp t{};
    fall_asleep(p, t);
    std::vector<us> delays;
    for (int i = 0; i < 8; ++i) {
      auto d = p.on_error();
      REQUIRE(d.step == wakeup_step::read_after);
      CHECK_FALSE(d.wake);  // the mark ended with the session
      delays.push_back(d.delay);
      CHECK(p.degraded());
      CHECK_FALSE(p.asleep());
      due(p);  // the reconnecting read fails again
    }
    CHECK(delays == std::vector<us>{ms(100), ms(200), ms(400), ms(800), ms(1600), ms(3200),
                                    ms(5000), ms(5000)});
    // Reconnected: idle since before the outage, so it tries to sleep again at once.
    auto d = p.on_read(t, 0, 1000, false);
    CHECK_FALSE(p.degraded());
    CHECK(p.backoff() == ms(0));
    CHECK(d.step == wakeup_step::try_sleep);
    CHECK(read_after(p.on_error(), ms(100)));  // try_sleep failed: from the start
  }

  TEST_CASE("an error after a decided read (a failed wake) still schedules the retry") {
    wakeup_policy p(defaults());
    tp t{};
    fall_asleep(p, t);
    CHECK(read_after(p.on_wait(true), us(0), true));
    // wake() threw: the read was never scheduled.
    CHECK(read_after(p.on_error(), ms(100)));
    CHECK(p.read_pending());
  }

  TEST_CASE("window: reads ask for at most the room left; full -> no read until a credit") {
    auto s = defaults();
    s.max_in_flight = 1500;
    wakeup_policy p(s);
    tp t{};
    CHECK(due(p) == 1000);
    CHECK(read_after(p.on_read(t, 1000, 1000, false), us(0)));
    CHECK(due(p) == 500);
    CHECK(read_after(p.on_read(t, 500, 500, false), us(0)));  // a full batch of what was asked
    CHECK(p.in_flight() == 1500);
    CHECK(p.on_due().step == wakeup_step::none);
    CHECK(p.waiting_credit());
    CHECK_FALSE(p.read_pending());
    CHECK(read_after(p.on_credit(200), us(0)));
    CHECK_FALSE(p.waiting_credit());
    CHECK(p.on_credit(100).step == wakeup_step::none);  // the read is scheduled already
    CHECK(due(p) == 300);
    CHECK(p.on_credit(5000).step == wakeup_step::none);  // not waiting: nothing to schedule
    CHECK(p.in_flight() == 0);
  }

  TEST_CASE("bytes: a read asks for at most the budget's room; spent -> re-check, not read") {
    auto s = defaults();
    s.max_bytes_in_flight = 1000;
    wakeup_policy p(s);
    tp t{};
    auto d = p.on_due(300);
    REQUIRE(d.step == wakeup_step::read);
    CHECK(d.limit == 1000);
    CHECK(d.byte_room == 700);
    CHECK(read_after(p.on_read(t, 10, 10, false), us(0)));
    // Events in flight hold the whole budget: no read; look again shortly
    // (their bytes go with their last reference, which may follow the credit).
    CHECK(read_after(p.on_due(1000), s.byte_recheck));
    CHECK(p.waiting_bytes());
    CHECK_FALSE(p.waiting_credit());
    CHECK(p.on_credit(3).step == wakeup_step::none);  // the re-check is scheduled already
    d = p.on_due(400);
    REQUIRE(d.step == wakeup_step::read);
    CHECK_FALSE(p.waiting_bytes());
    CHECK(d.byte_room == 600);
    CHECK(d.limit == 1000);
  }

  TEST_CASE("bytes: with nothing in flight a read always asks for at least one event") {
    auto s = defaults();
    s.max_bytes_in_flight = 1000;
    wakeup_policy p(s);
    // Over the budget with nothing in flight (the debug journal, or references
    // not yet dropped): one event's worth, so a huge event still moves.
    auto d = p.on_due(5000);
    REQUIRE(d.step == wakeup_step::read);
    CHECK(d.byte_room == 1);
    CHECK(d.limit == 1000);
  }

  TEST_CASE("bytes: unbounded by default") {
    wakeup_policy p(defaults());
    auto d = p.on_due(uint64_t{1} << 40);
    REQUIRE(d.step == wakeup_step::read);
    CHECK(d.byte_room == std::numeric_limits<uint64_t>::max());
  }

  TEST_CASE("one read at a time, nothing after stop") {
    wakeup_policy p(defaults());
    tp t{};
    CHECK(due(p) == 1000);
    CHECK(read_after(p.on_read(t, 1000, 1000, false), us(0)));
    CHECK(p.on_error().step == wakeup_step::read_after);  // replaces the undone read
    p.on_stop();
    CHECK(p.stopped());
    CHECK(p.on_due().step == wakeup_step::none);
    CHECK(p.on_credit(1).step == wakeup_step::none);
    CHECK(p.on_error().step == wakeup_step::none);
    CHECK(p.on_wait(true).step == wakeup_step::none);
    CHECK_FALSE(p.read_pending());
  }

  TEST_CASE(
      "property: delays bounded, no sleep while transactions run, mark and window consistent") {
    bool ok = rc::check("random reads, sleeps, NOTIFYs, credits, errors, stops and bytes", [] {
      wakeup_settings s;
      s.batch_size = *rc::gen::inRange<uint32_t>(1, 6);
      s.max_in_flight = *rc::gen::inRange<uint64_t>(1, 13);
      s.linger_poll = us(*rc::gen::inRange(1, 1001));
      s.idle_linger = ms(*rc::gen::inRange(0, 21));
      s.poll_interval = ms(*rc::gen::inRange(1, 2001));
      s.min_backoff = ms(*rc::gen::inRange(1, 201));
      s.max_backoff = s.min_backoff + ms(*rc::gen::inRange(0, 5001));
      // Half the runs also bound the bytes events hold; rows hold 1..max_row.
      const uint64_t max_row = 2000;
      s.max_bytes_in_flight =
          *rc::gen::arbitrary<bool>() ? *rc::gen::inRange<uint64_t>(1, 6000) : 0;
      const us max_poll = s.linger_poll * (1 << wakeup_running_cap);
      // How busy the log is in this run: quiet runs reach sleep, busy ones
      // fill the window.
      const int rows_pct = *rc::gen::element(0, 5, 30, 90);
      const int running_pct = *rc::gen::element(0, 5, 50);
      wakeup_policy p(s);

      // The model: the mark as the database sees it, the scheduled read, the window.
      bool mark = false;
      bool pending = false;
      bool stopped = false;
      uint64_t in_flight = 0;
      std::vector<uint64_t> held;  // bytes of each event in flight
      uint64_t bytes = 0;
      tp now{};
      tp due_at{};

      const auto delay_ok = [&](us d) {
        if (d == us(0) || (d >= s.min_backoff && d <= s.max_backoff)) return true;
        if (s.max_bytes_in_flight > 0 && d == s.byte_recheck) return true;
        for (uint32_t k = 0; k <= wakeup_running_cap; ++k)
          if (d == s.linger_poll * (1 << k)) return true;
        return false;
      };
      // Performs the steps the policy asks for, as the listener does, with
      // random results and random failures.
      const auto drive = [&](wakeup_decision d) {
        for (;;) {
          // Any database call may fail: the wake, the read, try_sleep, the wait.
          const bool io =
              d.wake || (d.step != wakeup_step::none && d.step != wakeup_step::read_after);
          const bool fail = io && *rc::gen::inRange(0, 12) == 0;
          if (d.wake) {
            RC_ASSERT(mark);  // released only when held
            RC_ASSERT(!p.asleep());
            mark = false;
          }
          if (fail) {
            mark = false;  // a reset connection ends the session and its mark
            d = p.on_error();
            RC_ASSERT(p.degraded());
            if (stopped) {
              RC_ASSERT(d.step == wakeup_step::none);
              return;
            }
            RC_ASSERT(d.step == wakeup_step::read_after);
            RC_ASSERT(!d.wake);
            RC_ASSERT(d.delay >= s.min_backoff);
            RC_ASSERT(d.delay <= s.max_backoff);
          }
          RC_ASSERT(p.asleep() == mark);
          switch (d.step) {
            case wakeup_step::none:
              return;
            case wakeup_step::read_after:
              RC_ASSERT(!pending);  // one read at a time
              RC_ASSERT(!stopped);
              RC_ASSERT(delay_ok(d.delay));
              RC_ASSERT(d.delay <= std::max({max_poll, us(s.max_backoff), s.byte_recheck}));
              pending = true;
              due_at = now + d.delay;
              return;
            case wakeup_step::read: {
              RC_ASSERT(!stopped);
              RC_ASSERT(d.limit >= 1);
              RC_ASSERT(d.limit <= s.batch_size);
              RC_ASSERT(in_flight + d.limit <= s.max_in_flight);
              if (s.max_bytes_in_flight == 0) {
                RC_ASSERT(d.byte_room == std::numeric_limits<uint64_t>::max());
              } else if (in_flight > 0) {
                // Room left, and the read asks for no more than that.
                RC_ASSERT(bytes < s.max_bytes_in_flight);
                RC_ASSERT(d.byte_room == s.max_bytes_in_flight - bytes);
              } else {
                RC_ASSERT(d.byte_room >= 1);  // at least one event, whatever it holds
              }
              const auto found = *rc::gen::inRange(0, 100) < rows_pct
                                     ? *rc::gen::inRange<uint32_t>(1, d.limit + 1)
                                     : 0u;
              // The reader takes rows while they start within the byte room.
              uint32_t rows = 0;
              uint64_t taken = 0;
              while (rows < found && (rows == 0 || taken < d.byte_room)) {
                const auto n = *rc::gen::inRange<uint64_t>(1, max_row + 1);
                held.push_back(n);
                taken += n;
                ++rows;
              }
              const bool cut = rows < found;
              const bool running = *rc::gen::inRange(0, 100) < running_pct;
              in_flight += rows;
              bytes += taken;
              if (s.max_bytes_in_flight > 0) RC_ASSERT(bytes < s.max_bytes_in_flight + max_row);
              now += us(*rc::gen::inRange(0, 200));
              d = p.on_read(now, rows, cut ? rows : d.limit, running);
              RC_ASSERT(!p.degraded());
              RC_ASSERT(p.backoff() == ms(0));
              // Never sleep while transactions remembered as running may
              // still commit rows whose writers did not notify.
              if (running && !mark) RC_ASSERT(d.step != wakeup_step::try_sleep);
              if (rows > 0) RC_ASSERT(d.step == wakeup_step::read_after);
              break;
            }
            case wakeup_step::try_sleep: {
              RC_ASSERT(!mark);
              const bool granted = *rc::gen::arbitrary<bool>();
              if (granted) mark = true;
              d = p.on_try_sleep(granted);
              RC_ASSERT(d.step == wakeup_step::read_after);
              RC_ASSERT(!d.wake);
              break;
            }
            case wakeup_step::wait: {
              RC_ASSERT(mark);  // only asleep: otherwise writers do not notify
              RC_ASSERT(d.delay == us(s.poll_interval));
              const bool notified = *rc::gen::arbitrary<bool>();
              now += notified ? us(*rc::gen::inRange<int64_t>(0, d.delay.count() + 1)) : d.delay;
              d = p.on_wait(notified);
              RC_ASSERT(d.wake == notified);
              break;
            }
          }
        }
      };

      drive(p.on_due(bytes));  // the first read, sent by the node
      const int steps = *rc::gen::inRange(1, 200);
      for (int i = 0; i < steps; ++i) {
        const int op = *rc::gen::inRange(0, 40);
        if (op == 0) {
          p.on_stop();
          stopped = true;
        } else if (op < 10 && in_flight > 0) {
          const auto n = *rc::gen::inRange<uint64_t>(1, in_flight + 1);
          in_flight -= n;
          for (uint64_t k = 0; k < n; ++k) {
            bytes -= held.back();
            held.pop_back();
          }
          drive(p.on_credit(n));
        } else if (pending) {
          now = std::max(now, due_at);
          pending = false;
          drive(p.on_due(bytes));
        }
        RC_ASSERT(p.in_flight() == in_flight);
        RC_ASSERT(in_flight <= s.max_in_flight);
        RC_ASSERT(p.asleep() == mark);
        RC_ASSERT(p.read_pending() == pending);
        // Never stalls: a read is scheduled, or the window is full and a
        // credit will schedule one, or the listener stopped.
        RC_ASSERT(stopped || pending || p.waiting_credit());
        if (p.waiting_credit()) RC_ASSERT(in_flight == s.max_in_flight);
        // Waiting for bytes (events in flight held the budget) never stalls:
        // a re-check is scheduled.
        if (p.waiting_bytes() && !stopped) RC_ASSERT(pending);
      }
    });
    CHECK(ok);
  }
}
