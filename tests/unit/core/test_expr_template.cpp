// Unit tests of `{{ expr }}` templates (runtime/expr/template.hpp).

#include "runtime/expr/template.hpp"

#include <doctest/doctest.h>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <string>

namespace json = boost::json;
using fraiseql::expr::error_kind;
using fraiseql::expr::template_;

namespace {

const json::value& envelope() {
  static const json::value v = json::parse(R"json({
    "id": "5d6c0f3e-0000-4000-8000-000000000001",
    "event_type": "UPDATE",
    "entity_type": "Order",
    "entity_id": "42",
    "data": {"id": 42, "status": "shipped", "total": 150.5, "note": null,
             "customer": {"name": "Jane \"JD\" Doe", "tags": ["vip"]}},
    "old": {"status": "paid"},
    "tenant_id": null
  })json");
  return v;
}

template_ compile_ok(const std::string& text) {
  auto r = template_::compile(text);
  REQUIRE_MESSAGE(r.ok(), text << ": " << (r.ok() ? "" : r.err().to_string()));
  return *r;
}

std::string text_of(const std::string& tpl) {
  auto r = compile_ok(tpl).render_text(envelope());
  REQUIRE_MESSAGE(r.ok(), tpl << ": " << (r.ok() ? "" : r.err().to_string()));
  return *r;
}

std::string json_of(const std::string& tpl) {
  auto r = compile_ok(tpl).render_json(envelope());
  REQUIRE_MESSAGE(r.ok(), tpl << ": " << (r.ok() ? "" : r.err().to_string()));
  return *r;
}

}  // namespace

TEST_SUITE("expr") {
  TEST_CASE("a single expression yields the JSON value itself") {
    const template_ t = compile_ok("  {{ event.data.customer }}\n");
    CHECK(t.is_single_expression());
    CHECK_FALSE(t.is_constant());
    auto v = t.render_value(envelope());
    REQUIRE(v.ok());
    CHECK(*v == json::parse(R"({"name": "Jane \"JD\" Doe", "tags": ["vip"]})"));

    auto n = compile_ok("{{data.total}}").render_value(envelope());
    REQUIRE(n.ok());
    CHECK(*n == json::value(150.5));
    auto missing = compile_ok("{{ nothing }}").render_value(envelope());
    REQUIRE(missing.ok());
    CHECK(missing->is_null());
  }

  TEST_CASE("text interpolation puts strings raw and null as nothing and others as JSON") {
    CHECK(text_of("Order {{ entity_id }} is {{ data.status }}") == "Order 42 is shipped");
    CHECK(text_of("[{{ data.note }}]") == "[]");
    CHECK(text_of("{{data.id}}/{{ data.total }}") == "42/150.5");
    CHECK(text_of("tags={{ data.customer.tags }}") == R"(tags=["vip"])");
    CHECK(text_of("{{ `true` }}{{ `1.0` }}") == "true1");
    CHECK(text_of("https://hooks.example.com/orders/{{ event.entity_id }}?t={{ entity_type }}") ==
          "https://hooks.example.com/orders/42?t=Order");
    auto v = compile_ok("id={{ data.id }}").render_value(envelope());
    REQUIRE(v.ok());
    CHECK(*v == json::value("id=42"));
  }

  TEST_CASE("constant templates") {
    const template_ t = compile_ok("Content-Type: application/json }} }");
    CHECK(t.is_constant());
    CHECK_FALSE(t.is_single_expression());
    CHECK(t.text() == "Content-Type: application/json }} }");
    auto v = t.render_value(envelope());
    REQUIRE(v.ok());
    CHECK(*v == json::value("Content-Type: application/json }} }"));

    const template_ empty;
    CHECK(empty.is_constant());
    auto e = empty.render_text(envelope());
    REQUIRE(e.ok());
    CHECK(e->empty());
  }

  TEST_CASE("holes may contain braces") {
    CHECK(text_of("{{ {id: data.id, s: data.status} }}") == R"({"id":42,"s":"shipped"})");
    CHECK(text_of("{{ {id: data.id}}}!") == R"({"id":42}!)");
    CHECK(text_of("{{ data.id }}}") == "42}");
    CHECK(text_of("{{ '}}' }}") == "}}");
    CHECK(text_of("{{ '{{' }} literal") == "{{ literal");
  }

  TEST_CASE("compile errors name the column in the template") {
    auto a = template_::compile("Order {{ data. }} done");
    REQUIRE_FALSE(a.ok());
    CHECK(a.err().kind == error_kind::syntax);
    CHECK(a.err().column == 16);
    CHECK(a.err().expression == "Order {{ data. }} done");

    auto b = template_::compile("x {{ data.id ");
    REQUIRE_FALSE(b.ok());
    CHECK(b.err().kind == error_kind::syntax);
    CHECK(b.err().column == 14);

    auto c = template_::compile("x {{ }}");
    REQUIRE_FALSE(c.ok());
    CHECK(c.err().column == 6);

    auto d = template_::compile("ok {{ a }} then {{ nope(a) }}");
    REQUIRE_FALSE(d.ok());
    CHECK(d.err().kind == error_kind::unknown_function);
    CHECK(d.err().column == 20);

    auto e = template_::compile("{{ a }");
    REQUIRE_FALSE(e.ok());
  }

  TEST_CASE("evaluation errors name the hole") {
    const template_ t = compile_ok("total: {{ abs(data.status) }}");
    auto r = t.render_text(envelope());
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().kind == error_kind::invalid_type);
    CHECK(r.err().column == 11);
    CHECK(r.err().message.find("abs(data.status)") != std::string::npos);
  }

  TEST_CASE("render_json escapes holes inside strings and serializes the others") {
    const std::string out = json_of(
        R"({"name": "{{ data.customer.name }}", "msg": "order {{ data.id }} {{ data.note }}!",)"
        R"( "customer": {{ data.customer }}, "note": {{ data.note }}, "total": {{ data.total }}})");
    const json::value v = json::parse(out);
    CHECK(v == json::parse(R"({"name": "Jane \"JD\" Doe", "msg": "order 42 !",)"
                           R"( "customer": {"name": "Jane \"JD\" Doe", "tags": ["vip"]},)"
                           R"( "note": null, "total": 150.5})"));
    // Objects inside a string are embedded as escaped JSON text.
    CHECK(json::parse(json_of(R"({"c": "{{ data.customer.tags }}"})")) ==
          json::parse(R"({"c": "[\"vip\"]"})"));
    // The whole envelope as the body.
    CHECK(json::parse(json_of("{{ @ }}")) == envelope());
  }

  TEST_CASE("render_json refuses templates that are not JSON with holes") {
    const template_ bad = compile_ok(R"({"a": {{ data.id }}1})");
    REQUIRE(bad.json_error().has_value());
    CHECK(bad.json_error()->kind == error_kind::syntax);
    auto r = bad.render_json(envelope());
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().message.find("not valid JSON") != std::string::npos);

    const template_ escape = compile_ok(R"({"a": "x\{{ data.status }}"})");
    REQUIRE(escape.json_error().has_value());
    CHECK(escape.json_error()->message.find("backslash") != std::string::npos);

    const template_ unicode = compile_ok(R"({"a": "\u{{ data.id }}0041"})");
    CHECK(unicode.json_error().has_value());

    CHECK_FALSE(compile_ok(R"({"a": {{ data.id }}})").json_error().has_value());
    CHECK(compile_ok("plain text").json_error().has_value());
    // Render as text still works for non-JSON templates.
    CHECK(bad.render_text(envelope()).ok());
  }

  TEST_CASE("templates are cheap to copy") {
    const template_ t = compile_ok("{{ data.id }}");
    const template_ copy = t;  // NOLINT(performance-unnecessary-copy-initialization)
    CHECK(&copy.text() == &t.text());
  }
}
