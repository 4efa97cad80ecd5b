#include "node/node.hpp"

#include "actors/bus/bridge.hpp"
#include "actors/bus/worker.hpp"
#include "node/identity.hpp"
#include "runtime/core/bus.hpp"
#include "runtime/core/lease_clock.hpp"
#include "runtime/io/nats/connection.hpp"
#include "runtime/io/nats/jetstream.hpp"
#include "runtime/io/nats/kv.hpp"

#include "node/leadership.hpp"
#include "node/services.hpp"
#include "node/spawn.hpp"
#include "runtime/config/redact.hpp"
#include "runtime/core/audit.hpp"
#include "runtime/core/byte_budget.hpp"
#include "runtime/core/health.hpp"
#include "runtime/core/journal.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/core/result_cache.hpp"
#include "runtime/exec/caching.hpp"
#include "runtime/io/net/http_client.hpp"
#include "runtime/io/pg/checkpoint_store.hpp"
#include "runtime/io/pg/lease.hpp"
#include "runtime/io/pg/session.hpp"
#include "runtime/io/redis/connection.hpp"
#include "runtime/ops/metrics.hpp"
#include "runtime/ops/monitoring_server.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include <cctype>
#include <shared_mutex>
#include <thread>

namespace fraiseql {

namespace {

struct actor_config : caf::actor_system_config {
  actor_config() {
    // Detached actors (listener, checkpointer, DLQ) have their own threads;
    // the scheduler runs router and action pool.
    set("scheduler.max-threads",
        static_cast<size_t>(std::max(2u, std::thread::hardware_concurrency())));
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
  // Leadership (null in a dry run); released at the end of a graceful stop.
  std::shared_ptr<leader_lease> lease;
  listener_actor lst;
  checkpointer_actor cp;
  router_actor rt;
  action_pool_actor pool;
  dlq_actor dq;
  dedup_actor dd;   // null unless enable_dedup
  pruner_actor pr;  // change-log retention; null in a dry run
  // [audit]: the queue the router and the pool record into, and its writer
  // (null when the trail is off or in a dry run).
  std::shared_ptr<audit_queue> audit_q;
  audit_actor au;
  // Replay and backfill (pipeline role); null in a dry run.
  caf::typed_actor<caf::reacts_to<tick_atom>> hw;
  // [redis] and the action-result cache (null when not configured). The pool
  // outlives everything that borrows it; the runner stops before the actors.
  std::shared_ptr<redis_pool> rpool;
  std::shared_ptr<blocking_runner> redis_runner;
  std::shared_ptr<result_cache> cache;  // null unless enable_caching
  job_runner_actor jr;                  // job queue; null when disabled
  job_writer_actor jw;                  // job queue; null when disabled
  caf::actor watchdog;                  // exits the process when an actor fails
  // Transport "nats" (null otherwise): the connection, the bridge (which
  // stands where the router stands for a listener) with its own fenced DLQ,
  // and the workers with the lease clock of their partitions.
  std::shared_ptr<nats_connection> nats;
  router_actor bridge;
  dlq_actor bridge_dq;
  worker_actor wk;
  std::shared_ptr<lease_clock> ownership;
  std::shared_ptr<worker_report> report = std::make_shared<worker_report>();
  std::string worker_name;
  bool workers_started = false;
  /// Everything this node's roles run is running (start() has nothing left
  /// to do); `started` is already true when only part of it runs (workers
  /// while the bridge stands by).
  bool complete = false;
  bool started = false;
  bool stopped = false;
  // The control plane calls the façade from its own thread: `life`
  // keeps start/stop from tearing the actor system down under it.
  mutable std::shared_mutex life;
  std::atomic<int> role{0};        // index into role_names
  std::atomic<uint64_t> epoch{0};  // of the lease while leading
  std::shared_ptr<journal> trace;
  std::shared_ptr<byte_budget> budget;

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
  if (dry_run && !d.cfg.roles.pipeline)
    throw std::runtime_error(
        "--dry-run runs the PostgreSQL pipeline only (transport \"postgres\"); this "
        "configuration uses transport \"nats\"");
  d.health = std::make_shared<health_state>(
      std::chrono::milliseconds(d.cfg.metrics.readiness_max_checkpoint_age_ms));
  d.stats = std::make_shared<metrics>(*d.registry, d.cfg.listener.listener_id, d.health);
  d.budget = std::make_shared<byte_budget>(d.cfg.listener.max_bytes_in_flight);
  // The journal only serves the control plane: without it, record nothing.
  // The events it keeps count against the byte budget, so it keeps at most
  // an eighth of it.
  if (d.cfg.audit.enabled && !dry_run)
    d.audit_q = std::make_shared<audit_queue>(d.cfg.audit.queue_size, d.cfg.audit.queue_max_bytes);
  impl_->trace =
      std::make_shared<journal>(impl_->cfg.control.enabled ? impl_->cfg.control.journal_size : 0,
                                d.cfg.listener.max_bytes_in_flight / 8);
}

namespace {
const char* const role_names[] = {"starting", "standby", "leader", "dry-run",
                                  "stopping", "stopped", "worker"};
enum role_index { r_starting, r_standby, r_leader, r_dry_run, r_stopping, r_stopped, r_worker };
}  // namespace

std::string node::role() const {
  return role_names[impl_->role.load()];
}
node_summary node::summary() const {
  node_summary s;
  s.role = role();
  if (impl_->role == r_leader || impl_->role == r_dry_run) {
    s.epoch = impl_->epoch;
    s.listener_healthy = impl_->stats->own_listener_healthy();
    s.backlog = impl_->stats->backlog_events();
  }
  return s;
}
std::shared_ptr<metrics> node::stats() const {
  return impl_->stats;
}
const config& node::cfg() const {
  return impl_->cfg;
}
std::shared_ptr<const observer_registry> node::registry() const {
  return impl_->registry;
}
std::shared_ptr<journal> node::trace() const {
  return impl_->trace;
}

std::optional<std::string> node::scrape_metrics() {
  std::shared_lock<std::shared_mutex> lock(impl_->life);
  if (!impl_->started || impl_->stopped || !impl_->stats) return std::nullopt;
  return impl_->stats->scrape();
}

std::optional<cache_status> node::cache_stats() {
  auto& d = *impl_;
  // Copies under the lock; the Redis calls below (up to its timeouts) run
  // without it, so they never hold up a stop. The copies keep the pool and
  // the cache alive meanwhile.
  std::shared_ptr<result_cache> cache;
  std::shared_ptr<redis_pool> rpool;
  std::shared_ptr<metrics> stats;
  {
    std::shared_lock<std::shared_mutex> lock(d.life);
    if (!d.started || d.stopped || !d.stats) return std::nullopt;
    cache = d.cache;
    rpool = d.rpool;
    stats = d.stats;
  }
  cache_status s;
  if (cache) {
    s.backend = rpool ? "redis" : "memory";
    s.ttl_ms = static_cast<uint64_t>(cache->ttl().count());
    try {
      const auto u = cache->usage();
      s.entries = u.entries;
      s.capacity = u.capacity;
      s.evictions = u.evictions;
      s.expired = u.expired;
    } catch (const std::exception& e) {
      s.usage_error = e.what();
    }
  }
  for (uint32_t i = 0; i < d.registry->size(); ++i) {
    cache_status::observer o;
    const auto& oc = d.registry->config(i);
    o.name = oc.name;
    std::tie(o.hits, o.misses) = stats->cache_lookups(i);
    for (const auto& ac : oc.actions)
      if (ac.webhook && ac.webhook->cache) ++o.cached_actions;
    s.hits += o.hits;
    s.misses += o.misses;
    s.observers.push_back(std::move(o));
  }
  if (rpool) {
    s.redis_url = redact_url(d.cfg.redis->url);
    try {
      rpool->check();
      s.redis_ok = true;
    } catch (const std::exception& e) {
      s.redis_ok = false;
      s.redis_error = e.what();
    }
  }
  return s;
}

node::redrive_result node::redrive(event_ptr ev, uint32_t observer, uint32_t action,
                                   std::chrono::milliseconds timeout) {
  auto& d = *impl_;
  std::shared_lock<std::shared_mutex> lock(d.life);
  if (!d.started || d.stopped || !d.pool)
    throw std::runtime_error(
        "this node is " + role() +
        (d.cfg.roles.pipeline
             ? ": redrive runs on the node leading listener '" + d.cfg.listener.listener_id + "'"
             : std::string(": redrive runs on a NATS worker")));
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
  if (d.complete || d.stopped) return;
  if (d.cfg.metrics.enabled && !d.server) {
    d.server = std::make_unique<monitoring_server>(
        d.cfg.metrics.bind, d.cfg.metrics.port, [s = d.stats] { return s->scrape(); }, d.health);
    spdlog::info("node: metrics on http://{}:{}/metrics (probes: /healthz, /readyz)",
                 d.cfg.metrics.bind, d.server->port());
  }
  try {
    acquire_and_run();
  } catch (const standby& e) {
    if (d.workers_started) throw;  // the workers run; only the bridge stands by
    d.role = r_standby;
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
  if (d.cfg.roles.pipeline) d.stats->leader(true);
}

void node::acquire_and_run() {
  if (impl_->cfg.roles.pipeline) return acquire_and_run_pipeline();
  auto& d = *impl_;
  const std::string dsn = normalize_dsn(d.cfg.database.url);
  require_schema(dsn, d.cfg.source);
  if (!d.sys) d.sys = std::make_unique<caf::actor_system>(d.acfg);
  if (!d.nats) d.nats = connect_nats();
  if (d.cfg.roles.workers && !d.workers_started) start_workers(dsn);
  if (d.cfg.roles.bridge) {
    try {
      start_bridge(dsn);
    } catch (const standby&) {
      if (d.workers_started) d.started = true;  // the workers run; the bridge stands by
      throw;
    }
  }
  d.started = true;
  d.complete = true;
}

std::shared_ptr<nats_connection> node::connect_nats() {
  auto& d = *impl_;
  const auto& n = *d.cfg.nats;
  nats_connection_options o;
  o.urls = n.urls();
  o.name = "fraiseql-observer " + node_identity();
  o.user = n.user;
  o.password = n.password;
  o.token = n.token;
  o.credentials_file = n.credentials_file;
  o.tls = n.tls;
  o.tls_ca_file = n.tls_ca_file;
  o.tls_cert_file = n.tls_cert_file;
  o.tls_key_file = n.tls_key_file;
  // Never give up: a bridge and its workers outlive any NATS outage.
  o.retry_on_failed_connect = true;
  // Nothing is buffered while reconnecting: a publish then fails at once and
  // the bridge sends it again in order, after the ones lost with the old
  // connection (publish_tracker). A buffered one would reach the new server
  // before those.
  o.reconnect_buffer_bytes = 1;
  auto stats = d.stats;
  auto conn = nats_connection::connect(o, [stats](nats_event e, const std::string& detail) {
    switch (e) {
      case nats_event::connected:
      case nats_event::reconnected:
        spdlog::info("nats: connected to {}", detail);
        stats->nats_connected(true);
        break;
      case nats_event::disconnected:
        spdlog::warn("nats: disconnected ({}); reconnecting", detail);
        stats->nats_connected(false);
        break;
      case nats_event::closed:
        stats->nats_connected(false);
        break;
      case nats_event::error:
        spdlog::warn("nats: {}", detail);
        break;
    }
  });
  d.stats->nats_connected(conn->connected());
  if (conn->connected()) spdlog::info("nats: connected to {}", conn->connected_url());
  return conn;
}

namespace {

/// Bridges and workers must agree on the partition count, or events of the
/// partitions a worker does not know are never consumed. The first process
/// records it (bucket <stream>_config, key `partitions`, no expiry); every
/// later one compares. Throws std::runtime_error naming the key on a mismatch,
/// nats_unavailable while NATS cannot be reached.
void check_partitions(const std::shared_ptr<nats_connection>& conn, const nats_config& n) {
  kv_bucket bucket(conn, n.stream + "_config", std::chrono::milliseconds(0),
                   static_cast<int>(n.replicas));
  const std::string mine = std::to_string(n.partitions);
  if (bucket.create("partitions", mine)) return;
  const auto have = bucket.get("partitions");
  if (!have || have->first == mine) return;
  throw std::runtime_error(
      "nats.partitions = " + mine + ", but stream '" + n.stream + "' is partitioned into " +
      have->first + " (recorded in key-value bucket '" + n.stream +
      "_config', key 'partitions', by the first bridge or worker): every bridge and worker of "
      "a stream must use the same value; to change it, see \"Changing the partition count\" "
      "in docs/nats.md");
}

}  // namespace

void node::start_workers(const std::string& dsn) {
  auto& d = *impl_;
  const auto& n = *d.cfg.nats;
  try {
    check_partitions(d.nats, n);
  } catch (const nats_unavailable& e) {
    throw pg_unavailable(std::string("NATS: ") + e.what());
  }
  d.ownership = std::make_shared<lease_clock>();
  std::string name = n.worker_name;
  if (name.empty() && d.cfg.cluster.enabled) name = d.cfg.cluster.node_name;
  if (name.empty()) name = node_identity();
  // A key of the ownership bucket: A-Z a-z 0-9 _ - . only ("host:pid" -> "host-pid").
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') c = '-';
  d.http = make_http_client(d.cfg.performance);
  const node_env env{*d.sys,
                     d.cfg,
                     dsn,
                     false,
                     d.registry,
                     d.stats,
                     d.trace->capacity() > 0 ? d.trace : nullptr,
                     d.stopping,
                     d.ownership,
                     0,
                     d.budget,
                     d.audit_q};
  d.dq = spawn_dlq(env);
  auto executors = make_executors(d.cfg, d.registry, d.http);
  if (d.cfg.job_queue.enabled) {
    auto q = spawn_job_queue(env, executors);
    d.jr = q.runner;
    d.jw = q.writer;
  }
  d.rpool = make_redis_pool(d.cfg, *d.stats);
  if (d.cfg.performance.enable_caching)
    d.redis_runner = add_result_cache(d.cfg, d.rpool, executors, d.stats, d.cache);
  warn_uncached_webhooks(d.cfg);
  worker_options wo;
  wo.conn = d.nats;
  wo.nats = n;
  wo.name = name;
  wo.window = d.cfg.performance.worker_window;
  wo.stats = d.stats;
  wo.ownership = d.ownership;
  wo.dlq = d.dq;
  wo.report = d.report;
  d.worker_name = name;
  // fetch -> router -> [dedup ->] pool -> [dedup ->] worker (acks)
  d.wk = spawn_worker(*d.sys, wo);
  finish_sink finished = d.wk;
  if (d.cfg.performance.enable_dedup) {
    d.dd = spawn_dedup(env, d.rpool, d.wk);
    finished = d.dd;
  }
  d.pool = spawn_action_pool(env, std::move(executors), d.jw, finished, d.dq);
  run_sink runs = d.pool;
  if (d.dd) {
    caf::anon_send(d.dd, runs);
    runs = d.dd;
  }
  d.rt = spawn_router(env, runs, d.wk, d.dq);
  if (env.audit) d.au = spawn_audit(env);
  caf::anon_send(d.wk, d.rt);
  d.watchdog = spawn_watchdog(*d.sys, d.health,
                              {d.wk.address(), d.rt.address(), d.pool.address(), d.dq.address(),
                               d.dd.address(), d.jr.address(), d.jw.address()});
  d.workers_started = true;
  d.role = r_worker;
  // A worker reads no change log: its readiness is not a listener's (with
  // --role all the bridge's listener reports as usual).
  if (!d.cfg.roles.bridge) d.health->without_listener();
  d.health->leading();
  spdlog::info("node: workers started as '{}' (stream {}, {} partitions, window {}), {} observers",
               name, n.stream, n.partitions, wo.window, d.registry->size());
}

void node::start_bridge(const std::string& dsn) {
  auto& d = *impl_;
  const auto& n = *d.cfg.nats;
  const std::string& id = d.cfg.listener.listener_id;
  auto store = std::make_shared<checkpoint_store>(dsn, id, "pg_to_nats");
  auto lease = take_leadership(
      dsn, id, std::chrono::milliseconds(d.cfg.failover.failover_threshold_ms), *store);
  d.lease = lease;
  d.epoch = lease->epoch().value_or(0);
  const checkpoint_record resume = load_checkpoint(*store, id);
  d.stats->checkpoint_position(resume.pos.txid, resume.pos.pk);
  std::string source = n.source_name.empty() ? source_name_of_dsn(dsn) : n.source_name;
  if (source.empty()) source = "default";
  // The stream first: a bridge that cannot create it must not read.
  stream_config sc;
  sc.name = n.stream;
  sc.subjects = {stream_subjects(n.subject_prefix)};
  sc.replicas = static_cast<int>(n.replicas);
  sc.duplicate_window = std::chrono::seconds(n.duplicate_window_secs);
  sc.max_age = std::chrono::seconds(n.max_age_secs);
  stream_info si;
  try {
    check_partitions(d.nats, n);
    // Limits this configuration does not set (max_msgs, max_bytes, max message
    // size: `nats stream edit`) stay as an operator set them.
    if (auto existing = get_stream_info(*d.nats, n.stream)) {
      sc.max_msgs = existing->config.max_msgs;
      sc.max_bytes = existing->config.max_bytes;
      sc.max_msg_size = existing->config.max_msg_size;
    }
    const auto what = ensure_stream(*d.nats, sc, &si);
    spdlog::info("bridge: stream {} {} (subjects {}, {} replicas, {} messages)", n.stream,
                 to_string(what), sc.subjects.front(), sc.replicas, si.messages);
  } catch (const nats_unavailable& e) {
    lease->release();
    d.lease.reset();
    throw pg_unavailable(std::string("NATS: ") + e.what());
  } catch (...) {
    lease->release();
    d.lease.reset();
    throw;
  }
  const node_env env{
      *d.sys,  d.cfg,   dsn, false, d.registry, d.stats, nullptr, d.stopping, lease->deadline(),
      d.epoch, d.budget};
  d.bridge_dq = spawn_dlq(env);
  d.cp = spawn_checkpointer(env, resume, store, lease);
  bridge_options bo;
  bo.conn = d.nats;
  bo.publish.max_pending = std::min(d.cfg.listener.max_in_flight, n.publish_window);
  bo.publish.ack_timeout = std::chrono::milliseconds(n.publish_ack_timeout_ms);
  bo.publish.expect_stream = n.stream;
  bo.subject_prefix = n.subject_prefix;
  bo.source = source;
  bo.partitions = n.partitions;
  bo.stats = d.stats;
  bo.dlq = d.bridge_dq;
  d.bridge = spawn_bridge(*d.sys, bo, d.cp);
  d.lst = spawn_listener(env, resume, d.cp, d.bridge);
  caf::anon_send(d.cp, credit_sink{d.lst});
  auto watch =
      spawn_watchdog(*d.sys, d.health,
                     {d.lst.address(), d.bridge.address(), d.cp.address(), d.bridge_dq.address()});
  if (d.watchdog) {
    // One watchdog for all: the workers' already runs.
    caf::anon_send_exit(watch, caf::exit_reason::user_shutdown);
    for (auto a : {d.lst.address(), d.bridge.address(), d.cp.address(), d.bridge_dq.address()})
      caf::anon_send(d.watchdog, a);
  } else {
    d.watchdog = watch;
  }
  d.pr = spawn_pruner(env);
  caf::anon_send(d.lst, read_atom::value);
  d.role = r_leader;
  d.health->leading();
  d.stats->leader(true);
  spdlog::info(
      "node: bridge started for source '{}' (stream {}, subjects {}.{}.<partition>.<entity>.<op>, "
      "{} partitions)",
      source, n.stream, n.subject_prefix, source, n.partitions);
}

void node::acquire_and_run_pipeline() {
  auto& d = *impl_;
  const std::string dsn = normalize_dsn(d.cfg.database.url);
  const std::string& id = d.cfg.listener.listener_id;
  require_schema(dsn, d.cfg.source);
  // Leadership first, then the checkpoint: a former leader's last write either
  // committed before our takeover (we load it) or is refused (fencing).
  auto store = std::make_shared<checkpoint_store>(dsn, id);
  auto lease =
      d.dry_run
          ? nullptr
          : take_leadership(
                dsn, id, std::chrono::milliseconds(d.cfg.failover.failover_threshold_ms), *store);
  d.lease = lease;
  d.epoch = lease ? lease->epoch().value_or(0) : 0;
  const checkpoint_record resume = load_checkpoint(*store, id);
  d.stats->checkpoint_position(resume.pos.txid, resume.pos.pk);

  d.sys = std::make_unique<caf::actor_system>(d.acfg);
  d.http = make_http_client(d.cfg.performance);
  const node_env env{*d.sys,
                     d.cfg,
                     dsn,
                     d.dry_run,
                     d.registry,
                     d.stats,
                     d.trace->capacity() > 0 ? d.trace : nullptr,
                     d.stopping,
                     lease ? lease->deadline() : nullptr,
                     lease ? lease->epoch().value_or(0) : 0,
                     d.budget,
                     d.dry_run ? nullptr : d.audit_q};
  d.dq = spawn_dlq(env);
  auto executors = make_executors(d.cfg, d.registry, d.http);
  if (d.cfg.job_queue.enabled && !d.dry_run) {
    // Jobs run with the executors as they are: the result cache wraps only the pool's.
    auto q = spawn_job_queue(env, executors);
    d.jr = q.runner;
    d.jw = q.writer;
  }
  d.rpool = make_redis_pool(d.cfg, *d.stats);
  if (d.cfg.performance.enable_caching && !d.dry_run)
    d.redis_runner = add_result_cache(d.cfg, d.rpool, executors, d.stats, d.cache);
  warn_uncached_webhooks(d.cfg);

  // listener -> router -> [dedup ->] pool -> [dedup ->] checkpointer. The two
  // cycles are closed by typed wiring messages, sent before the first read
  // (messages/actors.hpp).
  d.cp = spawn_checkpointer(env, resume, store, lease);
  finish_sink finished = d.cp;
  if (d.cfg.performance.enable_dedup && !d.dry_run) {
    d.dd = spawn_dedup(env, d.rpool, d.cp);
    finished = d.dd;
  }
  d.pool = spawn_action_pool(env, std::move(executors), d.jw, finished, d.dq);
  run_sink runs = d.pool;
  if (d.dd) {
    caf::anon_send(d.dd, runs);  // claimed events run in the pool
    runs = d.dd;
  }
  d.rt = spawn_router(env, runs, d.cp, d.dq);
  d.lst = spawn_listener(env, resume, d.cp, d.rt);
  caf::anon_send(d.cp, credit_sink{d.lst});
  // Crash-only: an actor that dies from an error takes the process down with a
  // non-zero exit. The checkpoint never passed an unfinished event, so a restart
  // (systemd, Kubernetes) resumes without loss; limping on would stall silently.
  d.watchdog = spawn_watchdog(*d.sys, d.health,
                              {d.lst.address(), d.rt.address(), d.pool.address(), d.cp.address(),
                               d.dq.address(), d.dd.address(), d.jr.address(), d.jw.address()});
  if (!d.dry_run) d.pr = spawn_pruner(env);
  if (env.audit) d.au = spawn_audit(env);
  if (!d.dry_run) d.hw = spawn_history_writer(env, d.cp);
  caf::anon_send(d.lst, read_atom::value);
  d.started = true;
  d.complete = true;
  d.role = d.dry_run ? r_dry_run : r_leader;
  spdlog::info("node: started (role all{}), {} observers", d.dry_run ? ", dry run" : "",
               d.registry->size());
}

std::optional<nats_status> node::nats_state() const {
  auto& d = *impl_;
  std::shared_lock<std::shared_mutex> lock(d.life);
  if (!d.nats || !d.cfg.nats) return std::nullopt;
  nats_status s;
  s.connected = d.nats->connected();
  s.url = d.nats->connected_url();
  s.stream = d.cfg.nats->stream;
  s.partitions = d.cfg.nats->partitions;
  s.bridge = static_cast<bool>(d.bridge);
  s.workers = d.workers_started;
  s.worker_name = d.worker_name;
  auto snap = d.report->get();
  s.members = std::move(snap.members);
  s.owned = std::move(snap.owned);
  s.ownership_ok = snap.round_ok;
  return s;
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
  if (d.cp)
    self->request(d.cp, std::chrono::seconds(5), status_atom::value)
        .receive(
            [&](uint64_t in_flight, uint64_t finished) {
              s.in_flight = in_flight;
              s.finished = finished;
            },
            [](const caf::error&) {});
  if (d.wk)  // workers: messages held and acked
    self->request(d.wk, std::chrono::seconds(5), status_atom::value)
        .receive(
            [&](uint64_t held, uint64_t acked) {
              s.in_flight += held;
              s.finished += acked;
            },
            [](const caf::error&) {});
  if (d.lst)
    self->request(d.lst, std::chrono::seconds(5), status_atom::value)
        .receive([&](uint64_t, uint64_t read) { s.read = read; }, [](const caf::error&) {});
  if (d.pool) {
    self->request(d.pool, std::chrono::seconds(5), status_atom::value)
        .receive([&](uint64_t running, uint64_t) { s.attempts_in_flight = running; },
                 [](const caf::error&) {});
    self->request(d.pool, std::chrono::seconds(5), status_atom::value, breakers_atom::value)
        .receive([&](std::vector<breaker_status>& b) { s.breakers = std::move(b); },
                 [](const caf::error&) {});
  }
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
    // Replays and backfills write no further chunk (one in progress commits
    // or not; either way the next leader resumes after the last committed).
    if (d.hw) self->send_exit(d.hw, caf::exit_reason::user_shutdown);
    // 1. Stop reading (the listener of the pipeline or of the bridge).
    if (d.lst)
      self->request(d.lst, std::chrono::seconds(10), stop_atom::value)
          .receive([](bool) {},
                   [](const caf::error& e) {
                     spdlog::warn("node: listener did not confirm stop: {}", caf::to_string(e));
                   });
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto left = [&] {
      auto l = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      return static_cast<uint64_t>(std::max<int64_t>(0, l.count()));
    };
    // 2. Drain what is in flight: the checkpointer's events (pipeline, bridge)...
    bool cp_drained = true;
    if (d.cp) {
      cp_drained = false;
      for (;;) {
        uint64_t in_flight = 1;
        self->request(d.cp, std::chrono::seconds(5), status_atom::value)
            .receive([&](uint64_t n, uint64_t) { in_flight = n; }, [](const caf::error&) {});
        if (in_flight == 0) {
          cp_drained = true;
          break;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
          spdlog::warn(
              "node: {} events still in flight at shutdown; they are redelivered after "
              "restart",
              in_flight);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    // ...and the workers' messages: fetching stops, held messages finish and
    // are acked, then the partition leases go (the next owners start at once).
    bool wk_drained = true;
    if (d.wk)
      self->request(d.wk, std::chrono::milliseconds(left()) + std::chrono::seconds(40),
                    stop_atom::value, left())
          .receive([&](bool ok) { wk_drained = ok; },
                   [&](const caf::error& e) {
                     wk_drained = false;
                     spdlog::warn("node: workers did not confirm stop: {}", caf::to_string(e));
                   });
    drained = cp_drained && wk_drained;
    d.stopping->store(true);
    // Unfinished events' claims go back, so that the next node need not wait
    // out claim_ttl for them.
    if (d.dd)
      self->request(d.dd, std::chrono::seconds(30), stop_atom::value)
          .receive([](bool) {},
                   [](const caf::error& e) {
                     spdlog::warn("node: dedup did not release its claims: {}", caf::to_string(e));
                   });
    // 3. Flush the checkpoint last.
    if (d.cp)
      self->request(d.cp, std::chrono::seconds(30), flush_atom::value)
          .receive(
              [](const checkpoint_record& r) {
                spdlog::info("node: checkpoint saved at txid {} pk {} ({} events)", r.pos.txid,
                             r.pos.pk, r.events_total);
              },
              [](const caf::error& e) {
                spdlog::error("node: final checkpoint flush failed: {}", caf::to_string(e));
              });
    // The audit trail writes what the drain recorded (bounded; what is left
    // is lost with the process, never waited for).
    if (d.au)
      self->request(d.au, std::chrono::seconds(10), flush_atom::value)
          .receive([](uint64_t) {},
                   [](const caf::error& e) {
                     spdlog::warn("node: audit trail not flushed: {}", caf::to_string(e));
                   });
    // 4. Job queue: running jobs get what is left of the timeout, then their
    // leases are released (they run again after restart, never lost).
    if (d.jr) {
      auto wait = left();
      self->request(d.jr, std::chrono::milliseconds(wait) + std::chrono::seconds(30),
                    stop_atom::value, wait)
          .receive([](bool) {},
                   [](const caf::error& e) {
                     spdlog::warn("node: job runner did not confirm stop: {}", caf::to_string(e));
                   });
      self->send_exit(d.jr, caf::exit_reason::user_shutdown);
      self->send_exit(d.jw, caf::exit_reason::user_shutdown);
    }
    for (auto a : {d.lst.address(), d.rt.address(), d.pool.address(), d.cp.address(),
                   d.dq.address(), d.dd.address(), d.pr.address(), d.au.address(), d.hw.address(),
                   d.bridge.address(), d.bridge_dq.address(), d.wk.address()})
      if (a) self->send_exit(a, caf::exit_reason::user_shutdown);
  }
  // Cache tasks use the executors the pool owns: stop them first.
  if (d.redis_runner) d.redis_runner->shutdown();
  d.lst = nullptr;
  d.rt = nullptr;
  d.pool = nullptr;
  d.cp = nullptr;
  d.dq = nullptr;
  d.dd = nullptr;
  d.pr = nullptr;
  d.au = nullptr;
  d.hw = nullptr;
  d.jr = nullptr;
  d.jw = nullptr;
  d.bridge = nullptr;
  d.bridge_dq = nullptr;
  d.wk = nullptr;
  d.watchdog = nullptr;
  d.sys.reset();  // waits for every actor
  d.stats->leader(false);
  d.http.reset();
  d.redis_runner.reset();
  d.cache.reset();
  d.rpool.reset();
  d.nats.reset();
  // Last, once nothing of this node runs any more: a standby may lead at once.
  if (d.lease) d.lease->release();
  d.lease.reset();
  d.role = r_stopped;
  return drained;
}

}  // namespace fraiseql
