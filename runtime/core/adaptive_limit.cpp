#include "runtime/core/adaptive_limit.hpp"

#include <algorithm>
#include <cmath>

namespace fraiseql {

adaptive_limit::adaptive_limit(adaptive_limit_settings s, uint32_t global_cap, time_point now)
    : s_(s) {
  s_.min_limit = std::max<uint32_t>(1, s_.min_limit);
  if (global_cap > 0) s_.max_limit = std::min(s_.max_limit, global_cap);
  // A global cap below min_limit wins: the cap is a hard promise.
  if (global_cap > 0) s_.min_limit = std::min(s_.min_limit, global_cap);
  s_.max_limit = std::max(s_.max_limit, s_.min_limit);
  s_.initial_limit = std::clamp(s_.initial_limit, s_.min_limit, s_.max_limit);
  if (!(s_.smoothing > 0)) s_.smoothing = 0.01;
  s_.smoothing = std::min(s_.smoothing, 1.0);
  if (!(s_.tolerance >= 0)) s_.tolerance = 0;
  s_.latency_slack = std::max(s_.latency_slack, std::chrono::nanoseconds(0));
  if (!(s_.backoff > 0.05)) s_.backoff = 0.05;
  s_.backoff = std::min(s_.backoff, 0.99);
  s_.window_samples = std::max<uint32_t>(1, s_.window_samples);
  s_.baseline_samples = std::max<uint32_t>(1, s_.baseline_samples);
  s_.baseline_interval = std::max(s_.baseline_interval, std::chrono::milliseconds(1));
  reset(now);
}

void adaptive_limit::reset(time_point now) {
  limit_ = s_.initial_limit;
  slow_start_ = true;
  baseline_ = std::chrono::nanoseconds(0);
  recent_ = std::chrono::nanoseconds(0);
  // Calls acquired before now count neither for a window nor as overloads.
  decrease_seq_ = next_seq_;
  start_probe(now);
}

uint32_t adaptive_limit::limit() const {
  if (probing_) return s_.min_limit;
  return static_cast<uint32_t>(limit_);
}

void adaptive_limit::clamp_limit() {
  limit_ = std::clamp(limit_, static_cast<double>(s_.min_limit), static_cast<double>(s_.max_limit));
}

void adaptive_limit::start_probe(time_point /*now*/) {
  probing_ = true;
  probe_start_seq_ = next_seq_;
  probe_rtts_.clear();
}

void adaptive_limit::end_probe(time_point now) {
  std::sort(probe_rtts_.begin(), probe_rtts_.end());
  baseline_ = std::chrono::nanoseconds(std::max<int64_t>(1, probe_rtts_[probe_rtts_.size() / 2]));
  probing_ = false;
  probe_rtts_.clear();
  next_probe_ = now + s_.baseline_interval;
  new_window();
  // The first window refills the pipeline from (almost) empty: its calls saw
  // less queueing than the restored limit causes, so it may shrink, not grow.
  refilling_ = true;
}

void adaptive_limit::new_window() {
  window_start_seq_ = next_seq_;
  window_samples_ = 0;
  window_rtt_sum_ = 0;
  window_limited_ = false;
}

void adaptive_limit::end_window() {
  ++windows_;
  const double recent = window_rtt_sum_ / window_samples_;
  recent_ = std::chrono::nanoseconds(static_cast<int64_t>(recent));
  // The baseline is the probes' alone: a window faster than it is as likely
  // a lucky mix of a jittery endpoint's answers as a faster endpoint, and a
  // baseline lowered by luck would read the usual latency as queueing and
  // shrink the limit to min_limit until the next probe.
  const double near = (1 + s_.tolerance) * static_cast<double>(baseline_.count()) +
                      static_cast<double>(s_.latency_slack.count());
  const double gradient = recent <= near ? 1.0 : std::clamp(near / recent, 0.5, 1.0);
  if (gradient < 1.0) {
    // Latency beyond tolerance: move part of the way to limit * gradient, the
    // limit at which the queue we add would drain.
    limit_ *= 1 - s_.smoothing * (1 - gradient);
    slow_start_ = false;
    ++decreases_;
    decrease_seq_ = next_seq_;
  } else if (window_limited_ && !refilling_) {
    // Near the baseline and there is demand beyond the limit: probe upwards.
    if (slow_start_)
      limit_ *= 2;
    else
      limit_ += std::max(1.0, std::sqrt(limit_) / 2);
  }
  clamp_limit();
  refilling_ = false;
  new_window();
}

void adaptive_limit::backoff_once(uint64_t seq) {
  // One backoff per round: a call acquired before the last decrease reports
  // on the old limit, which has already been cut.
  if (seq < decrease_seq_) return;
  limit_ *= s_.backoff;
  clamp_limit();
  slow_start_ = false;
  ++overloads_;
  decrease_seq_ = next_seq_;
  if (!probing_) new_window();
}

std::optional<adaptive_limit::ticket> adaptive_limit::try_acquire(time_point now) {
  if (!probing_ && now >= next_probe_) start_probe(now);
  const uint32_t lim = limit();
  if (in_flight_ >= lim) {
    ++refused_;
    if (!probing_) window_limited_ = true;
    return std::nullopt;
  }
  ++in_flight_;
  if (!probing_ && in_flight_ >= lim) window_limited_ = true;
  return ticket{next_seq_++};
}

void adaptive_limit::release(time_point now, ticket t, std::chrono::nanoseconds rtt,
                             limit_outcome o) {
  if (in_flight_ == 0) return;  // released twice: never underflow
  --in_flight_;
  if (!probing_ && now >= next_probe_) start_probe(now);
  if (o == limit_outcome::other_failure) return;
  if (o == limit_outcome::overloaded) {
    backoff_once(t.seq);
    return;
  }
  if (probing_) {
    if (t.seq < probe_start_seq_) return;  // acquired before the probe: maybe queued
    probe_rtts_.push_back(rtt.count());
    if (probe_rtts_.size() >= s_.baseline_samples) end_probe(now);
    return;
  }
  if (t.seq < window_start_seq_) return;
  window_rtt_sum_ += static_cast<double>(std::max<int64_t>(0, rtt.count()));
  ++window_samples_;
  if (window_samples_ >= std::max(s_.window_samples, limit())) end_window();
}

adaptive_limit_snapshot adaptive_limit::snapshot() const {
  adaptive_limit_snapshot s;
  s.limit = limit();
  s.in_flight = in_flight_;
  s.baseline_rtt = baseline_;
  s.recent_rtt = recent_;
  s.probing = probing_;
  s.slow_start = slow_start_;
  s.windows = windows_;
  s.decreases = decreases_;
  s.overloads = overloads_;
  s.refused = refused_;
  return s;
}

}  // namespace fraiseql
