#include "actors/pipeline/listener.hpp"
#include "runtime/core/wakeup.hpp"
#include "runtime/io/pg/change_log.hpp"
#include "runtime/io/pg/session.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <optional>

namespace fraiseql {

namespace {

wakeup_settings wakeup_settings_of(const listener_options& cfg) {
  wakeup_settings s;
  s.batch_size = cfg.batch_size;
  s.max_in_flight = cfg.max_in_flight;
  s.max_bytes_in_flight = cfg.max_bytes_in_flight;
  s.linger_poll = cfg.linger_poll;
  s.idle_linger = cfg.idle_linger;
  s.poll_interval = cfg.poll_interval;
  s.min_backoff = cfg.min_backoff;
  s.max_backoff = cfg.max_backoff;
  return s;
}

}  // namespace

// The actor performs I/O and follows the wake-up policy (runtime/core/wakeup.hpp):
// every decision about when to read, sleep or wake is the policy's.
struct listener_state {
  static inline const char* name = "listener";
  std::optional<change_log_reader> reader;
  std::optional<wakeup_policy> policy;
  read_cursor cursor;     // what has been read (runtime/core/cursor.hpp)
  uint64_t next_seq = 1;  // sequence of the next event read
  uint64_t read_total = 0;
  std::shared_ptr<byte_budget> budget;
  /// Footprint per row-body byte of recent events (how much a byte read
  /// holds once it is an event); starts at 3, follows the reads.
  double footprint_ratio = 3.0;
  uint64_t largest_row = 0;  // largest row body read so far
};

namespace {

/// Body bytes a read may transfer for `byte_room` of budget: the room over
/// the footprint ratio, at most an eighth of the budget (at least 64 KiB).
uint64_t body_room(uint64_t byte_room, double ratio, uint64_t budget) {
  if (budget == 0) return byte_room;
  auto room = static_cast<uint64_t>(static_cast<double>(byte_room) / std::max(ratio, 1.0));
  room = std::min(room, std::max<uint64_t>(budget / 8, 64 * 1024));
  return std::max<uint64_t>(room, 1);
}

}  // namespace

listener_actor::behavior_type listener(listener_actor::stateful_pointer<listener_state> self,
                                       listener_options cfg, admission_sink checkpointer,
                                       router_actor router) {
  auto& st = self->state;
  st.reader.emplace(cfg.dsn);
  st.policy.emplace(wakeup_settings_of(cfg));
  st.cursor = cfg.resume;
  st.budget = cfg.budget ? cfg.budget : std::make_shared<byte_budget>(cfg.max_bytes_in_flight);
  // Blocks up to `timeout` for a NOTIFY, in slices, so that stop and credit
  // messages are not held back for a whole poll interval.
  auto wait = [self, stats = cfg.stats](std::chrono::microseconds timeout) -> bool {
    auto& st = self->state;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const auto slice = std::min<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(timeout),
        std::chrono::milliseconds(100));
    while (std::chrono::steady_clock::now() < deadline) {
      if (st.reader->wait(slice)) return true;
      if (!self->mailbox().empty()) return false;
      // Events finish while the listener sleeps: keep the gauge current.
      if (stats) stats->bytes_in_flight(st.budget->in_use());
    }
    return false;
  };
  auto schedule = [self](std::chrono::microseconds delay) {
    if (delay.count() == 0)
      self->send(self, read_atom::value);
    else
      self->delayed_send(self, delay, read_atom::value);
  };
  // Reads once, hands the rows on, returns the policy's next decision.
  auto read = [self, stats = cfg.stats, checkpointer, router,
               budget_limit = cfg.max_bytes_in_flight, max_event = cfg.max_event_bytes](
                  uint32_t limit, uint64_t byte_room) -> wakeup_decision {
    auto& st = self->state;
    read_bounds bounds;
    bounds.max_bytes = body_room(byte_room, st.footprint_ratio, budget_limit);
    bounds.max_event_bytes = max_event;
    read_stats rs;
    auto batch = st.reader->read(st.cursor, limit, st.next_seq, bounds, &rs);
    const bool degraded = st.policy->degraded();
    if (degraded) spdlog::info("listener: connected to the database again");
    if (degraded || st.read_total == 0)
      if (stats) stats->listener_health(true);
    const auto rows = static_cast<uint32_t>(batch.size());
    if (rows > 0) {
      st.read_total += rows;
      uint64_t body = 0, held = 0;
      for (auto& ev : batch) {
        if (ev->oversize_limit == 0) {
          body += ev->row_bytes;
          held += ev->footprint;
        }
        st.largest_row = std::max(st.largest_row, ev->row_bytes);
        ev = charge_event(std::move(ev), st.budget);
      }
      // Large batches say best what a body byte costs once it is an event.
      if (body >= 64 * 1024)
        st.footprint_ratio = static_cast<double>(held) / static_cast<double>(body);
      if (stats) {
        stats->events_read(rows);
        stats->largest_event(st.largest_row);
        stats->bytes_in_flight(st.budget->in_use());
      }
      // Admission first: the checkpointer must know an event before anyone
      // can finish it.
      self->send(checkpointer, admit_atom::value, batch);
      self->send(router, route_atom::value, std::move(batch));
    }
    // A read the byte room ended is a full one: more rows are waiting.
    return st.policy->on_read(std::chrono::steady_clock::now(), rows,
                              rs.cut_by_bytes ? rows : std::min(limit, rs.rows_asked),
                              !st.cursor.pending.empty());
  };
  // A database call failed: a fresh connection (the mark ends with the old
  // session) after the policy's backoff.
  auto failed = [self, stats = cfg.stats, max_backoff = cfg.max_backoff, schedule](
                    const std::exception& e, bool unavailable) {
    auto& st = self->state;
    st.reader->reset();
    const bool first = !st.policy->degraded();
    auto d = st.policy->on_error();
    if (!unavailable)
      spdlog::error("listener: read failed, retrying in {} ms: {}", st.policy->backoff().count(),
                    e.what());
    else if (first)
      spdlog::warn("listener: database unavailable, retrying (backoff up to {} ms): {}",
                   max_backoff.count(), e.what());
    if (stats) stats->listener_health(false);
    if (d.step == wakeup_step::read_after) schedule(d.delay);
  };
  // Performs the steps the policy decides until it schedules a read or waits
  // for a message.
  auto follow = [self, schedule, wait, read, failed](wakeup_decision d) {
    auto& st = self->state;
    try {
      for (;;) {
        if (d.wake) st.reader->wake();
        switch (d.step) {
          case wakeup_step::none:
            return;
          case wakeup_step::read_after:
            schedule(d.delay);
            return;
          case wakeup_step::read:
            d = read(d.limit, d.byte_room);
            break;
          case wakeup_step::try_sleep:
            d = st.policy->on_try_sleep(st.reader->try_sleep());
            break;
          case wakeup_step::wait:
            d = st.policy->on_wait(wait(d.delay));
            break;
        }
      }
    } catch (const pg_unavailable& e) {
      failed(e, true);
    } catch (const std::exception& e) {
      failed(e, false);
    }
  };
  return {
      [self, follow, stats = cfg.stats](read_atom) {
        auto& st = self->state;
        if (stats) stats->bytes_in_flight(st.budget->in_use());
        follow(st.policy->on_due(st.budget->in_use()));
      },
      [self, follow, stats = cfg.stats](credit_atom, uint64_t n) {
        auto& st = self->state;
        if (stats) stats->bytes_in_flight(st.budget->in_use());
        follow(st.policy->on_credit(n));
      },
      [self](stop_atom) {
        self->state.policy->on_stop();
        return true;
      },
      [self](status_atom) {
        return std::make_tuple(self->state.policy->in_flight(), self->state.read_total);
      },
  };
}

listener_actor spawn_listener(caf::actor_system& sys, listener_options cfg,
                              admission_sink checkpointer, router_actor router) {
  return sys.spawn<caf::detached>(listener, cfg, checkpointer, router);
}

}  // namespace fraiseql
