// [audit]: defaults, the Elasticsearch backend's required and checked keys
// (errors located at the key), and warnings for keys that have no effect.
#include "runtime/config/loader.hpp"
#include "runtime/config/model.hpp"

#include "config_test_util.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace config_test;
using fraiseql::load_config_string;

namespace {

config_result load(const std::string& audit) {
  return load_config_string(std::string(db) + "\n[audit]\n" + audit, "c.toml", fake_env);
}

std::string warnings_of(const config_result& r) {
  std::string all;
  for (const auto& w : r.warnings) all += w.to_string() + "\n";
  return all;
}

}  // namespace

TEST_SUITE("config audit") {
  TEST_CASE("defaults: off, postgres, 90 days") {
    scoped_env env;
    const auto r = load_config_string(db, "c.toml", fake_env);
    REQUIRE(r);
    const auto& a = r.value->audit;
    CHECK_FALSE(a.enabled);
    CHECK(a.backend == "postgres");
    CHECK(a.retention_days == 90);
    CHECK(r.warnings.empty());
  }

  TEST_CASE("elasticsearch needs a URL; bad URL, index and variable name are located errors") {
    scoped_env env;
    const auto missing = load("enabled = true\nbackend = \"elasticsearch\"\n");
    REQUIRE_FALSE(missing);
    CHECK(all_errors(missing).find("audit.backend: backend \"elasticsearch\" needs "
                                   "elasticsearch_url") != std::string::npos);
    const auto bad = load(
        "enabled = true\nbackend = \"elasticsearch\"\nelasticsearch_url = \"ftp://x\"\n"
        "elasticsearch_index = \"Audit\"\nelasticsearch_auth_env = \"1x\"\n");
    REQUIRE_FALSE(bad);
    const auto all = all_errors(bad);
    CHECK(all.find("c.toml:") != std::string::npos);
    CHECK(all.find("audit.elasticsearch_url: 'ftp://x' is not an http:// or https:// URL") !=
          std::string::npos);
    CHECK(all.find("audit.elasticsearch_index: 'Audit' is not a valid index prefix") !=
          std::string::npos);
    CHECK(all.find("audit.elasticsearch_auth_env: '1x' is not a valid environment variable") !=
          std::string::npos);
    const auto unknown = load("retention_dayz = 3\n");
    REQUIRE_FALSE(unknown);
    CHECK(all_errors(unknown).find("retention_days") != std::string::npos);  // suggestion
    const auto ok = load(
        "enabled = true\nbackend = \"elasticsearch\"\nelasticsearch_url = "
        "\"http://127.0.0.1:9200\"\n"
        "elasticsearch_auth_env = \"ES_AUTH\"\n");
    REQUIRE_MESSAGE(ok, all_errors(ok));
  }

  TEST_CASE("keys without effect warn, naming the key and why") {
    scoped_env env;
    const auto off = load("retention_days = 30\n");  // enabled is false by default
    REQUIRE(off);
    CHECK(warnings_of(off).find("audit.retention_days: has no effect while [audit] enabled is "
                                "false") != std::string::npos);
    const auto pg = load("enabled = true\nelasticsearch_url = \"http://127.0.0.1:9200\"\n");
    REQUIRE(pg);
    CHECK(
        warnings_of(pg).find("audit.elasticsearch_url: has no effect with backend \"postgres\"") !=
        std::string::npos);
    const auto es = load(
        "enabled = true\nbackend = \"elasticsearch\"\nelasticsearch_url = "
        "\"http://127.0.0.1:9200\"\n"
        "retention_days = 7\n");
    REQUIRE(es);
    CHECK(warnings_of(es).find("audit.retention_days: has no effect with backend "
                               "\"elasticsearch\"") != std::string::npos);
  }
}
