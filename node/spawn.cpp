#include "node/spawn.hpp"

#include "actors/history/audit.hpp"
#include "actors/history/history_writer.hpp"
#include "actors/history/pruner.hpp"
#include "actors/jobs/job_runner.hpp"
#include "actors/jobs/job_writer.hpp"
#include "actors/pipeline/action_pool.hpp"
#include "actors/pipeline/checkpointer.hpp"
#include "actors/pipeline/dedup.hpp"
#include "actors/pipeline/dlq.hpp"
#include "actors/pipeline/listener.hpp"
#include "actors/pipeline/router.hpp"
#include "node/identity.hpp"
#include "runtime/core/circuit_breaker.hpp"
#include "runtime/core/dedup.hpp"
#include "runtime/core/health.hpp"
#include "runtime/core/outage.hpp"
#include "runtime/io/redis/connection.hpp"
#include "runtime/io/redis/dedup.hpp"

#include <spdlog/spdlog.h>
#include <caf/all.hpp>

#include <cstdlib>
#include <random>

namespace fraiseql {

dlq_actor spawn_dlq(const node_env& env) {
  dlq_options o;
  o.dsn = env.dsn;
  o.stopping = env.stopping;
  if (env.epoch > 0) {
    o.listener_id = env.cfg.listener.listener_id;
    o.epoch = env.epoch;
  }
  return spawn_dlq(env.sys, o);
}

pruner_actor spawn_pruner(const node_env& env) {
  pruner_options o;
  o.dsn = env.dsn;
  o.prune = env.cfg.change_log.prune;
  o.retention = std::chrono::hours(env.cfg.change_log.retention_hours);
  o.interval = std::chrono::seconds(env.cfg.change_log.prune_interval_secs);
  o.batch_size = env.cfg.change_log.prune_batch_size;
  o.stats = env.stats;
  o.listener_id = env.cfg.listener.listener_id;
  return spawn_pruner(env.sys, std::move(o));
}

caf::typed_actor<caf::reacts_to<tick_atom>> spawn_history_writer(
    const node_env& env, caf::typed_actor<status_reply> checkpointer) {
  history_writer_options o;
  o.dsn = env.dsn;
  o.listener_id = env.cfg.listener.listener_id;
  o.checkpointer = std::move(checkpointer);
  return spawn_history_writer(env.sys, std::move(o));
}

checkpointer_actor spawn_checkpointer(const node_env& env, const checkpoint_record& resume,
                                      std::shared_ptr<checkpoint_sink> store,
                                      std::shared_ptr<leader_lease> lease) {
  checkpointer_options o;
  o.dsn = env.dsn;
  o.listener_id = env.cfg.listener.listener_id;
  o.batch_size = env.cfg.checkpoint.batch_size;
  o.interval = std::chrono::milliseconds(env.cfg.checkpoint.interval_ms);
  o.max_in_flight = env.cfg.listener.max_in_flight;
  o.resume = resume;
  o.dry_run = env.dry_run;
  o.sink = std::move(store);
  o.lease = std::move(lease);
  o.renew_interval = std::chrono::milliseconds(env.cfg.failover.health_check_interval_ms);
  o.stats = env.stats;
  return spawn_checkpointer(env.sys, o);
}

listener_actor spawn_listener(const node_env& env, const checkpoint_record& resume,
                              admission_sink checkpointer, router_actor router) {
  listener_options o;
  o.dsn = env.dsn;
  o.batch_size = env.cfg.listener.batch_size;
  o.poll_interval = std::chrono::milliseconds(env.cfg.listener.poll_interval_ms);
  o.max_in_flight = env.cfg.listener.max_in_flight;
  o.max_bytes_in_flight = env.cfg.listener.max_bytes_in_flight;
  o.max_event_bytes = env.cfg.listener.max_event_bytes;
  o.budget = env.budget;
  o.resume = resume.cursor();
  o.max_backoff = std::chrono::milliseconds(env.cfg.database.reconnect_max_delay_ms);
  o.stats = env.stats;
  return spawn_listener(env.sys, o, std::move(checkpointer), std::move(router));
}

router_actor spawn_router(const node_env& env, run_sink pool, finish_sink checkpointer,
                          dlq_actor dlq) {
  router_options o;
  o.registry = env.registry;
  o.stats = env.stats;
  o.trace = env.trace;
  o.dlq = std::move(dlq);
  o.dry_run = env.dry_run;
  o.audit = env.audit;
  o.listener_id = env.cfg.listener.listener_id;
  return spawn_router(env.sys, o, std::move(pool), std::move(checkpointer));
}

namespace {

/// The settings of `[adaptive_concurrency]`.
adaptive_limit_settings adaptive_limit_settings_of(const adaptive_concurrency_config& c) {
  adaptive_limit_settings s;
  s.min_limit = c.min_limit;
  s.max_limit = c.max_limit;
  s.initial_limit = c.initial_limit;
  s.smoothing = c.smoothing;
  s.tolerance = c.tolerance;
  s.latency_slack = std::chrono::microseconds(c.latency_slack_us);
  s.backoff = c.backoff;
  s.window_samples = c.window_samples;
  s.baseline_interval = std::chrono::milliseconds(c.baseline_interval_ms);
  s.baseline_samples = c.baseline_samples;
  return s;
}

}  // namespace

action_pool_actor spawn_action_pool(const node_env& env, executor_map executors,
                                    job_writer_actor jobs, finish_sink checkpointer,
                                    dlq_actor dlq) {
  const auto& perf = env.cfg.performance;
  action_pool_options o;
  o.registry = env.registry;
  o.executors = std::move(executors);
  o.jobs = std::move(jobs);
  o.enable_concurrent = perf.enable_concurrent;
  o.max_concurrent_actions = perf.max_concurrent_actions;
  o.concurrent_timeout_ms = perf.concurrent_timeout_ms;
  o.breakers = breaker_settings_of(env.cfg.circuit_breaker);
  const auto& ac = env.cfg.adaptive_concurrency;
  o.adaptive = ac.enabled;
  o.limits = adaptive_limit_settings_of(ac);
  o.max_limit_endpoints = ac.max_endpoints;
  o.dry_run = env.dry_run;
  o.lease = env.lease;
  o.stats = env.stats;
  o.trace = env.trace;
  o.audit = env.audit;
  return spawn_action_pool(env.sys, o, std::move(checkpointer), std::move(dlq));
}

job_queue_actors spawn_job_queue(const node_env& env, const executor_map& executors) {
  const auto& jq = env.cfg.job_queue;
  job_runner_options ro;
  ro.dsn = env.dsn;
  ro.listener_id = env.cfg.listener.listener_id;
  ro.token = node_identity() + ":" + std::to_string(std::random_device{}());
  ro.registry = env.registry;
  ro.executors = executors;
  ro.workers = jq.workers;
  ro.batch_size = jq.batch_size;
  ro.poll_interval = std::chrono::milliseconds(jq.poll_interval_ms);
  ro.lease = std::chrono::milliseconds(jq.lease_ms);
  ro.stats = env.stats;
  job_queue_actors q;
  q.runner = spawn_job_runner(env.sys, ro);
  job_writer_options wo;
  wo.dsn = env.dsn;
  wo.listener_id = env.cfg.listener.listener_id;
  wo.rows_per_statement = jq.batch_size;
  wo.max_backoff = std::chrono::milliseconds(env.cfg.database.reconnect_max_delay_ms);
  wo.stopping = env.stopping;
  wo.runner = q.runner;
  wo.stats = env.stats;
  q.writer = spawn_job_writer(env.sys, wo);
  spdlog::info("node: job queue on ({} workers, lease {} ms)", ro.workers, ro.lease.count());
  return q;
}

dedup_actor spawn_dedup(const node_env& env, std::shared_ptr<redis_pool> redis,
                        finish_sink checkpointer) {
  const auto& rc = *env.cfg.redis;
  dedup_options o;
  o.store = std::make_shared<redis_dedup>(*redis, std::chrono::seconds(rc.dedup_window_secs));
  // The listener id and lease epoch make this node the successor of every
  // earlier leader of the listener: it takes over their claims at once.
  o.owner = make_owner_token(env.cfg.listener.listener_id + "@" + host_name(),
                             env.cfg.listener.listener_id, static_cast<uint64_t>(env.epoch));
  o.claim_ttl = std::chrono::seconds(rc.claim_ttl_secs);
  o.policy = *parse_redis_failure_policy(rc.failure_policy);
  o.stats = env.stats;
  o.probe = [redis] { redis->check(); };
  auto dd = spawn_dedup(env.sys, o, std::move(checkpointer));
  spdlog::info("node: deduplication on (window {} s, claim TTL {} s, {}, owner {})",
               rc.dedup_window_secs, rc.claim_ttl_secs, rc.failure_policy, o.owner);
  return dd;
}

audit_actor spawn_audit(const node_env& env) {
  const auto& a = env.cfg.audit;
  audit_options o;
  o.queue = env.audit;
  o.backend = a.backend;
  o.dsn = env.dsn;
  o.listener_id = env.cfg.listener.listener_id;
  o.batch_size = a.batch_size;
  o.flush_interval = std::chrono::milliseconds(a.flush_interval_ms);
  o.retention_days = a.retention_days;
  o.retention_interval = std::chrono::seconds(a.retention_interval_secs);
  o.es_url = a.elasticsearch_url;
  o.es_index = a.elasticsearch_index;
  if (!a.elasticsearch_auth_env.empty()) {
    if (const char* v = std::getenv(a.elasticsearch_auth_env.c_str()))
      o.es_auth = v;
    else
      spdlog::warn("audit: {} (elasticsearch_auth_env) is not set: requests carry no credentials",
                   a.elasticsearch_auth_env);
  }
  o.es_bulk_max_docs = a.elasticsearch_bulk_max_docs;
  o.es_bulk_max_bytes = a.elasticsearch_bulk_max_bytes;
  o.es_timeout_ms = a.elasticsearch_timeout_ms;
  o.es_max_backoff = std::chrono::milliseconds(a.elasticsearch_max_backoff_ms);
  o.stats = env.stats;
  return spawn_audit(env.sys, std::move(o));
}

caf::actor spawn_watchdog(caf::actor_system& sys, std::shared_ptr<health_state> health,
                          std::vector<caf::actor_addr> actors) {
  return sys.spawn([health, actors](caf::event_based_actor* self) -> caf::behavior {
    self->set_down_handler([health](caf::down_msg& dm) {
      if (dm.reason == caf::exit_reason::user_shutdown || dm.reason == caf::exit_reason::normal)
        return;
      health->failed(caf::to_string(dm.source));
      spdlog::critical("node: actor {} failed ({}); exiting so a supervisor restarts the node",
                       caf::to_string(dm.source), caf::to_string(dm.reason));
      spdlog::default_logger()->flush();
      std::_Exit(70);
    });
    for (const auto& a : actors)
      if (a) self->monitor(a);
    return {[self](const caf::actor_addr& a) { self->monitor(a); }};
  });
}

}  // namespace fraiseql
