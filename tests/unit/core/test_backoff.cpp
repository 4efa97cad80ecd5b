#include "runtime/core/backoff.hpp"

#include <doctest/doctest.h>

using fraiseql::backoff_delay;
using fraiseql::backoff_strategy;
using fraiseql::retry_config;
using ms = std::chrono::milliseconds;

TEST_SUITE("backoff") {
  TEST_CASE("exponential doubles from the initial delay and stops at the cap") {
    retry_config c;
    c.strategy = backoff_strategy::exponential;
    c.initial_delay_ms = 100;
    c.max_delay_ms = 1000;
    CHECK(backoff_delay(c, 1) == ms(100));
    CHECK(backoff_delay(c, 2) == ms(200));
    CHECK(backoff_delay(c, 3) == ms(400));
    CHECK(backoff_delay(c, 4) == ms(800));
    CHECK(backoff_delay(c, 5) == ms(1000));
    CHECK(backoff_delay(c, 500) == ms(1000));  // no overflow for huge attempt counts
  }

  TEST_CASE("linear grows by the initial delay") {
    retry_config c;
    c.strategy = backoff_strategy::linear;
    c.initial_delay_ms = 250;
    c.max_delay_ms = 600;
    CHECK(backoff_delay(c, 1) == ms(250));
    CHECK(backoff_delay(c, 2) == ms(500));
    CHECK(backoff_delay(c, 3) == ms(600));
  }

  TEST_CASE("fixed is constant, still capped") {
    retry_config c;
    c.strategy = backoff_strategy::fixed;
    c.initial_delay_ms = 70;
    c.max_delay_ms = 30000;
    for (uint32_t n = 1; n < 10; ++n) CHECK(backoff_delay(c, n) == ms(70));
    c.max_delay_ms = 50;
    CHECK(backoff_delay(c, 1) == ms(50));
  }

  TEST_CASE("jitter only shortens, within the configured fraction") {
    retry_config c;
    c.strategy = backoff_strategy::exponential;
    c.initial_delay_ms = 1000;
    c.max_delay_ms = 1000;
    c.jitter = 0.2;
    CHECK(backoff_delay(c, 1, 0.0) == ms(1000));
    CHECK(backoff_delay(c, 1, 0.5) == ms(900));
    CHECK(backoff_delay(c, 1, 0.999999) == ms(800));
    c.jitter = 0.0;
    CHECK(backoff_delay(c, 1, 0.7) == ms(1000));
  }
}
