// Configuration loader: the database url, FRAISEQL_* overrides, redaction, file and syntax errors.

#include "runtime/config/loader.hpp"
#include "runtime/config/model.hpp"
#include "runtime/config/redact.hpp"

#include "config_test_util.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

using fraiseql::config_error;
using fraiseql::config_result;
using fraiseql::load_config_file;
using fraiseql::load_config_string;

using namespace config_test;

TEST_SUITE("config") {
  TEST_CASE("database url is required") {
    SUBCASE("absent everywhere") {
      const config_result r = load_config_string(observer, "nourl.toml", no_env);
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].key == "database.url");
      CHECK(r.errors[0].line == 0);
      CHECK(r.errors[0].message.find("FRAISEQL_DATABASE_URL") != std::string::npos);
      CHECK(r.errors[0].to_string().rfind("nourl.toml: database.url: is required", 0) == 0);
    }
    SUBCASE("[database] without url is blamed on the table") {
      const config_result r =
          load_config_string("\n[database]\nreconnect_max_delay_ms = 5\n", "t.toml", no_env);
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].key == "database.url");
      CHECK(r.errors[0].line == 2);
    }
    SUBCASE("DATABASE_URL suffices") {
      scoped_env env({{"DATABASE_URL", "postgres://h/db"}});
      const config_result r = load_config_string(observer, "t.toml", fake_env);
      REQUIRE(r);
      CHECK(r.value->database.url == "postgres://h/db");
    }
  }

  TEST_CASE("database url precedence") {
    const std::string text = std::string(db) + observer;
    SUBCASE("file only") {
      scoped_env env;
      const auto r = load_config_string(text, "t.toml", fake_env);
      REQUIRE(r);
      CHECK(r.value->database.url == "postgresql://localhost/app");
    }
    SUBCASE("DATABASE_URL beats the file") {
      scoped_env env({{"DATABASE_URL", "postgresql://generic/db"}});
      const auto r = load_config_string(text, "t.toml", fake_env);
      REQUIRE(r);
      CHECK(r.value->database.url == "postgresql://generic/db");
    }
    SUBCASE("FRAISEQL_DATABASE_URL beats DATABASE_URL") {
      scoped_env env({{"DATABASE_URL", "postgresql://generic/db"},
                      {"FRAISEQL_DATABASE_URL", "postgresql://ours/db"}});
      const auto r = load_config_string(text, "t.toml", fake_env);
      REQUIRE(r);
      CHECK(r.value->database.url == "postgresql://ours/db");
    }
    SUBCASE("empty variables count as unset") {
      scoped_env env({{"DATABASE_URL", ""}, {"FRAISEQL_DATABASE_URL", ""}});
      const auto r = load_config_string(text, "t.toml", fake_env);
      REQUIRE(r);
      CHECK(r.value->database.url == "postgresql://localhost/app");
    }
    SUBCASE("a bad env url names the variable") {
      scoped_env env({{"FRAISEQL_DATABASE_URL", "mysql://root:hunter2@h/db"}});
      const auto r = load_config_string(text, "t.toml", fake_env);
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].file == "environment");
      CHECK(r.errors[0].key == "FRAISEQL_DATABASE_URL");
      CHECK(r.errors[0].line == 0);
      CHECK(r.errors[0].to_string().find("hunter2") == std::string::npos);
      CHECK(r.errors[0].to_string().rfind("environment: FRAISEQL_DATABASE_URL: ", 0) == 0);
    }
  }

  TEST_CASE("url_env") {
    const std::string text = std::string("[database]\nurl_env = \"ORDERS_DB\"\n") + observer;
    SUBCASE("reads the named variable") {
      scoped_env env({{"ORDERS_DB", "postgresql://orders/db"}});
      const auto r = load_config_string(text, "t.toml", fake_env);
      CAPTURE(all_errors(r));
      REQUIRE(r);
      CHECK(r.value->database.url == "postgresql://orders/db");
      CHECK(r.value->database.url_env == "ORDERS_DB");
    }
    SUBCASE("FRAISEQL_DATABASE_URL still wins") {
      scoped_env env({{"ORDERS_DB", "postgresql://orders/db"},
                      {"FRAISEQL_DATABASE_URL", "postgresql://ours/db"}});
      const auto r = load_config_string(text, "t.toml", fake_env);
      REQUIRE(r);
      CHECK(r.value->database.url == "postgresql://ours/db");
    }
    SUBCASE("unset variable is an error at url_env") {
      scoped_env env;
      const auto r = load_config_string(text, "t.toml", fake_env);
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].key == "database.url_env");
      CHECK(r.errors[0].line == 2);
      CHECK(r.errors[0].message.find("ORDERS_DB") != std::string::npos);
      CHECK(r.errors[0].message.find("not set") != std::string::npos);
    }
  }

  TEST_CASE("environment overrides") {
    const std::string text = std::string(db) + observer;
    auto load = [&](const std::map<std::string, std::string>& vars) {
      scoped_env env(vars);
      return load_config_string(text, "t.toml", fake_env);
    };
    SUBCASE("performance and runtime values") {
      const auto r = load({{"FRAISEQL_ENABLE_CONCURRENT", "no"},
                           {"FRAISEQL_ENABLE_DEDUP", "false"},
                           {"FRAISEQL_ENABLE_CACHING", "0"},
                           {"FRAISEQL_MAX_CONCURRENT_ACTIONS", "20"},
                           {"FRAISEQL_CHANNEL_CAPACITY", "1000"},
                           {"FRAISEQL_SHUTDOWN_TIMEOUT", "2m"},
                           {"FRAISEQL_OBSERVER_TRANSPORT", "postgres"}});
      CAPTURE(all_errors(r));
      REQUIRE(r);
      CHECK_FALSE(r.value->performance.enable_concurrent);
      CHECK(r.value->performance.max_concurrent_actions == 20);
      CHECK(r.value->listener.max_in_flight == 1000);
      CHECK(r.value->shutdown.timeout_ms == 120000);
    }
    SUBCASE("FRAISEQL_MAX_CONCURRENT_ACTIONS beats FRAISEQL_MAX_CONCURRENCY") {
      const auto r =
          load({{"FRAISEQL_MAX_CONCURRENT_ACTIONS", "20"}, {"FRAISEQL_MAX_CONCURRENCY", "50"}});
      REQUIRE(r);
      CHECK(r.value->performance.max_concurrent_actions == 20);
    }
    SUBCASE("FRAISEQL_MAX_CONCURRENCY alone") {
      const auto r = load({{"FRAISEQL_MAX_CONCURRENCY", "50"}});
      REQUIRE(r);
      CHECK(r.value->performance.max_concurrent_actions == 50);
    }
    SUBCASE("env beats the file") {
      scoped_env env({{"FRAISEQL_MAX_CONCURRENT_ACTIONS", "3"}, {"FRAISEQL_LOG", "error"}});
      // (tables written after [[observers]] would nest into it: put them first)
      const std::string ordered =
          "[performance]\nmax_concurrent_actions = 40\n[logging]\nlevel = \"debug\"\n" + text;
      const auto r = load_config_string(ordered, "t.toml", fake_env);
      CAPTURE(all_errors(r));
      REQUIRE(r);
      CHECK(r.value->performance.max_concurrent_actions == 3);
      CHECK(r.value->logging.level == "error");
    }
    SUBCASE("shutdown durations") {
      const std::pair<const char*, uint32_t> cases[] = {
          {"30s", 30000}, {"500ms", 500}, {"2m", 120000}, {"1h", 3600000},
          {"45", 45000},  {" 0 ", 0},     {"10 s", 10000}};
      for (const auto& [text_value, ms] : cases) {
        CAPTURE(text_value);
        const auto r = load({{"FRAISEQL_SHUTDOWN_TIMEOUT", text_value}});
        REQUIRE(r);
        CHECK(r.value->shutdown.timeout_ms == ms);
      }
    }
    SUBCASE("log level: FRAISEQL_LOG beats RUST_LOG") {
      const auto r = load({{"FRAISEQL_LOG", "warn"}, {"RUST_LOG", "debug"}});
      REQUIRE(r);
      CHECK(r.value->logging.level == "warn");
    }
    SUBCASE("RUST_LOG directives") {
      const std::pair<const char*, const char*> cases[] = {
          {"debug", "debug"},
          {"TRACE", "trace"},
          {"info,fraiseql=debug", "debug"},
          {"fraiseql_observer::listener=trace,warn", "trace"},
          {"observer=error", "error"},
          {"warn,hyper=trace", "warn"},
          {"hyper=trace", "info"},  // nothing for us: file/default level stays
          {"fraiseql=info,fraiseql::http=debug", "debug"},
          {"error,fraiseql", "trace"},
          {"info/some.*regex", "info"},
      };
      for (const auto& [spec, level] : cases) {
        CAPTURE(spec);
        const auto r = load({{"RUST_LOG", spec}});
        CAPTURE(all_errors(r));
        REQUIRE(r);
        CHECK(r.value->logging.level == std::string(level));
      }
    }
    SUBCASE("an env value can switch off what the file enables") {
      scoped_env env(
          {{"FRAISEQL_ENABLE_DEDUP", "no"}, {"FRAISEQL_OBSERVER_TRANSPORT", "postgres"}});
      const std::string t =
          "[transport]\ntransport = \"nats\"\n[performance]\nenable_dedup = true\n" + text;
      const auto r = load_config_string(t, "t.toml", fake_env);
      CAPTURE(all_errors(r));
      REQUIRE(r);
      CHECK_FALSE(r.value->performance.enable_dedup);
      CHECK(r.value->transport.transport == "postgres");
    }
    SUBCASE("empty FRAISEQL_REDIS_URL is ignored") {
      const auto r = load({{"FRAISEQL_REDIS_URL", ""}, {"FRAISEQL_NATS_URL", ""}});
      CHECK(r);
    }
  }

  TEST_CASE("[redis] keys, defaults and FRAISEQL_REDIS_* overrides") {
    SUBCASE("defaults, and enable_caching without [redis] (in-memory cache)") {
      const std::string t = std::string(db) + "[performance]\nenable_caching = true\n" + observer;
      const auto r = load_config_string(t, "t.toml", no_env);
      CAPTURE(all_errors(r));
      REQUIRE(r);
      CHECK(r.value->performance.enable_caching);
      CHECK(r.value->performance.cache_capacity == 10000);
      CHECK_FALSE(r.value->redis.has_value());
    }
    SUBCASE("every key") {
      const std::string t =
          std::string(db) +
          "[redis]\nurl = \"redis://:secret@127.0.0.1:6380/2\"\npool_size = 4\n"
          "connect_timeout_secs = 3\ncommand_timeout_secs = 1\ndedup_window_secs = 600\n"
          "cache_ttl_secs = 30\nclaim_ttl_secs = 10\nfailure_policy = \"fail_closed\"\n"
          "[performance]\nenable_dedup = true\nenable_caching = true\ncache_capacity = 50\n"
          "[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n"
          "[[observers.actions]]\ntype = \"webhook\"\nurl = \"http://h/\"\ncache = true\n"
          "cache_ttl_secs = 7\n";
      const auto r = load_config_string(t, "t.toml", no_env);
      CAPTURE(all_errors(r));
      REQUIRE(r);
      REQUIRE(r.value->redis.has_value());
      const auto& rc = *r.value->redis;
      CHECK(rc.url == "redis://:secret@127.0.0.1:6380/2");
      CHECK(rc.pool_size == 4);
      CHECK(rc.connect_timeout_secs == 3);
      CHECK(rc.command_timeout_secs == 1);
      CHECK(rc.dedup_window_secs == 600);
      CHECK(rc.cache_ttl_secs == 30);
      CHECK(rc.claim_ttl_secs == 10);
      CHECK(rc.failure_policy == "fail_closed");
      CHECK(r.value->performance.enable_dedup);
      CHECK(r.value->performance.cache_capacity == 50);
      const auto& w = *r.value->observers[0].actions[0].webhook;
      CHECK(w.cache);
      CHECK(w.cache_ttl_secs == std::optional<uint32_t>(7));
    }
    SUBCASE("FRAISEQL_REDIS_URL alone enables Redis; the other variables override") {
      scoped_env env({{"FRAISEQL_REDIS_URL", "redis://127.0.0.1:7000/1"},
                      {"FRAISEQL_REDIS_POOL_SIZE", "20"},
                      {"FRAISEQL_REDIS_DEDUP_WINDOW_SECS", "120"},
                      {"FRAISEQL_REDIS_CACHE_TTL_SECS", "15"},
                      {"FRAISEQL_REDIS_CONNECT_TIMEOUT_SECS", "9"},
                      {"FRAISEQL_REDIS_COMMAND_TIMEOUT_SECS", "8"},
                      {"FRAISEQL_REDIS_CLAIM_TTL_SECS", "4"},
                      {"FRAISEQL_REDIS_FAILURE_POLICY", "fail_closed"},
                      {"FRAISEQL_ENABLE_DEDUP", "true"}});
      const auto r = load_config_string(std::string(db) + observer, "t.toml", fake_env);
      CAPTURE(all_errors(r));
      REQUIRE(r);
      REQUIRE(r.value->redis.has_value());
      const auto& rc = *r.value->redis;
      CHECK(rc.url == "redis://127.0.0.1:7000/1");
      CHECK(rc.pool_size == 20);
      CHECK(rc.dedup_window_secs == 120);
      CHECK(rc.cache_ttl_secs == 15);
      CHECK(rc.connect_timeout_secs == 9);
      CHECK(rc.command_timeout_secs == 8);
      CHECK(rc.claim_ttl_secs == 4);
      CHECK(rc.failure_policy == "fail_closed");
      CHECK(r.value->performance.enable_dedup);
    }
    SUBCASE("FRAISEQL_REDIS_URL fills a [redis] table without url") {
      scoped_env env({{"FRAISEQL_REDIS_URL", "redis://h"}});
      const auto r = load_config_string(std::string(db) + "[redis]\npool_size = 3\n" + observer,
                                        "t.toml", fake_env);
      CAPTURE(all_errors(r));
      REQUIRE(r);
      CHECK(r.value->redis->url == "redis://h");
      CHECK(r.value->redis->pool_size == 3);
    }
  }

  TEST_CASE("bad environment values name the variable") {
    const std::string text = std::string(db) + observer;
    const std::pair<const char*, const char*> cases[][2] = {
        {{"FRAISEQL_OBSERVER_TRANSPORT", "kafka"}, {"", "invalid value 'kafka'"}},
        {{"FRAISEQL_OBSERVER_TRANSPORT", "nats"}, {"", "or set FRAISEQL_NATS_URL"}},
        {{"FRAISEQL_OBSERVER_TRANSPORT", "in_memory"}, {"", "this build does not implement"}},
        {{"FRAISEQL_ENABLE_DEDUP", "maybe"}, {"", "invalid boolean 'maybe'"}},
        {{"FRAISEQL_ENABLE_DEDUP", "yes"}, {"", "requires [redis]"}},
        {{"FRAISEQL_REDIS_POOL_SIZE", "5"}, {"", "Redis is not configured"}},
        {{"FRAISEQL_REDIS_FAILURE_POLICY", "fail_open"}, {"", "Redis is not configured"}},
        {{"FRAISEQL_ENABLE_CONCURRENT", "on"}, {"", "invalid boolean"}},
        {{"FRAISEQL_NATS_ENABLE_BRIDGE", "maybe"}, {"", "invalid boolean 'maybe'"}},
        {{"FRAISEQL_NATS_URL", "http://h:4222"}, {"", "unsupported scheme 'http'"}},
        {{"FRAISEQL_MAX_CONCURRENT_ACTIONS", "-1"}, {"", "expected a non-negative integer"}},
        {{"FRAISEQL_MAX_CONCURRENT_ACTIONS", "0"}, {"", "between 1 and 100000"}},
        {{"FRAISEQL_MAX_CONCURRENCY", "ten"}, {"", "expected a non-negative integer"}},
        {{"FRAISEQL_CHANNEL_CAPACITY", "10000001"}, {"", "between 1 and 10000000"}},
        {{"FRAISEQL_CHANNEL_CAPACITY", "99999999999999999999999"},
         {"", "expected a non-negative integer"}},
        {{"FRAISEQL_SHUTDOWN_TIMEOUT", "30 seconds"}, {"", "invalid duration"}},
        {{"FRAISEQL_SHUTDOWN_TIMEOUT", "-5s"}, {"", "invalid duration"}},
        {{"FRAISEQL_SHUTDOWN_TIMEOUT", "1.5s"}, {"", "invalid duration"}},
        {{"FRAISEQL_SHUTDOWN_TIMEOUT", "9999999h"}, {"", "too long"}},
        {{"FRAISEQL_LOG", "verbose"}, {"", "unknown log level 'verbose'"}},
        {{"RUST_LOG", "info,fraiseql=loud"}, {"", "unknown log level 'loud'"}},
        {{"RUST_LOG", "off"}, {"", "unknown log level 'off'"}},
        {{"FRAISEQL_REDIS_URL", "rediss://:pw@localhost:6379"},
         {"", "TLS (rediss://) is not supported"}},
        {{"FRAISEQL_REDIS_URL", "redis://:pw@localhost:99999"}, {"", "port"}},
        {{"FRAISEQL_NATS_URL", "nats://a:4222,nats://b:99999"},
         {"", "entry 2 'nats://b:99999' is not nats://host:port with a port 1-65535"}},
        {{"FRAISEQL_NATS_URL", "nats://a:4222, "}, {"", "entry 2 is empty"}},
    };
    for (const auto& c : cases) {
      const char* var = c[0].first;
      CAPTURE(var);
      CAPTURE(c[0].second);
      scoped_env env({{var, c[0].second}});
      const auto r = load_config_string(text, "t.toml", fake_env);
      CAPTURE(all_errors(r));
      CHECK_FALSE(r);
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].key == var);
      CHECK(r.errors[0].line == 0);
      CHECK(r.errors[0].file == "environment");
      CHECK(r.errors[0].message.find(c[1].second) != std::string::npos);
      CHECK(r.errors[0].to_string().find(":0") == std::string::npos);
      CHECK(r.errors[0].to_string().find(":pw@") == std::string::npos);
    }
  }

  TEST_CASE("passwords never appear in errors") {
    scoped_env env;
    const char* texts[] = {
        "[database]\nurl = \"mysql://root:hunter2@db/app\"\n",
        "[database]\nurl = \"postgresql://root:hunter2@db/app\"\n[transport]\nrun_bridge = 3\n",
        "[database]\nurl = \"postgresql://h/db\"\n[[observers]]\nevent_type = \"INSERT\"\nentity = "
        "\"O\"\n"
        "[[observers.actions]]\ntype = \"webhook\"\nurl = \"ftp://bob:hunter2@h/\"\n",
    };
    for (const char* t : texts) {
      const auto r = load_config_string(t, "t.toml", fake_env);
      CHECK_FALSE(r);
      CHECK(all_errors(r).find("hunter2") == std::string::npos);
    }
  }

  TEST_CASE("redact_url") {
    using fraiseql::redact_url;
    CHECK(redact_url("postgresql://app:s3cret@db:5432/app") == "postgresql://app:***@db:5432/app");
    CHECK(redact_url("postgresql://app@db/app") == "postgresql://app@db/app");
    CHECK(redact_url("postgresql://db/app?user=a&password=s3cret&sslmode=require") ==
          "postgresql://db/app?user=a&password=***&sslmode=require");
    CHECK(redact_url("postgres://u:p%40ss@h/db#frag") == "postgres://u:***@h/db#frag");
    CHECK(redact_url("host=db password=s3cret dbname=app") == "host=db password=*** dbname=app");
    CHECK(redact_url("host=db password = 'a b\\' c' dbname=app") ==
          "host=db password = *** dbname=app");
    CHECK(redact_url("host=db dbname=app") == "host=db dbname=app");
    CHECK(redact_url("https://hooks.example.com/x") == "https://hooks.example.com/x");
  }

  TEST_CASE("to_string formats") {
    config_error e{"a.toml", 3, 7, "observers[1].actions[0].timeout_ms",
                   "must be between 1 and 600000"};
    CHECK(e.to_string() ==
          "a.toml:3:7: observers[1].actions[0].timeout_ms: must be between 1 and 600000");
    e.line = 0;
    CHECK(e.to_string() ==
          "a.toml: observers[1].actions[0].timeout_ms: must be between 1 and 600000");
    config_error syntax{"b.toml", 2, 1, "", "TOML syntax error: x"};
    CHECK(syntax.to_string() == "b.toml:2:1: TOML syntax error: x");
  }

  TEST_CASE("file errors name the file") {
    const auto r = load_config_file("config/does-not-exist.toml", no_env);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].file == "config/does-not-exist.toml");
    CHECK(r.errors[0].line == 0);
    CHECK(r.errors[0].to_string().rfind("config/does-not-exist.toml: cannot open", 0) == 0);
    const auto d = load_config_file("config", no_env);
    REQUIRE(d.errors.size() == 1);
    CHECK(d.errors[0].message.find("directory") != std::string::npos);
  }

  TEST_CASE("syntax errors carry the position") {
    const auto r = load_config_string("[listener]\nbatch_size = = 3\n", "s.toml", no_env);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].line == 2);
    CHECK(r.errors[0].column > 1);
    CHECK(r.errors[0].key.empty());
  }

  TEST_CASE("a null env lookup is an empty environment") {
    const std::string text = std::string(db) + observer;
    const auto r = load_config_string(text, "t.toml", nullptr);
    CHECK(r);
  }
}
