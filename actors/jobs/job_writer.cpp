#include "actors/jobs/job_writer.hpp"
#include "messages/job.hpp"
#include "runtime/io/pg/job_store.hpp"
#include "runtime/io/pg/session.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include <optional>
#include <thread>

namespace fraiseql {

struct job_writer_state {
  static inline const char* name = "job_writer";
  std::optional<job_store> store;
};

job_writer_actor::behavior_type job_writer(
    job_writer_actor::stateful_pointer<job_writer_state> self, job_writer_options cfg) {
  self->state.store.emplace(cfg.dsn, cfg.listener_id);
  return {
      [self, cfg](enqueue_atom, const std::vector<job_spec>& jobs) -> caf::result<uint64_t> {
        // Detached: blocking here blocks only this actor's thread; the pool keeps
        // running other lanes while an outage lasts.
        auto delay = cfg.min_backoff;
        for (;;) {
          try {
            auto added = self->state.store->enqueue(jobs, cfg.rows_per_statement);
            if (cfg.stats) cfg.stats->jobs_enqueued(added);
            if (added < jobs.size())
              spdlog::info("job queue: {} of {} jobs were already queued (redelivered events)",
                           jobs.size() - added, jobs.size());
            if (cfg.runner) caf::anon_send(cfg.runner, wake_atom::value);
            return added;
          } catch (const pg_unavailable& ex) {
            spdlog::warn("job queue: database unavailable, enqueue retried in {} ms: {}",
                         delay.count(), ex.what());
          } catch (const std::exception& ex) {
            spdlog::error("job queue: cannot enqueue {} jobs (retrying in {} ms): {}", jobs.size(),
                          delay.count(), ex.what());
            self->state.store->reset();
          }
          if (cfg.stopping->load())
            return caf::make_error(caf::sec::runtime_error,
                                   "job queue: shutting down, jobs not enqueued");
          std::this_thread::sleep_for(delay);
          delay = std::min(cfg.max_backoff, delay * 2);
        }
      },
  };
}

job_writer_actor spawn_job_writer(caf::actor_system& sys, job_writer_options cfg) {
  return sys.spawn<caf::detached>(job_writer, cfg);
}

}  // namespace fraiseql
