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
};

listener_actor::behavior_type listener(listener_actor::stateful_pointer<listener_state> self,
                                       listener_options cfg, admission_sink checkpointer,
                                       router_actor router) {
  auto& st = self->state;
  st.reader.emplace(cfg.dsn);
  st.policy.emplace(wakeup_settings_of(cfg));
  st.cursor = cfg.resume;
  // Blocks up to `timeout` for a NOTIFY, in slices, so that stop and credit
  // messages are not held back for a whole poll interval.
  auto wait = [self](std::chrono::microseconds timeout) -> bool {
    auto& st = self->state;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const auto slice = std::min<std::chrono::milliseconds>(
        std::chrono::duration_cast<std::chrono::milliseconds>(timeout),
        std::chrono::milliseconds(100));
    while (std::chrono::steady_clock::now() < deadline) {
      if (st.reader->wait(slice)) return true;
      if (!self->mailbox().empty()) return false;
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
  auto read = [self, stats = cfg.stats, checkpointer, router](uint32_t limit) -> wakeup_decision {
    auto& st = self->state;
    auto batch = st.reader->read(st.cursor, limit, st.next_seq);
    const bool degraded = st.policy->degraded();
    if (degraded) spdlog::info("listener: connected to the database again");
    if (degraded || st.read_total == 0)
      if (stats) stats->listener_health(true);
    const auto rows = static_cast<uint32_t>(batch.size());
    if (rows > 0) {
      st.read_total += rows;
      if (stats) stats->events_read(rows);
      // Admission first: the checkpointer must know an event before anyone
      // can finish it.
      self->send(checkpointer, admit_atom::value, batch);
      self->send(router, route_atom::value, std::move(batch));
    }
    return st.policy->on_read(std::chrono::steady_clock::now(), rows, limit,
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
            d = read(d.limit);
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
      [self, follow](read_atom) { follow(self->state.policy->on_due()); },
      [self, follow](credit_atom, uint64_t n) { follow(self->state.policy->on_credit(n)); },
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
