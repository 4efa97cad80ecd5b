#include "actors/jobs/job_runner.hpp"
#include "messages/attempt.hpp"
#include "runtime/core/envelope.hpp"
#include "runtime/core/job_rules.hpp"
#include "runtime/exec/executor.hpp"
#include "runtime/io/pg/job_store.hpp"
#include "runtime/io/pg/session.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include <map>
#include <optional>
#include <random>
#include <unordered_map>

namespace fraiseql {

namespace {

struct running_job {
  claimed_job row;
  event_ptr ev;
  std::optional<uint32_t> observer;  // index in the registry, when configured here
  std::chrono::steady_clock::time_point started;
  /// The attempt's outcome, kept until it is written (the database may be
  /// down; the write is retried on every tick).
  std::optional<attempt_outcome> outcome;
};

}  // namespace

struct job_runner_state {
  static inline const char* name = "job_runner";
  using pointer = job_runner_actor::stateful_pointer<job_runner_state>;

  pointer self = nullptr;
  job_runner_options cfg;
  std::optional<job_store> store;
  std::unordered_map<std::string, uint32_t> observer_by_name;
  std::map<int64_t, running_job> running;
  bool maybe_due = true;  // the last claim was full, or a wake/tick came since
  bool stopping = false;
  bool degraded = false;  // the database was unreachable at the last call
  uint64_t finished = 0;
  std::vector<int64_t> to_complete;  // succeeded, deleted at the next flush
  uint64_t next_seq = 1;
  std::mt19937_64 rng{std::random_device{}()};
  // Graceful stop.
  std::optional<caf::typed_response_promise<bool>> stop_promise;
  std::chrono::steady_clock::time_point stop_deadline;

  std::chrono::milliseconds tick_interval() const {
    return std::max(std::chrono::milliseconds(1), std::min(cfg.poll_interval, cfg.lease / 3));
  }

  void database_error(const char* what, const std::exception& e, bool unavailable) {
    if (unavailable) {
      if (!degraded)
        spdlog::warn("job runner: database unavailable ({}), retrying: {}", what, e.what());
      degraded = true;
    } else {
      spdlog::error("job runner: {} failed: {}", what, e.what());
      store->reset();
    }
  }

  /// Claims and starts due jobs while there is room and the last claim was full.
  void claim_some() {
    while (!stopping && maybe_due && running.size() < cfg.workers) {
      const auto n =
          std::min<uint32_t>(cfg.batch_size, cfg.workers - static_cast<uint32_t>(running.size()));
      std::vector<claimed_job> rows;
      try {
        rows = store->claim(cfg.token, n, cfg.lease);
        degraded = false;
      } catch (const pg_unavailable& e) {
        return database_error("claim", e, true);
      } catch (const std::exception& e) {
        return database_error("claim", e, false);
      }
      maybe_due = rows.size() == n;
      for (auto& row : rows) {
        // Our own lease expired (the database was unreachable longer than the
        // lease) and we claimed the job again: it is already running here.
        if (running.count(row.id) > 0) continue;
        start(std::move(row));
      }
      if (cfg.stats) cfg.stats->jobs_running(running.size());
    }
  }

  void start(claimed_job row) {
    const auto id = row.id;
    auto& rj = running[id];
    rj.row = std::move(row);
    rj.started = std::chrono::steady_clock::now();
    const auto& r = rj.row;
    auto fail = [&](std::string why) {
      finish(id, attempt_outcome::failure(std::move(why), false));
    };
    if (r.attempts > r.max_attempts)
      return fail("attempt " + std::to_string(r.attempts - 1) + " of " +
                  std::to_string(r.max_attempts) +
                  " was interrupted (node died or lost its lease); its outcome is unknown");
    auto ob = observer_by_name.find(r.observer_name);
    if (ob == observer_by_name.end())
      return fail("observer '" + r.observer_name + "' is not configured on this node");
    const auto& oc = cfg.registry->config(ob->second);
    if (r.action_index >= oc.actions.size() || oc.actions[r.action_index].type != r.action_type)
      return fail("observer '" + r.observer_name + "' has no " + r.action_type + " action " +
                  std::to_string(r.action_index) + " on this node (configuration changed?)");
    rj.observer = ob->second;
    const auto& ac = oc.actions[r.action_index];
    try {
      rj.ev = event_from_envelope(r.event_json, next_seq++);
    } catch (const std::exception& e) {
      return fail(e.what());
    }
    auto ex = cfg.executors.find(ac.type);
    if (ex == cfg.executors.end()) return fail("action type '" + ac.type + "' has no executor");
    attempt_request req;
    req.ev = rj.ev.get();
    req.observer = ob->second;
    req.action = r.action_index;
    req.observer_cfg = &oc;
    req.action_cfg = &ac;
    req.idempotency_key = r.idempotency_key;
    req.attempt = r.attempts;
    // Asynchronous completions arrive on the executor's thread: only enqueue.
    job_runner_actor handle{self};
    auto sync = ex->second->start(req, [handle, id](attempt_outcome o) {
      caf::anon_send(handle, done_atom::value, id, std::move(o));
    });
    if (sync) on_done(id, std::move(*sync));
  }

  void on_done(int64_t id, attempt_outcome o) {
    auto it = running.find(id);
    if (it == running.end()) return;  // cut by a stop deadline
    auto& rj = it->second;
    if (cfg.stats && rj.observer)
      cfg.stats->action_attempt(
          *rj.observer, rj.row.action_index, o.ok,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - rj.started).count());
    finish(id, std::move(o));
  }

  /// Records the outcome and writes it (or keeps it for the next tick).
  /// Successes of one mailbox burst are deleted together (flush).
  void finish(int64_t id, attempt_outcome o) {
    const bool ok = o.ok;
    running.at(id).outcome = std::move(o);
    if (!ok) {
      save(id);
      return;
    }
    if (to_complete.empty()) self->send(self, flush_atom::value);
    to_complete.push_back(id);
  }

  /// Deletes the jobs that succeeded since the last flush, in one statement.
  void flush_completed() {
    if (to_complete.empty()) return;
    auto ids = std::exchange(to_complete, {});
    std::vector<int64_t> held;
    try {
      held = store->complete(ids, cfg.token);
      degraded = false;
    } catch (const pg_unavailable& e) {
      return database_error("completing jobs", e, true);  // outcomes kept; tick retries
    } catch (const std::exception& e) {
      return database_error("completing jobs", e, false);
    }
    if (held.size() < ids.size())
      spdlog::warn(
          "job runner: {} jobs lost their lease before completion was written; they "
          "run again under another claim",
          ids.size() - held.size());
    if (cfg.stats)
      for (size_t i = 0; i < held.size(); ++i) cfg.stats->job_completed();
    for (auto id : ids) running.erase(id);
    finished += ids.size();
    if (cfg.stats) cfg.stats->jobs_running(running.size());
  }

  /// Writes the outcome of job `id` in one short statement. True when written.
  bool save(int64_t id) {
    auto it = running.find(id);
    auto& rj = it->second;
    const auto& o = *rj.outcome;
    const auto& r = rj.row;
    retry_config retry;
    if (rj.observer) retry = cfg.registry->config(*rj.observer).retry;
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const auto d = decide_job(o, r.attempts, r.max_attempts, retry, u(rng));
    try {
      bool held = true;
      switch (d.kind) {
        case job_decision::complete:
          held = store->complete(r.id, cfg.token);
          if (held && cfg.stats) cfg.stats->job_completed();
          break;
        case job_decision::retry:
          held = store->retry_later(r.id, cfg.token, o.error, d.delay);
          if (held && cfg.stats) cfg.stats->job_retried();
          spdlog::debug("job {} ({}): attempt {} failed ({}), retry in {} ms", r.id,
                        r.idempotency_key, r.attempts, o.error, d.delay.count());
          // Due again before the next poll: wake up for it.
          if (d.delay < cfg.poll_interval) self->delayed_send(self, d.delay, wake_atom::value);
          break;
        case job_decision::dead_letter: {
          const std::string error = "attempt " + std::to_string(r.attempts) + "/" +
                                    std::to_string(r.max_attempts) + ": " + o.error;
          auto dlq_id = store->dead_letter(r.id, cfg.token, error);
          held = dlq_id.has_value();
          if (held) {
            spdlog::warn("dlq: job {} ({} action {} of observer '{}') after {} attempts: {}", r.id,
                         r.action_type, r.action_index, r.observer_name, r.attempts, o.error);
            if (cfg.stats) {
              cfg.stats->job_failed();
              if (rj.observer) cfg.stats->dlq_item(*rj.observer);
            }
          }
          break;
        }
      }
      degraded = false;
      if (!held)
        spdlog::warn(
            "job {} ({}): lease lost before its outcome was written; the job runs "
            "again under another claim",
            r.id, r.idempotency_key);
    } catch (const pg_unavailable& e) {
      database_error("writing a job outcome", e, true);
      return false;
    } catch (const std::exception& e) {
      database_error("writing a job outcome", e, false);
      return false;
    }
    running.erase(it);
    ++finished;
    if (cfg.stats) cfg.stats->jobs_running(running.size());
    return true;
  }

  void tick() {
    flush_completed();
    // Outcomes whose write failed earlier.
    for (auto it = running.begin(); it != running.end();) {
      auto id = it->first;
      bool pending = it->second.outcome.has_value();
      ++it;                             // save() erases the current entry
      if (pending && !save(id)) break;  // still unreachable: try again next tick
    }
    try {
      if (!running.empty()) store->renew(cfg.token, cfg.lease);
      if (cfg.stats) cfg.stats->jobs_queue_depth(store->depth());
      degraded = false;
    } catch (const pg_unavailable& e) {
      database_error("lease renewal", e, true);
    } catch (const std::exception& e) {
      database_error("lease renewal", e, false);
    }
    maybe_due = true;
    claim_some();
    check_stop();
  }

  void check_stop() {
    if (!stop_promise) return;
    flush_completed();
    if (running.empty()) {
      release();
      stop_promise->deliver(true);
      stop_promise.reset();
    } else if (std::chrono::steady_clock::now() >= stop_deadline) {
      spdlog::warn(
          "job runner: {} jobs still running at shutdown; their leases are released "
          "and they run again after restart",
          running.size());
      running.clear();
      release();
      stop_promise->deliver(false);
      stop_promise.reset();
    }
  }

  void release() {
    try {
      auto n = store->release(cfg.token);
      if (n > 0) spdlog::info("job runner: released {} leases", n);
    } catch (const std::exception& e) {
      spdlog::warn("job runner: cannot release leases (they expire after {} ms): {}",
                   cfg.lease.count(), e.what());
    }
  }
};

job_runner_actor::behavior_type job_runner(
    job_runner_actor::stateful_pointer<job_runner_state> self, job_runner_options cfg) {
  auto& st = self->state;
  st.self = self;
  st.cfg = std::move(cfg);
  st.store.emplace(st.cfg.dsn, st.cfg.listener_id);
  for (uint32_t o = 0; o < st.cfg.registry->size(); ++o)
    st.observer_by_name.emplace(st.cfg.registry->config(o).name, o);
  self->send(self, tick_atom::value);
  return {
      [self](wake_atom) {
        auto& st = self->state;
        st.maybe_due = true;
        st.claim_some();
      },
      [self](tick_atom) {
        auto& st = self->state;
        st.tick();
        if (!st.stopping || st.stop_promise)
          self->delayed_send(self, st.tick_interval(), tick_atom::value);
      },
      [self](done_atom, int64_t id, attempt_outcome& o) {
        auto& st = self->state;
        st.on_done(id, std::move(o));
        if (st.to_complete.empty()) {  // else the flush claims once the slots are free
          st.claim_some();
          st.check_stop();
        }
      },
      [self](flush_atom) {
        auto& st = self->state;
        st.flush_completed();
        st.claim_some();
        st.check_stop();
      },
      [self](stop_atom, uint64_t timeout_ms) -> caf::result<bool> {
        auto& st = self->state;
        st.stopping = true;
        if (st.stop_promise) return caf::make_error(caf::sec::runtime_error, "already stopping");
        st.stop_deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        st.stop_promise = self->make_response_promise<bool>();
        auto promise = *st.stop_promise;
        // Enforce the deadline even if no tick is due before it.
        self->delayed_send(self, std::chrono::milliseconds(timeout_ms), tick_atom::value);
        st.check_stop();
        return promise;
      },
      [self](status_atom) {
        return std::make_tuple(static_cast<uint64_t>(self->state.running.size()),
                               self->state.finished);
      },
  };
}

job_runner_actor spawn_job_runner(caf::actor_system& sys, job_runner_options cfg) {
  return sys.spawn<caf::detached>(job_runner, cfg);
}

}  // namespace fraiseql
