// Public API of the JMESPath engine: compile, evaluate, conditions, errors.

#include "runtime/expr/jmespath.hpp"

#include "runtime/expr/detail/ast.hpp"
#include "runtime/expr/detail/eval.hpp"
#include "runtime/expr/detail/json_util.hpp"

#include <exception>
#include <new>

namespace fraiseql::expr {

namespace json = boost::json;

const char* to_string(error_kind kind) noexcept {
  switch (kind) {
    case error_kind::syntax:
      return "syntax";
    case error_kind::invalid_arity:
      return "invalid-arity";
    case error_kind::invalid_type:
      return "invalid-type";
    case error_kind::invalid_value:
      return "invalid-value";
    case error_kind::unknown_function:
      return "unknown-function";
    case error_kind::depth:
      return "depth";
  }
  return "unknown";
}

std::string error::to_string() const {
  std::string s = expr::to_string(kind);
  s += " error";
  if (column != 0) {
    s += " at column ";
    s += std::to_string(column);
  }
  s += ": ";
  s += message;
  if (!expression.empty()) {
    s += " in `";
    s += expression;
    s += '`';
  }
  return s;
}

namespace detail {

error make_error(const eval_failure& f, std::string_view text) {
  return error{f.kind, f.message, std::string(text), 0};
}

error make_error(const parse_failure& f, std::string_view text, std::size_t column_base) {
  return error{f.kind, f.message, std::string(text), column_base + column_of(text, f.pos)};
}

namespace {

template <class F>
auto guarded(const program& p, F&& f) -> result<decltype(f())> {
  try {
    return f();
  } catch (const eval_failure& e) {
    return make_error(e, p.text);
  } catch (const budget_exceeded&) {
    return error{error_kind::invalid_value,
                 "evaluation needs more than " + std::to_string(max_evaluation_bytes >> 20) +
                     " MiB of intermediate values",
                 p.text, 0};
  } catch (const std::bad_alloc&) {
    return error{error_kind::invalid_value, "out of memory during evaluation", p.text, 0};
  } catch (const std::exception& e) {
    return error{error_kind::invalid_value, std::string("evaluation failed: ") + e.what(), p.text,
                 0};
  }
}

}  // namespace
}  // namespace detail

result<expression> expression::compile(std::string_view text) {
  detail::parse_failure f;
  auto prog = detail::parse_expression(text, f);
  if (!prog) return detail::make_error(f, text);
  return expression(std::move(prog));
}

result<json::value> expression::evaluate(const json::value& root) const {
  if (!prog_) return json::value();
  return detail::guarded(*prog_, [&] { return detail::evaluate_copy(*prog_, root, {}); });
}

const std::string& expression::text() const noexcept {
  static const std::string empty;
  return prog_ ? prog_->text : empty;
}

bool is_truthy(const json::value& v) noexcept {
  return detail::truthy(v);
}

result<bool> evaluate_condition(const expression& e, const json::value& envelope) {
  const detail::program* p = detail::program_access::get(e);
  if (!p) return false;
  detail::eval_options opts;
  opts.event_alias = true;
  return detail::guarded(*p, [&] { return detail::evaluate_truthy(*p, envelope, opts); });
}

}  // namespace fraiseql::expr
