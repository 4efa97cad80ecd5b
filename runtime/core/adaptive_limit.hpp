#pragma once

// Adaptive concurrency for one endpoint (issue 19): how many calls may be in
// flight to it at once, learnt from the latency it answers with and from its
// overload signals. A pure class in simulated time like the circuit breaker:
// no clock of its own, no threads, no sleeps; every call takes `now`.
//
// The algorithm (a simplified mix of Netflix concurrency-limits' Gradient2 and
// Envoy's adaptive concurrency filter; docs/design.md, "Adaptive concurrency"):
//
// - baseline: the endpoint's latency when it is not queueing our calls. It is
//   measured with the limit pinned to `min_limit` (a *probe*: at the start,
//   then every `baseline_interval`, the median of `baseline_samples` calls),
//   and only then: a window faster than the baseline is as likely a lucky mix
//   of a jittery endpoint's answers, and lowering the baseline on it would
//   read the usual latency as queueing (seen for real; see the tests).
// - windows: the calls acquired since the last decision, once at least
//   max(window_samples, limit) of them have ended `ok`; `recent` is their mean
//   latency. Calls acquired before the window started do not count, so each
//   decision judges calls made under the current limit.
// - at the end of a window: gradient = clamp((1 + tolerance) * baseline /
//   recent, 0.5, 1). Below 1 (latency beyond tolerance) the limit shrinks
//   towards limit * gradient by `smoothing`. At 1 it grows, but only if the
//   window was limited by the limit (a refused acquire, or in flight reaching
//   the limit): doubling until the first decrease ("slow start"), then by
//   max(1, sqrt(limit) / 2) per window. The first window after a probe refills
//   the pipeline from almost empty (it saw less queueing than the limit
//   causes): it may shrink the limit, never grow it.
// - `overloaded` (429, 503, timeout): limit *= backoff at once, at most once
//   per round (an overload of a call acquired before the last decrease does
//   not decrease again); ends slow start.
// - bounds: min_limit <= limit <= min(max_limit, global cap), always.

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

namespace fraiseql {

struct adaptive_limit_settings {
  /// The limit never goes below this (>= 1); also the limit of a probe.
  uint32_t min_limit = 1;
  /// The limit never goes above this, nor above the global cap.
  uint32_t max_limit = 1000;
  /// The limit after the first probe (clamped into the bounds).
  uint32_t initial_limit = 10;
  /// Share of a latency-driven decrease applied per window, in (0, 1].
  double smoothing = 0.5;
  /// Latency up to (1 + tolerance) * baseline + latency_slack counts as "near
  /// the baseline". The slack keeps sub-millisecond jitter of a fast endpoint
  /// (or of this process's own scheduling) from reading as queueing.
  double tolerance = 0.1;
  std::chrono::nanoseconds latency_slack{0};
  /// Factor applied to the limit on an overload signal, in (0, 1).
  double backoff = 0.5;
  /// Fewest `ok` calls that make a window (a window is also >= limit calls).
  uint32_t window_samples = 10;
  /// Time between two baseline probes (measured from the end of the last).
  std::chrono::milliseconds baseline_interval{60000};
  /// `ok` calls measured by a probe (the baseline is their median).
  uint32_t baseline_samples = 5;
};

/// How a call ended, from the limiter's point of view.
enum class limit_outcome : uint8_t {
  /// An answer that says the endpoint served the call (2xx, and 4xx other
  /// than 429): its latency is a sample.
  ok,
  /// 429, 503 or a timeout: the endpoint is overloaded; backs off.
  overloaded,
  /// Anything else (transport error, 500, a call cancelled): frees the slot,
  /// says nothing about load, its latency is not a sample.
  other_failure,
};

/// What metrics show of one limiter.
struct adaptive_limit_snapshot {
  uint32_t limit = 0;
  uint32_t in_flight = 0;
  /// Zero until the first probe ends.
  std::chrono::nanoseconds baseline_rtt{0};
  /// Mean latency of the last window (zero before the first).
  std::chrono::nanoseconds recent_rtt{0};
  bool probing = false;
  bool slow_start = false;
  uint64_t windows = 0;
  uint64_t decreases = 0;  // latency-driven
  uint64_t overloads = 0;  // overload signals that backed off
  uint64_t refused = 0;    // try_acquire answered nullopt
};

class adaptive_limit {
 public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;

  /// Identifies a granted call; hand it back to release() exactly once.
  struct ticket {
    uint64_t seq = 0;
  };

  /// `global_cap` (the pool's max_concurrent_actions) caps max_limit; 0 = no
  /// cap. Settings out of range are clamped (see adaptive_limit_settings).
  adaptive_limit(adaptive_limit_settings s, uint32_t global_cap, time_point now);

  /// A slot if in_flight() < limit(), else nullopt (and the current window
  /// counts as limited by the limit: there is demand beyond it).
  std::optional<ticket> try_acquire(time_point now);
  /// The end of a granted call: frees its slot; `rtt` is how long the call
  /// took. A release with nothing in flight (a ticket released twice) is
  /// ignored rather than underflowing.
  void release(time_point now, ticket t, std::chrono::nanoseconds rtt, limit_outcome o);
  /// Forgets what was learnt (limit back to initial, baseline re-probed, slow
  /// start again); calls in flight stay counted and their release frees their
  /// slot, but their latency and outcome no longer count.
  void reset(time_point now);

  /// Calls allowed in flight now (min_limit while probing).
  uint32_t limit() const;
  uint32_t in_flight() const { return in_flight_; }
  bool probing() const { return probing_; }
  adaptive_limit_snapshot snapshot() const;
  const adaptive_limit_settings& settings() const { return s_; }

 private:
  void start_probe(time_point now);
  void end_probe(time_point now);
  void end_window();
  void new_window();
  void clamp_limit();
  void backoff_once(uint64_t seq);

  adaptive_limit_settings s_;
  double limit_ = 0;  // the learnt limit (kept while probing)
  uint32_t in_flight_ = 0;
  uint64_t next_seq_ = 1;  // the seq of the next granted call
  bool slow_start_ = true;
  // probe
  bool probing_ = false;
  uint64_t probe_start_seq_ = 0;
  std::vector<int64_t> probe_rtts_;
  time_point next_probe_{};
  std::chrono::nanoseconds baseline_{0};
  // window
  uint64_t window_start_seq_ = 0;
  uint32_t window_samples_ = 0;
  double window_rtt_sum_ = 0;  // ns
  bool window_limited_ = false;
  bool refilling_ = false;  // the first window after a probe
  std::chrono::nanoseconds recent_{0};
  // the last decrease: overloads of calls acquired before it do not count
  uint64_t decrease_seq_ = 0;
  // counters
  uint64_t windows_ = 0;
  uint64_t decreases_ = 0;
  uint64_t overloads_ = 0;
  uint64_t refused_ = 0;
};

}  // namespace fraiseql
