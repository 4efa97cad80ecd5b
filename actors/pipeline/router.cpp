#include "actors/pipeline/router.hpp"

#include "runtime/core/audit.hpp"
#include "runtime/core/clock.hpp"
#include "runtime/core/envelope.hpp"
#include "runtime/core/replay.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

namespace fraiseql {

struct router_state {
  static inline const char* name = "router";
  uint64_t routed = 0;
};

namespace {

/// The DLQ entry of an event over the per-event size limit.
dlq_entry oversize_entry(const event_ptr& ev) {
  dlq_entry e;
  e.ev = ev;
  e.observer_name = "(listener)";
  e.action_index = 0;
  e.action_type = "oversize";
  e.idempotency_key = ev->id + ":(listener):oversize";
  e.last_error = oversize_reason(ev->row_bytes, ev->oversize_limit);
  e.attempts = 0;
  e.first_attempt_ms = e.last_attempt_ms = unix_ms();
  return e;
}

}  // namespace

router_actor::behavior_type router(router_actor::stateful_pointer<router_state> self,
                                   router_options cfg, run_sink pool, finish_sink checkpointer) {
  return {
      [self, cfg, pool, checkpointer](route_atom, const event_batch& batch) {
        auto& st = self->state;
        std::vector<uint64_t> unmatched;
        for (const auto& ev : batch) {
          ++st.routed;
          if (ev->oversize_limit > 0) {
            // Its body was not read: nothing to match. The DLQ keeps it, with
            // why, and the checkpoint moves on once that write is durable.
            if (cfg.stats) cfg.stats->event_processed();
            if (cfg.audit) audit_routed(*cfg.audit, *ev, *cfg.registry, {});  // audit trail
            if (cfg.dry_run || !cfg.dlq) {
              spdlog::warn("router: event {} not delivered (dry run, no DLQ write): {}", ev->id,
                           oversize_reason(ev->row_bytes, ev->oversize_limit));
              unmatched.push_back(ev->seq);
              continue;
            }
            const auto seq = ev->seq;
            self->request(cfg.dlq, caf::infinite, bury_atom::value, oversize_entry(ev))
                .then(
                    [self, cfg, checkpointer, seq](int64_t) {
                      if (cfg.stats) cfg.stats->oversize_event();
                      self->send(checkpointer, finish_atom::value, std::vector<uint64_t>{seq});
                    },
                    [seq](const caf::error& err) {
                      // Fenced out or stopping: the event stays unfinished, so
                      // the checkpoint cannot pass it (the next leader reads it).
                      spdlog::error("router: oversize event seq {} not written to the DLQ: {}", seq,
                                    caf::to_string(err));
                    });
            continue;
          }
          auto m = cfg.registry->match(*ev);
          // A replayed copy runs only for the listener and observer that asked.
          narrow_replay_observers(*ev, cfg.listener_id, *cfg.registry, m.observers);
          for (const auto& err : m.errors) {
            spdlog::warn("router: event {}: condition not evaluated, observer skipped: {}", ev->id,
                         err.message);
            if (cfg.stats) cfg.stats->condition_error(err.observer);
          }
          if (cfg.stats) {
            cfg.stats->event_processed();
            for (auto o : m.observers) cfg.stats->event_matched(o);
          }
          if (cfg.trace) {  // debug journal
            std::vector<std::pair<uint32_t, std::string>> errs;
            for (const auto& err : m.errors) errs.emplace_back(err.observer, err.message);
            cfg.trace->routed(ev, m.observers, std::move(errs));
          }
          if (cfg.audit) audit_routed(*cfg.audit, *ev, *cfg.registry, m.observers);  // audit trail
          if (m.observers.empty()) {
            spdlog::debug("router: event {} ({} {}) matches no observer", ev->id, ev->event_type,
                          ev->entity_type);
            unmatched.push_back(ev->seq);
          } else {
            self->send(pool, run_atom::value, ev, std::move(m.observers));
          }
        }
        if (!unmatched.empty()) self->send(checkpointer, finish_atom::value, std::move(unmatched));
      },
      [self](status_atom) { return std::make_tuple(uint64_t{0}, self->state.routed); },
  };
}

router_actor spawn_router(caf::actor_system& sys, router_options cfg, run_sink pool,
                          finish_sink checkpointer) {
  return sys.spawn(router, cfg, pool, checkpointer);
}

}  // namespace fraiseql
