#pragma once

// The node's spawn_<name>: each turns the validated config into the options of
// one actor, spawns it through the actor's own spawn_<name>(system, options,
// ...) (actors/*/*.hpp) and returns its typed handle. The handles an actor
// sends to are parameters, in their narrow types (messages/actors.hpp), so the
// compiler checks every link. Only node.cpp includes this (it pulls in CAF).

#include "messages/actors.hpp"
#include "messages/checkpoint.hpp"
#include "runtime/config/model.hpp"
#include "runtime/core/lease_clock.hpp"
#include "runtime/exec/executor.hpp"

#include <caf/fwd.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace fraiseql {

class audit_queue;
class byte_budget;
class checkpoint_sink;
class health_state;
class journal;
class leader_lease;
class metrics;
class observer_registry;
class redis_pool;

/// What every node-level spawn reads: the actor system, the validated config
/// and what the node's actors share.
struct node_env {
  caf::actor_system& sys;
  const config& cfg;
  /// libpq DSN of the source database (normalized).
  std::string dsn;
  bool dry_run = false;
  std::shared_ptr<const observer_registry> registry;
  std::shared_ptr<metrics> stats;
  /// Debug journal; null when it records nothing (the hot path skips it).
  std::shared_ptr<journal> trace;
  /// Set when the node stops (writers then give up instead of waiting forever).
  std::shared_ptr<std::atomic<bool>> stopping;
  /// How long this node may still lead (null in a dry run): the pool starts
  /// nothing once it has passed.
  std::shared_ptr<const lease_clock> lease;
  /// The lease epoch (0 in a dry run): fences DLQ writes as it fences checkpoints.
  int64_t epoch = 0;
  /// The listener's byte budget (listener.max_bytes_in_flight): what events
  /// hold while referenced anywhere in the node.
  std::shared_ptr<byte_budget> budget;
  /// The audit trail's queue ([audit]); null when it is off (and in a dry run).
  std::shared_ptr<audit_queue> audit;
};

dlq_actor spawn_dlq(const node_env& env);

/// Starts from `resume`, saves to `store`, checks `lease` (null in a dry run).
/// Send it its credit_sink once the listener exists.
checkpointer_actor spawn_checkpointer(const node_env& env, const checkpoint_record& resume,
                                      std::shared_ptr<checkpoint_sink> store,
                                      std::shared_ptr<leader_lease> lease);

/// Reads from `resume`; does not read before its first `read`.
listener_actor spawn_listener(const node_env& env, const checkpoint_record& resume,
                              admission_sink checkpointer, router_actor router);

/// Oversize events go to `dlq`.
router_actor spawn_router(const node_env& env, run_sink pool, finish_sink checkpointer,
                          dlq_actor dlq);

/// `jobs`: the job queue's writer (null when the queue is off).
action_pool_actor spawn_action_pool(const node_env& env, executor_map executors,
                                    job_writer_actor jobs, finish_sink checkpointer, dlq_actor dlq);

struct job_queue_actors {
  job_runner_actor runner;
  job_writer_actor writer;
};

/// [job_queue]: the runner, then the writer that wakes it after each commit.
/// Jobs run with `executors` (never through the action-result cache).
job_queue_actors spawn_job_queue(const node_env& env, const executor_map& executors);

/// enable_dedup (needs [redis]): claims in `redis`, finishes into
/// `checkpointer`; env.epoch (the lease's) lets it take over the claims of
/// earlier leaders of this listener. Send it its run_sink (the pool) before any event.
dedup_actor spawn_dedup(const node_env& env, std::shared_ptr<redis_pool> redis,
                        finish_sink checkpointer);

/// Crash-only: exits the process (code 70) when one of `actors` (or an actor
/// whose address it is sent later) dies from an error, after marking `health`
/// failed. The caller keeps them alive (it holds their handles); null
/// addresses (actors not spawned) are skipped.
/// Change-log retention ([change_log]); reports the log's figures even when
/// pruning is off.
pruner_actor spawn_pruner(const node_env& env);

/// [audit]: the writer of env.audit's records (call only when env.audit is set).
audit_actor spawn_audit(const node_env& env);
/// Replay and backfill requests of this listener id / database, paced by
/// the pipeline's `checkpointer` (actors/history/history_writer.hpp).
caf::typed_actor<caf::reacts_to<tick_atom>> spawn_history_writer(
    const node_env& env, caf::typed_actor<status_reply> checkpointer);

caf::actor spawn_watchdog(caf::actor_system& sys, std::shared_ptr<health_state> health,
                          std::vector<caf::actor_addr> actors);

}  // namespace fraiseql
