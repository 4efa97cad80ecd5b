#pragma once

// Circuit breakers (spec phase 8.8): one per endpoint, a pure state machine in
// simulated time. No clock of its own, no threads, no sleeps: every call takes
// `now`, so the action pool passes its actor clock and tests pass whatever
// time they like.
//
//            failure ratio >= failure_threshold
//            over the last sample_size calls
//   CLOSED ------------------------------------> OPEN
//     ^                                         |  ^
//     |  successes >= needed                    |  |  failures > probes - needed
//     |  (needed = ceil(success_threshold       |  |
//     |            * half_open_probes))         v  |
//     +------------------------------------ HALF_OPEN
//                                  `timeout` after opening, the next allow()
//
// - CLOSED: every call is allowed; outcomes fill a ring of the last
//   `sample_size` outcomes. The state never changes before the ring is full.
// - OPEN: every call is rejected without touching the endpoint; the rejection
//   says when the next probe is possible (opened + timeout).
// - HALF_OPEN: at most `half_open_probes` probe calls in total, and never more
//   in flight than that; the phase ends as soon as its result is certain
//   (enough successes: CLOSED with an empty ring; too many failures to ever
//   reach the success ratio: OPEN again for another `timeout`).
//
// Outcomes are tagged with the ticket of the decision that allowed the call: a
// result of a call admitted in an earlier phase (a slow call that started
// while CLOSED and ends after the breaker opened) is ignored, so each phase
// judges only its own calls and probe slots cannot leak across phases.

#include "messages/breaker.hpp"
#include "runtime/config/model.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace fraiseql {

/// Breaker policy. Ratios are in (0, 1].
struct breaker_settings {
  /// Off: allow() always allows, nothing is tracked.
  bool enabled = true;
  /// Failure ratio over the last `sample_size` calls that opens the breaker.
  double failure_threshold = 0.5;
  /// Ratio of successful probes that closes a half-open breaker.
  double success_threshold = 0.8;
  /// Time spent open before probing.
  std::chrono::milliseconds timeout{30000};
  /// Calls observed (sliding window) before any state change.
  uint32_t sample_size = 10;
  /// Probe calls of one half-open phase (also the bound on probes in flight).
  uint32_t half_open_probes = 5;
};

/// How a call ended, from the breaker's point of view.
enum class call_result : uint8_t {
  success,
  /// The endpoint failed (5xx, 429, timeout, transport error).
  failure,
  /// Says nothing about the endpoint's health (a 4xx, a template that does
  /// not render): frees a probe slot, counts neither way.
  neutral,
};

class circuit_breaker {
 public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;

  /// Identifies the phase a call was admitted in; hand it back to record().
  struct ticket {
    uint64_t phase = 0;
    bool probe = false;
  };

  struct decision {
    bool allowed = false;
    ticket t;
    /// When rejected: the earliest time a call may be allowed again. While
    /// open, that is the end of the open period; while half-open with every
    /// probe slot taken, it is `now` (a slot frees when a probe ends, which
    /// the breaker cannot foresee; the caller's own backoff applies).
    time_point retry_at{};
  };

  /// `first_phase` makes tickets unique across breakers that replace each
  /// other under one key (the registry's eviction).
  explicit circuit_breaker(breaker_settings s, uint64_t first_phase = 1);

  /// Asks whether a call may start now. An allowed call must be followed by
  /// exactly one record() with the returned ticket.
  decision allow(time_point now);
  /// Records the end of an allowed call.
  void record(time_point now, ticket t, call_result r);

  /// The state as of `now` (an open breaker whose timeout has elapsed reports
  /// half_open: the next allow() probes).
  breaker_state state(time_point now) const;
  /// Failures in the current window (closed), or failed probes (half-open),
  /// or the failures that opened it (open).
  uint32_t failures() const { return failures_; }
  /// Calls in the current window (closed) or probes ended (half-open).
  uint32_t calls() const;
  /// While open: when probing starts.
  time_point open_until() const { return open_until_; }
  uint32_t probes_in_flight() const { return probes_in_flight_; }
  /// Times the breaker opened since creation.
  uint64_t trips() const { return trips_; }
  /// Forgetting this breaker loses nothing that matters: it is closed and no
  /// failure is in its window.
  bool idle() const;
  const breaker_settings& settings() const { return s_; }

 private:
  void open(time_point now);
  void close();
  void half_open();
  uint32_t probes_needed() const;

  breaker_settings s_;
  breaker_state state_ = breaker_state::closed;
  uint64_t phase_ = 1;
  // closed: ring of the last sample_size outcomes (true = failure)
  std::vector<bool> ring_;
  uint32_t ring_next_ = 0;
  uint32_t ring_size_ = 0;
  uint32_t failures_ = 0;
  // open
  time_point open_until_{};
  uint64_t trips_ = 0;
  // half-open
  uint32_t probes_started_ = 0;
  uint32_t probes_in_flight_ = 0;
  uint32_t probe_successes_ = 0;
};

/// Breakers keyed by endpoint ("http://host:port", or whatever key an
/// executor reports), created on first use with the default settings.
/// Memory is bounded: beyond `max_endpoints`, the least recently used idle
/// breaker is forgotten (a closed breaker with an empty window loses nothing);
/// if none is idle, the least recently used one is, which at worst lets a few
/// calls through to a failing endpoint before it trips again.
class breaker_registry {
 public:
  explicit breaker_registry(breaker_settings defaults, size_t max_endpoints = 4096);

  bool enabled() const { return defaults_.enabled; }
  circuit_breaker::decision allow(const std::string& endpoint, circuit_breaker::time_point now);
  void record(const std::string& endpoint, circuit_breaker::time_point now,
              circuit_breaker::ticket t, call_result r);
  /// State of one endpoint (closed when unknown).
  breaker_state state(const std::string& endpoint, circuit_breaker::time_point now) const;
  std::vector<breaker_status> status(circuit_breaker::time_point now) const;
  size_t size() const { return map_.size(); }
  size_t max_endpoints() const { return max_; }
  /// Called with the endpoint of each breaker forgotten to stay bounded.
  void on_forget(std::function<void(const std::string&)> f) { on_forget_ = std::move(f); }

 private:
  struct entry {
    circuit_breaker cb;
    uint64_t rejected = 0;
    std::list<std::string>::iterator lru;
  };
  entry& touch(const std::string& endpoint);

  breaker_settings defaults_;
  size_t max_;
  std::unordered_map<std::string, entry> map_;
  std::list<std::string> lru_;  // front: most recently used
  uint64_t next_phase_ = 1;
  std::function<void(const std::string&)> on_forget_;
};

/// The settings of `[circuit_breaker]`.
breaker_settings breaker_settings_of(const circuit_breaker_config& c);

/// "scheme://host:port" of an http(s) URL, lower-cased, default ports made
/// explicit, credentials, path and query dropped: the breaker key of a
/// webhook. nullopt when `url` is not an http(s) URL with a host.
std::optional<std::string> http_endpoint(const std::string& url);

}  // namespace fraiseql
