// libFuzzer target for the expression engine: parser, evaluator and templates.
//
// Input: TEXT [\0 DATA]. TEXT is compiled both as a JMESPath expression and as a template.
// DATA, when it parses as JSON, is the root document; otherwise it becomes a string inside an
// event envelope (arbitrary bytes, so invalid UTF-8 reaches the escaping code too).
//
// Besides crashes, leaks and sanitizer reports, the target traps when an invariant breaks:
// syntax error columns lie inside the text, and render_json output of a template without a
// json_error() always parses as JSON.
//
// Built by scripts/fuzz-expr.sh (clang -fsanitize=fuzzer,address,undefined); not part of the
// CMake build. Boost.JSON is compiled in header-only mode so that it is instrumented too.

#include <boost/json/src.hpp>

#include "runtime/expr/jmespath.hpp"
#include "runtime/expr/template.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

namespace json = boost::json;

std::size_t code_points(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0u) != 0x80u) ++n;
  }
  return n;
}

json::value make_root(std::string_view data) {
  json::parse_options opts;
  opts.max_depth = 64;
  boost::system::error_code ec;
  json::value v = json::parse(data, ec, {}, opts);
  if (!ec) return v;
  json::value env = json::parse(R"({"event_type": "UPDATE", "entity_type": "Order",
      "data": {"status": "shipped", "total": 150, "items": [{"sku": "a", "qty": 2}, 3, null]},
      "old": {"status": "paid", "total": 150.0}})");
  env.as_object()["data"].as_object()["name"] = json::string(data);
  env.as_object()["data"].as_object()["list"] = json::array{json::string(data), 1, 2.5};
  return env;
}

void check_column(const fraiseql::expr::error& e, std::string_view text) {
  if (e.column == 0 || e.column > code_points(text) + 1) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(bytes), size);
  const std::size_t nul = input.find('\0');
  const std::string_view text = input.substr(0, nul);
  const std::string_view data =
      nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);
  const json::value root = make_root(data);

  auto e = fraiseql::expr::expression::compile(text);
  if (e) {
    auto r = e->evaluate(root);
    if (r) (void)json::serialize(*r);
    (void)fraiseql::expr::evaluate_condition(*e, root);
  } else {
    check_column(e.err(), text);
  }

  auto t = fraiseql::expr::template_::compile(text);
  if (!t) {
    check_column(t.err(), text);
    return 0;
  }
  (void)t->render_text(root);
  (void)t->render_value(root);
  auto j = t->render_json(root);
  if (j && !t->json_error()) {
    json::parse_options opts;
    opts.max_depth = 100000;
    boost::system::error_code ec;
    (void)json::parse(*j, ec, {}, opts);
    if (ec) __builtin_trap();
  }
  return 0;
}
