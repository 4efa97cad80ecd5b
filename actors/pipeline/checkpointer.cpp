#include "actors/pipeline/checkpointer.hpp"

#include "messages/checkpoint.hpp"
#include "runtime/core/checkpoint_sink.hpp"
#include "runtime/core/watermark.hpp"
#include "runtime/io/pg/checkpoint_store.hpp"
#include "runtime/io/pg/lease.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>
#include <thread>

#include <optional>

namespace fraiseql {

struct checkpointer_state {
  static inline const char* name = "checkpointer";
  std::optional<watermark_tracker> tracker;
  std::shared_ptr<checkpoint_sink> store;
  checkpoint_record saved;
  uint64_t base_total = 0;  // events_total of the resumed checkpoint
  uint64_t unsaved = 0;     // finished into the watermark since the last save
  uint64_t credits = 0;     // finished events not yet credited to the listener
  credit_sink listener;     // learnt by the wiring message
  uint64_t credit_batch = 1;
  std::chrono::steady_clock::time_point last_save = std::chrono::steady_clock::now();
  bool save_failing = false;
  std::chrono::steady_clock::time_point last_renew = std::chrono::steady_clock::now();
  bool renew_failing = false;
  bool lease_expired = false;  // the local deadline passed without a renewal
  uint64_t ticks = 0;

  checkpoint_record current() const {
    const auto& c = tracker->cursor();
    return {c.pos, base_total + tracker->finished_total(), c.pending};
  }
};

namespace {

std::chrono::milliseconds tick_period(const checkpointer_options& cfg) {
  return cfg.lease ? std::min(cfg.interval, cfg.renew_interval) : cfg.interval;
}

/// Renews the lease when due. Throws fenced_out when another node took over.
/// While the database cannot be reached the node keeps trying: once the
/// lease's deadline has passed, the action pool starts nothing (a standby may
/// lead by then), and a later renewal either finds the epoch unchanged (nobody
/// took over: leading resumes) or refused (this node stops).
void keep_lease(checkpointer_state& st, const checkpointer_options& cfg) {
  const auto now = std::chrono::steady_clock::now();
  if (now - st.last_renew >= cfg.renew_interval) {
    st.last_renew = now;
    switch (cfg.lease->renew()) {
      case leader_lease::status::lost: {
        fenced_out e("lost the leader lease of listener '" + cfg.listener_id +
                     "': another node leads now");
        spdlog::critical("checkpointer: {}", e.what());
        throw e;
      }
      case leader_lease::status::unknown:
        if (!st.renew_failing)
          spdlog::warn(
              "checkpointer: cannot renew the leader lease of listener '{}' (database "
              "unreachable); once it expires this node starts no action until a renewal "
              "succeeds",
              cfg.listener_id);
        st.renew_failing = true;
        break;
      case leader_lease::status::held:
        if (st.renew_failing) spdlog::info("checkpointer: renewing the leader lease works again");
        st.renew_failing = false;
        break;
    }
  }
  const bool valid = cfg.lease->deadline()->valid(std::chrono::steady_clock::now());
  if (!valid && !st.lease_expired)
    spdlog::warn(
        "checkpointer: the leader lease of listener '{}' expired before it could be "
        "renewed: no action starts until a renewal succeeds (another node may lead now)",
        cfg.listener_id);
  else if (valid && st.lease_expired)
    spdlog::info("checkpointer: the leader lease of listener '{}' is renewed: nobody took over",
                 cfg.listener_id);
  st.lease_expired = !valid;
}

}  // namespace

checkpointer_actor::behavior_type checkpointer(
    checkpointer_actor::stateful_pointer<checkpointer_state> self, checkpointer_options cfg) {
  auto& st = self->state;
  st.tracker.emplace(cfg.resume.pos, 1, cfg.resume.pending);
  st.store = cfg.sink ? cfg.sink : std::make_shared<checkpoint_store>(cfg.dsn, cfg.listener_id);
  st.saved = cfg.resume;
  st.base_total = cfg.resume.events_total;
  st.credit_batch = std::max<uint64_t>(1, std::min<uint64_t>(256, cfg.max_in_flight / 4));
  // Saves the watermark if it moved; failures keep it dirty and are retried on
  // the next tick (the database may be restarting).
  auto save = [self, cfg](bool force) {
    auto& st = self->state;
    auto rec = st.current();
    if (rec.cursor() == st.saved.cursor() && !force) return;
    if (cfg.dry_run) {
      st.saved = rec;
      st.unsaved = 0;
      return;
    }
    try {
      st.store->save(rec);
      st.saved = rec;
      if (cfg.stats) cfg.stats->checkpoint_position(rec.pos.txid, rec.pos.pk);
      st.unsaved = 0;
      st.last_save = std::chrono::steady_clock::now();
      if (st.save_failing) spdlog::info("checkpointer: saving works again");
      st.save_failing = false;
    } catch (const fenced_out& e) {
      spdlog::critical("checkpointer: {}", e.what());
      throw;  // another node leads now: this one must stop (see node watchdog)
    } catch (const std::exception& e) {
      if (!st.save_failing)
        spdlog::warn("checkpointer: cannot save checkpoint (will retry): {}", e.what());
      st.save_failing = true;
    }
  };
  // Without a sink yet, credits wait (they are never dropped).
  auto flush_credits = [self] {
    auto& st = self->state;
    if (st.credits > 0 && st.listener) {
      self->send(st.listener, credit_atom::value, st.credits);
      st.credits = 0;
    }
  };
  // Fenced out (another node leads): the actor ends with that reason, which
  // the node's watchdog logs before it exits; not CAF's "unhandled exception".
  self->set_exception_handler([](caf::scheduled_actor*, std::exception_ptr& ep) -> caf::error {
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      return caf::make_error(caf::sec::runtime_error, e.what());
    } catch (...) {
      return caf::make_error(caf::sec::runtime_error, "unknown exception");
    }
  });
  self->delayed_send(self, tick_period(cfg), tick_atom::value);
  return {
      [self](admit_atom, const event_batch& batch) {
        for (const auto& ev : batch) self->state.tracker->admit(ev->seq, ev->pos, ev->cursor);
      },
      [self, cfg, save, flush_credits](finish_atom, const std::vector<uint64_t>& seqs) {
        auto& st = self->state;
        auto before = st.tracker->finished_total();
        for (auto seq : seqs) st.tracker->finish(seq);
        st.unsaved += st.tracker->finished_total() - before;
        st.credits += seqs.size();
        if (st.credits >= st.credit_batch) flush_credits();
        if (st.unsaved >= cfg.batch_size) save(false);
      },
      [self, flush_credits](credit_sink& listener) {
        self->state.listener = std::move(listener);
        flush_credits();
      },
      [self, cfg, save, flush_credits](tick_atom) {
        auto& st = self->state;
        if (cfg.lease) keep_lease(st, cfg);
        flush_credits();
        // With a lease, ticks may come faster (every renew_interval): save at
        // the configured pace, every ticks_per_save-th tick.
        const auto ticks_per_save = std::max<int64_t>(1, cfg.interval / tick_period(cfg));
        if (++st.ticks % ticks_per_save == 0) save(false);
        if (cfg.stats) {
          cfg.stats->backlog(st.tracker->in_flight());
          bool pending = st.tracker->cursor() != st.saved.cursor() || st.tracker->in_flight() > 0;
          cfg.stats->checkpoint_age(pending ? std::chrono::duration<double>(
                                                  std::chrono::steady_clock::now() - st.last_save)
                                                  .count()
                                            : 0.0);
        }
        self->delayed_send(self, tick_period(cfg), tick_atom::value);
      },
      [self, save, flush_credits](flush_atom) -> checkpoint_record {
        flush_credits();
        save(false);
        // The last save of a stopping node: a connection lost in an outage
        // that just ended may not be back yet (seen in a test: the final save
        // failed while the lease, on its own connection, was renewed). Try
        // again for a few seconds before giving up: what is not saved is
        // delivered again after the restart, never lost, but a clean stop
        // should not cause that.
        auto& st = self->state;
        auto unsaved = [&st] {
          return st.save_failing && st.current().cursor() != st.saved.cursor();
        };
        for (int i = 0; i < 50 && unsaved(); ++i) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          save(false);
        }
        if (unsaved())
          spdlog::error(
              "checkpointer: the final checkpoint could not be saved; events after txid {} pk {} "
              "are delivered again after the restart",
              st.saved.pos.txid, st.saved.pos.pk);
        return st.saved;
      },
      [self](status_atom) {
        return std::make_tuple(static_cast<uint64_t>(self->state.tracker->in_flight()),
                               self->state.tracker->finished_total());
      },
  };
}

checkpointer_actor spawn_checkpointer(caf::actor_system& sys, checkpointer_options cfg) {
  if (cfg.detached) return sys.spawn<caf::detached>(checkpointer, cfg);
  return sys.spawn(checkpointer, cfg);
}

}  // namespace fraiseql
