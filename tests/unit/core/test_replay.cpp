// Replay and backfill rules (runtime/core/replay.hpp) and the replay marker
// of the envelope (runtime/core/envelope.hpp): which observers a replayed copy
// runs, its dedup identity, bounds, the --where check, chunk pacing.
#include "runtime/core/envelope.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/core/replay.hpp"

#include <doctest/doctest.h>
#include <rapidcheck.h>
#include <boost/json.hpp>

#include <string>
#include <vector>

using namespace fraiseql;
namespace json = boost::json;

namespace {

event_ptr copy_of(const std::string& marker) {
  return make_event(3, position{50, 2}, "0b7e2c1a-0000-4000-8000-000000000001", "INSERT", "Order",
                    "1", R"({"id": 1})", "", "2026-12-03T18:00:00.000000Z", std::nullopt,
                    std::nullopt, std::nullopt, nullptr, 0, 0, marker);
}

std::shared_ptr<const observer_registry> registry_of(const std::vector<std::string>& names) {
  std::vector<observer_config> cfgs;
  for (const auto& n : names) {
    observer_config o;
    o.name = n;
    o.event_type = "*";
    o.entity = "*";
    action_config a;
    a.type = "log";
    o.actions.push_back(a);
    cfgs.push_back(o);
  }
  std::vector<std::string> errors;
  auto r = observer_registry::build(cfgs, errors);
  REQUIRE(errors.empty());
  return r;
}

}  // namespace

TEST_SUITE("replay") {
  TEST_CASE("a replayed copy keeps the original id and carries the marker") {
    auto ev = copy_of(R"({"id": 7, "listener_id": "shop", "observer": "audit"})");
    CHECK(ev->id == "0b7e2c1a-0000-4000-8000-000000000001");
    CHECK(ev->replay_id == 7);
    CHECK(ev->replay_listener == "shop");
    CHECK(ev->replay_observer == "audit");
    CHECK(ev->envelope.at("replay").at("id") == 7);
    CHECK(json::parse(ev->envelope_json) == ev->envelope);
    // Same idempotency key as the original delivery; another dedup identity.
    auto original = copy_of("");
    CHECK(original->replay_id == 0);
    CHECK_FALSE(original->envelope.as_object().contains("replay"));
    CHECK(idempotency_key(ev->id, "audit", 0) == idempotency_key(original->id, "audit", 0));
    CHECK(dedup_identity(*original) == original->id);
    CHECK(dedup_identity(*ev) == original->id + ":replay:7");
    // The stored envelope (job queue, DLQ) gives the marker back.
    auto back = event_from_envelope(ev->envelope_json, 9);
    CHECK(back->replay_id == 7);
    CHECK(back->replay_observer == "audit");
    CHECK(dedup_identity(*back) == dedup_identity(*ev));
  }

  TEST_CASE("a malformed marker is an error naming it") {
    CHECK_THROWS_WITH(copy_of("[1]"), "replay marker is not a JSON object");
    CHECK_THROWS_WITH(copy_of(R"({"listener_id": "x"})"), "replay marker has no numeric 'id'");
    auto null_observer = copy_of(R"({"id": 2, "listener_id": "x", "observer": null})");
    CHECK(null_observer->replay_observer.empty());
  }

  TEST_CASE("a copy runs only for the listener and observer that asked") {
    auto reg = registry_of({"a", "b", "c"});
    std::vector<uint32_t> all{0, 1, 2};
    auto obs = all;
    narrow_replay_observers(*copy_of(""), "shop", *reg, obs);
    CHECK(obs == all);  // not a copy: untouched
    obs = all;
    narrow_replay_observers(*copy_of(R"({"id": 1, "listener_id": "shop", "observer": null})"),
                            "shop", *reg, obs);
    CHECK(obs == all);
    obs = all;
    narrow_replay_observers(*copy_of(R"({"id": 1, "listener_id": "shop", "observer": "b"})"),
                            "shop", *reg, obs);
    CHECK(obs == std::vector<uint32_t>{1});
    obs = all;
    narrow_replay_observers(*copy_of(R"({"id": 1, "listener_id": "other", "observer": null})"),
                            "shop", *reg, obs);
    CHECK(obs.empty());
  }

  TEST_CASE("a bound is an event id or a time") {
    auto id = parse_replay_bound(" 0B7E2C1A-0000-4000-8000-00000000000F ");
    REQUIRE(id);
    CHECK(id->k == replay_bound::kind::event_id);
    CHECK(id->text == "0b7e2c1a-0000-4000-8000-00000000000f");
    auto t = parse_replay_bound("2026-12-03T18:00:00Z");
    REQUIRE(t);
    CHECK(t->k == replay_bound::kind::time);
    CHECK(t->text == "2026-12-03T18:00:00Z");
    CHECK(parse_replay_bound("0b7e2c1a-0000-4000-8000-00000000000")->k ==
          replay_bound::kind::time);  // 35 characters: not an id
    CHECK(parse_replay_bound("0b7e2c1a+0000-4000-8000-00000000000f")->k ==
          replay_bound::kind::time);
    CHECK_FALSE(parse_replay_bound("   ").has_value());
  }

  TEST_CASE("the --where check: one expression inside its parentheses") {
    CHECK_FALSE(sql_condition_problem("status = 'new' AND total > 10"));
    CHECK_FALSE(sql_condition_problem("note = 'a;b)--c' AND \"we;ird)\" IS NULL"));
    CHECK_FALSE(sql_condition_problem("x = E'it\\'s; )' OR y = $q$ ; ) -- $q$"));
    CHECK_FALSE(sql_condition_problem("id IN (SELECT id FROM t WHERE (a OR b))"));
    CHECK_FALSE(sql_condition_problem("a = $1"));  // not a dollar quote
    CHECK(*sql_condition_problem("") == "the condition is empty");
    CHECK(*sql_condition_problem("v = 1; DROP TABLE items") ==
          "at character 6: ';' is not allowed: the condition is one SQL expression");
    CHECK(*sql_condition_problem("v = 1) OR (true") ==
          "at character 6: ')' without a matching '('");
    CHECK(*sql_condition_problem("(v = 1") == "at character 1: '(' is never closed");
    CHECK(*sql_condition_problem("v = 1 --") ==
          "at character 7: comments (--) are not allowed in the condition");
    CHECK(*sql_condition_problem("v /* x */ = 1") ==
          "at character 3: comments (/* */) are not allowed in the condition");
    CHECK(*sql_condition_problem("v = 'open") == "at character 5: unterminated string literal");
    CHECK(*sql_condition_problem("\"v = 1") == "at character 1: unterminated quoted identifier");
    CHECK(*sql_condition_problem("v = $a$ x") ==
          "at character 5: unterminated dollar-quoted string $a$");
  }

  TEST_CASE("property: well-formed conditions pass, one stray token is found where it is") {
    // Pieces that are fine anywhere; literals may hold the dangerous tokens.
    const std::vector<std::string> safe{"a",         " = ",     "1",        " AND ",
                                        "'x;)--/*'", "\"c;)\"", "E'\\';)'", "$t$ ; ) $t$",
                                        " ",         "b.c",     "$1"};
    const std::vector<std::string> bad{";", ")", "--", "/*"};
    const bool ok = rc::check("accepted iff no stray token, located", [&] {
      // A random expression: pieces, some wrapped in (balanced) parentheses.
      const auto n = *rc::gen::inRange<size_t>(1, 12);
      std::string s;
      std::vector<size_t> cuts;  // after each piece: depth 0, outside literals
      for (size_t i = 0; i < n; ++i) {
        const auto& p = safe[*rc::gen::inRange<size_t>(0, safe.size())];
        s += *rc::gen::arbitrary<bool>() ? "(" + p + ")" : p;
        cuts.push_back(s.size());
        s += " ";
      }
      RC_ASSERT_FALSE(sql_condition_problem(s).has_value());
      // One stray token at a piece boundary (top level): found at its position.
      const auto& b = bad[*rc::gen::inRange<size_t>(0, bad.size())];
      const auto at = cuts[*rc::gen::inRange<size_t>(0, cuts.size())];
      const std::string t = s.substr(0, at) + " " + b + " " + s.substr(at);
      auto problem = sql_condition_problem(t);
      RC_ASSERT(problem.has_value());
      RC_ASSERT(problem->rfind("at character " + std::to_string(at + 2) + ":", 0) == 0);
    });
    CHECK(ok);
  }

  TEST_CASE("pacing: a chunk waits for half the last one, sizes follow the drain time") {
    using namespace std::chrono;
    chunk_pacer p(1000, milliseconds(8), milliseconds(2000), 10);
    const auto t0 = steady_clock::time_point{} + hours(1);
    CHECK(p.chunk_rows() == 10);
    CHECK(p.may_write(0, 0, t0));
    CHECK(p.may_write(4, 0, t0));
    CHECK_FALSE(p.may_write(5, 0, t0));  // half a chunk in flight already
    p.wrote(10, 1000, t0);
    // Not read yet: nothing finished since.
    CHECK_FALSE(p.may_write(0, 1000, t0 + milliseconds(1)));
    CHECK_FALSE(p.may_write(0, 1004, t0 + milliseconds(2)));
    // Half through within the target: the next chunk is larger.
    CHECK(p.may_write(0, 1005, t0 + milliseconds(3)));
    CHECK(p.chunk_rows() == 16);
    p.wrote(16, 1005, t0 + milliseconds(3));
    // Half through only after 32 ms (4x the target): a quarter of the size,
    // bounded below by min_rows.
    CHECK_FALSE(p.may_write(0, 1010, t0 + milliseconds(20)));
    CHECK(p.may_write(0, 1013, t0 + milliseconds(35)));
    CHECK(p.chunk_rows() == 10);
    // A pipeline kept full by live events: one chunk per max_wait.
    p.wrote(10, 1013, t0 + milliseconds(35));
    CHECK_FALSE(p.may_write(5000, 1013, t0 + milliseconds(1000)));
    CHECK(p.may_write(5000, 1013, t0 + milliseconds(2035)));
  }

  TEST_CASE("property: the pacer never runs ahead of the pipeline before max_wait") {
    const bool ok = rc::check("no write while half the last chunk is unfinished", [] {
      using namespace std::chrono;
      const auto batch = *rc::gen::inRange<uint32_t>(1, 5000);
      chunk_pacer p(batch, milliseconds(8), milliseconds(2000), 10);
      auto now = steady_clock::time_point{} + hours(1);
      uint64_t finished = 0, last_rows = 0, finished_at = 0;
      auto last = now;
      bool wrote = false;
      const auto steps = *rc::gen::inRange(1, 300);
      for (int i = 0; i < steps; ++i) {
        now += milliseconds(*rc::gen::inRange(0, 300));
        finished += *rc::gen::inRange<uint64_t>(0, 200);
        const auto in_flight = *rc::gen::inRange<uint64_t>(0, 2 * batch);
        const bool may = p.may_write(in_flight, finished, now);
        const auto size = p.chunk_rows();
        RC_ASSERT(size >= std::min<uint32_t>(10, batch));
        RC_ASSERT(size <= batch);
        if (wrote && now - last < milliseconds(2000)) {
          if (finished < finished_at + (last_rows + 1) / 2) RC_ASSERT_FALSE(may);
          if (in_flight > 0 && in_flight * 2 >= size) RC_ASSERT_FALSE(may);
        }
        if (wrote && now - last >= milliseconds(2000)) RC_ASSERT(may);
        if (may) {
          last_rows = *rc::gen::inRange<uint64_t>(1, size + 1);
          p.wrote(last_rows, finished, now);
          finished_at = finished;
          last = now;
          wrote = true;
        }
      }
    });
    CHECK(ok);
  }
}
