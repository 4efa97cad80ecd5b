#include "actors/pipeline/listener.hpp"
#include "runtime/io/pg/change_log.hpp"
#include "runtime/io/pg/session.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <optional>

namespace fraiseql {

struct listener_state {
  static inline const char* name = "listener";
  std::optional<change_log_reader> reader;
  read_cursor cursor;           // what has been read (runtime/core/cursor.hpp)
  uint64_t next_seq = 1;        // sequence of the next event read
  uint64_t in_flight = 0;       // read and not yet credited back
  uint64_t read_total = 0;
  bool read_pending = false;    // a read_atom is queued
  bool waiting_credit = false;  // window full
  bool asleep = false;          // holds the wake-up mark (writers notify)
  bool stopped = false;
  bool degraded = false;        // last attempt failed (connection problem)
  bool idle = false;            // the last read was empty
  uint32_t idle_polls = 0;      // empty polls since idle
  uint32_t running_waits = 0;   // empty polls while running transactions may still commit rows
  bool last_batch_full = false; // the last read returned as many rows as asked
  std::chrono::steady_clock::time_point idle_since;
  std::chrono::milliseconds backoff{0};
};

listener_actor::behavior_type listener(listener_actor::stateful_pointer<listener_state> self,
                                       listener_options cfg, admission_sink checkpointer,
                                       router_actor router) {
  auto& st = self->state;
  st.reader.emplace(cfg.dsn);
  st.cursor = cfg.resume;
  auto schedule = [self](std::chrono::microseconds delay) {
    auto& st = self->state;
    if (st.read_pending || st.stopped) return;
    st.read_pending = true;
    if (delay.count() == 0)
      self->send(self, read_atom::value);
    else
      self->delayed_send(self, delay, read_atom::value);
  };
  // Blocks up to the poll interval for a NOTIFY, in slices, so that stop and
  // credit messages are not held back for a whole interval.
  auto sleep = [self, cfg]() -> bool {
    auto& st = self->state;
    auto deadline = std::chrono::steady_clock::now() + cfg.poll_interval;
    const auto slice = std::min<std::chrono::milliseconds>(cfg.poll_interval,
                                                           std::chrono::milliseconds(100));
    while (std::chrono::steady_clock::now() < deadline) {
      if (st.reader->wait(slice)) return true;
      if (!self->mailbox().empty()) return false;
    }
    return false;
  };
  return {
    [self, cfg, checkpointer, router, schedule, sleep](read_atom) {
      auto& st = self->state;
      st.read_pending = false;
      if (st.stopped) return;
      uint64_t room = cfg.max_in_flight > st.in_flight ? cfg.max_in_flight - st.in_flight : 0;
      if (room == 0) {
        st.waiting_credit = true;
        return;
      }
      try {
        auto limit = static_cast<uint32_t>(std::min<uint64_t>(room, cfg.batch_size));
        auto batch = st.reader->read(st.cursor, limit, st.next_seq);
        if (st.degraded) spdlog::info("listener: connected to the database again");
        if (st.degraded || st.read_total == 0)
          if (cfg.stats) cfg.stats->listener_health(true);
        st.degraded = false;
        st.backoff = std::chrono::milliseconds(0);
        if (!batch.empty()) {
          st.idle = false;
          st.running_waits = 0;
          st.last_batch_full = batch.size() >= limit;
          st.in_flight += batch.size();
          st.read_total += batch.size();
          if (cfg.stats) cfg.stats->events_read(batch.size());
          // Admission first: the checkpointer must know an event before anyone
          // can finish it.
          self->send(checkpointer, admit_atom::value, batch);
          self->send(router, route_atom::value, std::move(batch));
          if (st.asleep) {
            st.reader->wake();
            st.asleep = false;
          }
          // A full batch means a backlog: read on at once. A partial one means
          // we are caught up: give writers a moment so the next read returns a
          // batch instead of a row (fewer queries, same order, <= linger_poll added).
          schedule(st.last_batch_full ? std::chrono::microseconds(0) : cfg.linger_poll);
          return;
        }
        auto now = std::chrono::steady_clock::now();
        if (!st.asleep && !st.cursor.pending.empty()) {
          // Transactions seen running may have written rows before we were
          // last awake (so their writers did not notify): stay awake until
          // they end. Back off 1, 2, 4 ... 128 x linger_poll, so a transaction
          // left open for minutes (an idle psql session holding an xid) costs
          // a few queries a second, not thousands; its rows arrive within
          // 64 ms of its commit, and nobody else waits for it.
          st.idle = false;
          schedule(cfg.linger_poll * (1 << std::min<uint32_t>(st.running_waits++, 7)));
          return;
        }
        if (!st.idle) {
          st.idle = true;
          st.idle_since = now;
          st.idle_polls = 0;
        }
        if (!st.asleep && now - st.idle_since < cfg.idle_linger) {
          // Back off 1, 2, 4, ... linger_poll while idle: cheap when the
          // stream has really stopped, quick when it resumes.
          auto delay = cfg.linger_poll * (1 << std::min<uint32_t>(st.idle_polls++, 4));
          schedule(delay);
          return;
        }
        if (!st.asleep) {
          // Take the wake-up mark, then read once more before waiting: a
          // writer that committed after our empty read but saw "awake" did not
          // notify. Refused while a capture transaction runs (it did not
          // notify and may commit rows any moment): poll on with the same
          // backoff as for remembered running transactions above.
          if (!st.reader->try_sleep()) {
            schedule(cfg.linger_poll * (1 << std::min<uint32_t>(st.running_waits++, 7)));
            return;
          }
          st.asleep = true;
          schedule(std::chrono::milliseconds(0));
          return;
        }
        if (sleep()) {
          // Writers are active (they notified): be awake before reading, so
          // the next commits skip NOTIFY even if the fence still holds back
          // their rows.
          st.reader->wake();
          st.asleep = false;
          st.idle = false;
        }
        schedule(std::chrono::milliseconds(0));
      } catch (const pg_unavailable& e) {
        st.reader->reset();
        st.asleep = false;  // re-marked after reconnecting
        st.backoff = std::clamp(st.backoff * 2, cfg.min_backoff, cfg.max_backoff);
        if (!st.degraded)
          spdlog::warn("listener: database unavailable, retrying (backoff up to {} ms): {}",
                       cfg.max_backoff.count(), e.what());
        if (cfg.stats) cfg.stats->listener_health(false);
        st.degraded = true;
        schedule(st.backoff);
      } catch (const std::exception& e) {
        st.reader->reset();
        st.asleep = false;
        st.backoff = std::clamp(st.backoff * 2, cfg.min_backoff, cfg.max_backoff);
        spdlog::error("listener: read failed, retrying in {} ms: {}", st.backoff.count(),
                      e.what());
        if (cfg.stats) cfg.stats->listener_health(false);
        st.degraded = true;
        schedule(st.backoff);
      }
    },
    [self, schedule](credit_atom, uint64_t n) {
      auto& st = self->state;
      st.in_flight = n > st.in_flight ? 0 : st.in_flight - n;
      if (st.waiting_credit) {
        st.waiting_credit = false;
        schedule(std::chrono::milliseconds(0));
      }
    },
    [self](stop_atom) {
      self->state.stopped = true;
      return true;
    },
    [self](status_atom) {
      return std::make_tuple(self->state.in_flight, self->state.read_total);
    },
  };
}

listener_actor spawn_listener(caf::actor_system& sys, listener_options cfg, admission_sink checkpointer, router_actor router) {
  return sys.spawn<caf::detached>(listener, cfg, checkpointer, router);
}

}  // namespace fraiseql
