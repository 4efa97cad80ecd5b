#pragma once

// Prometheus metrics of a node (prometheus-cpp), named as the spec's alert rules
// and dashboards use them. All series are created up front from the observer
// registry, so the hot path only does atomic increments on cached handles.
// Every method is thread-safe.

#include <cstdint>
#include <memory>
#include <string>

namespace fraiseql {

class observer_registry;

class metrics {
public:
  explicit metrics(const observer_registry& reg);
  ~metrics();
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  /// Serves /metrics on bind:port (port 0: any free port). Throws
  /// std::runtime_error naming the address when it cannot listen.
  void expose(const std::string& bind, uint32_t port);
  /// The port /metrics is served on (0 when not exposed).
  uint16_t port() const;
  /// The text exposition, as a scrape would see it.
  std::string scrape() const;

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
  /// Seconds since the checkpoint was last saved (0 when nothing is pending).
  void checkpoint_age(double seconds);

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

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace fraiseql
