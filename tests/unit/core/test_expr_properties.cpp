// RapidCheck properties of the expression engine and templates.

#include "runtime/expr/jmespath.hpp"
#include "runtime/expr/template.hpp"

#include <doctest/doctest.h>
#include <rapidcheck.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace json = boost::json;
using fraiseql::expr::expression;
using fraiseql::expr::template_;

namespace {

std::string encode_utf8(std::uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Valid UTF-8 text mixing ASCII (control characters, quotes and backslashes included) with
// multi-byte code points.
rc::Gen<std::string> utf8_string() {
  const auto code_point = rc::gen::oneOf(
      rc::gen::inRange<std::uint32_t>(0, 0x80),
      rc::gen::elementOf(std::vector<std::uint32_t>{'"', '\\', '/', '\n', '\t', 0, '{', '}'}),
      rc::gen::inRange<std::uint32_t>(0x80, 0xD800),
      rc::gen::inRange<std::uint32_t>(0xE000, 0x110000));
  return rc::gen::map(rc::gen::container<std::vector<std::uint32_t>>(code_point),
                      [](const std::vector<std::uint32_t>& cps) {
                        std::string s;
                        for (std::uint32_t cp : cps) s += encode_utf8(cp);
                        return s;
                      });
}

std::optional<json::value> try_parse(const std::string& s) {
  boost::system::error_code ec;
  json::value v = json::parse(s, ec);
  if (ec) return std::nullopt;
  return v;
}

// Python-style slicing written independently of the engine: index i is selected when it lies
// between the normalised bounds and on the step grid.
std::vector<int> reference_slice(const std::vector<int>& a, std::optional<int> start,
                                 std::optional<int> stop, int step) {
  const int len = static_cast<int>(a.size());
  auto norm = [&](int v) {
    if (v < 0) v += len;
    return step > 0 ? std::clamp(v, 0, len) : std::clamp(v, -1, len - 1);
  };
  const int lo = start ? norm(*start) : (step > 0 ? 0 : len - 1);
  const int hi = stop ? norm(*stop) : (step > 0 ? len : -1);
  std::vector<int> out;
  if (step > 0) {
    for (int i = 0; i < len; ++i) {
      if (i >= lo && i < hi && (i - lo) % step == 0) out.push_back(a[i]);
    }
  } else {
    for (int i = len - 1; i >= 0; --i) {
      if (i <= lo && i > hi && (lo - i) % (-step) == 0) out.push_back(a[i]);
    }
  }
  return out;
}

}  // namespace

TEST_SUITE("expr") {
  TEST_CASE("property: render_json output is valid JSON and data cannot add keys") {
    auto tpl = template_::compile(
        R"t({"name": "{{ data.name }}", "greeting": "Hello, {{ data.name }}! ({{ data.n }})",)t"
        R"t( "note": {{ data.note }}, "n": {{ data.n }}, "nested": {"copy": {{ data }}},)t"
        R"t( "list": [{{ data.name }}, "{{ data.note }}"]})t");
    REQUIRE(tpl.ok());
    const template_ t = *tpl;
    CHECK(rc::check("valid UTF-8 strings round-trip", [&t] {
      const std::string name = *utf8_string();
      const std::string note = *utf8_string();
      const auto n = *rc::gen::arbitrary<std::int64_t>();
      const json::value env =
          json::object{{"data", json::object{{"name", name}, {"note", note}, {"n", n}}}};
      auto out = t.render_json(env);
      RC_ASSERT(out.ok());
      const auto parsed = try_parse(*out);
      RC_ASSERT(parsed.has_value());
      RC_ASSERT(parsed->is_object());
      const json::object& o = parsed->get_object();
      std::vector<std::string> keys;
      for (const auto& kv : o) keys.emplace_back(kv.key());
      RC_ASSERT(keys ==
                (std::vector<std::string>{"name", "greeting", "note", "n", "nested", "list"}));
      RC_ASSERT(o.at("name") == json::value(name));
      RC_ASSERT(o.at("note") == json::value(note));
      RC_ASSERT(o.at("n") == json::value(n));
      RC_ASSERT(o.at("greeting") ==
                json::value("Hello, " + name + "! (" + std::to_string(n) + ")"));
      RC_ASSERT(o.at("nested").get_object().size() == 1u);
      RC_ASSERT(o.at("nested").at("copy") == env.at("data"));
      RC_ASSERT(o.at("list").get_array().size() == 2u);
    }));
    CHECK(rc::check("arbitrary bytes never break the JSON structure", [&t] {
      const std::string name = *rc::gen::arbitrary<std::string>();
      const std::string note = *rc::gen::arbitrary<std::string>();
      const json::value env = json::object{{"data", json::object{{"name", name}, {"note", note}}}};
      auto out = t.render_json(env);
      RC_ASSERT(out.ok());
      const auto parsed = try_parse(*out);
      RC_ASSERT(parsed.has_value());
      RC_ASSERT(parsed->get_object().size() == 6u);
      RC_ASSERT(parsed->at("n").is_null());
      RC_ASSERT(parsed->at("list").get_array().size() == 2u);
    }));
  }

  TEST_CASE("property: raw string literals round-trip") {
    CHECK(rc::check([] {
      std::string s = *rc::gen::arbitrary<std::string>();
      s.erase(std::remove(s.begin(), s.end(), '\\'), s.end());
      std::string text = "'";
      for (char c : s) {
        if (c == '\'') text += '\\';
        text += c;
      }
      text += "'";
      auto e = expression::compile(text);
      RC_ASSERT(e.ok());
      auto r = e->evaluate(json::value());
      RC_ASSERT(r.ok());
      RC_ASSERT(*r == json::value(s));
    }));
  }

  TEST_CASE("property: any key is reachable through a quoted identifier") {
    CHECK(rc::check([] {
      const std::string key = *utf8_string();
      const auto v = *rc::gen::arbitrary<std::int64_t>();
      const json::value root = json::object{{key, v}, {"other", "x"}};
      auto e = expression::compile(json::serialize(json::value(key)));
      RC_ASSERT(e.ok());
      auto r = e->evaluate(root);
      RC_ASSERT(r.ok());
      RC_ASSERT(*r == json::value(v));
    }));
  }

  TEST_CASE("property: numbers compare by value across representations") {
    auto eq = expression::compile("a == b");
    auto lt = expression::compile("a < b");
    REQUIRE(eq.ok());
    REQUIRE(lt.ok());
    CHECK(rc::check("integers equal their double", [&] {
      const auto i =
          *rc::gen::inRange<std::int64_t>(-(std::int64_t{1} << 53), std::int64_t{1} << 53);
      const json::value root = json::object{{"a", i}, {"b", static_cast<double>(i)}};
      RC_ASSERT(eq->evaluate(root).value() == json::value(true));
      RC_ASSERT(lt->evaluate(root).value() == json::value(false));
    }));
    CHECK(rc::check("ordering matches the mathematical order", [&] {
      const auto x = *rc::gen::arbitrary<std::int32_t>();
      const auto y = *rc::gen::arbitrary<std::int32_t>();
      const bool as_double = *rc::gen::arbitrary<bool>();
      json::value b = as_double ? json::value(static_cast<double>(y) + 0.5) : json::value(y);
      const json::value root = json::object{{"a", x}, {"b", b}};
      const bool expected = as_double ? (x < static_cast<double>(y) + 0.5) : (x < y);
      RC_ASSERT(lt->evaluate(root).value() == json::value(expected));
    }));
  }

  TEST_CASE("property: slices match an independent reference") {
    CHECK(rc::check([] {
      const auto a = *rc::gen::container<std::vector<int>>(rc::gen::inRange(0, 100));
      const auto start = *rc::gen::maybe(rc::gen::inRange(-25, 25));
      const auto stop = *rc::gen::maybe(rc::gen::inRange(-25, 25));
      int step = *rc::gen::inRange(-5, 5);
      if (step == 0) step = 1;
      std::string text = "@[";
      if (start) text += std::to_string(*start);
      text += ':';
      if (stop) text += std::to_string(*stop);
      text += ':' + std::to_string(step) + ']';
      auto e = expression::compile(text);
      RC_ASSERT(e.ok());
      json::array arr;
      for (int x : a) arr.emplace_back(x);
      auto r = e->evaluate(json::value(arr));
      RC_ASSERT(r.ok());
      json::array want;
      for (int x : reference_slice(a, start ? std::optional<int>(*start) : std::nullopt,
                                   stop ? std::optional<int>(*stop) : std::nullopt, step)) {
        want.emplace_back(x);
      }
      RC_ASSERT(*r == json::value(want));
    }));
  }

  TEST_CASE("property: sort returns an ordered permutation") {
    auto e = expression::compile("sort(@)");
    REQUIRE(e.ok());
    CHECK(rc::check([&] {
      const auto ints = *rc::gen::container<std::vector<std::int64_t>>(
          rc::gen::inRange<std::int64_t>(-1000, 1000));
      json::array arr;
      std::vector<double> expected;
      for (std::int64_t i : ints) {
        // Mix representations: odd values as doubles with a fraction.
        if (i % 2 != 0) {
          arr.emplace_back(static_cast<double>(i) + 0.25);
          expected.push_back(static_cast<double>(i) + 0.25);
        } else {
          arr.emplace_back(i);
          expected.push_back(static_cast<double>(i));
        }
      }
      std::sort(expected.begin(), expected.end());
      auto r = e->evaluate(json::value(arr));
      RC_ASSERT(r.ok());
      const json::array& got = r->get_array();
      RC_ASSERT(got.size() == expected.size());
      for (std::size_t i = 0; i < got.size(); ++i)
        RC_ASSERT(got[i].to_number<double>() == expected[i]);
    }));
  }

  TEST_CASE("property: to_number(to_string(x)) == x for finite doubles") {
    auto e = expression::compile("to_number(to_string(@)) == @");
    REQUIRE(e.ok());
    CHECK(rc::check([&] {
      const double d = *rc::gen::arbitrary<double>();
      RC_PRE(std::isfinite(d));
      RC_ASSERT(e->evaluate(json::value(d)).value() == json::value(true));
    }));
  }

  TEST_CASE("property: compiling and evaluating token soup never crashes") {
    const json::value root = json::parse(
        R"({"a": [1, {"b": "x"}, null, [2, 3]], "b": {"c": "d", "e": [true, false]}, "s": "str",
            "data": {"status": "new"}, "old": {"status": "x"}})");
    const std::vector<std::string> tokens = {
        "a",     "b",       "c",         "@",     ".",  "*", "[",      "]",       "[?",
        "[]",    "{",       "}",         "(",     ")",  ",", ":",      "&",       "&&",
        "|",     "||",      "!",         "==",    "!=", "<", ">=",     "'x'",     "`1`",
        "`[1]`", "\"q\"",   "0",         "-1",    "2",  " ", "length", "sort_by", "max",
        "map",   "changed", "to_string", "merge", "`",  "'", "\"",     "\\",      "event"};
    CHECK(rc::check([&] {
      const auto parts = *rc::gen::container<std::vector<std::string>>(rc::gen::elementOf(tokens));
      std::string text;
      for (const auto& p : parts) text += p;
      auto e = expression::compile(text);
      if (!e.ok()) {
        RC_ASSERT(e.err().column >= 1u);
        RC_ASSERT(e.err().column <= text.size() + 1);
        return;
      }
      (void)e->evaluate(root);
      (void)fraiseql::expr::evaluate_condition(*e, root);
      auto t = template_::compile("x{{ " + text + " }}y");
      if (t.ok()) (void)t->render_json(root);
    }));
  }
}
