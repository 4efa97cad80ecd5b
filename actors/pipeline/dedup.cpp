#include "actors/pipeline/dedup.hpp"
#include "runtime/core/dedup.hpp"
#include "runtime/core/outage.hpp"
#include "runtime/core/redis_url.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include <deque>
#include <unordered_map>
#include <utility>

namespace fraiseql {

namespace {

enum class claim_state : uint8_t {
  unclaimed,  // not asked yet, or busy (another worker holds it): ask again
  claimed,    // ours: run it, then confirm
  done,       // done within the window: skip
  bypassed    // Redis unavailable, fail-open: run it without a claim
};

struct waiting_event {
  event_ptr ev;
  std::vector<uint32_t> observers;
  claim_state st = claim_state::unclaimed;
};

struct running_event {
  std::string id;
  bool claimed = false;  // false: bypassed (no claim to extend)
};

}  // namespace

struct dedup_state {
  static inline const char* name = "dedup";
  using pointer = dedup_actor::stateful_pointer<dedup_state>;

  pointer self = nullptr;
  dedup_options cfg;
  run_sink pool;  // learnt by the wiring message
  finish_sink checkpointer;
  /// Events in arrival order. They go to the pool strictly in this order, so
  /// a busy event holds back the ones behind it: per-entity ordering survives
  /// a contended claim (for at most claim_ttl, when its holder died).
  std::deque<waiting_event> waiting;
  /// Handed to the pool, not finished yet.
  std::unordered_map<uint64_t, running_event> in_pool;
  /// Finished, confirm not yet written (fail-closed during an outage).
  std::vector<uint64_t> held_confirms;
  std::unordered_map<uint64_t, std::string> held_ids;
  bool flush_scheduled = false;
  std::chrono::steady_clock::time_point last_extend = std::chrono::steady_clock::now();
  std::unique_ptr<redis_outage_tracker> tracker;
  uint64_t claimed_total = 0;
  /// Fail-closed: delay before a failed claim batch is tried again (grows
  /// during an outage, per redis_outage_tracker).
  std::chrono::milliseconds retry_after{100};

  /// Applies the failure policy after a Redis call failed; true: go on
  /// without Redis (fail-open).
  bool on_failure(const char* what, const std::exception& e, size_t events) {
    const bool unavailable = dynamic_cast<const redis_unavailable*>(&e) != nullptr;
    if (cfg.stats) {
      cfg.stats->redis_unavailable();
      cfg.stats->redis_health(false);
    }
    auto d = tracker->on_unavailable(std::chrono::steady_clock::now());
    retry_after = d.retry_after;
    if (d.log) {
      if (tracker->policy() == redis_failure_policy::fail_open)
        spdlog::warn(
            "dedup: {} of {} events failed ({}): {}; fail-open: running them without "
            "dedup",
            what, events, unavailable ? "Redis unavailable" : "Redis error", e.what());
      else
        spdlog::warn(
            "dedup: {} of {} events failed ({}): {}; fail-closed: holding them, retry "
            "in {} ms",
            what, events, unavailable ? "Redis unavailable" : "Redis error", e.what(),
            d.retry_after.count());
    }
    return tracker->policy() == redis_failure_policy::fail_open;
  }

  void on_redis_ok() {
    if (tracker->on_success()) {
      spdlog::info("dedup: Redis answers again (Redis connected; {} outages so far)",
                   tracker->outages_total());
      if (cfg.stats) cfg.stats->redis_health(true);
    }
  }

  void schedule_flush(std::chrono::milliseconds delay) {
    if (flush_scheduled) return;
    flush_scheduled = true;
    if (delay.count() == 0)
      self->send(self, flush_atom::value);
    else
      self->delayed_send(self, delay, flush_atom::value);
  }

  void run(const event_ptr& ev, std::vector<uint32_t> observers) {
    waiting.push_back(waiting_event{ev, std::move(observers), claim_state::unclaimed});
    // Behind the run messages already queued: a burst becomes one claim batch.
    schedule_flush(std::chrono::milliseconds(0));
  }

  void flush() {
    flush_scheduled = false;
    claim_waiting();
    dispatch();
  }

  void claim_waiting() {
    std::vector<size_t> idx;
    std::vector<std::string> ids;
    for (size_t i = 0; i < waiting.size(); ++i) {
      if (waiting[i].st != claim_state::unclaimed) continue;
      idx.push_back(i);
      ids.push_back(dedup_identity(*waiting[i].ev));
    }
    if (ids.empty()) return;
    std::vector<claim_status> res;
    try {
      res = cfg.store->claim(ids, cfg.owner, cfg.claim_ttl);
    } catch (const std::exception& e) {
      if (on_failure("claiming", e, ids.size())) {
        for (auto i : idx) waiting[i].st = claim_state::bypassed;
        if (cfg.stats) cfg.stats->dedup_bypassed(idx.size());
      } else {
        // Fail-closed: nothing runs; the listener stops reading once the
        // in-flight window is full.
        schedule_flush(std::max(retry_after, std::chrono::milliseconds(1)));
      }
      return;
    }
    on_redis_ok();
    uint64_t hits = 0, misses = 0, busy = 0;
    for (size_t k = 0; k < idx.size(); ++k) {
      auto& w = waiting[idx[k]];
      switch (res[k]) {
        case claim_status::claimed:
          w.st = claim_state::claimed;
          ++misses;
          break;
        case claim_status::done:
          w.st = claim_state::done;
          ++hits;
          spdlog::debug("dedup: event {} already done, skipped", w.ev->id);
          break;
        case claim_status::busy:
          ++busy;
          break;
      }
    }
    claimed_total += misses;
    if (cfg.stats) {
      if (hits) cfg.stats->dedup_hits(hits);
      if (misses) cfg.stats->dedup_misses(misses);
      if (busy) cfg.stats->dedup_busy(busy);
    }
    if (busy)
      spdlog::debug("dedup: {} events claimed by another worker; retrying in {} ms", busy,
                    cfg.retry_interval.count());
  }

  /// Hands the resolved prefix of `waiting` to the pool, finishing done ones.
  /// Before the pool is known (wiring), everything waits.
  void dispatch() {
    if (!pool) return;
    std::vector<uint64_t> skipped;
    while (!waiting.empty() && waiting.front().st != claim_state::unclaimed) {
      auto w = std::move(waiting.front());
      waiting.pop_front();
      if (w.st == claim_state::done) {
        skipped.push_back(w.ev->seq);
        continue;
      }
      in_pool[w.ev->seq] = running_event{dedup_identity(*w.ev), w.st == claim_state::claimed};
      self->send(pool, run_atom::value, w.ev, std::move(w.observers));
    }
    if (!skipped.empty()) self->send(checkpointer, finish_atom::value, std::move(skipped));
  }

  void finish(std::vector<uint64_t> seqs) {
    for (auto s : seqs) {
      auto it = in_pool.find(s);
      if (it == in_pool.end()) continue;  // not claimed here: passed on as is
      held_ids[s] = std::move(it->second.id);
      in_pool.erase(it);
    }
    held_confirms.insert(held_confirms.end(), seqs.begin(), seqs.end());
    confirm_held();
  }

  /// Marks finished events done, then lets the checkpointer pass them: a
  /// crash after this point redelivers them only to find them done.
  void confirm_held() {
    if (held_confirms.empty()) return;
    std::vector<std::string> ids;
    ids.reserve(held_confirms.size());
    for (auto s : held_confirms) {
      auto it = held_ids.find(s);
      if (it != held_ids.end()) ids.push_back(it->second);
    }
    if (!ids.empty()) {
      try {
        auto res = cfg.store->confirm_all(ids, cfg.owner);
        on_redis_ok();
        uint64_t lost = 0;
        for (size_t k = 0; k < res.size(); ++k) {
          if (res[k] != confirm_status::lost) continue;
          ++lost;
          spdlog::warn(
              "dedup: event {} was claimed by another worker while it ran here: it may "
              "have run twice (raise [redis] claim_ttl_secs)",
              ids[k]);
        }
        if (lost && cfg.stats) cfg.stats->dedup_lost(lost);
      } catch (const std::exception& e) {
        if (!on_failure("confirming", e, ids.size())) return;  // fail-closed: held, retried on tick
        // Fail-open: the claim expires by itself; a redelivery may run it again.
      }
    }
    for (auto s : held_confirms) held_ids.erase(s);
    self->send(checkpointer, finish_atom::value, std::exchange(held_confirms, {}));
  }

  void extend_claims() {
    std::vector<std::string> ids;
    for (const auto& w : waiting)
      if (w.st == claim_state::claimed) ids.push_back(dedup_identity(*w.ev));
    for (const auto& [seq, r] : in_pool)
      if (r.claimed) ids.push_back(r.id);
    if (ids.empty()) return;
    try {
      auto res = cfg.store->extend(ids, cfg.owner, cfg.claim_ttl);
      on_redis_ok();
      for (size_t k = 0; k < res.size(); ++k)
        if (!res[k])
          spdlog::warn("dedup: claim of event {} expired while held (Redis stalled or restarted?)",
                       ids[k]);
    } catch (const std::exception& e) {
      on_failure("extending claims", e, ids.size());
    }
  }

  void tick() {
    auto now = std::chrono::steady_clock::now();
    if (now - last_extend >= cfg.claim_ttl / 3) {
      last_extend = now;
      extend_claims();
    }
    if (!flush_scheduled && !waiting.empty() && waiting.front().st == claim_state::unclaimed)
      flush();
    confirm_held();
    if (tracker->in_outage() && cfg.probe) {
      try {
        cfg.probe();
        on_redis_ok();
      } catch (const std::exception&) {
        // Still down: the calls above already counted and logged it.
      }
    }
    self->delayed_send(self, cfg.retry_interval, tick_atom::value);
  }

  /// Graceful stop: the claims of unfinished events are released, so that
  /// whoever gets them next need not wait for claim_ttl.
  void release_all() {
    std::vector<std::string> ids;
    for (const auto& w : waiting)
      if (w.st == claim_state::claimed) ids.push_back(dedup_identity(*w.ev));
    for (const auto& [seq, r] : in_pool)
      if (r.claimed) ids.push_back(r.id);
    if (ids.empty()) return;
    try {
      cfg.store->release_all(ids, cfg.owner);
      spdlog::info("dedup: released the claims of {} unfinished events", ids.size());
    } catch (const std::exception& e) {
      spdlog::warn("dedup: could not release {} claims ({}); they expire within {} ms", ids.size(),
                   e.what(), cfg.claim_ttl.count());
    }
  }
};

dedup_actor::behavior_type dedup(dedup_actor::stateful_pointer<dedup_state> self, dedup_options cfg,
                                 finish_sink checkpointer) {
  auto& st = self->state;
  st.self = self;
  st.cfg = std::move(cfg);
  st.checkpointer = std::move(checkpointer);
  st.tracker = std::make_unique<redis_outage_tracker>(st.cfg.policy);
  if (st.cfg.stats) st.cfg.stats->redis_health(true);
  self->delayed_send(self, st.cfg.retry_interval, tick_atom::value);
  return {
      [self](run_sink& pool) {
        self->state.pool = std::move(pool);
        self->state.dispatch();
      },
      [self](run_atom, const event_ptr& ev, std::vector<uint32_t>& obs) {
        self->state.run(ev, std::move(obs));
      },
      [self](finish_atom, std::vector<uint64_t>& seqs) { self->state.finish(std::move(seqs)); },
      [self](flush_atom) { self->state.flush(); },
      [self](tick_atom) { self->state.tick(); },
      [self](stop_atom) {
        self->state.release_all();
        return true;
      },
      [self](status_atom) {
        auto& s = self->state;
        return std::make_tuple(static_cast<uint64_t>(s.in_pool.size()), s.claimed_total);
      },
  };
}

dedup_actor spawn_dedup(caf::actor_system& sys, dedup_options cfg, finish_sink checkpointer) {
  if (!cfg.detached) return sys.spawn(dedup, std::move(cfg), std::move(checkpointer));
  return sys.spawn<caf::detached>(dedup, std::move(cfg), std::move(checkpointer));
}

}  // namespace fraiseql
