#include "runtime/metrics.hpp"

#include "runtime/observers.hpp"

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <stdexcept>
#include <vector>

namespace fraiseql {

namespace {

const prometheus::Histogram::BucketBoundaries latency_buckets{
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

}  // namespace

struct metrics::impl {
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  std::unique_ptr<prometheus::Exposer> exposer;
  uint16_t port = 0;
  prometheus::Counter* processed = nullptr;
  prometheus::Histogram* processing = nullptr;
  prometheus::Gauge* health = nullptr;
  prometheus::Gauge* backlog = nullptr;
  prometheus::Gauge* checkpoint_age = nullptr;
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
};

metrics::metrics(const observer_registry& reg) : impl_(std::make_unique<impl>()) {
  auto& r = *impl_->registry;
  using namespace prometheus;
  impl_->processed = &BuildCounter()
                        .Name("observer_events_processed_total")
                        .Help("Events read from the change log and routed")
                        .Register(r)
                        .Add({});
  impl_->processing = &BuildHistogram()
                         .Name("observer_event_processing_duration_seconds")
                         .Help("From reading an event to finishing all its actions")
                         .Register(r)
                         .Add({}, latency_buckets);
  impl_->health = &BuildGauge()
                     .Name("observer_listener_health")
                     .Help("1 while the listener reads the change log without errors")
                     .Register(r)
                     .Add({});
  impl_->backlog = &BuildGauge()
                      .Name("observer_backlog_size")
                      .Help("Events read and not yet finished")
                      .Register(r)
                      .Add({});
  impl_->checkpoint_age = &BuildGauge()
                             .Name("observer_checkpoint_age_seconds")
                             .Help("Seconds since the last checkpoint save while events are pending")
                             .Register(r)
                             .Add({});
  impl_->jobs_enqueued = &BuildCounter()
                            .Name("observer_jobs_enqueued_total")
                            .Help("Asynchronous actions durably enqueued into observer_jobs")
                            .Register(r)
                            .Add({});
  impl_->jobs_completed = &BuildCounter()
                             .Name("observer_jobs_completed_total")
                             .Help("Jobs that succeeded")
                             .Register(r)
                             .Add({});
  impl_->jobs_failed = &BuildCounter()
                          .Name("observer_jobs_failed_total")
                          .Help("Jobs moved to the dead-letter queue")
                          .Register(r)
                          .Add({});
  impl_->jobs_retried = &BuildCounter()
                           .Name("observer_jobs_retried_total")
                           .Help("Job attempts that failed and were rescheduled")
                           .Register(r)
                           .Add({});
  impl_->jobs_depth = &BuildGauge()
                         .Name("observer_jobs_queue_depth")
                         .Help("Jobs queued for this listener id, running ones included")
                         .Register(r)
                         .Add({});
  impl_->jobs_running = &BuildGauge()
                           .Name("observer_jobs_running")
                           .Help("Jobs this node is running")
                           .Register(r)
                           .Add({});
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
  auto& executed = BuildCounter()
                     .Name("observer_actions_executed_total")
                     .Help("Action attempts")
                     .Register(r);
  auto& failed = BuildCounter()
                   .Name("observer_actions_failed_total")
                   .Help("Action attempts that failed")
                   .Register(r);
  auto& duration = BuildHistogram()
                     .Name("observer_action_duration_seconds")
                     .Help("Duration of action attempts")
                     .Register(r);
  for (uint32_t o = 0; o < reg.size(); ++o) {
    const auto& oc = reg.config(o);
    impl_->matched.push_back(&matched.Add({{"observer", oc.name}}));
    impl_->condition_errors.push_back(&cond.Add({{"observer", oc.name}}));
    impl_->dlq.push_back(&dlq.Add({{"observer", oc.name}}));
    std::vector<impl::action_series> as;
    for (const auto& ac : oc.actions) {
      std::map<std::string, std::string> labels{{"observer", oc.name}, {"action_type", ac.type}};
      as.push_back({&executed.Add(labels), &failed.Add(labels),
                    &duration.Add(labels, latency_buckets)});
    }
    impl_->actions.push_back(std::move(as));
  }
}

metrics::~metrics() = default;

void metrics::expose(const std::string& bind, uint32_t port) {
  const std::string addr = bind + ":" + std::to_string(port);
  try {
    impl_->exposer = std::make_unique<prometheus::Exposer>(addr);
  } catch (const std::exception& e) {
    throw std::runtime_error("metrics: cannot listen on " + addr + ": " + e.what());
  }
  impl_->exposer->RegisterCollectable(impl_->registry);
  auto ports = impl_->exposer->GetListeningPorts();
  impl_->port = ports.empty() ? 0 : static_cast<uint16_t>(ports.front());
}

uint16_t metrics::port() const {
  return impl_->port;
}

std::string metrics::scrape() const {
  prometheus::TextSerializer s;
  return s.Serialize(impl_->registry->Collect());
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
  impl_->health->Set(healthy ? 1 : 0);
}
void metrics::backlog(uint64_t events) {
  impl_->backlog->Set(static_cast<double>(events));
}
void metrics::checkpoint_age(double seconds) {
  impl_->checkpoint_age->Set(seconds);
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
