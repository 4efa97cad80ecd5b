#include "actors/pipeline/dlq.hpp"
#include "runtime/core/checkpoint_sink.hpp"
#include "runtime/io/pg/dlq_store.hpp"
#include "runtime/io/pg/session.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include <optional>
#include <thread>

namespace fraiseql {

struct dlq_state {
  static inline const char* name = "dlq";
  std::optional<dlq_store> store;
};

dlq_actor::behavior_type dlq(dlq_actor::stateful_pointer<dlq_state> self, dlq_options cfg) {
  std::optional<dlq_store::fence> f;
  if (cfg.listener_id) f = dlq_store::fence{*cfg.listener_id, cfg.epoch};
  self->state.store.emplace(cfg.dsn, std::move(f));
  return {
      [self, cfg](bury_atom, const dlq_entry& e) -> caf::result<int64_t> {
        // This actor is detached: blocking here blocks only its own thread, and
        // later bury requests simply queue up behind the outage.
        auto delay = cfg.min_backoff;
        for (;;) {
          try {
            auto id = self->state.store->insert(e);
            spdlog::warn("dlq: event {} observer '{}' action {} ({}) after {} attempts: {}",
                         e.ev->id, e.observer_name, e.action_index, e.action_type, e.attempts,
                         e.last_error);
            return id;
          } catch (const fenced_out& ex) {
            // Another node leads: this entry is its to write, if ever.
            spdlog::critical("dlq: {} (event {} stays unfinished)", ex.what(), e.ev->id);
            return caf::make_error(caf::sec::runtime_error, ex.what());
          } catch (const pg_unavailable& ex) {
            spdlog::warn("dlq: database unavailable, retrying in {} ms: {}", delay.count(),
                         ex.what());
          } catch (const std::exception& ex) {
            spdlog::error("dlq: cannot write entry for {} (retrying in {} ms): {}",
                          e.idempotency_key, delay.count(), ex.what());
            self->state.store->reset();
          }
          if (cfg.stopping->load())
            return caf::make_error(caf::sec::runtime_error,
                                   "dlq: shutting down, entry not written");
          std::this_thread::sleep_for(delay);
          delay = std::min(cfg.max_backoff, delay * 2);
        }
      },
  };
}

dlq_actor spawn_dlq(caf::actor_system& sys, dlq_options cfg) {
  return sys.spawn<caf::detached>(dlq, cfg);
}

}  // namespace fraiseql
