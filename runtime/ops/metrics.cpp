#include "runtime/ops/metrics.hpp"

#include "messages/breaker.hpp"
#include "runtime/core/health.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/core/redis_url.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <stdexcept>
#include <vector>

#ifndef FRAISEQL_OBSERVER_VERSION
#error "FRAISEQL_OBSERVER_VERSION must be defined (runtime/CMakeLists.txt)"
#endif

namespace fraiseql {

namespace {

const prometheus::Histogram::BucketBoundaries latency_buckets{
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

}  // namespace

const char* observer_version() {
  return FRAISEQL_OBSERVER_VERSION;
}

struct metrics::impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::shared_ptr<health_state> health;
  prometheus::Gauge* leader = nullptr;
  prometheus::Counter* read = nullptr;
  prometheus::Gauge* checkpoint_txid = nullptr;
  prometheus::Gauge* checkpoint_pk = nullptr;
  prometheus::Counter* processed = nullptr;
  prometheus::Histogram* processing = nullptr;
  prometheus::Gauge* listener_health = nullptr;
  prometheus::Gauge* backlog = nullptr;
  prometheus::Gauge* bytes_in_flight = nullptr;
  prometheus::Gauge* largest_event = nullptr;
  prometheus::Counter* oversize = nullptr;
  prometheus::Gauge* checkpoint_age = nullptr;
  prometheus::Counter* cache_hits = nullptr;
  prometheus::Counter* cache_misses = nullptr;
  prometheus::Gauge* cache_hit_rate = nullptr;
  // Per observer: [2 * observer] hits, [2 * observer + 1] misses.
  std::unique_ptr<std::atomic<uint64_t>[]> cache_lookups;
  size_t observers = 0;
  prometheus::Counter* dedup_hits = nullptr;
  prometheus::Counter* dedup_misses = nullptr;
  prometheus::Counter* dedup_busy = nullptr;
  prometheus::Counter* dedup_lost = nullptr;
  prometheus::Counter* dedup_bypassed = nullptr;
  prometheus::Counter* redis_unavailable = nullptr;
  // Created on the first report: without Redis the series does not exist
  // (a 0 would read as an outage).
  prometheus::Family<prometheus::Gauge>* redis_health_family = nullptr;
  std::atomic<prometheus::Gauge*> redis_health{nullptr};
  std::mutex redis_health_mu;
  std::vector<prometheus::Counter*> matched;           // per observer
  std::vector<prometheus::Counter*> condition_errors;  // per observer
  std::vector<prometheus::Counter*> dlq;               // per observer
  struct action_series {
    prometheus::Counter* executed;
    prometheus::Counter* failed;
    prometheus::Histogram* duration;
  };
  std::vector<std::vector<action_series>> actions;  // [observer][action]
  // Job queue.
  prometheus::Counter* jobs_enqueued = nullptr;
  prometheus::Counter* jobs_completed = nullptr;
  prometheus::Counter* jobs_failed = nullptr;
  prometheus::Counter* jobs_retried = nullptr;
  prometheus::Gauge* jobs_depth = nullptr;
  prometheus::Gauge* jobs_running = nullptr;
  // Per-endpoint series appear when a breaker first leaves "closed" or
  // rejects, and go when the pool forgets the breaker, so their number stays
  // bounded by the breaker registry. Families lock internally; the map is
  // touched only by the action pool, guarded anyway since metrics are
  // documented thread-safe.
  prometheus::Family<prometheus::Gauge>* breaker_state = nullptr;
  prometheus::Family<prometheus::Counter>* breaker_rejected = nullptr;
  struct breaker_series {
    prometheus::Gauge* state = nullptr;
    prometheus::Counter* rejected = nullptr;
  };
  std::mutex breakers_mu;
  std::map<std::string, breaker_series> breakers;
  // Adaptive concurrency per endpoint (bounded by the limiter registry).
  prometheus::Family<prometheus::Gauge>* limit_family = nullptr;
  prometheus::Family<prometheus::Gauge>* limit_in_flight_family = nullptr;
  prometheus::Family<prometheus::Gauge>* limit_latency_family = nullptr;
  struct limit_series {
    prometheus::Gauge* limit = nullptr;
    prometheus::Gauge* in_flight = nullptr;
    prometheus::Gauge* baseline = nullptr;
    prometheus::Gauge* recent = nullptr;
  };
  std::map<std::string, limit_series> limits;  // guarded by breakers_mu
  // Listener health: this node's own signal, and the cluster's view once a
  // coordinator reports one (then the gauge shows the view, per listener id).
  std::string listener_id;
  prometheus::Family<prometheus::Gauge>* listener_health_family = nullptr;
  std::atomic<bool> own_listener_healthy{false};
  std::atomic<bool> cluster_view{false};
  std::atomic<uint64_t> backlog_events{0};
  std::mutex cluster_mu;
  std::map<std::string, prometheus::Gauge*> health_by_listener;
  prometheus::Gauge* cluster_members = nullptr;
  prometheus::Gauge* cluster_healthy = nullptr;
  prometheus::Family<prometheus::Counter>* leader_changes = nullptr;
  prometheus::Counter* change_log_pruned = nullptr;
  prometheus::Counter* audit_events = nullptr;
  prometheus::Counter* audit_attempts = nullptr;
  prometheus::Counter* audit_dropped = nullptr;
  prometheus::Counter* audit_failed = nullptr;
  prometheus::Gauge* audit_queue = nullptr;
  prometheus::Counter* audit_partitions_dropped = nullptr;
  // Added on the first report, so that only a process on transport "nats"
  // has the series (NatsDisconnected would fire on every other node).
  prometheus::Family<prometheus::Gauge>* nats_connected_family = nullptr;
  std::atomic<prometheus::Gauge*> nats_connected{nullptr};
  std::mutex nats_connected_mu;
  prometheus::Counter* nats_published = nullptr;
  prometheus::Counter* nats_duplicates = nullptr;
  prometheus::Gauge* nats_unacked = nullptr;
  prometheus::Gauge* nats_queued = nullptr;
  prometheus::Counter* nats_publish_failed = nullptr;
  prometheus::Counter* nats_reordered = nullptr;
  prometheus::Counter* nats_fetched = nullptr;
  prometheus::Counter* nats_redelivered = nullptr;
  prometheus::Counter* nats_acked = nullptr;
  prometheus::Counter* nats_terminated = nullptr;
  prometheus::Gauge* nats_owned = nullptr;
  prometheus::Family<prometheus::Gauge>* nats_consumer_pending = nullptr;
  prometheus::Family<prometheus::Gauge>* nats_consumer_ack_pending = nullptr;
  prometheus::Family<prometheus::Gauge>* nats_consumer_max_ack_pending = nullptr;
  prometheus::Gauge* change_log_rows = nullptr;
  prometheus::Gauge* change_log_bytes = nullptr;
  prometheus::Gauge* change_log_oldest = nullptr;
  prometheus::Gauge* change_log_overdue = nullptr;
  breaker_series& breaker(const std::string& endpoint) {
    auto& b = breakers[endpoint];
    if (b.state == nullptr) {
      b.state = &breaker_state->Add({{"endpoint", endpoint}});
      b.rejected = &breaker_rejected->Add({{"endpoint", endpoint}});
    }
    return b;
  }
};

metrics::metrics(const observer_registry& reg, const std::string& listener_id,
                 std::shared_ptr<health_state> health)
    : impl_(std::make_unique<impl>()) {
  impl_->health = std::move(health);
  impl_->observers = reg.size();
  impl_->cache_lookups = std::make_unique<std::atomic<uint64_t>[]>(2 * reg.size());
  for (size_t i = 0; i < 2 * reg.size(); ++i) impl_->cache_lookups[i] = 0;
  auto& r = *impl_->registry;
  using namespace prometheus;
  const Labels node{{"listener_id", listener_id}};
  // Identity and lifetime: constant series a dashboard joins on and uptime
  // (time() - observer_start_time_seconds) is computed from.
  BuildGauge()
      .Name("observer_build_info")
      .Help("Always 1; the labels name the running build")
      .Register(r)
      .Add({{"version", FRAISEQL_OBSERVER_VERSION}})
      .Set(1);
  BuildGauge()
      .Name("observer_start_time_seconds")
      .Help("Start time of the process in seconds since the Unix epoch")
      .Register(r)
      .Add({})
      .Set(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
               .count());
  impl_->leader = &BuildGauge()
                       .Name("observer_leader")
                       .Help("1 while this node leads its listener id, 0 while it stands by")
                       .Register(r)
                       .Add(node);
  impl_->read = &BuildCounter()
                     .Name("observer_events_read_total")
                     .Help("Events read from the change log")
                     .Register(r)
                     .Add(node);
  impl_->checkpoint_txid = &BuildGauge()
                                .Name("observer_checkpoint_txid")
                                .Help("Transaction id of the last saved checkpoint")
                                .Register(r)
                                .Add(node);
  impl_->checkpoint_pk = &BuildGauge()
                              .Name("observer_checkpoint_event_id")
                              .Help("Change-log primary key of the last saved checkpoint")
                              .Register(r)
                              .Add(node);
  impl_->processed = &BuildCounter()
                          .Name("observer_events_processed_total")
                          .Help("Events read from the change log and routed")
                          .Register(r)
                          .Add(node);
  impl_->processing = &BuildHistogram()
                           .Name("observer_event_processing_duration_seconds")
                           .Help("From reading an event to finishing all its actions")
                           .Register(r)
                           .Add({}, latency_buckets);
  impl_->listener_id = listener_id;
  impl_->listener_health_family =
      &BuildGauge()
           .Name("observer_listener_health")
           .Help(
               "1 while the listener reads the change log without errors; with [cluster], 1 "
               "while the cluster sees a healthy leader for the listener id")
           .Register(r);
  impl_->listener_health = &impl_->listener_health_family->Add(node);
  impl_->health_by_listener[listener_id] = impl_->listener_health;
  impl_->backlog = &BuildGauge()
                        .Name("observer_backlog_size")
                        .Help("Events read and not yet finished")
                        .Register(r)
                        .Add(node);
  impl_->bytes_in_flight =
      &BuildGauge()
           .Name("observer_bytes_in_flight")
           .Help("Bytes held by events read and still referenced (listener.max_bytes_in_flight)")
           .Register(r)
           .Add(node);
  impl_->largest_event = &BuildGauge()
                              .Name("observer_largest_event_bytes")
                              .Help("Largest change-log row body read since start, in bytes")
                              .Register(r)
                              .Add(node);
  impl_->oversize =
      &BuildCounter()
           .Name("observer_oversize_events_total")
           .Help("Events over listener.max_event_bytes written to the DLQ without their body")
           .Register(r)
           .Add(node);
  impl_->checkpoint_age =
      &BuildGauge()
           .Name("observer_checkpoint_age_seconds")
           .Help("Seconds since the last checkpoint save while events are pending")
           .Register(r)
           .Add(node);
  auto counter = [&r](const char* name, const char* help) {
    return &BuildCounter().Name(name).Help(help).Register(r).Add({});
  };
  auto gauge = [&r](const char* name, const char* help) {
    return &BuildGauge().Name(name).Help(help).Register(r).Add({});
  };
  impl_->nats_connected_family =
      &BuildGauge()
           .Name("observer_nats_connected")
           .Help("1 while the NATS connection is up (absent unless transport is nats)")
           .Register(r);
  impl_->nats_published =
      counter("observer_nats_published_total",
              "Bridge: events acknowledged by the stream (stored, or duplicates)");
  impl_->nats_duplicates =
      counter("observer_nats_publish_duplicates_total",
              "Bridge: publishes the stream reported as duplicates (stored once, earlier)");
  impl_->nats_unacked =
      gauge("observer_nats_publish_pending", "Bridge: publishes awaiting the stream's ack");
  impl_->nats_queued =
      gauge("observer_nats_publish_queued", "Bridge: events read and waiting to be published");
  impl_->nats_publish_failed =
      counter("observer_nats_publish_failures_total",
              "Bridge: publishes that failed or got no ack in time (published again)");
  impl_->nats_reordered = counter("observer_nats_reordered_total",
                                  "Bridge: events stored behind a later event of their partition");
  impl_->nats_fetched = counter("observer_nats_fetched_total", "Worker: messages fetched");
  impl_->nats_redelivered = counter("observer_nats_redeliveries_total",
                                    "Worker: messages fetched that were delivered before");
  impl_->nats_acked = counter("observer_nats_acked_total", "Worker: messages acknowledged");
  impl_->nats_terminated =
      counter("observer_nats_terminated_total",
              "Worker: messages terminated (unparseable, or max_deliver reached; in the DLQ)");
  impl_->nats_owned =
      gauge("observer_nats_partitions_owned", "Worker: partitions this worker owns now");
  impl_->nats_consumer_pending =
      &BuildGauge()
           .Name("observer_nats_consumer_pending")
           .Help("Worker: messages of an owned partition not yet delivered (num_pending)")
           .Register(r);
  impl_->nats_consumer_ack_pending =
      &BuildGauge()
           .Name("observer_nats_consumer_ack_pending")
           .Help("Worker: delivered, unacknowledged messages of an owned partition")
           .Register(r);
  impl_->nats_consumer_max_ack_pending =
      &BuildGauge()
           .Name("observer_nats_consumer_max_ack_pending")
           .Help("Worker: the partition consumer's max_ack_pending")
           .Register(r);
  impl_->audit_events =
      counter("observer_audit_events_total", "Events written to the audit trail ([audit])");
  impl_->audit_attempts = counter("observer_audit_attempts_total",
                                  "Action attempts written to the audit trail ([audit])");
  impl_->audit_dropped =
      counter("observer_audit_dropped_total",
              "Audit records dropped because the audit queue was full (delivery never waits)");
  impl_->audit_failed = counter("observer_audit_failed_total",
                                "Audit records the backend refused for good (not retried)");
  impl_->audit_queue = gauge("observer_audit_queue", "Audit records waiting to be written");
  impl_->audit_partitions_dropped = counter("observer_audit_partitions_dropped_total",
                                            "Audit day partitions dropped by retention");
  impl_->change_log_pruned = counter("observer_change_log_pruned_total",
                                     "Change-log rows deleted by retention ([change_log])");
  impl_->change_log_rows =
      gauge("observer_change_log_rows", "Rows in the change log (the planner's estimate)");
  impl_->change_log_bytes =
      gauge("observer_change_log_bytes", "Size of the change log with its indexes and TOAST");
  impl_->change_log_oldest = gauge("observer_change_log_oldest_age_seconds",
                                   "Age of the change log's first row in read order");
  impl_->change_log_overdue =
      gauge("observer_change_log_prune_overdue_seconds",
            "How far the oldest row is past the retention period (0 while pruning keeps up)");
  impl_->cache_hits =
      counter("observer_cache_hits_total",
              "Action-result cache lookups that found a result (the call was skipped)");
  impl_->cache_misses = counter("observer_cache_misses_total",
                                "Action-result cache lookups that found nothing (the call ran)");
  impl_->cache_hit_rate = &BuildGauge()
                               .Name("observer_cache_hit_rate")
                               .Help("Cache hits / lookups since start (0 before the first lookup)")
                               .Register(r)
                               .Add({});
  impl_->dedup_hits =
      counter("observer_dedup_hits_total",
              "Events skipped because they were already done within the dedup window");
  impl_->dedup_misses =
      counter("observer_dedup_misses_total", "Events claimed by this node to run");
  impl_->dedup_busy =
      counter("observer_dedup_busy_total",
              "Claim attempts that found another worker's live claim (retried later)");
  impl_->dedup_lost = counter("observer_dedup_lost_total",
                              "Confirms that found another worker's claim (claim_ttl too short)");
  impl_->dedup_bypassed =
      counter("observer_dedup_bypassed_total",
              "Events run without dedup while Redis was unavailable (fail-open)");
  impl_->redis_unavailable =
      counter("observer_redis_unavailable_total", "Redis calls that failed as unavailable");
  impl_->redis_health_family =
      &BuildGauge()
           .Name("observer_redis_health")
           .Help("1 while Redis answers, 0 during an outage (absent without Redis)")
           .Register(r);
  impl_->jobs_enqueued = &BuildCounter()
                              .Name("observer_jobs_enqueued_total")
                              .Help("Asynchronous actions durably enqueued into observer_jobs")
                              .Register(r)
                              .Add(node);
  impl_->jobs_completed = &BuildCounter()
                               .Name("observer_jobs_completed_total")
                               .Help("Jobs that succeeded")
                               .Register(r)
                               .Add(node);
  impl_->jobs_failed = &BuildCounter()
                            .Name("observer_jobs_failed_total")
                            .Help("Jobs moved to the dead-letter queue")
                            .Register(r)
                            .Add(node);
  impl_->jobs_retried = &BuildCounter()
                             .Name("observer_jobs_retried_total")
                             .Help("Job attempts that failed and were rescheduled")
                             .Register(r)
                             .Add(node);
  impl_->jobs_depth = &BuildGauge()
                           .Name("observer_jobs_queue_depth")
                           .Help("Jobs queued for this listener id, running ones included")
                           .Register(r)
                           .Add(node);
  impl_->jobs_running = &BuildGauge()
                             .Name("observer_jobs_running")
                             .Help("Jobs this node is running")
                             .Register(r)
                             .Add(node);
  auto& matched = BuildCounter()
                      .Name("observer_events_matched_total")
                      .Help("Events for which an observer fired")
                      .Register(r);
  auto& cond = BuildCounter()
                   .Name("observer_condition_errors_total")
                   .Help("Conditions that failed to evaluate (the observer did not fire)")
                   .Register(r);
  auto& dlq = BuildCounter()
                  .Name("observer_dlq_items_total")
                  .Help("Actions written to the dead-letter queue")
                  .Register(r);
  auto& executed =
      BuildCounter().Name("observer_actions_executed_total").Help("Action attempts").Register(r);
  auto& failed = BuildCounter()
                     .Name("observer_actions_failed_total")
                     .Help("Action attempts that failed")
                     .Register(r);
  auto& duration = BuildHistogram()
                       .Name("observer_action_duration_seconds")
                       .Help("Duration of action attempts")
                       .Register(r);
  impl_->breaker_state = &BuildGauge()
                              .Name("observer_circuit_breaker_state")
                              .Help("Circuit breaker per endpoint: 0 closed, 1 open, 2 half-open")
                              .Register(r);
  impl_->limit_family = &BuildGauge()
                             .Name("observer_endpoint_concurrency_limit")
                             .Help("Adaptive concurrency: attempts allowed in flight per endpoint")
                             .Register(r);
  impl_->limit_in_flight_family =
      &BuildGauge()
           .Name("observer_endpoint_in_flight")
           .Help("Adaptive concurrency: attempts in flight per endpoint")
           .Register(r);
  impl_->limit_latency_family =
      &BuildGauge()
           .Name("observer_endpoint_latency_seconds")
           .Help("Adaptive concurrency: baseline (unloaded) and recent mean latency per endpoint")
           .Register(r);
  impl_->breaker_rejected = &BuildCounter()
                                 .Name("observer_circuit_breaker_rejected_total")
                                 .Help("Calls failed fast by an open circuit breaker")
                                 .Register(r);
  for (uint32_t o = 0; o < reg.size(); ++o) {
    const auto& oc = reg.config(o);
    impl_->matched.push_back(&matched.Add({{"observer", oc.name}}));
    impl_->condition_errors.push_back(&cond.Add({{"observer", oc.name}}));
    impl_->dlq.push_back(&dlq.Add({{"observer", oc.name}}));
    std::vector<impl::action_series> as;
    for (const auto& ac : oc.actions) {
      std::map<std::string, std::string> labels{{"observer", oc.name}, {"action_type", ac.type}};
      as.push_back(
          {&executed.Add(labels), &failed.Add(labels), &duration.Add(labels, latency_buckets)});
    }
    impl_->actions.push_back(std::move(as));
  }
}

metrics::~metrics() = default;

std::string metrics::scrape() const {
  prometheus::TextSerializer s;
  return s.Serialize(impl_->registry->Collect());
}

void metrics::leader(bool leading) {
  impl_->leader->Set(leading ? 1 : 0);
}
void metrics::events_read(uint64_t n) {
  impl_->read->Increment(static_cast<double>(n));
}
void metrics::checkpoint_position(uint64_t txid, uint64_t pk) {
  impl_->checkpoint_txid->Set(static_cast<double>(txid));
  impl_->checkpoint_pk->Set(static_cast<double>(pk));
}
void metrics::event_processed() {
  impl_->processed->Increment();
}
void metrics::event_matched(uint32_t observer) {
  impl_->matched.at(observer)->Increment();
}
void metrics::condition_error(uint32_t observer) {
  impl_->condition_errors.at(observer)->Increment();
}
void metrics::action_attempt(uint32_t observer, uint32_t action, bool ok, double seconds) {
  auto& a = impl_->actions.at(observer).at(action);
  a.executed->Increment();
  if (!ok) a.failed->Increment();
  a.duration->Observe(seconds);
}
void metrics::dlq_item(uint32_t observer) {
  impl_->dlq.at(observer)->Increment();
}
void metrics::event_finished(double seconds) {
  impl_->processing->Observe(seconds);
}
void metrics::listener_health(bool healthy) {
  impl_->own_listener_healthy = healthy;
  if (!impl_->cluster_view) impl_->listener_health->Set(healthy ? 1 : 0);
  if (impl_->health) impl_->health->listener_connected(healthy);
}
bool metrics::own_listener_healthy() const {
  return impl_->own_listener_healthy;
}
void metrics::bytes_in_flight(uint64_t bytes) {
  impl_->bytes_in_flight->Set(static_cast<double>(bytes));
}

void metrics::largest_event(uint64_t bytes) {
  impl_->largest_event->Set(static_cast<double>(bytes));
}

void metrics::oversize_event() {
  impl_->oversize->Increment();
}

void metrics::backlog(uint64_t events) {
  impl_->backlog_events = events;
  impl_->backlog->Set(static_cast<double>(events));
}
uint64_t metrics::backlog_events() const {
  return impl_->backlog_events;
}
void metrics::nats_connected(bool up) {
  auto* g = impl_->nats_connected.load();
  if (g == nullptr) {
    std::lock_guard<std::mutex> lock(impl_->nats_connected_mu);
    g = impl_->nats_connected.load();
    if (g == nullptr) {
      g = &impl_->nats_connected_family->Add({});
      impl_->nats_connected.store(g);
    }
  }
  g->Set(up ? 1 : 0);
}
void metrics::nats_published(uint64_t n, uint64_t duplicates) {
  impl_->nats_published->Increment(static_cast<double>(n));
  if (duplicates > 0) impl_->nats_duplicates->Increment(static_cast<double>(duplicates));
}
void metrics::nats_publish_pending(uint64_t unacked, uint64_t queued) {
  impl_->nats_unacked->Set(static_cast<double>(unacked));
  impl_->nats_queued->Set(static_cast<double>(queued));
}
void metrics::nats_publish_failed(uint64_t n) {
  impl_->nats_publish_failed->Increment(static_cast<double>(n));
}
void metrics::nats_reordered(uint64_t n) {
  impl_->nats_reordered->Increment(static_cast<double>(n));
}
void metrics::nats_fetched(uint64_t n, uint64_t redelivered) {
  impl_->nats_fetched->Increment(static_cast<double>(n));
  if (redelivered > 0) impl_->nats_redelivered->Increment(static_cast<double>(redelivered));
}
void metrics::nats_acked(uint64_t n) {
  impl_->nats_acked->Increment(static_cast<double>(n));
}
void metrics::nats_terminated(uint64_t n) {
  impl_->nats_terminated->Increment(static_cast<double>(n));
}
void metrics::nats_partitions_owned(uint64_t n) {
  impl_->nats_owned->Set(static_cast<double>(n));
}
void metrics::nats_consumer(uint32_t partition, uint64_t pending, uint64_t ack_pending,
                            uint64_t max_ack_pending) {
  const std::map<std::string, std::string> labels{{"partition", std::to_string(partition)}};
  impl_->nats_consumer_pending->Add(labels).Set(static_cast<double>(pending));
  impl_->nats_consumer_ack_pending->Add(labels).Set(static_cast<double>(ack_pending));
  impl_->nats_consumer_max_ack_pending->Add(labels).Set(static_cast<double>(max_ack_pending));
}
void metrics::nats_consumer_gone(uint32_t partition) {
  const std::map<std::string, std::string> labels{{"partition", std::to_string(partition)}};
  for (auto* f : {impl_->nats_consumer_pending, impl_->nats_consumer_ack_pending,
                  impl_->nats_consumer_max_ack_pending})
    if (f->Has(labels)) f->Remove(&f->Add(labels));
}

void metrics::change_log_pruned(uint64_t rows) {
  impl_->change_log_pruned->Increment(static_cast<double>(rows));
}
void metrics::audit_written(uint64_t events, uint64_t attempts) {
  impl_->audit_events->Increment(static_cast<double>(events));
  impl_->audit_attempts->Increment(static_cast<double>(attempts));
}
void metrics::audit_dropped(uint64_t n) {
  impl_->audit_dropped->Increment(static_cast<double>(n));
}
void metrics::audit_failed(uint64_t n) {
  impl_->audit_failed->Increment(static_cast<double>(n));
}
void metrics::audit_queue(uint64_t records) {
  impl_->audit_queue->Set(static_cast<double>(records));
}
void metrics::audit_partitions_dropped(uint64_t n) {
  impl_->audit_partitions_dropped->Increment(static_cast<double>(n));
}
void metrics::change_log_figures(int64_t rows, int64_t bytes, double oldest_age_seconds,
                                 double overdue_seconds) {
  impl_->change_log_rows->Set(static_cast<double>(rows));
  impl_->change_log_bytes->Set(static_cast<double>(bytes));
  impl_->change_log_oldest->Set(oldest_age_seconds);
  impl_->change_log_overdue->Set(overdue_seconds);
}
void metrics::cluster_listener_health(const std::string& listener_id, bool healthy) {
  auto& d = *impl_;
  std::lock_guard<std::mutex> lock(d.cluster_mu);
  d.cluster_view = true;
  auto& g = d.health_by_listener[listener_id];
  if (g == nullptr) g = &d.listener_health_family->Add({{"listener_id", listener_id}});
  g->Set(healthy ? 1 : 0);
}
void metrics::cluster_size(uint32_t members, uint32_t healthy) {
  auto& d = *impl_;
  std::lock_guard<std::mutex> lock(d.cluster_mu);
  if (d.cluster_members == nullptr) {
    using namespace prometheus;
    d.cluster_members = &BuildGauge()
                             .Name("observer_cluster_members")
                             .Help("Nodes in this node's cluster view, itself included")
                             .Register(*d.registry)
                             .Add({});
    d.cluster_healthy = &BuildGauge()
                             .Name("observer_cluster_members_healthy")
                             .Help("Nodes of the view that are reachable and healthy")
                             .Register(*d.registry)
                             .Add({});
    d.leader_changes = &BuildCounter()
                            .Name("observer_cluster_leader_changes_total")
                            .Help("Times the cluster saw a new leader (lease epoch) take over")
                            .Register(*d.registry);
  }
  d.cluster_members->Set(members);
  d.cluster_healthy->Set(healthy);
}
void metrics::leader_change(const std::string& listener_id) {
  auto& d = *impl_;
  std::lock_guard<std::mutex> lock(d.cluster_mu);
  if (d.leader_changes != nullptr)
    d.leader_changes->Add({{"listener_id", listener_id}}).Increment();
}
void metrics::checkpoint_age(double seconds) {
  impl_->checkpoint_age->Set(seconds);
  if (impl_->health) impl_->health->checkpoint_age(seconds);
}
void metrics::breaker_state(const std::string& endpoint, int state) {
  std::lock_guard<std::mutex> lock(impl_->breakers_mu);
  impl_->breaker(endpoint).state->Set(state);
}
void metrics::breaker_rejected(const std::string& endpoint) {
  std::lock_guard<std::mutex> lock(impl_->breakers_mu);
  impl_->breaker(endpoint).rejected->Increment();
}
void metrics::breaker_forget(const std::string& endpoint) {
  std::lock_guard<std::mutex> lock(impl_->breakers_mu);
  auto it = impl_->breakers.find(endpoint);
  if (it == impl_->breakers.end()) return;
  impl_->breaker_state->Remove(it->second.state);
  impl_->breaker_rejected->Remove(it->second.rejected);
  impl_->breakers.erase(it);
}

void metrics::endpoint_limit(const std::string& endpoint, uint32_t limit, uint32_t in_flight,
                             double baseline_seconds, double recent_seconds) {
  auto& d = *impl_;
  std::lock_guard<std::mutex> lock(d.breakers_mu);
  auto& l = d.limits[endpoint];
  if (l.limit == nullptr) {
    l.limit = &d.limit_family->Add({{"endpoint", endpoint}});
    l.in_flight = &d.limit_in_flight_family->Add({{"endpoint", endpoint}});
    l.baseline = &d.limit_latency_family->Add({{"endpoint", endpoint}, {"kind", "baseline"}});
    l.recent = &d.limit_latency_family->Add({{"endpoint", endpoint}, {"kind", "recent"}});
  }
  l.limit->Set(limit);
  l.in_flight->Set(in_flight);
  l.baseline->Set(baseline_seconds);
  l.recent->Set(recent_seconds);
}
void metrics::endpoint_limit_forget(const std::string& endpoint) {
  auto& d = *impl_;
  std::lock_guard<std::mutex> lock(d.breakers_mu);
  auto it = d.limits.find(endpoint);
  if (it == d.limits.end()) return;
  d.limit_family->Remove(it->second.limit);
  d.limit_in_flight_family->Remove(it->second.in_flight);
  d.limit_latency_family->Remove(it->second.baseline);
  d.limit_latency_family->Remove(it->second.recent);
  d.limits.erase(it);
}

void metrics::cache_hit(uint32_t observer) {
  impl_->cache_hits->Increment();
  if (observer < impl_->observers) impl_->cache_lookups[2 * observer].fetch_add(1);
  update_hit_rate();
}
void metrics::cache_miss(uint32_t observer) {
  impl_->cache_misses->Increment();
  if (observer < impl_->observers) impl_->cache_lookups[2 * observer + 1].fetch_add(1);
  update_hit_rate();
}
std::pair<uint64_t, uint64_t> metrics::cache_lookups(uint32_t observer) const {
  if (observer >= impl_->observers) return {0, 0};
  return {impl_->cache_lookups[2 * observer].load(), impl_->cache_lookups[2 * observer + 1].load()};
}
void metrics::update_hit_rate() {
  // Two counters read without a lock: the rate may lag by a lookup in flight.
  const double h = impl_->cache_hits->Value();
  const double total = h + impl_->cache_misses->Value();
  impl_->cache_hit_rate->Set(total > 0 ? h / total : 0.0);
}
void metrics::dedup_hits(uint64_t n) {
  impl_->dedup_hits->Increment(static_cast<double>(n));
}
void metrics::dedup_misses(uint64_t n) {
  impl_->dedup_misses->Increment(static_cast<double>(n));
}
void metrics::dedup_busy(uint64_t n) {
  impl_->dedup_busy->Increment(static_cast<double>(n));
}
void metrics::dedup_lost(uint64_t n) {
  impl_->dedup_lost->Increment(static_cast<double>(n));
}
void metrics::dedup_bypassed(uint64_t n) {
  impl_->dedup_bypassed->Increment(static_cast<double>(n));
}
void metrics::redis_unavailable() {
  impl_->redis_unavailable->Increment();
}
void metrics::redis_health(bool healthy) {
  auto* g = impl_->redis_health.load();
  if (g == nullptr) {
    std::lock_guard<std::mutex> lock(impl_->redis_health_mu);
    g = impl_->redis_health.load();
    if (g == nullptr) {
      g = &impl_->redis_health_family->Add({});
      impl_->redis_health.store(g);
    }
  }
  g->Set(healthy ? 1 : 0);
}
void metrics::jobs_enqueued(uint64_t n) {
  impl_->jobs_enqueued->Increment(static_cast<double>(n));
}
void metrics::job_completed() {
  impl_->jobs_completed->Increment();
}
void metrics::job_failed() {
  impl_->jobs_failed->Increment();
}
void metrics::job_retried() {
  impl_->jobs_retried->Increment();
}
void metrics::jobs_queue_depth(uint64_t n) {
  impl_->jobs_depth->Set(static_cast<double>(n));
}
void metrics::jobs_running(uint64_t n) {
  impl_->jobs_running->Set(static_cast<double>(n));
}

}  // namespace fraiseql
