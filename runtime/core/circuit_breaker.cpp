#include "runtime/core/circuit_breaker.hpp"
#include "messages/breaker.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace fraiseql {

circuit_breaker::circuit_breaker(breaker_settings s, uint64_t first_phase)
    : s_(s), phase_(first_phase) {
  s_.sample_size = std::max<uint32_t>(1, s_.sample_size);
  s_.half_open_probes = std::max<uint32_t>(1, s_.half_open_probes);
  ring_.assign(s_.sample_size, false);
}

uint32_t circuit_breaker::probes_needed() const {
  // A small epsilon so that 0.8 * 5 is 4, not 5 after rounding error.
  const double need = std::ceil(s_.success_threshold * s_.half_open_probes - 1e-9);
  return std::clamp<uint32_t>(static_cast<uint32_t>(need), 1, s_.half_open_probes);
}

uint32_t circuit_breaker::calls() const {
  return state_ == breaker_state::half_open ? probes_started_ - probes_in_flight_ : ring_size_;
}

breaker_state circuit_breaker::state(time_point now) const {
  if (state_ == breaker_state::open && now >= open_until_) return breaker_state::half_open;
  return state_;
}

bool circuit_breaker::idle() const {
  return state_ == breaker_state::closed && failures_ == 0;
}

void circuit_breaker::open(time_point now) {
  state_ = breaker_state::open;
  ++phase_;
  ++trips_;
  open_until_ = now + s_.timeout;
  probes_started_ = probes_in_flight_ = probe_successes_ = 0;
}

void circuit_breaker::close() {
  state_ = breaker_state::closed;
  ++phase_;
  std::fill(ring_.begin(), ring_.end(), false);
  ring_next_ = ring_size_ = failures_ = 0;
  probes_started_ = probes_in_flight_ = probe_successes_ = 0;
}

void circuit_breaker::half_open() {
  state_ = breaker_state::half_open;
  ++phase_;
  failures_ = 0;
  probes_started_ = probes_in_flight_ = probe_successes_ = 0;
}

circuit_breaker::decision circuit_breaker::allow(time_point now) {
  decision d;
  if (!s_.enabled) {
    d.allowed = true;
    d.t = ticket{0, false};
    return d;
  }
  if (state_ == breaker_state::open) {
    if (now < open_until_) {
      d.retry_at = open_until_;
      return d;
    }
    half_open();
  }
  if (state_ == breaker_state::half_open) {
    if (probes_started_ >= s_.half_open_probes) {
      // Every probe of this phase is out; the phase ends when they report.
      d.retry_at = now;
      return d;
    }
    ++probes_started_;
    ++probes_in_flight_;
    d.allowed = true;
    d.t = ticket{phase_, true};
    return d;
  }
  d.allowed = true;
  d.t = ticket{phase_, false};
  return d;
}

void circuit_breaker::record(time_point now, ticket t, call_result r) {
  if (!s_.enabled || t.phase != phase_) return;  // disabled, or admitted in an earlier phase
  if (state_ == breaker_state::half_open) {
    if (!t.probe || probes_in_flight_ == 0) return;
    --probes_in_flight_;
    if (r == call_result::neutral) {
      // The slot is given back: a probe that says nothing does not count.
      --probes_started_;
      return;
    }
    if (r == call_result::success)
      ++probe_successes_;
    else
      ++failures_;
    const uint32_t need = probes_needed();
    if (probe_successes_ >= need)
      close();
    else if (failures_ > s_.half_open_probes - need)
      open(now);
    return;
  }
  if (state_ != breaker_state::closed || r == call_result::neutral) return;
  const bool failed = r == call_result::failure;
  if (ring_size_ == s_.sample_size) {
    if (ring_[ring_next_]) --failures_;
  } else {
    ++ring_size_;
  }
  ring_[ring_next_] = failed;
  if (failed) ++failures_;
  ring_next_ = (ring_next_ + 1) % s_.sample_size;
  if (ring_size_ == s_.sample_size &&
      static_cast<double>(failures_) >= s_.failure_threshold * s_.sample_size - 1e-9) {
    const uint32_t opened_by = failures_;
    open(now);
    failures_ = opened_by;
    std::fill(ring_.begin(), ring_.end(), false);
    ring_next_ = ring_size_ = 0;
  }
}

// --- registry ---------------------------------------------------------------

breaker_registry::breaker_registry(breaker_settings defaults, size_t max_endpoints)
    : defaults_(defaults), max_(std::max<size_t>(1, max_endpoints)) {}

breaker_registry::entry& breaker_registry::touch(const std::string& endpoint) {
  auto it = map_.find(endpoint);
  if (it != map_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return it->second;
  }
  if (map_.size() >= max_) {
    // Forget the least recently used idle breaker, else the least recently used.
    auto victim = std::prev(lru_.end());
    for (auto r = lru_.rbegin(); r != lru_.rend(); ++r) {
      if (map_.at(*r).cb.idle()) {
        victim = std::prev(r.base());
        break;
      }
    }
    const std::string gone = *victim;
    map_.erase(gone);
    lru_.erase(victim);
    if (on_forget_) on_forget_(gone);
  }
  lru_.push_front(endpoint);
  // Phases of successive breakers under one key never overlap: a ticket from
  // a forgotten breaker is ignored by its successor.
  const uint64_t first = next_phase_;
  next_phase_ += uint64_t{1} << 32;
  auto [pos, inserted] =
      map_.emplace(endpoint, entry{circuit_breaker(defaults_, first), 0, lru_.begin()});
  (void)inserted;
  return pos->second;
}

circuit_breaker::decision breaker_registry::allow(const std::string& endpoint,
                                                  circuit_breaker::time_point now) {
  if (!defaults_.enabled) {
    circuit_breaker::decision d;
    d.allowed = true;
    return d;
  }
  auto& e = touch(endpoint);
  auto d = e.cb.allow(now);
  if (!d.allowed) ++e.rejected;
  return d;
}

void breaker_registry::record(const std::string& endpoint, circuit_breaker::time_point now,
                              circuit_breaker::ticket t, call_result r) {
  if (!defaults_.enabled) return;
  auto it = map_.find(endpoint);
  if (it == map_.end()) return;  // forgotten meanwhile: its successor ignores old tickets anyway
  it->second.cb.record(now, t, r);
}

breaker_state breaker_registry::state(const std::string& endpoint,
                                      circuit_breaker::time_point now) const {
  auto it = map_.find(endpoint);
  return it == map_.end() ? breaker_state::closed : it->second.cb.state(now);
}

std::vector<breaker_status> breaker_registry::status(circuit_breaker::time_point now) const {
  std::vector<breaker_status> out;
  out.reserve(map_.size());
  for (const auto& [name, e] : map_) {
    breaker_status s;
    s.endpoint = name;
    s.state = e.cb.state(now);
    s.failures = e.cb.failures();
    s.calls = e.cb.calls();
    s.trips = e.cb.trips();
    s.rejected = e.rejected;
    if (s.state == breaker_state::open)
      s.retry_in_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(e.cb.open_until() - now).count();
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const breaker_status& a, const breaker_status& b) {
    return a.endpoint < b.endpoint;
  });
  return out;
}

breaker_settings breaker_settings_of(const circuit_breaker_config& c) {
  breaker_settings s;
  s.enabled = c.enabled;
  s.failure_threshold = c.failure_threshold;
  s.success_threshold = c.success_threshold;
  s.timeout = std::chrono::milliseconds(c.timeout_ms);
  s.sample_size = c.sample_size;
  s.half_open_probes = c.half_open_probes;
  return s;
}

// --- endpoint keys ------------------------------------------------------------

std::optional<std::string> http_endpoint(const std::string& url) {
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  const size_t sep = url.find("://");
  if (sep == std::string::npos) return std::nullopt;
  const std::string scheme = lower(url.substr(0, sep));
  if (scheme != "http" && scheme != "https") return std::nullopt;
  std::string authority = url.substr(sep + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (const size_t at = authority.rfind('@'); at != std::string::npos) authority.erase(0, at + 1);
  std::string host = authority;
  std::string port;
  if (!authority.empty() && authority[0] == '[') {  // [v6]:port
    const size_t close = authority.find(']');
    if (close == std::string::npos) return std::nullopt;
    host = authority.substr(0, close + 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      port = authority.substr(close + 2);
  } else if (const size_t colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return std::nullopt;
  if (port.empty()) port = scheme == "https" ? "443" : "80";
  return scheme + "://" + lower(host) + ":" + port;
}

}  // namespace fraiseql
