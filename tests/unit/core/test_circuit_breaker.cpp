// The circuit breaker in simulated time: example-based tests of each
// transition, and a RapidCheck property comparing the breaker with a small
// reference model (plain lists, no ring arithmetic) under random calls,
// outcomes, interleavings and clock jumps.

#include "messages/breaker.hpp"
#include "runtime/core/circuit_breaker.hpp"

#include <doctest/doctest.h>
#include <rapidcheck.h>

#include <cmath>
#include <deque>

using namespace fraiseql;
using ms = std::chrono::milliseconds;
using tp = circuit_breaker::time_point;

namespace {

breaker_settings settings(double fail, double succ, uint32_t sample, uint32_t probes, ms timeout) {
  breaker_settings s;
  s.failure_threshold = fail;
  s.success_threshold = succ;
  s.sample_size = sample;
  s.half_open_probes = probes;
  s.timeout = timeout;
  return s;
}

/// One call through the breaker: allow, then record at once.
bool call(circuit_breaker& b, tp now, call_result r) {
  auto d = b.allow(now);
  if (d.allowed) b.record(now, d.t, r);
  return d.allowed;
}

}  // namespace

TEST_SUITE("circuit_breaker") {
  TEST_CASE("the spec's example: 5 failures open it, calls fail fast, one probe closes it") {
    circuit_breaker b(settings(0.5, 0.8, 5, 1, ms(9000)));
    tp t0{};
    for (int i = 0; i < 4; ++i) CHECK(call(b, t0, call_result::failure));
    CHECK(b.state(t0) == breaker_state::closed);  // 4 calls < sample_size: no change yet
    CHECK(call(b, t0, call_result::failure));
    CHECK(b.state(t0) == breaker_state::open);
    CHECK(b.trips() == 1);
    for (int i = 0; i < 5; ++i) {
      auto d = b.allow(t0 + ms(1 + i));
      CHECK_FALSE(d.allowed);
      CHECK(d.retry_at == t0 + ms(9000));  // the rejected call learns when probing starts
    }
    CHECK(b.state(t0 + ms(9000)) == breaker_state::half_open);
    auto probe = b.allow(t0 + ms(9000));
    REQUIRE(probe.allowed);
    CHECK(probe.t.probe);
    CHECK_FALSE(b.allow(t0 + ms(9001)).allowed);  // the only probe slot is taken
    b.record(t0 + ms(9010), probe.t, call_result::success);
    CHECK(b.state(t0 + ms(9010)) == breaker_state::closed);
    CHECK(call(b, t0 + ms(9011), call_result::success));
  }

  TEST_CASE("the failure ratio is measured over a sliding window of sample_size calls") {
    circuit_breaker b(settings(0.5, 1.0, 4, 1, ms(100)));
    tp t{};
    // F S S F: 2/4 = 0.5 >= 0.5 opens exactly when the window fills.
    CHECK(call(b, t, call_result::failure));
    CHECK(call(b, t, call_result::success));
    CHECK(call(b, t, call_result::success));
    CHECK(b.state(t) == breaker_state::closed);
    CHECK(call(b, t, call_result::failure));
    CHECK(b.state(t) == breaker_state::open);
    CHECK(b.failures() == 2);

    circuit_breaker c(settings(0.5, 1.0, 4, 1, ms(100)));
    // F S S S S F S: every window of 4 holds at most 1 failure: never opens.
    for (auto r :
         {call_result::failure, call_result::success, call_result::success, call_result::success,
          call_result::success, call_result::failure, call_result::success}) {
      CHECK(call(c, t, r));
      CHECK(c.state(t) == breaker_state::closed);
    }
    CHECK(c.failures() == 1);
    CHECK(c.calls() == 4);
  }

  TEST_CASE("neutral outcomes count neither way") {
    circuit_breaker b(settings(0.5, 1.0, 2, 1, ms(100)));
    tp t{};
    for (int i = 0; i < 10; ++i) CHECK(call(b, t, call_result::neutral));
    CHECK(b.calls() == 0);
    CHECK(b.state(t) == breaker_state::closed);
  }

  TEST_CASE(
      "half-open: bounded probes, closes on the success ratio, re-opens when it cannot be "
      "reached") {
    // 5 probes, 0.6 => 3 successes close it, 3 failures re-open it.
    circuit_breaker b(settings(1.0, 0.6, 1, 5, ms(1000)));
    tp t{};
    CHECK(call(b, t, call_result::failure));
    REQUIRE(b.state(t) == breaker_state::open);
    t += ms(1000);
    std::vector<circuit_breaker::ticket> probes;
    for (int i = 0; i < 5; ++i) {
      auto d = b.allow(t);
      REQUIRE(d.allowed);
      probes.push_back(d.t);
    }
    CHECK(b.probes_in_flight() == 5);
    auto sixth = b.allow(t);
    CHECK_FALSE(sixth.allowed);
    CHECK(sixth.retry_at == t);
    b.record(t, probes[0], call_result::success);
    b.record(t, probes[1], call_result::failure);
    b.record(t, probes[2], call_result::success);
    CHECK(b.state(t) == breaker_state::half_open);
    b.record(t, probes[3], call_result::failure);
    CHECK(b.state(t) == breaker_state::half_open);  // 2 successes, 2 failures: still undecided
    b.record(t, probes[4], call_result::failure);   // 3 failures: 3 successes are out of reach
    CHECK(b.state(t) == breaker_state::open);
    CHECK(b.open_until() == t + ms(1000));
    CHECK(b.trips() == 2);

    t += ms(1000);
    for (int i = 0; i < 3; ++i) CHECK(call(b, t, call_result::success));
    CHECK(b.state(t) == breaker_state::closed);
  }

  TEST_CASE("a neutral probe gives its slot back") {
    circuit_breaker b(settings(1.0, 1.0, 1, 1, ms(10)));
    tp t{};
    call(b, t, call_result::failure);
    t += ms(10);
    auto p = b.allow(t);
    REQUIRE(p.allowed);
    b.record(t, p.t, call_result::neutral);
    CHECK(b.state(t) == breaker_state::half_open);
    auto q = b.allow(t);
    REQUIRE(q.allowed);
    b.record(t, q.t, call_result::success);
    CHECK(b.state(t) == breaker_state::closed);
  }

  TEST_CASE("outcomes of calls admitted in an earlier phase are ignored") {
    circuit_breaker b(settings(0.5, 1.0, 2, 1, ms(50)));
    tp t{};
    auto slow = b.allow(t);  // starts while closed...
    REQUIRE(slow.allowed);
    call(b, t, call_result::failure);
    call(b, t, call_result::failure);
    REQUIRE(b.state(t) == breaker_state::open);
    b.record(t, slow.t, call_result::success);  // ...ends while open: no effect
    CHECK(b.state(t) == breaker_state::open);
    t += ms(50);
    auto probe = b.allow(t);
    REQUIRE(probe.allowed);
    b.record(t, slow.t, call_result::success);  // not the probe: still half-open
    CHECK(b.state(t) == breaker_state::half_open);
    CHECK(b.probes_in_flight() == 1);
    b.record(t, probe.t, call_result::failure);
    CHECK(b.state(t) == breaker_state::open);
  }

  TEST_CASE("disabled: always allows, never trips") {
    auto s = settings(0.1, 1.0, 1, 1, ms(10));
    s.enabled = false;
    circuit_breaker b(s);
    for (int i = 0; i < 20; ++i) CHECK(call(b, tp{}, call_result::failure));
    CHECK(b.state(tp{}) == breaker_state::closed);
    breaker_registry r(s);
    for (int i = 0; i < 20; ++i) {
      auto d = r.allow("http://x:80", tp{});
      CHECK(d.allowed);
      r.record("http://x:80", tp{}, d.t, call_result::failure);
    }
    CHECK(r.size() == 0);
  }

  TEST_CASE("registry: one breaker per endpoint, bounded, idle ones forgotten first") {
    breaker_registry r(settings(1.0, 1.0, 1, 1, ms(1000)), 3);
    tp t{};
    auto fail = [&](const std::string& e) {
      auto d = r.allow(e, t);
      if (d.allowed) r.record(e, t, d.t, call_result::failure);
    };
    fail("http://dead:80");
    CHECK(r.state("http://dead:80", t) == breaker_state::open);
    CHECK(r.state("http://alive:80", t) == breaker_state::closed);
    CHECK(r.allow("http://alive:80", t).allowed);  // another endpoint is untouched
    CHECK_FALSE(r.allow("http://dead:80", t).allowed);
    for (int i = 0; i < 10; ++i) {
      auto e = "http://h" + std::to_string(i) + ":80";
      auto d = r.allow(e, t);
      r.record(e, t, d.t, call_result::success);
      CHECK(r.size() <= 3);
    }
    // The open breaker is not idle: the idle ones were evicted around it.
    CHECK(r.state("http://dead:80", t) == breaker_state::open);
    auto st = r.status(t);
    REQUIRE(st.size() == 3);
    bool found = false;
    for (const auto& s : st) {
      if (s.endpoint != "http://dead:80") continue;
      found = true;
      CHECK(s.state == breaker_state::open);
      CHECK(s.rejected == 1);
      CHECK(s.trips == 1);
      CHECK(s.retry_in_ms == 1000);
    }
    CHECK(found);
  }

  TEST_CASE("registry: a ticket of a forgotten breaker does not count in its successor") {
    breaker_registry r(settings(1.0, 1.0, 1, 1, ms(1000)), 1);
    tp t{};
    auto old = r.allow("http://a:80", t);
    r.allow("http://b:80", t);               // evicts a
    auto fresh = r.allow("http://a:80", t);  // evicts b, a new breaker for a
    r.record("http://a:80", t, old.t, call_result::failure);
    CHECK(r.state("http://a:80", t) == breaker_state::closed);
    r.record("http://a:80", t, fresh.t, call_result::failure);
    CHECK(r.state("http://a:80", t) == breaker_state::open);
  }

  TEST_CASE("http_endpoint: scheme://host:port, credentials and path dropped") {
    CHECK(http_endpoint("http://Example.COM/hook?x=1") ==
          std::optional<std::string>("http://example.com:80"));
    CHECK(http_endpoint("HTTPS://user:secret@api.example.com:8443/a#b") ==
          std::optional<std::string>("https://api.example.com:8443"));
    CHECK(http_endpoint("https://h") == std::optional<std::string>("https://h:443"));
    CHECK(http_endpoint("http://[::1]:9000/x") == std::optional<std::string>("http://[::1]:9000"));
    CHECK(http_endpoint("http://127.0.0.1:8080") ==
          std::optional<std::string>("http://127.0.0.1:8080"));
    CHECK_FALSE(http_endpoint("ftp://h/x"));
    CHECK_FALSE(http_endpoint("no url"));
    CHECK_FALSE(http_endpoint("http:///path"));
  }

  TEST_CASE("property: the breaker behaves like the reference model in simulated time") {
    // The model: closed keeps a plain list of outcomes, open an end time,
    // half-open counters; written from the header's state diagram, not from
    // the implementation.
    struct model {
      breaker_settings s;
      breaker_state st = breaker_state::closed;
      std::deque<bool> window;  // closed: last outcomes, true = failure
      tp until{};
      uint32_t started = 0, in_flight = 0, ok = 0, bad = 0;
      uint64_t phase = 0;

      uint32_t need() const {
        auto n = static_cast<uint32_t>(std::ceil(s.success_threshold * s.half_open_probes - 1e-9));
        return std::max<uint32_t>(1, std::min(n, s.half_open_probes));
      }
      void to_open(tp now) {
        st = breaker_state::open;
        until = now + s.timeout;
        window.clear();
        ++phase;
      }
      void to_half() {
        st = breaker_state::half_open;
        started = in_flight = ok = bad = 0;
        ++phase;
      }
      void to_closed() {
        st = breaker_state::closed;
        window.clear();
        ++phase;
      }
      // returns (allowed, phase, probe)
      std::tuple<bool, uint64_t, bool> allow(tp now) {
        if (st == breaker_state::open) {
          if (now < until) return {false, phase, false};
          to_half();
        }
        if (st == breaker_state::half_open) {
          if (started == s.half_open_probes) return {false, phase, false};
          ++started;
          ++in_flight;
          return {true, phase, true};
        }
        return {true, phase, false};
      }
      void record(tp now, uint64_t ph, bool probe, call_result r) {
        if (ph != phase) return;
        if (st == breaker_state::half_open) {
          if (!probe) return;
          --in_flight;
          if (r == call_result::neutral) {
            --started;
            return;
          }
          (r == call_result::success ? ok : bad)++;
          if (ok >= need())
            to_closed();
          else if (bad > s.half_open_probes - need())
            to_open(now);
          return;
        }
        if (st != breaker_state::closed || r == call_result::neutral) return;
        window.push_back(r == call_result::failure);
        if (window.size() > s.sample_size) window.pop_front();
        if (window.size() < s.sample_size) return;
        size_t f = 0;
        for (bool b : window) f += b ? 1 : 0;
        if (static_cast<double>(f) >= s.failure_threshold * s.sample_size - 1e-9) to_open(now);
      }
    };

    bool ok = rc::check("breaker == model; open rejects until timeout; probes bounded", [] {
      breaker_settings s;
      s.failure_threshold = *rc::gen::inRange(1, 11) / 10.0;
      s.success_threshold = *rc::gen::inRange(1, 11) / 10.0;
      s.sample_size = *rc::gen::inRange<uint32_t>(1, 8);
      s.half_open_probes = *rc::gen::inRange<uint32_t>(1, 5);
      s.timeout = ms(*rc::gen::inRange(1, 200));
      circuit_breaker b(s);
      model m;
      m.s = s;
      tp now{};
      struct call_in_flight {
        circuit_breaker::ticket t;
        uint64_t model_phase;
        bool model_probe;
      };
      std::vector<call_in_flight> flying;
      const int steps = *rc::gen::inRange(1, 300);
      for (int i = 0; i < steps; ++i) {
        const int op = *rc::gen::inRange(0, 3);
        if (op == 0) {
          now += ms(*rc::gen::inRange(0, 120));
        } else if (op == 1) {
          const auto before = b.state(now);
          const auto open_until = b.open_until();
          auto d = b.allow(now);
          auto [m_allowed, m_phase, m_probe] = m.allow(now);
          RC_ASSERT(d.allowed == m_allowed);
          if (before == breaker_state::open) {
            // Never a call while open before the timeout, and the rejected call
            // learns exactly when probing starts.
            RC_ASSERT(!d.allowed);
            RC_ASSERT(d.retry_at == open_until);
            RC_ASSERT(d.retry_at > now);
          }
          if (!d.allowed) RC_ASSERT(d.retry_at >= now);
          if (d.allowed) {
            RC_ASSERT(d.t.probe == m_probe);
            flying.push_back({d.t, m_phase, m_probe});
          }
        } else if (!flying.empty()) {
          const size_t k = *rc::gen::inRange<size_t>(0, flying.size());
          const auto r =
              *rc::gen::element(call_result::success, call_result::failure, call_result::neutral);
          const auto before = b.state(now);
          const uint32_t successes_before =
              b.state(now) == breaker_state::half_open ? b.calls() - b.failures() : 0;
          b.record(now, flying[k].t, r);
          m.record(now, flying[k].model_phase, flying[k].model_probe, r);
          // Half-open closes only with enough successful probes.
          if (before == breaker_state::half_open && b.state(now) == breaker_state::closed) {
            RC_ASSERT(r == call_result::success);
            RC_ASSERT(successes_before + 1 >= m.need());
          }
          flying.erase(flying.begin() + static_cast<std::ptrdiff_t>(k));
        }
        RC_ASSERT(
            b.state(now) ==
            (m.st == breaker_state::open && now >= m.until ? breaker_state::half_open : m.st));
        RC_ASSERT(b.probes_in_flight() <= s.half_open_probes);
        if (m.st == breaker_state::half_open) RC_ASSERT(b.probes_in_flight() == m.in_flight);
        if (m.st == breaker_state::closed) RC_ASSERT(b.calls() == m.window.size());
      }
    });
    CHECK(ok);
  }
}
