#pragma once

// Liveness and readiness of a node, as /healthz and /readyz report them to
// orchestrators. Pure state (no I/O, no CAF): the actors feed it through
// `metrics`, the HTTP server reads verdicts from any thread.
//
//   live  (/healthz): the process and its actors work. False once the node is
//         stopping or an actor failed (a restart is the cure).
//   ready (/readyz):  this node does its job right now: it leads its listener
//         id, the listener reads the change log, and the checkpoint is not
//         stale. A standby is live but not ready.

#include <chrono>
#include <mutex>
#include <string>

namespace fraiseql {

struct health_verdict {
  bool ok = false;
  /// "ok" or why not ("standby: ...", "database unreachable: ...", ...).
  std::string reason;
};

class health_state {
 public:
  /// `max_checkpoint_age`: readiness fails once events have been pending this
  /// long without a checkpoint save (0 disables the check).
  explicit health_state(std::chrono::milliseconds max_checkpoint_age);

  /// Not leading yet: `why` says what we wait for (another node's lease, the
  /// database, ...). Clears leadership.
  void waiting(const std::string& why);
  /// Leads the listener id (actors started).
  void leading();
  /// The listener read the change log (true) or cannot reach the database (false).
  void listener_connected(bool connected);
  /// This process runs no listener (a NATS worker): readiness does not wait
  /// for a listener connection.
  void without_listener();
  /// Seconds events have waited for a checkpoint save (0: nothing pending).
  void checkpoint_age(double seconds);
  /// Graceful stop began: no longer live or ready.
  void stopping();
  /// An actor died from an error (the process exits next).
  void failed(const std::string& what);

  health_verdict live() const;
  health_verdict ready() const;

 private:
  mutable std::mutex mu_;
  double max_age_s_;
  bool leading_ = false;
  std::string waiting_for_ = "starting";
  bool connected_ = false;
  bool needs_listener_ = true;
  double age_s_ = 0;
  bool stopping_ = false;
  std::string failed_;
};

}  // namespace fraiseql
