#include "node/node.hpp"

#include "node/identity.hpp"

#include "actors/pipeline/action_pool.hpp"
#include "actors/pipeline/checkpointer.hpp"
#include "actors/pipeline/dedup.hpp"
#include "actors/pipeline/dlq.hpp"
#include "actors/jobs/job_runner.hpp"
#include "actors/jobs/job_writer.hpp"
#include "actors/pipeline/listener.hpp"
#include "actors/pipeline/router.hpp"
#include "runtime/exec/caching.hpp"
#include "runtime/core/cursor.hpp"
#include "runtime/core/health.hpp"
#include "runtime/io/net/http_client.hpp"
#include "runtime/core/journal.hpp"
#include "runtime/io/pg/migrations.hpp"
#include "runtime/ops/monitoring_server.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/io/pg/session.hpp"
#include "messages/checkpoint.hpp"
#include "runtime/io/pg/checkpoint_store.hpp"
#include "runtime/io/pg/lease.hpp"
#include "runtime/core/redis_url.hpp"
#include "runtime/core/dedup.hpp"
#include "runtime/core/result_cache.hpp"
#include "runtime/core/outage.hpp"
#include "runtime/io/redis/connection.hpp"
#include "runtime/io/redis/dedup.hpp"
#include "runtime/io/redis/cache.hpp"
#include "messages/breaker.hpp"
#include "runtime/core/circuit_breaker.hpp"
#include "runtime/exec/executor.hpp"

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include <shared_mutex>
#include <random>
#include <thread>

namespace fraiseql {

namespace {

struct actor_config : caf::actor_system_config {
  actor_config() {
    // Detached actors (listener, checkpointer, DLQ) have their own threads;
    // the scheduler runs router and action pool.
    set("scheduler.max-threads", static_cast<size_t>(std::max(2u, std::thread::hardware_concurrency())));
    set("logger.verbosity", caf::atom("quiet"));
    // Work sharing: idle workers block on a condition variable. Work stealing's
    // idle polling cost ~16% of the node's CPU in profiles (3,000 sleeps/s per
    // worker) for no gain with two actors on the scheduler.
    set("scheduler.policy", caf::atom("sharing"));
  }
};

}  // namespace

struct node::impl {
  config cfg;
  bool dry_run;
  actor_config acfg;
  std::unique_ptr<caf::actor_system> sys;
  std::shared_ptr<http_client> http;
  std::shared_ptr<const observer_registry> registry;
  // Monitoring lives as long as the node, from before leadership on: probes
  // answer while the node stands by or waits for the database.
  std::shared_ptr<health_state> health;
  std::shared_ptr<metrics> stats;
  std::unique_ptr<monitoring_server> server;
  std::shared_ptr<std::atomic<bool>> stopping = std::make_shared<std::atomic<bool>>(false);
  listener_actor lst;
  checkpointer_actor cp;
  router_actor rt;
  action_pool_actor pool;
  dlq_actor dq;
  dedup_actor dd;  // null unless enable_dedup
  // [redis] and the action-result cache (null when not configured). The pool
  // outlives everything that borrows it; the runner stops before the actors.
  std::shared_ptr<redis_pool> rpool;
  std::shared_ptr<blocking_runner> redis_runner;
  job_runner_actor jr;  // job queue; null when disabled
  job_writer_actor jw;  // job queue; null when disabled
  caf::actor watchdog;  // exits the process when an actor fails
  bool started = false;
  bool stopped = false;
  // The control plane calls the façade from its own thread: `life`
  // keeps start/stop from tearing the actor system down under it.
  mutable std::shared_mutex life;
  std::atomic<int> role{0};  // index into role_names
  std::shared_ptr<journal> trace;

  impl(config c, bool d) : cfg(std::move(c)), dry_run(d) {}
};

node::node(config cfg, bool dry_run) : impl_(std::make_unique<impl>(std::move(cfg), dry_run)) {
  std::vector<std::string> errors;
  impl_->registry = observer_registry::build(impl_->cfg.observers, errors);
  if (!errors.empty()) {
    std::string all;
    for (const auto& e : errors) all += "\n  " + e;
    throw std::runtime_error("invalid observers:" + all);
  }
  auto& d = *impl_;
  d.health = std::make_shared<health_state>(
    std::chrono::milliseconds(d.cfg.metrics.readiness_max_checkpoint_age_ms));
  d.stats = std::make_shared<metrics>(*d.registry, d.cfg.listener.listener_id, d.health);
  // The journal only serves the control plane: without it, record nothing.
  impl_->trace = std::make_shared<journal>(
    impl_->cfg.control.enabled ? impl_->cfg.control.journal_size : 0);
}

namespace {
const char* const role_names[] = {"starting", "standby", "leader", "dry-run", "stopping", "stopped"};
enum role_index { r_starting, r_standby, r_leader, r_dry_run, r_stopping, r_stopped };
}  // namespace

std::string node::role() const { return role_names[impl_->role.load()]; }
const config& node::cfg() const { return impl_->cfg; }
std::shared_ptr<const observer_registry> node::registry() const { return impl_->registry; }
std::shared_ptr<journal> node::trace() const { return impl_->trace; }

std::optional<std::string> node::scrape_metrics() {
  std::shared_lock<std::shared_mutex> lock(impl_->life);
  if (!impl_->started || impl_->stopped || !impl_->stats) return std::nullopt;
  return impl_->stats->scrape();
}

node::redrive_result node::redrive(event_ptr ev, uint32_t observer, uint32_t action,
                                   std::chrono::milliseconds timeout) {
  auto& d = *impl_;
  std::shared_lock<std::shared_mutex> lock(d.life);
  if (!d.started || d.stopped)
    throw std::runtime_error("this node is " + role()
                             + ": redrive runs on the node leading listener '"
                             + d.cfg.listener.listener_id + "'");
  redrive_result out;
  std::string failure;
  // On a thread of our own: the caller runs inside another actor system's
  // actor, and a scoped actor must not live on such a thread.
  std::thread([&] {
    caf::scoped_actor self{*d.sys, true};
    self->request(d.pool, timeout, redrive_atom::value, std::move(ev), observer, action)
      .receive(
        [&](bool ok, uint32_t attempts, const std::string& err) {
          out.ok = ok;
          out.attempts = attempts;
          out.error = err;
        },
        [&](const caf::error& e) { failure = caf::to_string(e); });
  }).join();
  if (!failure.empty()) throw std::runtime_error("redrive got no answer: " + failure);
  return out;
}

node::~node() {
  stop(std::chrono::milliseconds(0));
}

void node::start() {
  auto& d = *impl_;
  std::unique_lock<std::shared_mutex> lock(d.life);
  if (d.started) return;
  if (d.cfg.metrics.enabled && !d.server) {
    d.server = std::make_unique<monitoring_server>(
      d.cfg.metrics.bind, d.cfg.metrics.port, [s = d.stats] { return s->scrape(); }, d.health);
    spdlog::info("node: metrics on http://{}:{}/metrics (probes: /healthz, /readyz)",
                 d.cfg.metrics.bind, d.server->port());
  }
  try {
    acquire_and_run();
  } catch (const standby& e) {
    d.health->waiting(std::string("standby: ") + e.what());
    throw;
  } catch (const pg_unavailable& e) {
    d.health->waiting(std::string("database unreachable: ") + e.what());
    throw;
  } catch (const std::exception& e) {
    d.health->waiting(std::string("cannot start: ") + e.what());
    throw;
  }
  d.health->leading();
  d.stats->leader(true);
}

void node::acquire_and_run() {
  auto& d = *impl_;
  const std::string dsn = normalize_dsn(d.cfg.database.url);
  const int have = current_schema_version(dsn);
  if (have < latest_schema_version())
    throw std::runtime_error("database schema version " + std::to_string(have)
                             + " is older than this binary needs ("
                             + std::to_string(latest_schema_version())
                             + "): run `observer-node migrate --config " + d.cfg.source + "`");
  // Leadership first, then the checkpoint: a former leader's last write either
  // committed before our takeover (we load it) or is refused (fencing).
  std::shared_ptr<leader_lease> lease;
  auto store = std::make_shared<checkpoint_store>(dsn, d.cfg.listener.listener_id);
  if (!d.dry_run) {
    lease = std::make_shared<leader_lease>(dsn, d.cfg.listener.listener_id, node_identity());
    auto epoch = lease->try_acquire();
    if (!epoch) {
      d.role = r_standby;
      throw standby("listener '" + d.cfg.listener.listener_id
                    + "' is led by another node; standing by");
    }
    store->set_epoch(*epoch);
    spdlog::info("node: leading listener '{}' (epoch {})", d.cfg.listener.listener_id, *epoch);
  }
  checkpoint_record resume = store->load().value_or(checkpoint_record{});
  spdlog::info("node: listener '{}' resumes after txid {} pk {}{}{} ({} events finished before)",
               d.cfg.listener.listener_id, resume.pos.txid, resume.pos.pk,
               resume.pending.empty() ? "" : ", transactions running then: ",
               pending_text(resume.pending), resume.events_total);

  d.stats->checkpoint_position(resume.pos.txid, resume.pos.pk);
  d.sys = std::make_unique<caf::actor_system>(d.acfg);
  d.http = std::make_shared<http_client>(
    0, std::max<long>(64, 2L * d.cfg.performance.max_concurrent_actions));

  dlq_options dc;
  dc.dsn = dsn;
  dc.stopping = d.stopping;
  d.dq = spawn_dlq(*d.sys, dc);

  listener_options lc;
  lc.dsn = dsn;
  lc.batch_size = d.cfg.listener.batch_size;
  lc.poll_interval = std::chrono::milliseconds(d.cfg.listener.poll_interval_ms);
  lc.max_in_flight = d.cfg.listener.max_in_flight;
  lc.resume = resume.cursor();
  lc.max_backoff = std::chrono::milliseconds(d.cfg.database.reconnect_max_delay_ms);
  lc.stats = d.stats;

  checkpointer_options cc;
  cc.dsn = dsn;
  cc.listener_id = d.cfg.listener.listener_id;
  cc.batch_size = d.cfg.checkpoint.batch_size;
  cc.interval = std::chrono::milliseconds(d.cfg.checkpoint.interval_ms);
  cc.max_in_flight = d.cfg.listener.max_in_flight;
  cc.resume = resume;
  cc.dry_run = d.dry_run;
  cc.sink = store;
  cc.lease = lease;
  cc.stats = d.stats;

  action_pool_options pc;
  pc.registry = d.registry;
  executor_options eo;
  eo.database_workers = std::min<size_t>(4, d.cfg.performance.max_concurrent_actions);
  pc.executors = make_executors(d.registry, d.http, eo);
  // --- job queue: runner first (the writer wakes it after each commit).
  if (d.cfg.job_queue.enabled && !d.dry_run) {
    job_runner_options jo;
    jo.dsn = dsn;
    jo.listener_id = d.cfg.listener.listener_id;
    jo.token = node_identity() + ":" + std::to_string(std::random_device{}());
    jo.registry = d.registry;
    jo.executors = pc.executors;
    jo.workers = d.cfg.job_queue.workers;
    jo.batch_size = d.cfg.job_queue.batch_size;
    jo.poll_interval = std::chrono::milliseconds(d.cfg.job_queue.poll_interval_ms);
    jo.lease = std::chrono::milliseconds(d.cfg.job_queue.lease_ms);
    jo.stats = d.stats;
    d.jr = spawn_job_runner(*d.sys, jo);
    job_writer_options wo;
    wo.dsn = dsn;
    wo.listener_id = d.cfg.listener.listener_id;
    wo.rows_per_statement = d.cfg.job_queue.batch_size;
    wo.max_backoff = std::chrono::milliseconds(d.cfg.database.reconnect_max_delay_ms);
    wo.stopping = d.stopping;
    wo.runner = d.jr;
    wo.stats = d.stats;
    d.jw = spawn_job_writer(*d.sys, wo);
    pc.jobs = d.jw;
    spdlog::info("node: job queue on ({} workers, lease {} ms)", jo.workers, jo.lease.count());
  }
  pc.enable_concurrent = d.cfg.performance.enable_concurrent;
  pc.max_concurrent_actions = d.cfg.performance.max_concurrent_actions;
  pc.concurrent_timeout_ms = d.cfg.performance.concurrent_timeout_ms;
  pc.breakers = breaker_settings_of(d.cfg.circuit_breaker);
  pc.dry_run = d.dry_run;
  pc.stats = d.stats;
  if (d.cfg.redis) {
    const auto& rc = *d.cfg.redis;
    redis_connection_options ro;
    ro.url = redis_url::parse(rc.url);
    ro.connect_timeout = std::chrono::seconds(rc.connect_timeout_secs);
    ro.command_timeout = std::chrono::seconds(rc.command_timeout_secs);
    d.rpool = std::make_shared<redis_pool>(ro, rc.pool_size);
    try {
      d.rpool->check();
      d.stats->redis_health(true);
      spdlog::info("node: Redis at {} answers (pool of {})", ro.url.to_string(), rc.pool_size);
    } catch (const redis_unavailable& e) {
      d.stats->redis_health(false);
      // Not fatal: the failure policy applies while it stays down.
      spdlog::warn("node: Redis is unavailable at start ({}); policy {}", e.what(), rc.failure_policy);
    }
  }
  if (d.cfg.performance.enable_caching && !d.dry_run) {
    std::shared_ptr<result_cache> cache;
    std::chrono::milliseconds ttl = std::chrono::seconds(redis_config{}.cache_ttl_secs);
    if (d.rpool) {
      ttl = std::chrono::seconds(d.cfg.redis->cache_ttl_secs);
      cache = std::make_shared<redis_result_cache>(*d.rpool, ttl);
      d.redis_runner = std::make_shared<blocking_runner>(
        std::min<size_t>(d.rpool->size(), 4), "redis cache");
    } else {
      cache = std::make_shared<lru_ttl_cache>(d.cfg.performance.cache_capacity, ttl);
    }
    for (auto& [type, ex] : pc.executors)
      ex = make_caching_executor(ex, cache, d.redis_runner, ttl, d.stats);
    spdlog::info("node: action-result cache on {} (default TTL {} s)",
                 d.rpool ? "Redis" : "process memory (LRU, " +
                   std::to_string(d.cfg.performance.cache_capacity) + " entries)",
                 ttl.count() / 1000);
  }
  for (const auto& oc : d.cfg.observers)
    for (const auto& ac : oc.actions)
      if (ac.webhook && ac.webhook->cache && !d.cfg.performance.enable_caching)
        spdlog::warn("node: {} of observer '{}' has cache = true, but [performance] "
                     "enable_caching is false: it is not cached", ac.where, oc.name);
  // Null when the journal records nothing: the hot path skips it.
  auto trace = d.trace->capacity() > 0 ? d.trace : nullptr;
  pc.trace = trace;

  // The listener admits to the checkpointer, which credits the listener: the
  // checkpointer comes first and learns the listener below (messages/actors.hpp).
  d.cp = spawn_checkpointer(*d.sys, cc);
  if (d.cfg.performance.enable_dedup && !d.dry_run) {
    // The dedup actor sits between router and pool (claims) and between pool
    // and checkpointer (confirms): the router's run_sink, the pool's
    // finish_sink. It learns the pool by message, before the router exists.
    dedup_options dopt;
    dopt.store = std::make_shared<redis_dedup>(
      *d.rpool, std::chrono::seconds(d.cfg.redis->dedup_window_secs));
    dopt.owner = make_owner_token(d.cfg.listener.listener_id + "@" + host_name());
    dopt.claim_ttl = std::chrono::seconds(d.cfg.redis->claim_ttl_secs);
    dopt.policy = *parse_redis_failure_policy(d.cfg.redis->failure_policy);
    dopt.stats = d.stats;
    dopt.probe = [pool = d.rpool] { pool->check(); };
    d.dd = spawn_dedup(*d.sys, dopt, d.cp);
    d.pool = spawn_action_pool(*d.sys, pc, d.dd, d.dq);
    caf::anon_send(d.dd, run_sink{d.pool});
    d.rt = spawn_router(*d.sys, router_options{d.registry, d.stats, trace}, d.dd, d.cp);
    spdlog::info("node: deduplication on (window {} s, claim TTL {} s, {}, owner {})",
                 d.cfg.redis->dedup_window_secs, d.cfg.redis->claim_ttl_secs,
                 d.cfg.redis->failure_policy, dopt.owner);
  } else {
    d.pool = spawn_action_pool(*d.sys, pc, d.cp, d.dq);
    d.rt = spawn_router(*d.sys, router_options{d.registry, d.stats, trace}, d.pool, d.cp);
  }
  d.lst = spawn_listener(*d.sys, lc, d.cp, d.rt);
  caf::anon_send(d.cp, credit_sink{d.lst});
  // Crash-only: an actor that dies from an error takes the process down with a
  // non-zero exit. The checkpoint never passed an unfinished event, so a restart
  // (systemd, Kubernetes) resumes without loss; limping on would stall silently.
  d.watchdog = d.sys->spawn([health = d.health](caf::event_based_actor* self) -> caf::behavior {
    self->set_down_handler([health](caf::down_msg& dm) {
      if (dm.reason == caf::exit_reason::user_shutdown || dm.reason == caf::exit_reason::normal)
        return;
      health->failed(caf::to_string(dm.source));
      spdlog::critical("node: actor {} failed ({}); exiting so a supervisor restarts the node",
                       caf::to_string(dm.source), caf::to_string(dm.reason));
      spdlog::default_logger()->flush();
      std::_Exit(70);
    });
    return {[self](const caf::actor_addr& a) { self->monitor(a); }};
  });
  for (auto a : {d.lst.address(), d.rt.address(), d.pool.address(), d.cp.address(),
                 d.dq.address()})
    caf::anon_send(d.watchdog, a);
  if (d.dd) caf::anon_send(d.watchdog, d.dd.address());
  if (d.jr) {  // job queue
    caf::anon_send(d.watchdog, d.jr.address());
    caf::anon_send(d.watchdog, d.jw.address());
  }
  caf::anon_send(d.lst, read_atom::value);
  d.started = true;
  d.role = d.dry_run ? r_dry_run : r_leader;
  spdlog::info("node: started (role all{}), {} observers", d.dry_run ? ", dry run" : "",
               d.registry->size());
}

node_status node::status() {
  node_status s;
  auto& d = *impl_;
  std::shared_lock<std::shared_mutex> lock(d.life);
  if (!d.started || d.stopped) return s;
  // Called from the control actor's thread: ask from a thread of our own.
  std::thread([&] { status_into(s); }).join();
  return s;
}

void node::status_into(node_status& s) {
  auto& d = *impl_;
  caf::scoped_actor self{*d.sys, true};
  self->request(d.cp, std::chrono::seconds(5), status_atom::value)
    .receive([&](uint64_t in_flight, uint64_t finished) {
      s.in_flight = in_flight;
      s.finished = finished;
    },
             [](const caf::error&) {});
  self->request(d.lst, std::chrono::seconds(5), status_atom::value)
    .receive([&](uint64_t, uint64_t read) { s.read = read; }, [](const caf::error&) {});
  self->request(d.pool, std::chrono::seconds(5), status_atom::value)
    .receive([&](uint64_t running, uint64_t) { s.attempts_in_flight = running; },
             [](const caf::error&) {});
  self->request(d.pool, std::chrono::seconds(5), status_atom::value, breakers_atom::value)
    .receive([&](std::vector<breaker_status>& b) { s.breakers = std::move(b); },
             [](const caf::error&) {});
}

bool node::stop(std::chrono::milliseconds timeout) {
  auto& d = *impl_;
  if (d.role == r_standby) d.role = r_stopped;
  std::unique_lock<std::shared_mutex> lock(d.life);
  if (!d.started || d.stopped) return true;
  d.role = r_stopping;
  d.stopped = true;
  d.health->stopping();  // /healthz and /readyz answer 503 while we drain
  bool drained = false;
  {
    caf::scoped_actor self{*d.sys};
    self->send_exit(d.watchdog, caf::exit_reason::user_shutdown);
    // 1. Stop reading.
    self->request(d.lst, std::chrono::seconds(10), stop_atom::value)
      .receive([](bool) {}, [](const caf::error& e) {
        spdlog::warn("node: listener did not confirm stop: {}", caf::to_string(e));
      });
    // 2. Drain what is in flight.
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      uint64_t in_flight = 1;
      self->request(d.cp, std::chrono::seconds(5), status_atom::value)
        .receive([&](uint64_t n, uint64_t) { in_flight = n; }, [](const caf::error&) {});
      if (in_flight == 0) {
        drained = true;
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        spdlog::warn("node: {} events still in flight at shutdown; they are redelivered after "
                     "restart",
                     in_flight);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    d.stopping->store(true);
    // Unfinished events' claims go back, so that the next node need not wait
    // out claim_ttl for them.
    if (d.dd)
      self->request(d.dd, std::chrono::seconds(30), stop_atom::value)
        .receive([](bool) {}, [](const caf::error& e) {
          spdlog::warn("node: dedup did not release its claims: {}", caf::to_string(e));
        });
    // 3. Flush the checkpoint last.
    self->request(d.cp, std::chrono::seconds(30), flush_atom::value)
      .receive(
        [](const checkpoint_record& r) {
          spdlog::info("node: checkpoint saved at txid {} pk {} ({} events)", r.pos.txid,
                       r.pos.pk, r.events_total);
        },
        [](const caf::error& e) {
          spdlog::error("node: final checkpoint flush failed: {}", caf::to_string(e));
        });
    // 4. Job queue: running jobs get what is left of the timeout, then their
    // leases are released (they run again after restart, never lost).
    if (d.jr) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      auto wait = static_cast<uint64_t>(std::max<int64_t>(0, left.count()));
      self->request(d.jr, std::chrono::milliseconds(wait) + std::chrono::seconds(30),
                    stop_atom::value, wait)
        .receive([](bool) {}, [](const caf::error& e) {
          spdlog::warn("node: job runner did not confirm stop: {}", caf::to_string(e));
        });
      self->send_exit(d.jr, caf::exit_reason::user_shutdown);
      self->send_exit(d.jw, caf::exit_reason::user_shutdown);
    }
    for (auto a : {d.lst.address(), d.rt.address(), d.pool.address(), d.cp.address(),
                   d.dq.address()})
      self->send_exit(a, caf::exit_reason::user_shutdown);
    if (d.dd) self->send_exit(d.dd, caf::exit_reason::user_shutdown);
  }
  // Cache tasks use the executors the pool owns: stop them first.
  if (d.redis_runner) d.redis_runner->shutdown();
  d.lst = nullptr;
  d.rt = nullptr;
  d.pool = nullptr;
  d.cp = nullptr;
  d.dq = nullptr;
  d.dd = nullptr;
  d.jr = nullptr;
  d.jw = nullptr;
  d.watchdog = nullptr;
  d.sys.reset();  // waits for every actor
  d.stats->leader(false);
  d.http.reset();
  d.redis_runner.reset();
  d.rpool.reset();
  d.role = r_stopped;
  return drained;
}

}  // namespace fraiseql
