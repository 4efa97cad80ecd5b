// The leader's local deadline: valid until the last successful renewal's send
// time plus the TTL, less a margin; revoked for good.
#include "runtime/core/lease_clock.hpp"

#include <doctest/doctest.h>

using namespace fraiseql;
using namespace std::chrono_literals;

TEST_SUITE("lease clock") {
  TEST_CASE("never valid before the first renewal, nor after a revoke") {
    lease_clock c;
    const auto t = lease_clock::clock::now();
    CHECK_FALSE(c.valid(t));
    c.renewed(t, 5000ms);
    CHECK(c.valid(t));
    c.revoke();
    CHECK_FALSE(c.valid(t));
  }

  TEST_CASE("the deadline is the send time plus the TTL less max(TTL / 10, 100 ms)") {
    lease_clock c;
    const auto t = lease_clock::clock::time_point(10s);
    c.renewed(t, 5000ms);
    CHECK(c.deadline() == t + 4500ms);
    CHECK(c.valid(t + 4499ms));
    CHECK_FALSE(c.valid(t + 4500ms));
    c.renewed(t, 500ms);  // a tenth is 50 ms: the margin is 100 ms
    CHECK(c.deadline() == t + 400ms);
    c.renewed(t, 150ms);  // the margin never exceeds half the TTL
    CHECK(c.deadline() == t + 75ms);
  }

  TEST_CASE("each renewal moves the deadline to its own send time") {
    lease_clock c;
    const auto t = lease_clock::clock::time_point(10s);
    c.renewed(t, 5000ms);
    c.renewed(t + 1000ms, 5000ms);
    CHECK(c.deadline() == t + 5500ms);
    // A frozen process wakes up past its deadline: the monotonic clock ran on.
    CHECK_FALSE(c.valid(t + 60s));
  }
}
