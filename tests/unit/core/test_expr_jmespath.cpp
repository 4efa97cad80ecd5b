// Unit tests of the JMESPath engine's public API (runtime/expr/jmespath.hpp). The grammar and
// the built-in functions are covered case by case by the compliance files run by CTest
// (runtime/expr/compliance/*.json); these tests pin down the API contract around them.

#include "runtime/expr/jmespath.hpp"

#include <doctest/doctest.h>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace json = boost::json;
using fraiseql::expr::error_kind;
using fraiseql::expr::evaluate_condition;
using fraiseql::expr::expression;

namespace {

const json::value& envelope() {
  static const json::value v = json::parse(R"json({
    "id": "5d6c0f3e-0000-4000-8000-000000000001",
    "event_type": "UPDATE",
    "entity_type": "Order",
    "entity_id": "42",
    "data": {"status": "shipped", "total": 150.5, "items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]},
    "old": {"status": "paid", "total": 150.5},
    "changes": {"status": {"old": "paid", "new": "shipped"}},
    "timestamp": "2026-01-01T00:00:00Z",
    "tenant_id": null, "user_id": null, "trace_id": null
  })json");
  return v;
}

expression compile_ok(const std::string& text) {
  auto r = expression::compile(text);
  REQUIRE_MESSAGE(r.ok(), text << ": " << (r.ok() ? "" : r.err().to_string()));
  return *r;
}

json::value eval_ok(const std::string& text, const json::value& root) {
  auto r = compile_ok(text).evaluate(root);
  REQUIRE_MESSAGE(r.ok(), text << ": " << (r.ok() ? "" : r.err().to_string()));
  return *r;
}

bool condition(const std::string& text, const json::value& root) {
  auto r = evaluate_condition(compile_ok(text), root);
  REQUIRE_MESSAGE(r.ok(), text << ": " << (r.ok() ? "" : r.err().to_string()));
  return *r;
}

}  // namespace

TEST_SUITE("expr") {
  TEST_CASE("compile and evaluate a simple path") {
    const expression e = compile_ok("data.items[?qty > `1`].sku");
    CHECK(e.text() == "data.items[?qty > `1`].sku");
    auto r = e.evaluate(envelope());
    REQUIRE(r.ok());
    CHECK(*r == json::parse(R"(["a"])"));
  }

  TEST_CASE("syntax errors carry kind and column and expression and a readable message") {
    auto r = expression::compile("foo[");
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().kind == error_kind::syntax);
    CHECK(r.err().column == 5);
    CHECK(r.err().expression == "foo[");
    const std::string s = r.err().to_string();
    CHECK(s.find("syntax error at column 5") == 0);
    CHECK(s.find("`foo[`") != std::string::npos);

    auto q = expression::compile("a == 'x' && b = 1");
    REQUIRE_FALSE(q.ok());
    CHECK(q.err().column == 15);

    // Columns count characters, not bytes.
    auto u = expression::compile("'\xC3\xA9\xC3\xA9' | ]");
    REQUIRE_FALSE(u.ok());
    CHECK(u.err().column == 8);
  }

  TEST_CASE("unknown functions and wrong arity are compile-time errors") {
    auto unknown = expression::compile("data.items[].nope(@)");
    REQUIRE_FALSE(unknown.ok());
    CHECK(unknown.err().kind == error_kind::unknown_function);
    CHECK(unknown.err().column == 14);
    CHECK(unknown.err().message.find("nope") != std::string::npos);

    auto arity = expression::compile("length(a, b)");
    REQUIRE_FALSE(arity.ok());
    CHECK(arity.err().kind == error_kind::invalid_arity);
    CHECK(arity.err().column == 1);

    auto step = expression::compile("a[::0]");
    REQUIRE_FALSE(step.ok());
    CHECK(step.err().kind == error_kind::invalid_value);

    // A syntax error elsewhere wins over a semantic one.
    auto both = expression::compile("nope(a) ]");
    REQUIRE_FALSE(both.ok());
    CHECK(both.err().kind == error_kind::syntax);
  }

  TEST_CASE("type errors are evaluation errors") {
    const expression e = compile_ok("abs(data.status)");
    auto r = e.evaluate(envelope());
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().kind == error_kind::invalid_type);
    CHECK(r.err().column == 0);
    CHECK(r.err().expression == "abs(data.status)");
    CHECK(r.err().message.find("abs()") != std::string::npos);
    CHECK(r.err().message.find("string") != std::string::npos);
  }

  TEST_CASE("numbers compare by value across representations") {
    const json::value root = json::parse(R"({"i": 100, "d": 100.0, "u": 18446744073709551615})");
    CHECK(eval_ok("`100.00` == `100`", root) == json::value(true));
    CHECK(eval_ok("i == d", root) == json::value(true));
    CHECK(eval_ok("u > i", root) == json::value(true));
    CHECK(eval_ok("i < 'x'", root).is_null());
    CHECK(eval_ok("`9007199254740993` == `9007199254740992.0`", root) == json::value(false));
  }

  TEST_CASE("conditions see event as the envelope") {
    CHECK(condition("data.status == 'shipped'", envelope()));
    CHECK(condition("event.data.status == 'shipped'", envelope()));
    CHECK(condition("event.event.entity_type == 'Order'", envelope()));
    CHECK(condition("data.status == 'shipped' && data.total > `100`", envelope()));
    CHECK_FALSE(condition("data.status == 'pending'", envelope()));
    CHECK_FALSE(condition("missing", envelope()));
    CHECK(condition("`0`", envelope()));  // 0 is truthy in JMESPath
    // Only at the root, and plain evaluation has no alias.
    CHECK_FALSE(condition("data.event", envelope()));
    CHECK(eval_ok("event", envelope()).is_null());
    // An envelope with a real "event" key keeps it.
    const json::value with_event = json::parse(R"({"event": {"kind": "x"}, "data": {}})");
    CHECK(condition("event.kind == 'x'", with_event));
  }

  TEST_CASE("change-detection functions read the root envelope") {
    CHECK(condition("changed('status')", envelope()));
    CHECK(condition("changed_to('status', 'shipped')", envelope()));
    CHECK(condition("changed_from('status', 'paid')", envelope()));
    CHECK_FALSE(condition("changed('total')", envelope()));
    CHECK(condition("has_field('items')", envelope()));
    CHECK(condition("length(data.items[?changed('status')]) == `2`", envelope()));

    const json::value insert =
        json::parse(R"({"event_type": "INSERT", "data": {"status": "new"}})");
    auto r = evaluate_condition(compile_ok("changed('status')"), insert);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().kind == error_kind::invalid_value);
    CHECK(r.err().message.find("pre-image") != std::string::npos);
    CHECK_FALSE(condition("event_type == 'UPDATE' && changed('status')", insert));
  }

  TEST_CASE("hostile nesting is a depth error and never a crash") {
    const std::string parens = std::string(100000, '(') + "a" + std::string(100000, ')');
    auto p = expression::compile(parens);
    REQUIRE_FALSE(p.ok());
    CHECK(p.err().kind == error_kind::depth);

    std::string pipes = "a";
    for (int i = 0; i < 5000; ++i) pipes += "|a";
    auto q = expression::compile(pipes);
    REQUIRE_FALSE(q.ok());
    CHECK(q.err().kind == error_kind::depth);

    auto nots = expression::compile(std::string(100000, '!') + "a");
    REQUIRE_FALSE(nots.ok());
    CHECK(nots.err().kind == error_kind::depth);

    // Nesting up to the limit is fine.
    const std::string ok = std::string(200, '[') + "a" + std::string(200, ']');
    CHECK(expression::compile(ok).ok());

    // Deeply nested data (built programmatically) in deep equality or serialization.
    json::value deep = json::array();
    json::value* cur = &deep;
    for (int i = 0; i < 2000; ++i) {
      cur->as_array().emplace_back(json::array());
      cur = &cur->as_array().back();
    }
    const json::value root = json::object{{"a", deep}, {"b", deep}};
    auto eq = compile_ok("a == b").evaluate(root);
    REQUIRE_FALSE(eq.ok());
    CHECK(eq.err().kind == error_kind::depth);
    auto str = compile_ok("to_string(a)").evaluate(root);
    REQUIRE_FALSE(str.ok());
    CHECK(str.err().kind == error_kind::depth);
  }

  TEST_CASE("exponential growth hits the memory budget and not the machine") {
    std::string text = "data";
    for (int i = 0; i < 40; ++i) text += " | [@, @, @, @]";
    auto r = compile_ok(text).evaluate(envelope());
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().kind == error_kind::invalid_value);
    CHECK(r.err().message.find("MiB") != std::string::npos);
    // The same in a condition and in a template.
    auto c = evaluate_condition(compile_ok("length(" + text + ") > `0`"), envelope());
    REQUIRE_FALSE(c.ok());
    CHECK(c.err().kind == error_kind::invalid_value);
  }

  TEST_CASE("results are copies that outlive the input's memory resource") {
    json::value result;
    {
      json::monotonic_resource mr;
      const json::value input = json::parse(
          R"({"data": {"list": ["x", {"y": [1, 2, 3]}], "s": "some long string value"}})", &mr);
      auto r = compile_ok("data").evaluate(input);
      REQUIRE(r.ok());
      result = std::move(*r);
      CHECK(result.storage().get() == json::storage_ptr().get());
    }
    CHECK(json::serialize(result) ==
          R"({"list":["x",{"y":[1,2,3]}],"s":"some long string value"})");
  }

  TEST_CASE("intermediate owned values never dangle") {
    const json::value root =
        json::parse(R"({"a": [{"b": [3, 1, 2]}, {"b": [9]}], "s": ["z", "y"]})");
    CHECK(eval_ok("sort(a[0].b)[0]", root) == json::value(1));
    CHECK(eval_ok("a[*].b | [0]", root) == json::parse("[3, 1, 2]"));
    CHECK(eval_ok("reverse(s) | [0]", root) == json::value("y"));
    CHECK(eval_ok("sort_by(a, &b[0])[-1].b[0]", root) == json::value(9));
    CHECK(eval_ok("not_null(sort(s))[1]", root) == json::value("z"));
    CHECK(eval_ok("max_by(a, &length(b)).b | sort(@) | [-1]", root) == json::value(3));
    CHECK(eval_ok("to_array(a[1])[0].b", root) == json::parse("[9]"));
    CHECK(eval_ok("`{\"k\": [1, 2]}`.k[1]", root) == json::value(2));
  }

  TEST_CASE("expressions are cheap to copy and safe to evaluate concurrently") {
    const expression e =
        compile_ok("data.status == 'shipped' && length(data.items[?qty > `0`]) == `2`");
    const expression copy = e;  // NOLINT(performance-unnecessary-copy-initialization)
    CHECK(&copy.text() == &e.text());
    std::atomic<int> good{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 2000; ++i) {
          auto r = evaluate_condition(copy, envelope());
          if (r.ok() && *r) good.fetch_add(1, std::memory_order_relaxed);
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(good.load() == 8000);
  }

  TEST_CASE("an empty expression evaluates to null") {
    const expression e;
    CHECK(e.empty());
    CHECK(e.text().empty());
    auto r = e.evaluate(envelope());
    REQUIRE(r.ok());
    CHECK(r->is_null());
    auto c = evaluate_condition(e, envelope());
    REQUIRE(c.ok());
    CHECK_FALSE(*c);
  }

  TEST_CASE("is_truthy follows JMESPath") {
    CHECK_FALSE(fraiseql::expr::is_truthy(json::value()));
    CHECK_FALSE(fraiseql::expr::is_truthy(json::value(false)));
    CHECK_FALSE(fraiseql::expr::is_truthy(json::value("")));
    CHECK_FALSE(fraiseql::expr::is_truthy(json::array()));
    CHECK_FALSE(fraiseql::expr::is_truthy(json::object()));
    CHECK(fraiseql::expr::is_truthy(json::value(0)));
    CHECK(fraiseql::expr::is_truthy(json::value(0.0)));
    CHECK(fraiseql::expr::is_truthy(json::value(" ")));
    CHECK(fraiseql::expr::is_truthy(json::array{json::value()}));
    CHECK(fraiseql::expr::is_truthy(json::value(true)));
  }

  TEST_CASE("result<T> accessors") {
    fraiseql::expr::result<int> ok = 3;
    CHECK(ok.ok());
    CHECK(static_cast<bool>(ok));
    CHECK(*ok == 3);
    CHECK(ok.value_or(7) == 3);
    fraiseql::expr::result<int> bad =
        fraiseql::expr::error{error_kind::invalid_type, "nope", "x", 0};
    CHECK_FALSE(bad.ok());
    CHECK(bad.value_or(7) == 7);
    CHECK(bad.err().to_string() == "invalid-type error: nope in `x`");
    CHECK(std::string(fraiseql::expr::to_string(error_kind::unknown_function)) ==
          "unknown-function");
  }

  TEST_CASE("to_string and templates print numbers naturally") {
    const json::value root = json::parse(R"({"d": 1.5, "w": 100.0, "big": 1e21, "i": -7})");
    CHECK(eval_ok("to_string(d)", root) == json::value("1.5"));
    CHECK(eval_ok("to_string(w)", root) == json::value("100"));
    CHECK(eval_ok("to_string(big)", root) == json::value("1e+21"));
    CHECK(eval_ok("to_string(i)", root) == json::value("-7"));
    CHECK(eval_ok("to_string(`[0.1, \"\\u0001\"]`)", root) == json::value("[0.1,\"\\u0001\"]"));
  }
}
