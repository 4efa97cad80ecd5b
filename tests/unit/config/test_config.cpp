// Configuration loader: strict validation, locations, env overrides, defaults.

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

namespace {

struct bad_case {
  const char* toml;
  const char* key;
  uint32_t line;
  const char* message;  // substring
};

// Each input has exactly one problem. The database url comes from the
// environment so that line numbers start at the case's first line.
const bad_case bad_cases[] = {
    // top level
    {"colour = 1\n", "colour", 1, "unknown top-level key"},
    {"[features]\nx = 1\n", "features", 1, "unknown top-level key or table"},
    {"[databse]\nurl = \"x\"\n", "databse", 1, "did you mean 'database'"},
    // [redis]
    {"[redis]\npool_size = 5\n", "redis.url", 1, "required key is missing"},
    {"[redis]\nurl = \"rediss://:pw@h\"\n", "redis.url", 2, "TLS (rediss://) is not supported"},
    {"[redis]\nurl = \"http://h\"\n", "redis.url", 2, "redis://"},
    {"[redis]\nurl = \"redis://h\"\npool_size = 0\n", "redis.pool_size", 3, "between 1 and 1000"},
    {"[redis]\nurl = \"redis://h\"\nfailure_policy = \"maybe\"\n", "redis.failure_policy", 3,
     "expected one of: fail_open, fail_closed"},
    {"[redis]\nurl = \"redis://h\"\ndedup_window = 5\n", "redis.dedup_window", 3,
     "did you mean 'dedup_window_secs'"},
    {"[redis]\nurl = \"redis://h\"\nclaim_ttl_secs = 0\n", "redis.claim_ttl_secs", 3,
     "between 1 and"},
    {"[nats]\nurl = \"http://localhost\"\n", "nats.url", 2, "unsupported scheme 'http'"},
    {"database = 3\n", "database", 1, "expected a table, got an integer"},
    {"[database\nurl = \"x\"\n", "", 1, "TOML syntax error"},
    {"[logging]\nlevel = \"info\"\nlevel = \"debug\"\n", "", 3, "TOML syntax error"},
    // [database]
    {"[database]\nreconect_max_delay_ms = 10\n", "database.reconect_max_delay_ms", 2,
     "did you mean 'reconnect_max_delay_ms'"},
    {"[database]\nurl = 5\n", "database.url", 2, "expected a string, got an integer"},
    {"[database]\nurl = \"mysql://localhost/db\"\n", "database.url", 2, "unsupported URL scheme"},
    {"[database]\nurl = \"localhost\"\n", "database.url", 2, "neither a postgresql:// URL"},
    {"[database]\nurl = \"\"\n", "database.url", 2, "must not be empty"},
    {"[database]\nurl_env = \"MY-VAR\"\n", "database.url_env", 2,
     "not a valid environment variable name"},
    {"[database]\nurl = \"postgresql://h/db\"\nurl_env = \"X\"\n", "database.url_env", 3,
     "not both"},
    {"[database]\nreconnect_max_delay_ms = 0\n", "database.reconnect_max_delay_ms", 2,
     "between 1 and 3600000"},
    // [transport]
    {"[transport]\ntransport = \"kafka\"\n", "transport.transport", 2, "invalid value 'kafka'"},
    {"[transport]\ntransport = \"nats\"\n", "transport.transport", 2,
     "add a [nats] table (url = \"nats://host:4222\") or set FRAISEQL_NATS_URL"},
    {"[transport]\ntransport = \"in_memory\"\n", "transport.transport", 2,
     "spec name for tests that this build does not implement"},
    {"[transport]\ntransport = \"nats\"\nrun_executors = false\n[nats]\n",
     "transport.run_executors", 3, "run_bridge and run_executors are both false"},
    {"[transport]\nrun_bridge = \"no\"\n", "transport.run_bridge", 2, "expected a boolean"},
    {"[nats]\nack_wait_ms = 5000\n", "nats.partition_lease_ms", 2,
     "waits out the old owner's ack wait"},
    // [listener]
    {"[listener]\nlistener_id = \"a b\"\n", "listener.listener_id", 2, "not a valid listener id"},
    {"[listener]\nlistener_id = \"\"\n", "listener.listener_id", 2, "not a valid listener id"},
    {"[listener]\nbatch_size = 0\n", "listener.batch_size", 2, "between 1 and 100000 (got 0)"},
    {"[listener]\nbatch_size = 100001\n", "listener.batch_size", 2, "between 1 and 100000"},
    {"[listener]\npoll_interval_ms = 3600001\n", "listener.poll_interval_ms", 2,
     "between 1 and 3600000"},
    {"[listener]\nmax_in_flight = 1.5\n", "listener.max_in_flight", 2,
     "expected an integer, got a floating-point number"},
    {"[listener]\nmax_in_flight = 10000001\n", "listener.max_in_flight", 2,
     "between 1 and 10000000"},
    {"[listener]\nmax_bytes_in_flight = 1000\n", "listener.max_bytes_in_flight", 2,
     "must be at least 1048576 (got 1000)"},
    {"[listener]\nmax_bytes_in_flight = 4294967296\n", "listener.max_bytes_in_flight", 2,
     "does not fit in 32 bits"},
    {"[listener]\nmax_event_bytes = 10\n", "listener.max_event_bytes", 2,
     "must be at least 1024 (got 10)"},
    // [checkpoint]
    {"[checkpoint]\nbatch_size = 0\n", "checkpoint.batch_size", 2, "must be at least 1"},
    {"[checkpoint]\ninterval_ms = -5\n", "checkpoint.interval_ms", 2,
     "must be at least 1 (got -5)"},
    {"[checkpoint]\ninterval_ms = 4294967296\n", "checkpoint.interval_ms", 2,
     "does not fit in 32 bits"},
    // [performance]
    {"[performance]\nenable_dedup = true\n", "performance.enable_dedup", 2,
     "enable_dedup requires [redis] (PostgreSQL + Redis topology)"},
    {"[performance]\ncache_capacity = 0\n", "performance.cache_capacity", 2, "between 1 and"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"webhook\"\n"
     "url = \"http://h/\"\ncache_ttl_secs = 5\n",
     "observers[0].actions[0].cache_ttl_secs", 7, "needs cache = true"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"log\"\n"
     "cache = true\n",
     "observers[0].actions[0].cache", 6, "only valid for webhook actions"},
    {"[performance]\nenable_concurrent = 1\n", "performance.enable_concurrent", 2,
     "expected a boolean"},
    {"[performance]\nmax_concurrent_actions = 0\n", "performance.max_concurrent_actions", 2,
     "between 1 and 100000"},
    {"[performance]\nconcurrent_timeout_ms = 0\n", "performance.concurrent_timeout_ms", 2,
     "at least 1"},
    // batched webhooks
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"webhook\"\nurl = \"http://h/{{ entity_id }}\"\nbatch_size = 10\n",
     "observers[0].actions[0].batch_size", 7, "the url must not be a template"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"webhook\"\nurl = \"http://h/\"\nbatch_size = 0\n",
     "observers[0].actions[0].batch_size", 7, "between 1 and 10000"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"webhook\"\nurl = \"http://h/\"\ncache = true\nbatch_size = 5\n",
     "observers[0].actions[0].batch_size", 8, "cannot be combined with cache = true"},
    // [adaptive_concurrency]
    {"[adaptive_concurrency]\nmin_limit = 20\nmax_limit = 10\n", "adaptive_concurrency.min_limit",
     2, "min_limit (20) must be at most max_limit (10)"},
    {"[adaptive_concurrency]\nmax_limit = 5\n", "adaptive_concurrency.max_limit", 2,
     "initial_limit (10) must be within min_limit and max_limit (1 - 5)"},
    {"[adaptive_concurrency]\nbackoff = 1.5\n", "adaptive_concurrency.backoff", 2, "0.99"},
    // [shutdown], [logging]
    {"[shutdown]\ntimeout_ms = -1\n", "shutdown.timeout_ms", 2, "must not be negative"},
    {"[shutdown]\ntimeout = 5\n", "shutdown.timeout", 2, "did you mean 'timeout_ms'"},
    {"[metrics]\nport = 70000\n", "metrics.port", 2, "65535"},
    {"[metrics]\nenabled = \"yes\"\n", "metrics.enabled", 2, "boolean"},
    {"[metrics]\nbind = \"0.0.0.0:9\"\n", "metrics.bind", 2, "not an IPv4 address"},
    {"[metrics]\nreadiness_max_checkpoint_age_ms = 86400001\n",
     "metrics.readiness_max_checkpoint_age_ms", 2, "between 0 and 86400000"},
    {"[metrics]\nreadiness_max_checkpoint_age_ms = -1\n", "metrics.readiness_max_checkpoint_age_ms",
     2, "between 0 and 86400000 (got -1)"},
    {"[logging]\nlevel = \"verbose\"\n", "logging.level", 2, "invalid value 'verbose'"},
    {"[logging]\nformat = \"xml\"\n", "logging.format", 2, "expected one of: text, json"},
    // [[observers]]
    {"observers = 5\n", "observers", 1, "expected an array of tables"},
    {"observers = [1]\n", "observers[0]", 1, "expected a table"},
    {"[[observers]]\nentity = \"Order\"\n[[observers.actions]]\ntype = \"log\"\n",
     "observers[0].event_type", 1, "required key is missing"},
    {"[[observers]]\nevent_type = \"UPSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"log\"\n",
     "observers[0].event_type", 2, "invalid value 'UPSERT'"},
    {"[[observers]]\nevent_type = \"INSERT\"\n[[observers.actions]]\ntype = \"log\"\n",
     "observers[0].entity", 1, "required key is missing"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"\"\n[[observers.actions]]\ntype = "
     "\"log\"\n",
     "observers[0].entity", 3, "must not be empty"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\ncondition = "
     "3\n[[observers.actions]]\n"
     "type = \"log\"\n",
     "observers[0].condition", 4, "expected a string"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n", "observers[0].actions", 1,
     "at least one [[observers.actions]] is required"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\nactions = []\n",
     "observers[0].actions", 4, "at least one action is required"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\nname = "
     "\"\"\n[[observers.actions]]\n"
     "type = \"log\"\n",
     "observers[0].name", 4, "non-empty"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\nentity_type = "
     "\"x\"\n[[observers.actions]]\n"
     "type = \"log\"\n",
     "observers[0].entity_type", 4, "unknown key"},
    // [[observers.actions]]
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\nurl = "
     "\"http://h/\"\n",
     "observers[0].actions[0].type", 4, "required key is missing"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"sms\"\n",
     "observers[0].actions[0].type", 5,
     "unknown action type 'sms' (valid types: webhook, slack, email, database, log, nats)"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"Webhook\"\n",
     "observers[0].actions[0].type", 5, "unknown action type 'Webhook'"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"webhook\"\n",
     "observers[0].actions[0].url", 4, "required key is missing"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"webhook\"\n"
     "url = \"ftp://host/x\"\n",
     "observers[0].actions[0].url", 6, "not an http:// or https:// URL"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"webhook\"\n"
     "url = \"https:///path\"\n",
     "observers[0].actions[0].url", 6, "has no host"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"webhook\"\n"
     "url = \"http://h/\"\nmethod = \"GET\"\n",
     "observers[0].actions[0].method", 7, "expected one of: POST, PUT, PATCH"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"webhook\"\n"
     "url = \"http://h/\"\ntimeout_ms = 600001\n",
     "observers[0].actions[0].timeout_ms", 7, "between 1 and 600000"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"webhook\"\n"
     "url = \"http://h/\"\nheaders = \"X-A: b\"\n",
     "observers[0].actions[0].headers", 7, "expected a table"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"webhook\"\n"
     "url = \"http://h/\"\nheaders = { X-A = 1 }\n",
     "observers[0].actions[0].headers.X-A", 7, "expected a string, got an integer"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"webhook\"\n"
     "url = \"http://h/\"\nheaders = { \"X-A\" = \"a\\r\\nX-B: b\" }\n",
     "observers[0].actions[0].headers.X-A", 7, "must not contain CR, LF"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"webhook\"\n"
     "url = \"http://h/\"\nheaders = { \"Bad Name\" = \"a\" }\n",
     "observers[0].actions[0].headers.\"Bad Name\"", 7, "not a valid HTTP header name"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"webhook\"\n"
     "url = \"http://h/\"\nlevel = \"info\"\n",
     "observers[0].actions[0].level", 7, "only valid for log actions"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"log\"\n"
     "url = \"http://h/\"\n",
     "observers[0].actions[0].url", 6, "only valid for webhook, nats actions"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"webhook\"\n"
     "url = \"http://h/\"\ntimeout = 5\n",
     "observers[0].actions[0].timeout", 7, "did you mean 'timeout_ms'"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"log\"\n"
     "level = \"loud\"\n",
     "observers[0].actions[0].level", 6, "invalid value 'loud'"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "7\n",
     "observers[0].actions[0].type", 5, "expected a string"},
    // [observers.retry]
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\nretry = "
     "5\n[[observers.actions]]\n"
     "type = \"log\"\n",
     "observers[0].retry", 4, "expected a table"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"log\"\n"
     "[observers.retry]\nmax_attempts = 1001\n",
     "observers[0].retry.max_attempts", 7, "between 1 and 1000"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"log\"\n"
     "[observers.retry]\nmax_attempts = 0\n",
     "observers[0].retry.max_attempts", 7, "between 1 and 1000 (got 0)"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"log\"\n"
     "[observers.retry]\ninitial_delay_ms = 500\nmax_delay_ms = 100\n",
     "observers[0].retry.max_delay_ms", 8, "must be >= initial_delay_ms (500)"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"log\"\n"
     "[observers.retry]\ninitial_delay_ms = 60000\n",
     "observers[0].retry.initial_delay_ms", 7, "exceeds max_delay_ms (default 30000)"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"log\"\n"
     "[observers.retry]\nbackoff_strategy = \"random\"\n",
     "observers[0].retry.backoff_strategy", 7, "expected one of: exponential, linear, fixed"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"log\"\n"
     "[observers.retry]\njitter = 1.5\n",
     "observers[0].retry.jitter", 7, "between 0 and 1"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"log\"\n"
     "[observers.retry]\njitter = -1\n",
     "observers[0].retry.jitter", 7, "between 0 and 1 (got -1)"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"log\"\n"
     "[observers.retry]\njitter = nan\n",
     "observers[0].retry.jitter", 7, "between 0 and 1"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"log\"\n"
     "[observers.retry]\njitter = \"0.5\"\n",
     "observers[0].retry.jitter", 7, "expected a number"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"log\"\n"
     "[observers.retry]\nattempts = 3\n",
     "observers[0].retry.attempts", 7, "unknown key"},
    // several observers: indices and names
    {"[[observers]]\nname = \"a\"\nevent_type = \"INSERT\"\nentity = "
     "\"Order\"\n[[observers.actions]]\n"
     "type = \"log\"\n[[observers]]\nname = \"a\"\nevent_type = \"DELETE\"\nentity = \"Order\"\n"
     "[[observers.actions]]\ntype = \"log\"\n",
     "observers[1].name", 8, "duplicate observer name 'a' (also used by observers[0])"},
    {"[[observers]]\nname = \"observer-2\"\nevent_type = \"INSERT\"\nentity = "
     "\"Order\"\n[[observers.actions]]\n"
     "type = \"log\"\n[[observers]]\nevent_type = \"DELETE\"\nentity = "
     "\"Order\"\n[[observers.actions]]\n"
     "type = \"log\"\n",
     "observers[1].name", 7, "give this observer an explicit name"},
    {"[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\ntype = "
     "\"log\"\n"
     "[[observers]]\nevent_type = \"INSERT\"\nentity = \"*\"\n[[observers.actions]]\ntype = "
     "\"log\"\n"
     "[[observers.actions]]\ntype = \"webhook\"\nurl = \"http://h/\"\ntimeout_ms = 0\n",
     "observers[1].actions[1].timeout_ms", 14, "between 1 and 600000 (got 0)"},
};

}  // namespace

TEST_SUITE("config") {
  TEST_CASE("bad inputs are reported with key, line and message") {
    CHECK(std::size(bad_cases) >= 30);
    scoped_env env({{"FRAISEQL_DATABASE_URL", "postgresql://localhost/app"}});
    for (const bad_case& c : bad_cases) {
      const std::string input = c.toml;
      CAPTURE(input);
      const config_result r = load_config_string(c.toml, "bad.toml", fake_env);
      const std::string errors = all_errors(r);
      CAPTURE(errors);
      CHECK_FALSE(r);
      CHECK_FALSE(r.value.has_value());
      REQUIRE(r.errors.size() == 1);
      const config_error& e = r.errors[0];
      CHECK(e.file == "bad.toml");
      CHECK(e.key == c.key);
      CHECK(e.line == c.line);
      CHECK(e.column >= 1);
      CHECK(e.message.find(c.message) != std::string::npos);
    }
  }

  TEST_CASE("shipped example files load") {
    for (const char* path :
         {"config/examples/01-postgresql-only.toml", "config/examples/02-postgresql-redis.toml",
          "config/examples/03-nats-distributed.toml", "config/demo.toml"}) {
      CAPTURE(path);
      const config_result r = load_config_file(path, no_env);
      CAPTURE(all_errors(r));
      REQUIRE(r);
      CHECK(r.value->source == path);
      CHECK_FALSE(r.value->observers.empty());
      for (const auto& o : r.value->observers) CHECK_FALSE(o.actions.empty());
    }
  }

  TEST_CASE("a YAML file name gets one sentence saying the node reads TOML") {
    const config_result r = load_config_file("observers.yaml", no_env);
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].to_string().find("observers.yaml: YAML configuration is not supported: this "
                                       "node reads TOML") != std::string::npos);
  }

  TEST_CASE("demo config: one webhook observer per event type on Order") {
    const config_result r = load_config_file("config/demo.toml", no_env);
    REQUIRE(r);
    const auto& c = *r.value;
    CHECK(c.database.url == "postgresql://postgres@127.0.0.1:5432/postgres");
    REQUIRE(c.observers.size() == 3);
    std::vector<std::string> types;
    for (const auto& o : c.observers) {
      types.push_back(o.event_type);
      CHECK(o.entity == "Order");
      REQUIRE(o.actions.size() == 1);
      CHECK(o.actions[0].type == "webhook");
      REQUIRE(o.actions[0].webhook.has_value());
      CHECK(o.actions[0].webhook->url == "http://127.0.0.1:18080/hooks/order");
    }
    CHECK(types == std::vector<std::string>{"INSERT", "UPDATE", "DELETE"});
  }

  TEST_CASE("topology 1 example values") {
    const config_result r = load_config_file("config/examples/01-postgresql-only.toml", no_env);
    REQUIRE(r);
    const auto& c = *r.value;
    CHECK(c.transport.transport == "postgres");
    CHECK(c.metrics.enabled);
    CHECK(c.metrics.port == 9464);
    CHECK(c.metrics.readiness_max_checkpoint_age_ms == 300000);
    REQUIRE(c.observers.size() == 2);
    const auto& o = c.observers[0];
    CHECK(o.name == "order-shipped-webhook");
    CHECK(o.condition == "data.status == 'shipped'");
    REQUIRE(o.actions.size() == 2);
    REQUIRE(o.actions[0].webhook.has_value());
    CHECK(o.actions[0].webhook->headers.at("X-Source") == "fraiseql-observer");
    CHECK(o.actions[0].where == "observers[0].actions[0]");
    REQUIRE(o.actions[1].log.has_value());
    CHECK(o.actions[1].log->message == "order shipped");
    CHECK(c.observers[1].name == "observer-2");
  }

  TEST_CASE("defaults") {
    const std::string text = std::string(db) + observer;
    const config_result r = load_config_string(text, "min.toml", no_env);
    CAPTURE(all_errors(r));
    REQUIRE(r);
    const auto& c = *r.value;
    CHECK(c.source == "min.toml");
    CHECK(c.database.url == "postgresql://localhost/app");
    CHECK(c.database.url_env.empty());
    CHECK(c.database.reconnect_max_delay_ms == 5000);
    CHECK(c.transport.transport == "postgres");
    CHECK_FALSE(c.transport.run_bridge);
    CHECK(c.transport.run_executors);
    CHECK(c.listener.listener_id == "default");
    CHECK(c.listener.batch_size == 1000);
    CHECK(c.listener.poll_interval_ms == 1000);
    CHECK(c.listener.max_in_flight == 10000);
    CHECK(c.listener.max_bytes_in_flight == 64u << 20);
    CHECK(c.listener.max_event_bytes == 16u << 20);
    CHECK(c.checkpoint.batch_size == 100);
    CHECK(c.checkpoint.interval_ms == 200);
    CHECK_FALSE(c.performance.enable_dedup);
    CHECK_FALSE(c.performance.enable_caching);
    CHECK(c.performance.enable_concurrent);
    CHECK(c.performance.max_concurrent_actions == 1000);  // adaptive concurrency on
    CHECK(c.performance.worker_window == 10);             // a NATS worker's window stays fixed
    CHECK(c.adaptive_concurrency.enabled);
    CHECK(c.performance.concurrent_timeout_ms == 30000);
    CHECK(c.shutdown.timeout_ms == 30000);
    CHECK(c.logging.level == "info");
    CHECK(c.logging.format == "text");
    REQUIRE(c.observers.size() == 1);
    const auto& o = c.observers[0];
    CHECK(o.name == "observer-1");
    CHECK(o.event_type == "INSERT");
    CHECK(o.condition.empty());
    CHECK(o.retry.max_attempts == 3);
    CHECK(o.retry.initial_delay_ms == 100);
    CHECK(o.retry.max_delay_ms == 30000);
    CHECK(o.retry.strategy == fraiseql::backoff_strategy::exponential);
    CHECK(o.retry.jitter == doctest::Approx(0.2));
    REQUIRE(o.actions.size() == 1);
    CHECK(o.actions[0].type == "log");
    REQUIRE(o.actions[0].log.has_value());
    CHECK_FALSE(o.actions[0].webhook.has_value());
    CHECK(o.actions[0].log->level == "info");
    CHECK(o.actions[0].log->message.empty());
  }

  TEST_CASE("[metrics] keys") {
    const std::string text = std::string(db) + observer +
                             "[metrics]\nenabled = true\nbind = \"0.0.0.0\"\nport = 0\n"
                             "readiness_max_checkpoint_age_ms = 0\n";
    const config_result r = load_config_string(text, "m.toml", no_env);
    CAPTURE(all_errors(r));
    REQUIRE(r);
    CHECK(r.value->metrics.enabled);
    CHECK(r.value->metrics.bind == "0.0.0.0");
    CHECK(r.value->metrics.port == 0);
    CHECK(r.value->metrics.readiness_max_checkpoint_age_ms == 0);
    const config_result d = load_config_string(std::string(db) + observer, "d.toml", no_env);
    REQUIRE(d);
    CHECK(d.value->metrics.readiness_max_checkpoint_age_ms == 300000);
  }

  TEST_CASE("no observers and only a database url is valid") {
    const config_result r = load_config_string(db, "db.toml", no_env);
    CAPTURE(all_errors(r));
    CHECK(r);
  }

  TEST_CASE("every key read and normalised") {
    const char* text = R"(
[database]
url = "host=db user=app password=secret dbname=app"
reconnect_max_delay_ms = 250
[transport]
transport = "postgres"
run_bridge = false
run_executors = true
[listener]
listener_id = "node-1.eu_west"
batch_size = 100000
poll_interval_ms = 1
max_in_flight = 10000000
[checkpoint]
batch_size = 7
interval_ms = 9
[performance]
enable_dedup = false
enable_caching = false
enable_concurrent = false
max_concurrent_actions = 100000
concurrent_timeout_ms = 1
[shutdown]
timeout_ms = 0
[logging]
level = "DEBUG"
format = "json"
[[observers]]
name = "shipped"
event_type = "update"
entity = "*"
condition = "data.total > `100`"
[[observers.actions]]
type = "webhook"
url = "HTTPS://user:pw@example.com:8443/x?y=1"
method = "patch"
headers = { "Content-Type" = "application/json", "X-Empty" = "" }
body_template = "{{ event.data }}"
timeout_ms = 600000
[[observers.actions]]
type = "log"
level = "Warn"
message = "shipped!"
[observers.retry]
max_attempts = 1000
initial_delay_ms = 0
max_delay_ms = 0
backoff_strategy = "fixed"
jitter = 1
[[observers]]
event_type = "*"
entity = "Invoice"
[observers.retry]
backoff_strategy = "linear"
jitter = 0
[[observers.actions]]
type = "webhook"
url = "http://localhost/{{ entity }}"
[observers.actions.headers]
Authorization = "Bearer t"
)";
    const config_result r = load_config_string(text, "full.toml", no_env);
    CAPTURE(all_errors(r));
    REQUIRE(r);
    const auto& c = *r.value;
    CHECK(c.database.reconnect_max_delay_ms == 250);
    CHECK(c.listener.listener_id == "node-1.eu_west");
    CHECK(c.listener.batch_size == 100000);
    CHECK(c.listener.poll_interval_ms == 1);
    CHECK(c.listener.max_in_flight == 10000000);
    CHECK(c.checkpoint.batch_size == 7);
    CHECK(c.checkpoint.interval_ms == 9);
    CHECK_FALSE(c.performance.enable_concurrent);
    CHECK(c.performance.max_concurrent_actions == 100000);
    CHECK(c.performance.concurrent_timeout_ms == 1);
    CHECK(c.shutdown.timeout_ms == 0);
    CHECK(c.logging.level == "debug");
    CHECK(c.logging.format == "json");
    REQUIRE(c.observers.size() == 2);
    const auto& o = c.observers[0];
    CHECK(o.name == "shipped");
    CHECK(o.event_type == "UPDATE");
    CHECK(o.entity == "*");
    CHECK(o.condition == "data.total > `100`");
    REQUIRE(o.actions.size() == 2);
    const auto& w = *o.actions[0].webhook;
    CHECK(w.url == "HTTPS://user:pw@example.com:8443/x?y=1");
    CHECK(w.method == "PATCH");
    CHECK(w.headers.size() == 2);
    CHECK(w.headers.at("Content-Type") == "application/json");
    CHECK(w.headers.at("X-Empty").empty());
    CHECK(w.body_template == "{{ event.data }}");
    CHECK(w.timeout_ms == 600000);
    CHECK(o.actions[1].where == "observers[0].actions[1]");
    CHECK(o.actions[1].log->level == "warn");
    CHECK(o.actions[1].log->message == "shipped!");
    CHECK(o.retry.max_attempts == 1000);
    CHECK(o.retry.initial_delay_ms == 0);
    CHECK(o.retry.max_delay_ms == 0);
    CHECK(o.retry.strategy == fraiseql::backoff_strategy::fixed);
    CHECK(o.retry.jitter == doctest::Approx(1.0));
    const auto& o2 = c.observers[1];
    CHECK(o2.name == "observer-2");
    CHECK(o2.event_type == "*");
    CHECK(o2.retry.strategy == fraiseql::backoff_strategy::linear);
    CHECK(o2.retry.jitter == doctest::Approx(0.0));
    REQUIRE(o2.actions.size() == 1);
    CHECK(o2.actions[0].webhook->method == "POST");
    CHECK(o2.actions[0].webhook->timeout_ms == 10000);
    CHECK(o2.actions[0].webhook->headers.at("Authorization") == "Bearer t");
  }

  TEST_CASE("unknown keys are located at the key") {
    const config_result r = load_config_string("[listener]\n  batchsize = 5\n", "f.toml", no_env);
    const config_error* e = find_error(r, "listener.batchsize");
    REQUIRE(e != nullptr);
    CHECK(e->line == 2);
    CHECK(e->column == 3);
    CHECK(e->message.find("did you mean 'batch_size'") != std::string::npos);
    CHECK(e->to_string() == "f.toml:2:3: listener.batchsize: " + e->message);
  }

  TEST_CASE("errors are aggregated and sorted by position") {
    scoped_env env({{"FRAISEQL_SHUTDOWN_TIMEOUT", "soon"}});
    const char* text =
        "[listener]\n"                   // 1
        "batch_size = 0\n"               // 2
        "poll_interval_ms = \"fast\"\n"  // 3
        "[logging]\n"                    // 4
        "level = \"loud\"\n"             // 5
        "[[observers]]\n"                // 6
        "event_type = \"TRUNCATE\"\n"    // 7
        "[[observers.actions]]\n"        // 8
        "type = \"webhook\"\n"           // 9
        "url = \"gopher://x\"\n"         // 10
        "retries = 3\n";                 // 11
    const config_result r = load_config_string(text, "many.toml", fake_env);
    CAPTURE(all_errors(r));
    CHECK_FALSE(r);
    std::vector<std::pair<std::string, uint32_t>> got;
    for (const auto& e : r.errors) got.emplace_back(e.key, e.line);
    const std::vector<std::pair<std::string, uint32_t>> want = {
        {"listener.batch_size", 2},
        {"listener.poll_interval_ms", 3},
        {"logging.level", 5},
        {"observers[0].entity", 6},
        {"observers[0].event_type", 7},
        {"observers[0].actions[0].url", 10},
        {"observers[0].actions[0].retries", 11},
        {"database.url", 0},
        {"FRAISEQL_SHUTDOWN_TIMEOUT", 0},
    };
    CHECK(got == want);
  }
}
