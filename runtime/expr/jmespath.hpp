#pragma once

// JMESPath (https://jmespath.org/specification.html) on Boost.JSON.
//
// An expression is compiled once into an immutable AST and evaluated many times, concurrently
// if needed. Evaluation reads the input document in place and copies JSON only at the API
// boundary (the value returned by `evaluate`); `evaluate_condition` copies nothing at all.
//
// Besides the built-in functions of the specification, four change-detection functions read
// the observer event envelope (the root document, whatever the current node is):
//   changed(field), changed_to(field, value), changed_from(field, value), has_field(field).
// See docs/expressions.md for the user-facing description.
//
// No exception escapes this API: failures are reported through `result<T>`.

#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace fraiseql::expr {

/// Kinds of error; the first five are the error names of the JMESPath compliance suite.
enum class error_kind {
  syntax,
  invalid_arity,
  invalid_type,
  invalid_value,
  unknown_function,
  depth
};

/// "syntax", "invalid-arity", "invalid-type", "invalid-value", "unknown-function", "depth".
const char* to_string(error_kind kind) noexcept;

/// Maximum nesting of an expression (parser recursion and AST depth) and of JSON data walked
/// recursively by the evaluator (deep equality, serialization). Exceeding it is a `depth` error.
inline constexpr std::size_t max_nesting_depth = 256;

/// Memory an evaluation may hold in intermediate JSON values (projections, multi-selects,
/// function results). Exceeding it is an `invalid_value` error instead of exhausting memory
/// (e.g. `[@, @] | [@, @] | ...` doubles its size at each step).
inline constexpr std::size_t max_evaluation_bytes = std::size_t{64} << 20;

struct error {
  error_kind kind = error_kind::syntax;
  std::string message;
  /// The expression (or template) text the error belongs to.
  std::string expression;
  /// 1-based column (in characters) of the offending token for compile errors; for evaluation
  /// errors 0 (expressions) or the column of the failing hole (templates).
  std::size_t column = 0;

  /// E.g. "syntax error at column 6: expected ']' after the index, found end of expression
  /// in `foo[0`".
  std::string to_string() const;
};

/// Either a value or an error. Accessing the wrong alternative is a contract violation and
/// aborts the process (it never throws).
template <class T>
class result {
 public:
  result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  result(error err) : error_(std::move(err)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const noexcept { return value_.has_value(); }
  bool has_value() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return value_.has_value(); }

  T& value() & { return require_value(), *value_; }
  const T& value() const& { return require_value(), *value_; }
  T&& value() && { return require_value(), std::move(*value_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  T value_or(T fallback) const& { return value_ ? *value_ : std::move(fallback); }
  T value_or(T fallback) && { return value_ ? std::move(*value_) : std::move(fallback); }

  /// The error; only valid when `!ok()`.
  const error& err() const& {
    if (!error_) std::abort();
    return *error_;
  }
  error&& err() && {
    if (!error_) std::abort();
    return std::move(*error_);
  }

 private:
  void require_value() const {
    if (!value_) std::abort();
  }
  std::optional<T> value_;
  std::optional<error> error_;
};

namespace detail {
struct program;
struct program_access;
}  // namespace detail

/// A compiled JMESPath expression: an immutable AST shared between copies (copying is a
/// reference-count increment) and safe to evaluate from many threads at once.
class expression {
 public:
  /// An empty expression: evaluates to null, `text()` is empty.
  expression() noexcept = default;

  /// Parses `text`. Syntax errors carry the column; unknown functions, wrong arity of a
  /// function call and a zero slice step are detected here too.
  static result<expression> compile(std::string_view text);

  /// Plain JMESPath evaluation against `root` (no `event` alias). Returns a copy of the result
  /// allocated with the default memory resource.
  result<boost::json::value> evaluate(const boost::json::value& root) const;

  const std::string& text() const noexcept;
  bool empty() const noexcept { return !prog_; }

 private:
  friend struct detail::program_access;
  explicit expression(std::shared_ptr<const detail::program> prog) noexcept
      : prog_(std::move(prog)) {}
  std::shared_ptr<const detail::program> prog_;
};

/// JMESPath truthiness: false, null, "", [] and {} are false; everything else (0 too) is true.
bool is_truthy(const boost::json::value& v) noexcept;

/// Condition semantics for observers. `envelope` is the root; the identifier `event` evaluated
/// against the root resolves to the envelope itself when the envelope has no "event" key, so
/// `data.status == 'shipped'` and `event.data.status == 'shipped'` are equivalent.
/// Returns the truthiness of the result, or the evaluation error. Copies no JSON and, for
/// comparisons of fields with literals, allocates nothing. An empty expression yields false
/// (callers decide what an absent condition means).
result<bool> evaluate_condition(const expression& e, const boost::json::value& envelope);

}  // namespace fraiseql::expr
