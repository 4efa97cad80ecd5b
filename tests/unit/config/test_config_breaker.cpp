// [circuit_breaker]: defaults, every key, strict validation with locations.

#include "runtime/config/loader.hpp"
#include "runtime/config/model.hpp"
#include "runtime/core/circuit_breaker.hpp"

#include <doctest/doctest.h>

#include <string>

using fraiseql::load_config_string;

namespace {

std::optional<std::string> no_env(const char*) {
  return std::nullopt;
}

const std::string db = "[database]\nurl = \"postgresql://localhost/app\"\n";

}  // namespace

TEST_SUITE("config") {
  TEST_CASE("[circuit_breaker] defaults") {
    auto r = load_config_string(db, "cb.toml", no_env);
    REQUIRE(r);
    const auto& c = r.value->circuit_breaker;
    CHECK(c.enabled);
    CHECK(c.failure_threshold == doctest::Approx(0.5));
    CHECK(c.success_threshold == doctest::Approx(0.8));
    CHECK(c.timeout_ms == 30000);
    CHECK(c.sample_size == 10);
    CHECK(c.half_open_probes == 5);
  }

  TEST_CASE("[circuit_breaker] every key read") {
    auto r =
        load_config_string(db + "[circuit_breaker]\nenabled = false\nfailure_threshold = 0.25\n"
                                "success_threshold = 1\ntimeout_ms = 1500\nsample_size = 20\n"
                                "half_open_probes = 3\n",
                           "cb.toml", no_env);
    REQUIRE(r);
    const auto& c = r.value->circuit_breaker;
    CHECK_FALSE(c.enabled);
    CHECK(c.failure_threshold == doctest::Approx(0.25));
    CHECK(c.success_threshold == doctest::Approx(1.0));
    CHECK(c.timeout_ms == 1500);
    CHECK(c.sample_size == 20);
    CHECK(c.half_open_probes == 3);
  }

  TEST_CASE("[circuit_breaker] bad values name file, line, key") {
    struct bad {
      const char* body;
      const char* key;
      uint32_t line;
      const char* message;
    };
    const bad cases[] = {
        {"failure_threshold = 0\n", "circuit_breaker.failure_threshold", 4,
         "greater than 0 and at most 1 (got 0)"},
        {"failure_threshold = 1.5\n", "circuit_breaker.failure_threshold", 4, "(got 1.5)"},
        {"success_threshold = -0.1\n", "circuit_breaker.success_threshold", 4, "(got -0.1)"},
        {"success_threshold = nan\n", "circuit_breaker.success_threshold", 4, "at most 1"},
        {"success_threshold = \"high\"\n", "circuit_breaker.success_threshold", 4,
         "expected a number"},
        {"sample_size = 0\n", "circuit_breaker.sample_size", 4, "between 1 and 10000 (got 0)"},
        {"half_open_probes = 0\n", "circuit_breaker.half_open_probes", 4, "between 1 and 1000"},
        {"timeout_ms = 0\n", "circuit_breaker.timeout_ms", 4, "between 1 and 86400000"},
        {"enabled = 1\n", "circuit_breaker.enabled", 4, "expected a boolean"},
        {"timeout_secs = 3\n", "circuit_breaker.timeout_secs", 4, "unknown key"},
        {"failure_ratio = 0.3\n", "circuit_breaker.failure_ratio", 4,
         "valid keys in [circuit_breaker]: enabled"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.body);
      auto r = load_config_string(db + "[circuit_breaker]\n" + c.body, "cb.toml", no_env);
      CHECK_FALSE(r);
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].file == "cb.toml");
      CHECK(r.errors[0].key == c.key);
      CHECK(r.errors[0].line == c.line);
      CHECK(r.errors[0].message.find(c.message) != std::string::npos);
    }
    auto r = load_config_string("circuit_breaker = true\n" + db, "cb.toml", no_env);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].key == "circuit_breaker");
  }
}
