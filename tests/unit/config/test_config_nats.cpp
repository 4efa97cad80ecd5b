// [nats], the [transport] rules of the NATS topology and the process roles
// (--role, runtime/config/roles.hpp).

#include "config_test_util.hpp"
#include "runtime/config/roles.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace config_test;
using fraiseql::config;
using fraiseql::load_config_string;
using fraiseql::process_roles;

namespace {

const std::string nats_tr = "[transport]\ntransport = \"nats\"\n";  // lines 1-2

const config_error* find_warning(const config_result& r, const std::string& key) {
  for (const auto& w : r.warnings)
    if (w.key == key) return &w;
  return nullptr;
}

std::string all_warnings(const config_result& r) {
  std::string out;
  for (const auto& w : r.warnings) out += w.to_string() + "\n";
  return out;
}

struct bad_case {
  const char* nats;  // the [nats] table's lines (it starts on line 4)
  const char* key;
  uint32_t line;
  const char* message;
};

// After nats_tr (lines 1-2) and "[nats]" (line 3): the first key is on line 4.
const bad_case bad_cases[] = {
    {"url = \"nats://h:0\"\n", "nats.url", 4, "entry 1 'nats://h:0' is not nats://host:port"},
    {"url = \"nats://a:4222,redis://b\"\n", "nats.url", 4,
     "entry 2 'redis://b': unsupported scheme 'redis'"},
    {"url = \"nats://a:4222,\"\n", "nats.url", 4, "entry 2 is empty"},
    {"url = \"\"\n", "nats.url", 4, "must not be empty"},
    {"url = \"a:4222\"\n", "nats.url", 4, "has no scheme"},
    {"url = \"nats://u:p@h:4222\"\n", "nats.url", 4, "use user_env / password_env or token_env"},
    {"url = \"tls://h:4222/x\"\n", "nats.url", 4, "has a path"},
    {"url = 4222\n", "nats.url", 4, "expected a string"},
    {"user_env = \"NATS_NOBODY\"\npassword_env = \"NATS_PASSWORD\"\n", "nats.user_env", 4,
     "environment variable NATS_NOBODY (named by user_env) is not set or empty"},
    {"user_env = \"NATS_USER\"\n", "nats.user_env", 4, "a user needs a password"},
    {"password_env = \"NATS_PASSWORD\"\n", "nats.password_env", 4, "a password needs a user"},
    {"token_env = \"NATS-TOKEN\"\n", "nats.token_env", 4, "not a valid environment variable name"},
    {"user_env = \"NATS_USER\"\npassword_env = \"NATS_PASSWORD\"\ntoken_env = \"NATS_TOKEN\"\n",
     "nats.token_env", 6, "set one way to authenticate"},
    {"credentials_file = \"/nonexistent/app.creds\"\n", "nats.credentials_file", 4,
     "cannot read '/nonexistent/app.creds'"},
    {"tls_ca_file = \"/nonexistent/ca.pem\"\n", "nats.tls_ca_file", 4, "cannot read"},
    {"tls_key_file = \"/nonexistent/key.pem\"\ntls_cert_file = \"CMakeLists.txt\"\n",
     "nats.tls_key_file", 4, "cannot read"},
    {"tls_cert_file = \"CMakeLists.txt\"\n", "nats.tls_cert_file", 4,
     "needs its key: set tls_key_file"},
    {"stream = \"events.all\"\n", "nats.stream", 4, "not a valid name"},
    {"stream = \"\"\n", "nats.stream", 4, "not a valid name"},
    {"consumer = \"group 1\"\n", "nats.consumer", 4, "not a valid name"},
    {"subject_prefix = \"app.*\"\n", "nats.subject_prefix", 4, "no wildcards"},
    {"subject_prefix = \"app..events\"\n", "nats.subject_prefix", 4, "not a subject prefix"},
    {"subject_prefix = \"app.>\"\n", "nats.subject_prefix", 4, "not a subject prefix"},
    {"source_name = \"db.1\"\n", "nats.source_name", 4, "not a valid name"},
    {"worker_name = \"w:1\"\n", "nats.worker_name", 4, "not a valid node name"},
    {"replicas = 6\n", "nats.replicas", 4, "between 1 and 5"},
    {"replicas = 0\n", "nats.replicas", 4, "between 1 and 5"},
    {"partitions = 1025\n", "nats.partitions", 4, "between 1 and 1024"},
    {"ack_wait_ms = 999\n", "nats.ack_wait_ms", 4, "between 1000 and 3600000"},
    {"max_deliver = 1001\n", "nats.max_deliver", 4, "between 1 and 1000"},
    {"max_ack_pending = 100001\n", "nats.max_ack_pending", 4, "between 1 and 100000"},
    {"fetch_batch = 0\n", "nats.fetch_batch", 4, "between 1 and 10000"},
    {"partition_lease_ms = 999\n", "nats.partition_lease_ms", 4, "between 1000 and 600000"},
    {"publish_ack_timeout_ms = 99\n", "nats.publish_ack_timeout_ms", 4, "between 100 and 600000"},
    {"duplicate_window_secs = 86401\n", "nats.duplicate_window_secs", 4, "between 1 and 86400"},
    {"max_age_secs = 315360001\n", "nats.max_age_secs", 4, "between 0 and 315360000"},
    {"tls = \"yes\"\n", "nats.tls", 4, "expected a boolean"},
    {"strem = \"x\"\n", "nats.strem", 4, "did you mean 'stream'"},
    // partition_lease_ms <= ack_wait_ms, located at the lease (or at ack_wait_ms).
    {"partition_lease_ms = 40000\n", "nats.partition_lease_ms", 4,
     "must be at most ack_wait_ms (30000), got 40000: a partition hand-off waits out the old "
     "owner's ack wait"},
    {"ack_wait_ms = 5000\n", "nats.partition_lease_ms", 4, "must be at most ack_wait_ms (5000)"},
};

config_result load_role(const std::string& text, const char* role) {
  return load_config_string(std::string(db) + text + observer, "t.toml", fake_env, role);
}

}  // namespace

TEST_SUITE("config") {
  TEST_CASE("[nats]: every key, credentials resolved at load time") {
    scoped_env env({{"NATS_USER", "app"}, {"NATS_PASSWORD", "s3cret"}});
    const std::string t = std::string(db) + nats_tr +
                          "[nats]\n"
                          "url = \"nats://n1:4222, tls://n2:4223,nats://[::1]:4224,nats://n3\"\n"
                          "user_env = \"NATS_USER\"\n"
                          "password_env = \"NATS_PASSWORD\"\n"
                          "tls = true\n"
                          "tls_ca_file = \"CMakeLists.txt\"\n"
                          "tls_cert_file = \"CMakeLists.txt\"\n"
                          "tls_key_file = \"CMakeLists.txt\"\n"
                          "stream = \"orders_events\"\n"
                          "subject_prefix = \"acme.orders-v2\"\n"
                          "replicas = 3\n"
                          "duplicate_window_secs = 300\n"
                          "max_age_secs = 0\n"
                          "partitions = 64\n"
                          "source_name = \"db-1\"\n"
                          "publish_ack_timeout_ms = 2000\n"
                          "consumer = \"orders_workers\"\n"
                          "ack_wait_ms = 60000\n"
                          "max_deliver = 10\n"
                          "max_ack_pending = 500\n"
                          "fetch_batch = 50\n"
                          "partition_lease_ms = 60000\n"
                          "worker_name = \"worker-7\"\n" +
                          observer;
    const auto r = load_config_string(t, "t.toml", fake_env);
    CAPTURE(all_errors(r));
    REQUIRE(r);
    REQUIRE(r.value->nats);
    const auto& n = *r.value->nats;
    CHECK(n.url == "nats://n1:4222, tls://n2:4223,nats://[::1]:4224,nats://n3");
    CHECK(n.user_env == "NATS_USER");
    CHECK(n.user == "app");
    CHECK(n.password_env == "NATS_PASSWORD");
    CHECK(n.password == "s3cret");
    CHECK(n.token.empty());
    CHECK(n.tls);
    CHECK(n.tls_ca_file == "CMakeLists.txt");
    CHECK(n.stream == "orders_events");
    CHECK(n.subject_prefix == "acme.orders-v2");
    CHECK(n.replicas == 3);
    CHECK(n.duplicate_window_secs == 300);
    CHECK(n.max_age_secs == 0);
    CHECK(n.partitions == 64);
    CHECK(n.source_name == "db-1");
    CHECK(n.publish_ack_timeout_ms == 2000);
    CHECK(n.consumer == "orders_workers");
    CHECK(n.ack_wait_ms == 60000);
    CHECK(n.max_deliver == 10);
    CHECK(n.max_ack_pending == 500);
    CHECK(n.fetch_batch == 50);
    CHECK(n.partition_lease_ms == 60000);
    CHECK(n.worker_name == "worker-7");
    // Default roles: workers only (run_bridge = false, run_executors = true).
    CHECK_FALSE(r.value->roles.pipeline);
    CHECK_FALSE(r.value->roles.bridge);
    CHECK(r.value->roles.workers);
  }

  TEST_CASE("[nats]: defaults; an empty source_name stays empty; a token") {
    scoped_env env({{"NATS_TOKEN", "t0k"}});
    const auto r = load_role(nats_tr + "[nats]\ntoken_env = \"NATS_TOKEN\"\n", "all");
    CAPTURE(all_errors(r));
    REQUIRE(r);
    const auto& n = *r.value->nats;
    const fraiseql::nats_config defaults;
    CHECK(n.url == "nats://127.0.0.1:4222");
    CHECK(n.token == "t0k");
    CHECK(n.source_name.empty());
    CHECK(n.worker_name.empty());
    CHECK(n.stream == defaults.stream);
    CHECK(n.partitions == defaults.partitions);
    CHECK(r.warnings.empty());
  }

  TEST_CASE("[nats]: bad values name key and line") {
    scoped_env env({{"NATS_USER", "app"}, {"NATS_PASSWORD", "pw"}, {"NATS_TOKEN", "t"}});
    for (const bad_case& c : bad_cases) {
      const std::string input = std::string(nats_tr) + "[nats]\n" + c.nats;
      CAPTURE(input);
      const auto r = load_role(input, "all");
      const std::string errors = all_errors(r);
      CAPTURE(errors);
      CHECK_FALSE(r);
      REQUIRE(r.errors.size() == 1);
      const config_error& e = r.errors[0];
      CHECK(e.key == c.key);
      // db takes 2 lines before nats_tr.
      CHECK(e.line == c.line + 2);
      CHECK(e.column >= 1);
      CHECK(e.message.find(c.message) != std::string::npos);
    }
  }

  TEST_CASE("FRAISEQL_NATS_URL sets [nats] url, creating the section") {
    SUBCASE("no [nats] table") {
      scoped_env env({{"FRAISEQL_NATS_URL", "nats://nats-cluster:4222"},
                      {"FRAISEQL_OBSERVER_TRANSPORT", "nats"}});
      const auto r = load_role("", "all");
      CAPTURE(all_errors(r));
      REQUIRE(r);
      REQUIRE(r.value->nats);
      CHECK(r.value->nats->url == "nats://nats-cluster:4222");
      CHECK(r.value->nats->stream == "fraiseql_events");
      CHECK(r.value->roles.workers);
    }
    SUBCASE("overrides the file's url, keeps its other keys") {
      scoped_env env({{"FRAISEQL_NATS_URL", "tls://a:4222,tls://b:4222"}});
      const auto r =
          load_role(nats_tr + "[nats]\nurl = \"nats://file:4222\"\npartitions = 4\n", "all");
      CAPTURE(all_errors(r));
      REQUIRE(r);
      CHECK(r.value->nats->url == "tls://a:4222,tls://b:4222");
      CHECK(r.value->nats->partitions == 4);
    }
    SUBCASE("the spec's bridge variables") {
      scoped_env env({{"FRAISEQL_NATS_URL", "nats://nats-cluster:4222"},
                      {"FRAISEQL_OBSERVER_TRANSPORT", "nats"},
                      {"FRAISEQL_NATS_ENABLE_BRIDGE", "true"},
                      {"FRAISEQL_NATS_RUN_EXECUTORS", "false"}});
      const auto r = load_role("", "all");
      CAPTURE(all_errors(r));
      REQUIRE(r);
      CHECK(r.value->roles.bridge);
      CHECK_FALSE(r.value->roles.workers);
    }
    SUBCASE("both roles off from the environment: the error names the variable") {
      scoped_env env({{"FRAISEQL_NATS_URL", "nats://h:4222"},
                      {"FRAISEQL_OBSERVER_TRANSPORT", "nats"},
                      {"FRAISEQL_NATS_RUN_EXECUTORS", "false"}});
      const auto r = load_role("", "all");
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].key == "FRAISEQL_NATS_RUN_EXECUTORS");
      CHECK(r.errors[0].file == "environment");
      CHECK(r.errors[0].message.find("both false") != std::string::npos);
    }
  }

  TEST_CASE("[transport]: postgres ignores NATS with a warning; nats needs it") {
    SUBCASE("[nats] with transport postgres") {
      scoped_env env;
      const auto r = load_role("[nats]\nurl = \"nats://h:4222\"\n", "all");
      CAPTURE(all_errors(r));
      REQUIRE(r);
      CHECK(r.value->roles.pipeline);
      const config_error* w = find_warning(r, "nats");
      CAPTURE(all_warnings(r));
      REQUIRE(w != nullptr);
      CHECK(w->line == 3);
      CHECK(w->message.find("has no effect") != std::string::npos);
    }
    SUBCASE("FRAISEQL_NATS_URL with transport postgres") {
      scoped_env env({{"FRAISEQL_NATS_URL", "nats://h:4222"}});
      const auto r = load_role("", "all");
      REQUIRE(r);
      const config_error* w = find_warning(r, "FRAISEQL_NATS_URL");
      REQUIRE(w != nullptr);
      CHECK(w->file == "environment");
      CHECK(w->message.find("has no effect") != std::string::npos);
    }
    SUBCASE("run_bridge = true with transport postgres warns") {
      scoped_env env;
      const auto r = load_role("[transport]\nrun_bridge = true\n", "all");
      REQUIRE(r);
      CHECK(r.value->roles.pipeline);
      const config_error* w = find_warning(r, "transport.run_bridge");
      REQUIRE(w != nullptr);
      CHECK(w->line == 4);
    }
    SUBCASE("nats without [nats]") {
      scoped_env env;
      const auto r = load_role(nats_tr, "worker");
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].key == "transport.transport");
      CHECK(r.errors[0].line == 4);
      CHECK(r.errors[0].message.find("a [nats] table") != std::string::npos);
      CHECK(r.errors[0].message.find("FRAISEQL_NATS_URL") != std::string::npos);
    }
  }

  TEST_CASE("roles: --role against [transport]") {
    scoped_env env;
    struct row {
      const char* transport;  // [transport] and [nats] lines
      const char* role;
      bool ok;
      process_roles want;
    };
    const std::string nats = nats_tr + "[nats]\n";
    const std::string bridge_cfg = nats_tr + "run_bridge = true\nrun_executors = false\n[nats]\n";
    const std::string both_cfg = nats_tr + "run_bridge = true\n[nats]\n";
    const std::string none_cfg = nats_tr + "run_executors = false\n[nats]\n";
    const std::pair<std::string, row> rows[] = {
        {"", {"", "all", true, {true, false, false}}},
        {"", {"", "bridge", false, {}}},
        {"", {"", "worker", false, {}}},
        {nats, {"", "all", true, {false, false, true}}},
        {nats, {"", "bridge", true, {false, true, false}}},
        {nats, {"", "worker", true, {false, false, true}}},
        {bridge_cfg, {"", "all", true, {false, true, false}}},
        {bridge_cfg, {"", "worker", true, {false, false, true}}},  // --role overrides
        {both_cfg, {"", "all", true, {false, true, true}}},
        {both_cfg, {"", "bridge", true, {false, true, false}}},
        {both_cfg, {"", "worker", true, {false, false, true}}},
        {none_cfg, {"", "all", false, {}}},
        {none_cfg, {"", "bridge", true, {false, true, false}}},
        {none_cfg, {"", "worker", true, {false, false, true}}},
    };
    for (const auto& [text, w] : rows) {
      CAPTURE(text);
      CAPTURE(std::string(w.role));
      const auto r = load_role(text, w.role);
      CAPTURE(all_errors(r));
      CHECK(bool(r) == w.ok);
      if (!r) continue;
      CHECK(r.value->roles.pipeline == w.want.pipeline);
      CHECK(r.value->roles.bridge == w.want.bridge);
      CHECK(r.value->roles.workers == w.want.workers);
    }
    SUBCASE("--role bridge with transport postgres names transport.transport") {
      const auto r = load_role("[transport]\ntransport = \"postgres\"\n", "bridge");
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].key == "transport.transport");
      CHECK(r.errors[0].line == 4);
      CHECK(r.errors[0].message.find("--role bridge needs transport = \"nats\"") !=
            std::string::npos);
    }
  }

  TEST_CASE("roles: a bridge runs no actions") {
    scoped_env env;
    const std::string redis = "[redis]\nurl = \"redis://h\"\n";  // lines 6-7 after nats
    const std::string base = nats_tr + "[nats]\n";               // lines 3-5
    struct bad {
      std::string text;
      const char* key;
      uint32_t line;
    };
    const bad cases[] = {
        {base + redis + "[performance]\nenable_dedup = true\n", "performance.enable_dedup", 9},
        {base + "[performance]\nenable_caching = true\n", "performance.enable_caching", 7},
        {base + "[job_queue]\nenabled = true\n", "job_queue.enabled", 7},
    };
    for (const auto& c : cases) {
      CAPTURE(c.text);
      const auto r = load_role(c.text, "bridge");
      CAPTURE(all_errors(r));
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].key == c.key);
      CHECK(r.errors[0].line == c.line);
      CHECK(r.errors[0].message.find("--role bridge runs no actions") != std::string::npos);
      // The same file is fine for a worker.
      CHECK(load_role(c.text, "worker"));
      // And for `all` with run_executors = false it only warns.
      const auto a = load_role(
          nats_tr + "run_bridge = true\nrun_executors = false\n" + c.text.substr(nats_tr.size()),
          "all");
      CAPTURE(all_errors(a));
      REQUIRE(a);
      const config_error* w = find_warning(a, c.key);
      REQUIRE(w != nullptr);
      CHECK(w->message.find("no actions run here") != std::string::npos);
    }
  }

  TEST_CASE("roles: keys with no effect for the roles warn") {
    scoped_env env;
    SUBCASE("consumer settings without workers") {
      const auto r = load_role(nats_tr +
                                   "run_bridge = true\nrun_executors = false\n"
                                   "[nats]\nack_wait_ms = 60000\nfetch_batch = 10\n",
                               "all");
      CAPTURE(all_errors(r));
      REQUIRE(r);
      CAPTURE(all_warnings(r));
      const config_error* w = find_warning(r, "nats.ack_wait_ms");
      REQUIRE(w != nullptr);
      CHECK(w->line == 8);
      CHECK(w->message.find("runs no workers") != std::string::npos);
      CHECK(find_warning(r, "nats.fetch_batch") != nullptr);
      CHECK(find_warning(r, "nats.stream") == nullptr);  // not set: no warning
    }
    SUBCASE("bridge settings and pruning on a worker") {
      const auto r = load_role(nats_tr +
                                   "[nats]\nsource_name = \"db1\"\n"
                                   "[change_log]\nprune = false\n",
                               "worker");
      CAPTURE(all_errors(r));
      REQUIRE(r);
      CAPTURE(all_warnings(r));
      const config_error* w = find_warning(r, "nats.source_name");
      REQUIRE(w != nullptr);
      CHECK(w->line == 6);
      const config_error* p = find_warning(r, "change_log.prune");
      REQUIRE(p != nullptr);
      CHECK(p->line == 8);
      CHECK(p->message.find("pruning runs on the bridge") != std::string::npos);
    }
    SUBCASE("nothing to say when every key is used") {
      const auto r = load_role(nats_tr +
                                   "run_bridge = true\n[nats]\nsource_name = \"db1\"\n"
                                   "ack_wait_ms = 60000\n[change_log]\nprune = false\n",
                               "all");
      CAPTURE(all_warnings(r));
      REQUIRE(r);
      CHECK(r.warnings.empty());
    }
  }

  TEST_CASE("resolve_roles without locations") {
    config c;
    c.source = "x.toml";
    auto errors = fraiseql::resolve_roles(c, "all");
    CHECK(errors.empty());
    CHECK(c.roles.pipeline);
    errors = fraiseql::resolve_roles(c, "worker");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].file == "x.toml");
    CHECK(errors[0].line == 0);
    CHECK(errors[0].key == "transport.transport");
    errors = fraiseql::resolve_roles(c, "primary");
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].key == "--role");
    c.transport.transport = "nats";
    c.nats.emplace();
    c.transport.run_bridge = true;
    std::vector<config_error> warnings;
    errors = fraiseql::resolve_roles(c, "all", &warnings);
    CHECK(errors.empty());
    CHECK(warnings.empty());
    CHECK(fraiseql::roles_text(c.roles) == "bridge, workers");
    CHECK(fraiseql::roles_text(process_roles{}) == "pipeline");
    CHECK(fraiseql::roles_text(process_roles{false, false, false}) == "nothing");
  }

  TEST_CASE("NATS example files load with their roles") {
    scoped_env env;  // as shipped: no variable needed
    {
      const auto r =
          fraiseql::load_config_file("config/examples/03-nats-distributed.toml", fake_env);
      CAPTURE(all_errors(r));
      CAPTURE(all_warnings(r));
      REQUIRE(r);
      CHECK(r.warnings.empty());
      CHECK(r.value->transport.transport == "nats");
      CHECK(r.value->roles.workers);
      CHECK_FALSE(r.value->roles.bridge);
      CHECK(r.value->performance.enable_dedup);
    }
    {
      const auto r =
          fraiseql::load_config_file("config/examples/04-multi-database-bridge.toml", fake_env);
      CAPTURE(all_errors(r));
      CAPTURE(all_warnings(r));
      REQUIRE(r);
      CHECK(r.warnings.empty());
      CHECK(r.value->roles.bridge);
      CHECK_FALSE(r.value->roles.workers);
      CHECK(r.value->nats->source_name == "db1");
      CHECK(fraiseql::load_config_file("config/examples/04-multi-database-bridge.toml", fake_env,
                                       "bridge"));
    }
  }
}
