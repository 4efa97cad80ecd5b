#include "actors/history/pruner.hpp"

#include "runtime/io/pg/retention.hpp"
#include "runtime/ops/metrics.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include <optional>
#include <thread>

namespace fraiseql {

namespace {

/// A blocked pruning is reported at most this often.
constexpr auto report_every = std::chrono::hours(1);

}  // namespace

struct pruner_state {
  static inline const char* name = "pruner";
  std::optional<change_log_retention> store;
  std::chrono::steady_clock::time_point reported{};
  bool reported_once = false;
};

using pruner_pointer = pruner_actor::stateful_pointer<pruner_state>;

namespace {

void round(pruner_pointer self, const pruner_options& o) {
  auto& st = self->state;
  auto& store = *st.store;
  const auto cut = change_log_cutoff(store.checkpoints());
  uint64_t deleted = 0;
  if (o.prune && cut) {
    const auto until = std::chrono::steady_clock::now() + o.max_round;
    while (std::chrono::steady_clock::now() < until) {
      const auto r = store.prune(*cut, o.retention, o.batch_size);
      if (!r.locked) break;  // another node's pruner is at it
      deleted += r.deleted;
      if (o.stats) o.stats->change_log_pruned(r.deleted);
      // Done: the head was short (nothing more below the cutoff) or held a
      // row still inside the retention period.
      if (r.examined < o.batch_size || r.deleted < r.examined) break;
      std::this_thread::sleep_for(o.pause);
    }
  }
  const auto f = store.figures();
  const double retention_s = static_cast<double>(o.retention.count());
  const double overdue =
      o.prune && f.oldest_age_seconds ? std::max(0.0, *f.oldest_age_seconds - retention_s) : 0.0;
  if (o.stats)
    o.stats->change_log_figures(f.rows_estimate, f.bytes, f.oldest_age_seconds.value_or(0),
                                overdue);
  if (deleted > 0)
    spdlog::debug("change log: pruned {} rows below txid {} (older than {} s)", deleted, cut->txid,
                  o.retention.count());
  // Rows past the retention period an hour after it ended: say who holds them.
  const auto now = std::chrono::steady_clock::now();
  if (overdue > 3600 && (!st.reported_once || now - st.reported > report_every)) {
    st.reported = now;
    st.reported_once = true;
    if (!cut) {
      spdlog::warn(
          "change log: the oldest row is {:.0f} h old, past the retention period, and no "
          "checkpoint exists yet: nothing can be pruned before a listener has saved one",
          *f.oldest_age_seconds / 3600);
      return;
    }
    if (cut->held_by == o.listener_id) {
      spdlog::warn(
          "change log: rows {:.0f} h past the retention period remain because this node's "
          "listener '{}' has not finished them (backlog, retries or a stalled action; see "
          "observerctl status)",
          overdue / 3600, o.listener_id);
      return;
    }
    const auto age = store.checkpoint_age_seconds(cut->held_by);
    spdlog::warn(
        "change log: rows {:.0f} h past the retention period remain; the checkpoint of "
        "listener '{}' (txid {}, saved {}) holds pruning back. If that listener no longer "
        "runs, remove it: DELETE FROM observer_checkpoints WHERE listener_id = '{}'",
        overdue / 3600, cut->held_by, cut->txid,
        age ? fmt::format("{:.0f} s ago", *age) : std::string("never"), cut->held_by);
  }
}

pruner_actor::behavior_type pruner(pruner_pointer self, pruner_options o) {
  self->state.store.emplace(o.dsn);
  self->send(self, tick_atom::value);
  return {
      [self, o](tick_atom) {
        try {
          round(self, o);
        } catch (const pg_unavailable& e) {
          spdlog::debug("change log: pruning skipped, database unavailable: {}", e.what());
        } catch (const std::exception& e) {
          spdlog::warn("change log: pruning failed (next round in {} ms): {}", o.interval.count(),
                       e.what());
        }
        // Only its own timer keeps rounds going; a tick from elsewhere is one more round.
        if (self->current_sender().get() == self->ctrl())
          self->delayed_send(self, o.interval, tick_atom::value);
      },
  };
}

}  // namespace

pruner_actor spawn_pruner(caf::actor_system& sys, pruner_options o) {
  return sys.spawn<caf::detached>(pruner, std::move(o));
}

}  // namespace fraiseql
