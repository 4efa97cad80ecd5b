// Keys that are accepted but have no effect: each one warns, naming the key,
// where it was set and why; the configuration stays valid.
#include "runtime/config/loader.hpp"
#include "runtime/config/model.hpp"

#include "config_test_util.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace config_test;
using fraiseql::load_config_file;
using fraiseql::load_config_string;

namespace {

std::string all_warnings(const config_result& r) {
  std::string out;
  for (const auto& w : r.warnings) out += w.to_string() + "\n";
  return out;
}

}  // namespace

TEST_SUITE("config warnings") {
  TEST_CASE("shipped configurations warn about nothing") {
    for (const char* f : {"config/demo.toml", "config/examples/01-postgresql-only.toml",
                          "config/examples/02-postgresql-redis.toml"}) {
      CAPTURE(f);
      const auto r = load_config_file(f, no_env);
      REQUIRE(r);
      CHECK(all_warnings(r) == "");
    }
  }

  TEST_CASE("[redis] used for nothing") {
    const auto r = load_config_string(std::string(db) + "\n[redis]\nurl = \"redis://127.0.0.1\"\n",
                                      "w.toml", no_env);
    REQUIRE(r);
    REQUIRE(r.warnings.size() == 1);
    CHECK(r.warnings[0].line == 4);
    CHECK(r.warnings[0].key == "redis");
    CHECK(r.warnings[0].message.find("neither [performance] enable_dedup nor enable_caching") !=
          std::string::npos);
    const auto used = load_config_string(
        std::string(db) + "[performance]\nenable_dedup = true\n[redis]\nurl = \"redis://h\"\n",
        "w.toml", no_env);
    REQUIRE(used);
    CHECK(all_warnings(used) == "");
  }

  TEST_CASE("cache_capacity without the in-memory cache") {
    const auto off = load_config_string(std::string(db) + "[performance]\ncache_capacity = 5\n",
                                        "w.toml", no_env);
    REQUIRE(off);
    CHECK(all_warnings(off) ==
          "w.toml:4:18: performance.cache_capacity: has no effect while [performance] "
          "enable_caching is false\n");
    const auto redis =
        load_config_string(std::string(db) +
                               "[performance]\nenable_caching = true\ncache_capacity = "
                               "5\n[redis]\nurl = \"redis://h\"\n",
                           "w.toml", no_env);
    REQUIRE(redis);
    CHECK(all_warnings(redis).find("performance.cache_capacity: has no effect with [redis]") !=
          std::string::npos);
    const auto memory = load_config_string(
        std::string(db) + "[performance]\nenable_caching = true\ncache_capacity = 5\n", "w.toml",
        no_env);
    REQUIRE(memory);
    CHECK(all_warnings(memory) == "");
  }

  TEST_CASE("concurrent_timeout_ms with enable_concurrent off, journal_size without [control]") {
    const auto r =
        load_config_string(std::string(db) +
                               "[performance]\nenable_concurrent = false\n"
                               "concurrent_timeout_ms = 100\n[control]\nenabled = false\n"
                               "journal_size = 5\n",
                           "w.toml", no_env);
    REQUIRE(r);
    const auto w = all_warnings(r);
    CHECK(w.find("w.toml:5:25: performance.concurrent_timeout_ms: has no effect while "
                 "enable_concurrent is false") != std::string::npos);
    CHECK(w.find("w.toml:8:16: control.journal_size: has no effect while [control] enabled is "
                 "false") != std::string::npos);
  }

  TEST_CASE("[adaptive_concurrency] keys while it is off, caps below its limits") {
    const auto off = load_config_string(
        std::string(db) + "[adaptive_concurrency]\nenabled = false\nmax_limit = 50\n", "w.toml",
        no_env);
    REQUIRE(off);
    CHECK(off.value->performance.max_concurrent_actions == 10);  // the fixed default
    CHECK(all_warnings(off) ==
          "w.toml:5:13: adaptive_concurrency.max_limit: has no effect while "
          "[adaptive_concurrency] enabled is false\n");
    const auto capped = load_config_string(
        std::string(db) + "[performance]\nmax_concurrent_actions = 4\n", "w.toml", no_env);
    REQUIRE(capped);
    CHECK(capped.value->performance.max_concurrent_actions == 4);
    CHECK(capped.value->performance.worker_window == 4);
    CHECK(all_warnings(capped).find("performance.max_concurrent_actions: (4) caps adaptive "
                                    "concurrency below its initial_limit (10)") !=
          std::string::npos);
    const auto above = load_config_string(std::string(db) +
                                              "[performance]\nmax_concurrent_actions = "
                                              "100\n[adaptive_concurrency]\nmax_limit = 500\n",
                                          "w.toml", no_env);
    REQUIRE(above);
    CHECK(all_warnings(above).find("adaptive_concurrency.max_limit: is above [performance] "
                                   "max_concurrent_actions (100)") != std::string::npos);
    const auto fine = load_config_string(
        std::string(db) + "[adaptive_concurrency]\nmax_limit = 200\ninitial_limit = 20\n", "w.toml",
        no_env);
    REQUIRE(fine);
    CHECK(all_warnings(fine) == "");
    CHECK(fine.value->performance.max_concurrent_actions == 1000);
  }

  TEST_CASE("a variable shadowed by the one that takes precedence") {
    scoped_env env{{"FRAISEQL_DATABASE_URL", "postgresql://localhost/app"},
                   {"FRAISEQL_MAX_CONCURRENT_ACTIONS", "20"},
                   {"FRAISEQL_MAX_CONCURRENCY", "30"}};
    const auto r = load_config_string("", "w.toml", fake_env);
    REQUIRE(r);
    CHECK(r.value->performance.max_concurrent_actions == 20);
    CHECK(all_warnings(r) ==
          "environment: FRAISEQL_MAX_CONCURRENCY: is ignored: FRAISEQL_MAX_CONCURRENT_ACTIONS is "
          "also set and takes precedence\n");
  }

  TEST_CASE("an invalid configuration reports errors, not warnings") {
    const auto r = load_config_string("[performance]\ncache_capacity = 5\nenable_caching = 3\n",
                                      "w.toml", no_env);
    CHECK_FALSE(r);
    CHECK(r.warnings.empty());
  }
}
