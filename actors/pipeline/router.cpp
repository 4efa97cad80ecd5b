#include "actors/pipeline/router.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

namespace fraiseql {

struct router_state {
  static inline const char* name = "router";
  uint64_t routed = 0;
};

router_actor::behavior_type router(router_actor::stateful_pointer<router_state> self,
                                   router_options cfg, run_sink pool, finish_sink checkpointer) {
  return {
      [self, cfg, pool, checkpointer](route_atom, const event_batch& batch) {
        auto& st = self->state;
        std::vector<uint64_t> unmatched;
        for (const auto& ev : batch) {
          ++st.routed;
          auto m = cfg.registry->match(*ev);
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
