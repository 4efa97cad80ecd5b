#include "actors/history/history_writer.hpp"

#include "runtime/core/replay.hpp"
#include "runtime/io/pg/history_store.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include <map>
#include <optional>

namespace fraiseql {

namespace {

/// Consecutive failed chunks after which a request is marked failed.
constexpr int max_failures = 5;

struct task {
  bool replay = true;
  int64_t id = 0;
  uint32_t batch = 500;
  chunk_pacer pacer{500};  // sizes the chunks: runtime/core/replay.hpp
  int failures = 0;
  int conflicts = 0;  // consecutive ordering conflicts (backfill)
  std::chrono::steady_clock::time_point not_before{};
};

}  // namespace

struct history_writer_state {
  static inline const char* name = "history-writer";
  std::optional<history_store> store;
  /// Running requests by (replay?, id).
  std::map<std::pair<bool, int64_t>, task> tasks;
  std::chrono::steady_clock::time_point listed{};
  bool tick_pending = false;
};

using history_writer_pointer = history_writer_actor::stateful_pointer<history_writer_state>;

namespace {

void refresh(history_writer_pointer self, const history_writer_options& o) {
  auto& st = self->state;
  const auto now = std::chrono::steady_clock::now();
  if (!st.tasks.empty() && now - st.listed < o.idle_poll) return;
  st.listed = now;
  std::map<std::pair<bool, int64_t>, task> next;
  auto keep = [&](bool replay, int64_t id, uint32_t batch) {
    auto key = std::make_pair(replay, id);
    auto it = st.tasks.find(key);
    if (it != st.tasks.end()) {
      next.emplace(key, std::move(it->second));
      return;
    }
    task t;
    t.replay = replay;
    t.id = id;
    t.batch = batch;
    t.pacer = chunk_pacer(batch);
    spdlog::info("history: {} {} picked up", replay ? "replay" : "backfill", id);
    next.emplace(key, std::move(t));
  };
  for (auto id : st.store->running_replays(o.listener_id)) keep(true, id, o.replay_batch);
  // A backfill's chunks are bounded by its own --batch too (in the store).
  for (auto id : st.store->running_backfills()) keep(false, id, 100000);
  st.tasks = std::move(next);
}

/// Writes the chunks the pacer allows; true when some request is still running.
bool round(history_writer_pointer self, const history_writer_options& o, uint64_t in_flight,
           uint64_t finished) {
  auto& st = self->state;
  refresh(self, o);
  for (auto it = st.tasks.begin(); it != st.tasks.end();) {
    auto& t = it->second;
    const auto now = std::chrono::steady_clock::now();
    if (now < t.not_before || !t.pacer.may_write(in_flight, finished, now)) {
      ++it;
      continue;
    }
    const char* what = t.replay ? "replay" : "backfill";
    try {
      const auto rows = t.pacer.chunk_rows();
      auto r = t.replay ? st.store->replay_chunk(t.id, rows) : st.store->backfill_chunk(t.id, rows);
      t.failures = 0;
      if (!r.ran) {  // finished, failed, or another node holds it now
        it = st.tasks.erase(it);
        continue;
      }
      if (r.conflict) {
        // A concurrent writer of one of the chunk's rows: let it commit first.
        ++t.conflicts;
        t.not_before = now + std::chrono::milliseconds(std::min(200, 2 * t.conflicts));
        if (t.conflicts % 50 == 0)
          spdlog::warn(
              "history: backfill {}: chunk rolled back {} times in a row to keep per-entity "
              "order (rows under constant concurrent writes)",
              t.id, t.conflicts);
        ++it;
        continue;
      }
      t.conflicts = 0;
      if (r.done) {
        spdlog::info("history: {} {} done", what, t.id);
        it = st.tasks.erase(it);
        continue;
      }
      t.pacer.wrote(r.rows, finished, now);
      // The chunk is in flight now, as far as pacing knows.
      in_flight += r.rows;
      spdlog::debug("history: {} {}: chunk of {} rows written", what, t.id, r.rows);
    } catch (const pg_unavailable& e) {
      spdlog::debug("history: {} {}: database unavailable: {}", what, t.id, e.what());
      t.not_before = now + std::chrono::seconds(1);
    } catch (const std::exception& e) {
      // Deadlocks with concurrent writers, a table altered meanwhile: try
      // again a few times, then give up on the request, saying why.
      ++t.failures;
      spdlog::warn("history: {} {}: chunk failed ({} of {}): {}", what, t.id, t.failures,
                   max_failures, e.what());
      if (t.failures >= max_failures) {
        try {
          if (t.replay)
            st.store->fail_replay(t.id, e.what());
          else
            st.store->fail_backfill(t.id, e.what());
          spdlog::error("history: {} {} failed: {}", what, t.id, e.what());
        } catch (const std::exception& e2) {
          spdlog::warn("history: {} {}: cannot record the failure: {}", what, t.id, e2.what());
        }
        it = st.tasks.erase(it);
        continue;
      }
      t.not_before = now + std::chrono::milliseconds(200 * t.failures);
    }
    ++it;
  }
  return !st.tasks.empty();
}

history_writer_actor::behavior_type history_writer(history_writer_pointer self,
                                                   history_writer_options o) {
  self->state.store.emplace(o.dsn);
  self->send(self, tick_atom::value);
  return {
      [self, o](tick_atom) {
        auto next = [self, o](bool busy) {
          self->delayed_send(self, busy ? std::chrono::milliseconds(2) : o.idle_poll,
                             tick_atom::value);
        };
        auto go = [self, o, next](uint64_t in_flight, uint64_t finished) {
          bool busy = false;
          try {
            busy = round(self, o, in_flight, finished);
          } catch (const pg_unavailable& e) {
            spdlog::debug("history: database unavailable: {}", e.what());
          } catch (const std::exception& e) {
            spdlog::warn("history: cannot list replays and backfills: {}", e.what());
          }
          next(busy);
        };
        if (self->state.tasks.empty() &&
            std::chrono::steady_clock::now() - self->state.listed < o.idle_poll) {
          next(false);
          return;
        }
        if (!o.checkpointer) {
          go(0, 0);
          return;
        }
        self->request(o.checkpointer, std::chrono::seconds(5), status_atom::value)
            .then([go](uint64_t in_flight, uint64_t finished) { go(in_flight, finished); },
                  [next](const caf::error&) { next(false); });
      },
  };
}

}  // namespace

history_writer_actor spawn_history_writer(caf::actor_system& sys, history_writer_options o) {
  return sys.spawn<caf::detached>(history_writer, std::move(o));
}

}  // namespace fraiseql
