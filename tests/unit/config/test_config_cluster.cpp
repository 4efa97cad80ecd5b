// [cluster]: the coordinator's keys, the loopback rule it shares with
// [control], seed addresses, the heartbeat/timeout relation, and the warning
// for keys set while the cluster is off.
#include "runtime/config/loader.hpp"
#include "runtime/config/model.hpp"

#include "config_test_util.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace config_test;
using fraiseql::load_config_string;

namespace {

config_result load(const std::string& cluster) {
  return load_config_string(std::string(db) + "\n[cluster]\n" + cluster, "c.toml", fake_env);
}

}  // namespace

TEST_SUITE("config cluster") {
  TEST_CASE("defaults and a loopback cluster") {
    scoped_env env;
    const auto off = load_config_string(db, "c.toml", fake_env);
    REQUIRE(off);
    CHECK_FALSE(off.value->cluster.enabled);
    CHECK(off.value->cluster.port == 7480);
    CHECK(off.value->cluster.seeds.empty());
    const auto r = load(
        "enabled = true\nnode_name = \"listener-1\"\nport = 7501\n"
        "seeds = [\"127.0.0.1:7501\", \"localhost:7502\", \"[::1]:7503\"]\n"
        "heartbeat_interval_ms = 250\n");
    REQUIRE_MESSAGE(r, all_errors(r));
    const auto& c = r.value->cluster;
    CHECK(c.node_name == "listener-1");
    CHECK(c.seeds.size() == 3);
    CHECK(c.heartbeat_interval_ms == 250);
    CHECK(c.connection_timeout_ms == 0);
  }

  TEST_CASE("an address other than loopback needs TLS and a token, naming the key") {
    scoped_env env;
    const auto r = load("enabled = true\nbind = \"0.0.0.0\"\nseeds = [\"10.1.2.3:7466\"]\n");
    REQUIRE_FALSE(r);
    const auto* bind = find_error(r, "cluster.bind");
    REQUIRE(bind != nullptr);
    CHECK(bind->message.find("'0.0.0.0' is not a loopback address") == 0);
    const auto* seed = find_error(r, "cluster.seeds[0]");
    REQUIRE(seed != nullptr);
    CHECK(seed->message.find("'10.1.2.3:7466' is not a loopback address") == 0);
    CHECK(seed->line == 7);
  }

  TEST_CASE("malformed seeds, names and timeouts are errors naming the entry") {
    scoped_env env;
    const auto r = load(
        "enabled = true\nnode_name = \"two words\"\nseeds = [\"127.0.0.1\", 7, "
        "\"127.0.0.1:70000\"]\nheartbeat_interval_ms = 1000\nconnection_timeout_ms = 1500\n");
    REQUIRE_FALSE(r);
    const std::string all = all_errors(r);
    CHECK(all.find("cluster.node_name: 'two words' is not a valid node name") != std::string::npos);
    CHECK(all.find("cluster.seeds[0]: '127.0.0.1' is not a seed address (host:port") !=
          std::string::npos);
    CHECK(all.find("cluster.seeds[1]: expected a string, got an integer") != std::string::npos);
    CHECK(all.find("cluster.seeds[2]: '127.0.0.1:70000' is not a seed address") !=
          std::string::npos);
    CHECK(all.find("cluster.connection_timeout_ms: 1500 is less than twice "
                   "heartbeat_interval_ms (1000)") != std::string::npos);
    const auto list = load("enabled = true\nseeds = \"127.0.0.1:1\"\n");
    REQUIRE_FALSE(list);
    CHECK(all_errors(list).find("cluster.seeds: expected an array of strings, got a string") !=
          std::string::npos);
  }

  TEST_CASE("the token comes from the environment or a private file, never the file itself") {
    scoped_env env{{"CLUSTER_TOKEN", "s3cret"}};
    const auto r = load("enabled = true\ntoken_env = \"CLUSTER_TOKEN\"\n");
    REQUIRE_MESSAGE(r, all_errors(r));
    CHECK(r.value->cluster.token == "s3cret");
    const auto unset = load("enabled = true\ntoken_env = \"NOT_SET_ANYWHERE\"\n");
    REQUIRE_FALSE(unset);
    CHECK(find_error(unset, "cluster.token_env") != nullptr);
    const auto inline_token = load("enabled = true\ntoken = \"s3cret\"\n");
    REQUIRE_FALSE(inline_token);
    CHECK(all_errors(inline_token).find("cluster.token") != std::string::npos);
  }

  TEST_CASE("keys set while the cluster is off warn, naming the key") {
    scoped_env env;
    const auto r = load("seeds = [\"127.0.0.1:7466\"]\nnode_name = \"a\"\n");
    REQUIRE_MESSAGE(r, all_errors(r));
    std::string all;
    for (const auto& w : r.warnings) all += w.to_string() + "\n";
    CHECK(all.find("cluster.seeds: has no effect while [cluster] enabled is false") !=
          std::string::npos);
    CHECK(all.find("cluster.node_name: has no effect") != std::string::npos);
  }
}
