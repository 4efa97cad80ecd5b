#pragma once

// Prometheus metrics of a node (prometheus-cpp), named as the spec's alert rules
// and dashboards use them. All series are created up front from the observer
// registry, so the hot path only does atomic increments on cached handles.
// Every method is thread-safe.

// Node-level series carry a `listener_id` label (the spec's
// observer_events_processed_total{listener_id="listener-1"}); per-observer
// series carry `observer` (and `action_type`). Serving them over HTTP is
// monitoring_server's job; this class only owns the registry.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace fraiseql {

class observer_registry;
class health_state;

class metrics {
 public:
  /// `health` (optional) is kept in step with the listener and checkpoint
  /// signals below, so /readyz and the gauges never disagree.
  metrics(const observer_registry& reg, const std::string& listener_id,
          std::shared_ptr<health_state> health = nullptr);
  ~metrics();
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  /// The text exposition, as a scrape would see it.
  std::string scrape() const;

  /// 1 while this node leads its listener id, 0 while it stands by or waits.
  void leader(bool leading);
  /// The listener read `n` events from the change log.
  void events_read(uint64_t n);
  /// The checkpoint now stands at (txid, change-log pk).
  void checkpoint_position(uint64_t txid, uint64_t pk);

  /// An event went through the router (matched or not).
  void event_processed();
  /// An observer fired for an event.
  void event_matched(uint32_t observer);
  /// A condition failed to evaluate (the observer did not fire).
  void condition_error(uint32_t observer);
  /// One attempt of an action ended (`ok` or not) after `seconds`.
  void action_attempt(uint32_t observer, uint32_t action, bool ok, double seconds);
  /// An action was written to the DLQ.
  void dlq_item(uint32_t observer);
  /// An event finished (all actions done or dead-lettered), `seconds` after it was read.
  void event_finished(double seconds);
  /// 1 while the listener reads without errors, 0 while the database is unreachable.
  void listener_health(bool healthy);
  /// Events read and not yet finished.
  void backlog(uint64_t events);
  /// What this node last reported of itself (the coordinator's heartbeat).
  bool own_listener_healthy() const;
  uint64_t backlog_events() const;
  // The cluster view ([cluster]; the series appear with the first report).
  /// From now on observer_listener_health shows the cluster's view: 1 while
  /// it sees a healthy leader for `listener_id`.
  void cluster_listener_health(const std::string& listener_id, bool healthy);
  /// observer_cluster_members and observer_cluster_members_healthy.
  void cluster_size(uint32_t members, uint32_t healthy);
  /// observer_cluster_leader_changes_total{listener_id}.
  void leader_change(const std::string& listener_id);
  // Change-log retention (actors/history/pruner).
  void change_log_pruned(uint64_t rows);
  /// Audit trail ([audit]): records written (events, attempts), records
  /// dropped because the queue was full, records whose write failed for good,
  /// records waiting, day partitions dropped by retention.
  void audit_written(uint64_t events, uint64_t attempts);
  void audit_dropped(uint64_t n);
  void audit_failed(uint64_t n);
  void audit_queue(uint64_t records);
  void audit_partitions_dropped(uint64_t n);
  /// Rows (planner estimate), bytes, age of the oldest row, and how far past
  /// the retention period it is (0 while pruning keeps up or is off).
  void change_log_figures(int64_t rows, int64_t bytes, double oldest_age_seconds,
                          double overdue_seconds);
  /// Bytes the events still referenced in the node hold (the byte budget's use).
  void bytes_in_flight(uint64_t bytes);
  /// The largest change-log row body read so far, in bytes.
  void largest_event(uint64_t bytes);
  /// An event over listener.max_event_bytes was written to the DLQ unread.
  void oversize_event();
  /// Seconds since the checkpoint was last saved (0 when nothing is pending).
  void checkpoint_age(double seconds);
  /// The breaker of `endpoint` changed state: 0 closed, 1 open, 2 half-open.
  void breaker_state(const std::string& endpoint, int state);
  /// A call to `endpoint` failed fast because its breaker is open.
  void breaker_rejected(const std::string& endpoint);
  /// The breaker of `endpoint` was forgotten (bounded registry): its series go.
  void breaker_forget(const std::string& endpoint);
  /// Adaptive concurrency of `endpoint`: its limit, attempts in flight, and
  /// its baseline and recent latency (0 until measured).
  void endpoint_limit(const std::string& endpoint, uint32_t limit, uint32_t in_flight,
                      double baseline_seconds, double recent_seconds);
  /// The limiter of `endpoint` was forgotten (bounded registry): its series go.
  void endpoint_limit_forget(const std::string& endpoint);

  /// The action-result cache answered a lookup for an action of `observer`
  /// (hit: the call was skipped). Also keeps observer_cache_hit_rate =
  /// hits / (hits + misses), and per-observer counts for cache_lookups().
  void cache_hit(uint32_t observer);
  void cache_miss(uint32_t observer);
  /// (hits, misses) of `observer`'s actions since start (not exported: the
  /// control plane's `cache-stats` reads them).
  std::pair<uint64_t, uint64_t> cache_lookups(uint32_t observer) const;
  /// Dedup: an event was found already done and skipped (hit), or claimed to
  /// run (miss).
  void dedup_hits(uint64_t n);
  void dedup_misses(uint64_t n);
  /// Dedup: a claim was still held by another worker (the event waits).
  void dedup_busy(uint64_t n);
  /// Dedup: a confirm found another owner's claim (claim_ttl too short: the
  /// event may have run twice).
  void dedup_lost(uint64_t n);
  /// Events run without dedup because Redis was unavailable (fail-open).
  void dedup_bypassed(uint64_t n);
  /// A Redis call failed as unavailable.
  void redis_unavailable();
  /// 1 while Redis answers, 0 during an outage.
  void redis_health(bool healthy);
  // Job queue (observer_jobs).
  /// `n` new jobs were durably enqueued.
  void jobs_enqueued(uint64_t n);
  /// A job succeeded and was deleted.
  void job_completed();
  /// A job went to the DLQ (attempts exhausted or a final failure).
  void job_failed();
  /// A job attempt failed and the job was rescheduled.
  void job_retried();
  /// Jobs queued for this node's listener id (running ones included).
  void jobs_queue_depth(uint64_t n);
  /// Jobs this node is running now.
  void jobs_running(uint64_t n);
  // NATS (transport "nats"): the bridge and the workers.
  /// 1 while the NATS connection is up.
  void nats_connected(bool up);
  /// Bridge: `n` events acknowledged by the stream (stored or duplicate).
  void nats_published(uint64_t n, uint64_t duplicates);
  /// Bridge: publishes awaiting their ack, and events waiting to be published.
  void nats_publish_pending(uint64_t unacked, uint64_t queued);
  /// Bridge: publishes that failed (error, no ack in time) and were sent again.
  void nats_publish_failed(uint64_t n);
  /// Bridge: events stored behind a later event of their partition.
  void nats_reordered(uint64_t n);
  /// Worker: messages fetched, and those delivered more than once.
  void nats_fetched(uint64_t n, uint64_t redelivered);
  /// Worker: messages acknowledged, and terminated (unparseable, or
  /// max_deliver reached: dead-lettered).
  void nats_acked(uint64_t n);
  void nats_terminated(uint64_t n);
  /// Worker: partitions this worker owns now.
  void nats_partitions_owned(uint64_t n);
  /// Worker: one partition consumer's figures (num_pending, num_ack_pending,
  /// its max_ack_pending).
  void nats_consumer(uint32_t partition, uint64_t pending, uint64_t ack_pending,
                     uint64_t max_ack_pending);
  /// Worker: the partition is not this worker's any more: its series go
  /// (they would keep their last value, and alerts on them would fire on a
  /// worker that no longer owns it).
  void nats_consumer_gone(uint32_t partition);

 private:
  void update_hit_rate();
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The version observer_build_info and --version report.
const char* observer_version();

}  // namespace fraiseql
