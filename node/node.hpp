#pragma once

// One observer node (role `all`): wires listener -> router -> action pool ->
// checkpointer (+ DLQ) from a validated config. No CAF in this header: apps and
// tests drive a node through this façade.

#include "messages/breaker.hpp"
#include "messages/event.hpp"
#include "runtime/config/model.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace fraiseql {

class journal;
class nats_connection;
class metrics;
class observer_registry;

/// What the cluster coordinator reports of this node in its heartbeats;
/// cheap (atomics only), callable from any thread.
struct node_summary {
  std::string role;    // as node::role()
  uint64_t epoch = 0;  // lease epoch while it leads
  bool listener_healthy = false;
  std::optional<uint64_t> backlog;  // while it leads
};

struct node_status {
  uint64_t in_flight = 0;
  uint64_t finished = 0;
  uint64_t read = 0;
  /// Action attempts running now (pool).
  uint64_t attempts_in_flight = 0;
  /// Circuit breakers the pool knows, sorted by endpoint.
  std::vector<breaker_status> breakers;
};

/// The action-result cache as `observerctl cache-stats` reports it.
struct cache_status {
  /// "off" (enable_caching false), "memory" or "redis".
  std::string backend = "off";
  uint64_t ttl_ms = 0;
  /// What the store holds; empty where it cannot tell (see result_cache.hpp).
  std::optional<uint64_t> entries, capacity, evictions, expired;
  /// Why the store could not be asked (Redis down), if it could not.
  std::string usage_error;
  /// Lookups since start: hits skipped the call.
  uint64_t hits = 0, misses = 0;
  /// Redis (dedup and/or cache): nullopt without [redis]; else whether it
  /// answered a PING just now, and the error when it did not.
  std::optional<bool> redis_ok;
  std::string redis_url;  // password masked
  std::string redis_error;
  struct observer {
    std::string name;
    uint64_t hits = 0, misses = 0;
    /// Actions whose results are cached (webhooks with cache = true).
    uint32_t cached_actions = 0;
  };
  std::vector<observer> observers;
};

/// Transport "nats": what `observerctl status` shows of the bus.
struct nats_status {
  bool connected = false;
  std::string url;  // connected to (empty while not)
  std::string stream;
  uint32_t partitions = 0;
  bool bridge = false;   // this process runs the bridge (and leads)
  bool workers = false;  // this process runs workers
  std::string worker_name;
  std::vector<std::string> members;  // live workers (last ownership round)
  std::vector<uint32_t> owned;       // partitions this worker holds
  bool ownership_ok = false;         // the last ownership round reached NATS
};

class node {
 public:
  /// `dry_run`: connect, read, match and log; execute and checkpoint nothing.
  node(config cfg, bool dry_run);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Takes the leader lease of the listener id, loads the checkpoint and starts
  /// the actors. Throws pg_unavailable when the database cannot be reached,
  /// standby when another node leads (the caller retries both), and
  /// std::runtime_error for problems a retry will not fix (schema missing).
  void start();

  /// Another node holds the lease of this listener id.
  struct standby : std::runtime_error {
    using std::runtime_error::runtime_error;
  };

  /// Graceful stop: stop reading, wait up to `timeout` for in-flight events to
  /// finish, save the checkpoint, stop every actor. Returns true when nothing
  /// was left in flight. Idempotent.
  bool stop(std::chrono::milliseconds timeout);

  node_status status();
  /// nullopt unless transport "nats" runs here.
  std::optional<nats_status> nats_state() const;

  // --- façade for the control plane (thread-safe) ---
  /// "starting" | "standby" | "leader" | "dry-run" | "stopping" | "stopped"
  std::string role() const;
  node_summary summary() const;
  /// The node's metrics (they outlive leadership: a standby serves them too).
  std::shared_ptr<metrics> stats() const;
  const config& cfg() const;
  std::shared_ptr<const observer_registry> registry() const;
  /// The debug journal (`[control] journal_size` entries).
  std::shared_ptr<journal> trace() const;
  /// Prometheus text exposition; nullopt until the pipeline runs.
  std::optional<std::string> scrape_metrics();
  /// The result cache and Redis (may block on Redis for up to its timeouts);
  /// nullopt until the pipeline runs.
  std::optional<cache_status> cache_stats();
  struct redrive_result {
    bool ok = false;
    uint32_t attempts = 0;
    std::string error;
  };
  /// Runs one action of one observer again for `ev` through the action pool
  /// (observer's retry policy). Throws std::runtime_error when the pipeline is
  /// not running here (standby) or no answer came within `timeout`.
  redrive_result redrive(event_ptr ev, uint32_t observer, uint32_t action,
                         std::chrono::milliseconds timeout);

 private:
  void acquire_and_run();
  void acquire_and_run_pipeline();
  // transport "nats"
  std::shared_ptr<nats_connection> connect_nats();
  void start_workers(const std::string& dsn);
  void start_bridge(const std::string& dsn);
  void status_into(node_status& s);
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace fraiseql
