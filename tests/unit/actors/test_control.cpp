// Control plane pieces without a network: the debug journal, the registry's
// match explanations and the [control] config section.

#include "runtime/config/loader.hpp"
#include "runtime/config/loopback.hpp"
#include "runtime/config/model.hpp"
#include "runtime/core/envelope.hpp"
#include "runtime/core/journal.hpp"
#include "runtime/core/observers.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace fraiseql;

namespace {

event_ptr ev(const std::string& id, const std::string& type = "INSERT",
             const std::string& entity = "Order", const std::string& data = R"({"total": 5})") {
  return make_event(1, position{1, 1}, id, type, entity, "1", data, "", "2026-01-01T00:00:00Z",
                    std::nullopt, std::nullopt, std::nullopt);
}

std::optional<std::string> control_env(const char* name) {
  if (std::string(name) == "CTL_TOKEN") return std::string("t0ken");
  return std::nullopt;
}

const char* base = "[database]\nurl = \"postgresql://u@h/db\"\n";

}  // namespace

TEST_CASE("journal keeps the latest entries, newest first, and evicts the oldest") {
  journal j(2);
  j.routed(ev("a"), {0}, {});
  j.routed(ev("b"), {}, {{1, "observer 'x': boom"}});
  j.attempt("a", 0, 0, 1, "retrying", "HTTP 500");
  j.attempt("a", 0, 0, 2, "succeeded", "");
  auto a = j.find("a");
  REQUIRE(a);
  REQUIRE(a->actions.size() == 1);
  CHECK(a->actions[0].attempts == 2);
  CHECK(a->actions[0].state == "succeeded");
  CHECK(a->actions[0].last_error == "HTTP 500");  // the last error stays visible
  CHECK(j.find("b")->condition_errors.size() == 1);
  j.routed(ev("c"), {0}, {});
  CHECK_FALSE(j.find("a"));
  j.attempt("a", 0, 0, 3, "succeeded", "");  // evicted: ignored
  auto latest = j.latest(5);
  REQUIRE(latest.size() == 2);
  CHECK(latest[0].ev->id == "c");
  CHECK(latest[1].ev->id == "b");
  CHECK(j.size() == 2);
}

TEST_CASE("journal with capacity 0 records nothing") {
  journal j(0);
  j.routed(ev("a"), {0}, {});
  CHECK(j.size() == 0);
  CHECK_FALSE(j.find("a"));
}

TEST_CASE("journal is safe under concurrent writers and readers") {
  journal j(64);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&j, t] {
      for (int i = 0; i < 500; ++i) {
        auto id = std::to_string(t) + "-" + std::to_string(i);
        j.routed(ev(id), {0}, {});
        j.attempt(id, 0, 0, 1, "succeeded", "");
        (void)j.latest(3);
      }
    });
  for (auto& t : ts) t.join();
  CHECK(j.size() == 64);
  for (const auto& e : j.latest(64)) CHECK(e.actions.size() == 1);
}

TEST_CASE("explain gives each observer's verdict as match() decides") {
  observer_config big;
  big.name = "big";
  big.event_type = "INSERT";
  big.entity = "Order";
  big.condition = "data.total > `10`";
  observer_config any = big;
  any.name = "any";
  any.event_type = "*";
  any.condition = "";
  observer_config broken = big;
  broken.name = "broken";
  broken.condition = "length(data.total) > `1`";
  observer_config other = any;
  other.name = "other";
  other.entity = "Customer";
  for (auto* o : {&big, &any, &broken, &other}) {
    action_config a;
    a.type = "log";
    a.log = log_action_config{};
    o->actions.push_back(a);
  }
  std::vector<std::string> errors;
  auto reg = observer_registry::build({big, any, broken, other}, errors);
  REQUIRE(errors.empty());
  auto e = ev("x");
  auto ex = reg->explain(*e);
  REQUIRE(ex.size() == 4);
  CHECK(ex[0].verdict == "condition false");
  CHECK(ex[0].condition_detail == "false");
  CHECK(ex[1].verdict == "fires");
  CHECK(ex[2].verdict == "condition error");
  CHECK_FALSE(ex[2].condition_detail.empty());
  CHECK(ex[3].verdict == "filter does not match");
  auto m = reg->match(*e);
  CHECK(m.observers == std::vector<uint32_t>{1});
  CHECK(m.errors.size() == 1);
}

TEST_CASE("[control] defaults, token from the environment, loopback rule") {
  auto r = load_config_string(base, "t.toml", control_env);
  REQUIRE(r);
  CHECK(r.value->control.enabled);  // on by default, on loopback
  CHECK(r.value->control.bind == "127.0.0.1");
  CHECK(r.value->control.port == 7465);
  CHECK_FALSE(r.value->control.port_configured);
  CHECK(r.value->control.runtime_dir.empty());
  CHECK(r.value->control.token.empty());  // generated at start
  CHECK(r.value->control.journal_size == 1000);

  r = load_config_string(std::string(base) + "[control]\nenabled = false\n", "t.toml", control_env);
  REQUIRE(r);
  CHECK_FALSE(r.value->control.enabled);

  r = load_config_string(
      std::string(base) + "[control]\nenabled = true\nport = 0\ntoken_env = \"CTL_TOKEN\"\n",
      "t.toml", control_env);
  REQUIRE(r);
  CHECK(r.value->control.token == "t0ken");
  CHECK(r.value->control.port_configured);

  // Off loopback the default-on control plane needs TLS and a token too.
  r = load_config_string(std::string(base) + "[control]\nbind = \"0.0.0.0\"\n", "t.toml",
                         control_env);
  REQUIRE_FALSE(r);
  CHECK(r.errors[0].to_string().find("control.bind: '0.0.0.0' is not a loopback address") !=
        std::string::npos);

  r = load_config_string(std::string(base) + "[control]\nenabled = true\nbind = \"0.0.0.0\"\n",
                         "t.toml", control_env);
  REQUIRE_FALSE(r);
  CHECK(r.errors[0].to_string().find(
            "t.toml:5:8: control.bind: '0.0.0.0' is not a loopback address") == 0);

  r = load_config_string(
      std::string(base) + "[control]\ntoken_env = \"NOPE\"\ntoken_file = \"/x\"\nbogus = 1\n",
      "t.toml", control_env);
  REQUIRE_FALSE(r);
  std::string all;
  for (const auto& e : r.errors) all += e.to_string() + "\n";
  CHECK(all.find("set either token_env or token_file, not both") != std::string::npos);
  CHECK(all.find("control.bogus") != std::string::npos);
  CHECK(all.find("cannot read '/x'") != std::string::npos);

  CHECK(is_loopback_address("127.0.0.1"));
  CHECK(is_loopback_address("127.1.2.3"));
  CHECK(is_loopback_address("::1"));
  CHECK(is_loopback_address("localhost"));
  CHECK_FALSE(is_loopback_address("0.0.0.0"));
  CHECK_FALSE(is_loopback_address("10.0.0.1"));
}
