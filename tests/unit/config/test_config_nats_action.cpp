// Configuration of `type = "nats"` actions: subject (literal or template),
// body_template, url (required without [nats]), stream, timeout_ms; every bad
// input is one error at file:line:col naming the key. Also the helpers the
// executor shares with the loader (URL list, server address, subject check).

#include "config_test_util.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace config_test;
using fraiseql::check_nats_subject;
using fraiseql::load_config_string;
using fraiseql::parse_nats_url;

namespace {

#define NATS_ACTION                                              \
  "[database]\nurl = \"postgresql://localhost/app\"\n"           \
  "[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n" \
  "[[observers.actions]]\ntype = \"nats\"\n"
// NATS_ACTION is 7 lines: an action's own keys start at line 8.
#define NATS_OK NATS_ACTION "url = \"nats://127.0.0.1:4222\"\n"

struct bad_case {
  const char* toml;
  const char* key;
  uint32_t line;
  const char* message;
};

const bad_case bad_cases[] = {
    {NATS_ACTION "url = \"nats://h:4222\"\n", "observers[0].actions[0].subject", 6,
     "required key is missing"},
    {NATS_ACTION "subject = \"orders.x\"\n", "observers[0].actions[0].url", 6,
     "required key is missing"},
    {NATS_OK "subject = \"orders new\"\n", "observers[0].actions[0].subject", 9,
     "must not contain spaces"},
    {NATS_OK "subject = \"orders.*\"\n", "observers[0].actions[0].subject", 9,
     "must not contain wildcards"},
    {NATS_OK "subject = \"orders.>\"\n", "observers[0].actions[0].subject", 9,
     "must not contain wildcards"},
    {NATS_OK "subject = \"orders..x\"\n", "observers[0].actions[0].subject", 9, "empty token"},
    {NATS_OK "subject = \".orders\"\n", "observers[0].actions[0].subject", 9, "empty token"},
    {NATS_OK "subject = \"\"\n", "observers[0].actions[0].subject", 9, "must not be empty"},
    {NATS_OK "subject = \"orders.{{ entity_id }} x\"\n", "observers[0].actions[0].subject", 9,
     "must not contain spaces"},
    {NATS_OK "subject = \"orders.{{ entity_id }}.*\"\n", "observers[0].actions[0].subject", 9,
     "must not contain wildcards"},
    {NATS_OK "subject = 3\n", "observers[0].actions[0].subject", 9, "expected a string"},
    {NATS_ACTION "subject = \"s\"\nurl = \"http://h:4222\"\n", "observers[0].actions[0].url", 9,
     "has scheme 'http'"},
    {NATS_ACTION "subject = \"s\"\nurl = \"h:4222\"\n", "observers[0].actions[0].url", 9,
     "is not a URL"},
    {NATS_ACTION "subject = \"s\"\nurl = \"nats://h:0\"\n", "observers[0].actions[0].url", 9,
     "port 1-65535"},
    {NATS_ACTION "subject = \"s\"\nurl = \" , \"\n", "observers[0].actions[0].url", 9,
     "at least one server"},
    {NATS_ACTION "subject = \"s\"\nurl = \"nats://a:1, nats://u:secret@b:x\"\n",
     "observers[0].actions[0].url", 9, "'nats://***@b:x' has an invalid host:port"},
    {NATS_OK "subject = \"s\"\nstream = \"my.stream\"\n", "observers[0].actions[0].stream", 10,
     "is not a stream name"},
    {NATS_OK "subject = \"s\"\nstream = \"\"\n", "observers[0].actions[0].stream", 10,
     "is not a stream name"},
    {NATS_OK "subject = \"s\"\ntimeout_ms = 0\n", "observers[0].actions[0].timeout_ms", 10,
     "between 1 and 600000"},
    {NATS_OK "subject = \"s\"\nmethod = \"POST\"\n", "observers[0].actions[0].method", 10,
     "only valid for webhook actions"},
    {NATS_OK "subject = \"s\"\nsubjekt = \"s\"\n", "observers[0].actions[0].subjekt", 10,
     "did you mean 'subject'"},
};

}  // namespace

TEST_SUITE("config") {
  TEST_CASE("nats action: bad inputs are reported with key and line and message") {
    for (const bad_case& c : bad_cases) {
      const std::string input = c.toml;
      CAPTURE(input);
      const config_result r = load_config_string(c.toml, "bad.toml", no_env);
      const std::string errors = all_errors(r);
      CAPTURE(errors);
      CHECK_FALSE(r);
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].file == "bad.toml");
      CHECK(r.errors[0].key == c.key);
      CHECK(r.errors[0].line == c.line);
      CHECK(r.errors[0].column >= 1);
      CHECK(r.errors[0].message.find(c.message) != std::string::npos);
      CHECK(errors.find("secret") == std::string::npos);  // credentials never echoed
    }
  }

  TEST_CASE("nats action: every key read and the defaults") {
    const config_result r = load_config_string(
        NATS_ACTION
        "subject = \"orders.{{ entity_id }}\"\nbody_template = '{\"id\": \"{{ id }}\"}'\n"
        "url = \"nats://a:4222, tls://u:p@b\"\nstream = \"ORDERS\"\ntimeout_ms = 2500\n"
        "[[observers.actions]]\ntype = \"nats\"\nsubject = \"orders.created\"\n"
        "url = \"nats://[::1]:4223\"\n",
        "ok.toml", no_env);
    INFO(all_errors(r));
    REQUIRE(r);
    const auto& acts = r.value->observers.at(0).actions;
    REQUIRE(acts.size() == 2);
    CHECK(acts[0].type == "nats");
    REQUIRE(acts[0].nats);
    const auto& n = *acts[0].nats;
    CHECK(n.subject == "orders.{{ entity_id }}");
    CHECK(n.body_template == "{\"id\": \"{{ id }}\"}");
    CHECK(n.urls() == std::vector<std::string>{"nats://a:4222", "tls://u:p@b"});
    CHECK(n.stream == "ORDERS");
    CHECK(n.timeout_ms == 2500);
    const auto& d = *acts[1].nats;
    CHECK(d.subject == "orders.created");
    CHECK(d.body_template.empty());
    CHECK(d.stream.empty());
    CHECK(d.timeout_ms == 5000);
    CHECK_FALSE(acts[1].async);
  }

  TEST_CASE("nats action: server addresses and subjects") {
    auto a = parse_nats_url("nats://user:pw@example.com:4333/");
    REQUIRE(a);
    CHECK(a->host == "example.com");
    CHECK(a->port == 4333);
    CHECK(a->endpoint() == "nats://example.com:4333");
    a = parse_nats_url("TLS://h");
    REQUIRE(a);
    CHECK(a->endpoint() == "tls://h:4222");
    a = parse_nats_url("nats://[::1]:5000");
    REQUIRE(a);
    CHECK(a->endpoint() == "nats://[::1]:5000");
    a = parse_nats_url("nats://[::1]");
    REQUIRE(a);
    CHECK(a->endpoint() == "nats://[::1]:4222");
    std::string why;
    CHECK_FALSE(parse_nats_url("redis://h", &why));
    CHECK(why.find("redis") != std::string::npos);
    CHECK_FALSE(parse_nats_url("nats://", &why));
    CHECK_FALSE(parse_nats_url("nats://h:99999", &why));
    CHECK_FALSE(parse_nats_url("nats://h/path", &why));

    CHECK_FALSE(check_nats_subject("orders.17"));
    CHECK_FALSE(check_nats_subject("a"));
    CHECK(check_nats_subject("orders.1 7"));
    CHECK(check_nats_subject("orders.\t"));
    CHECK(check_nats_subject("orders.>"));
    CHECK(check_nats_subject("orders."));
    CHECK(check_nats_subject(""));
  }
}
