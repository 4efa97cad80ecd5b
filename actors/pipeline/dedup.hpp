#pragma once

#include "messages/actors.hpp"

#include <caf/fwd.hpp>
#include "runtime/core/dedup.hpp"
#include "runtime/core/outage.hpp"
#include "runtime/io/redis/dedup.hpp"
#include "runtime/ops/metrics.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace fraiseql {

struct dedup_options {
  /// The claim protocol (redis_dedup; memory_dedup in tests). Its calls block:
  /// the actor is detached.
  std::shared_ptr<dedup_store> store;
  /// This node incarnation's owner token (make_owner_token).
  std::string owner;
  /// Lifetime of a claim; held claims are extended every third of it.
  std::chrono::milliseconds claim_ttl{30000};
  /// How often busy claims and held confirms are retried.
  std::chrono::milliseconds retry_interval{250};
  redis_failure_policy policy = redis_failure_policy::fail_open;
  /// A cheap Redis round trip (PING), tried on ticks during an outage so that
  /// recovery is noticed while no event needs Redis. May be empty.
  std::function<void()> probe;
  /// May be null.
  std::shared_ptr<metrics> stats;
  /// Detached in the node (its calls block); false only for deterministic
  /// tests on CAF's test coordinator with an in-memory store.
  bool detached = true;
};

/// Spawns the dedup actor (detached: Redis calls block its own thread only).
/// Send it the action pool (its run_sink) before any event; events that come
/// earlier wait for it. Events go to the pool in the order they came, once
/// claimed; events already done are finished at once; finished events are
/// confirmed before they reach `checkpointer`. See docs/redis.md for the
/// protocol and the failure policy.
dedup_actor spawn_dedup(caf::actor_system& sys, dedup_options cfg, finish_sink checkpointer);

}  // namespace fraiseql
