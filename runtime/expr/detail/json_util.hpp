#pragma once

// JSON helpers shared by the evaluator, the functions and the templates: numeric comparison
// across int64/uint64/double, deep equality, compact serialization with shortest round-trip
// numbers, JSON string escaping and UTF-8 utilities.

#include "runtime/expr/jmespath.hpp"

#include <boost/json/value.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace fraiseql::expr::detail {

namespace json = boost::json;

/// Internal evaluation failure; converted to `error` at the public API boundary.
struct eval_failure {
  error_kind kind;
  std::string message;
};

[[noreturn]] void fail(error_kind kind, std::string message);

inline bool is_number(const json::value& v) noexcept {
  return v.is_int64() || v.is_uint64() || v.is_double();
}

double number_as_double(const json::value& v) noexcept;

/// Three-way comparison of two numbers (precondition: both are numbers), exact across
/// representations: returns <0, 0 or >0.
int compare_numbers(const json::value& a, const json::value& b) noexcept;

/// Deep JSON equality where numbers compare by value. Throws eval_failure(depth) on data
/// nested deeper than max_nesting_depth.
bool json_equal(const json::value& a, const json::value& b);

bool truthy(const json::value& v) noexcept;

/// "number", "string", "boolean", "array", "object" or "null".
const char* type_name(const json::value& v) noexcept;

/// Appends `v` as compact JSON (no spaces). Doubles use the shortest representation that
/// round-trips; non-finite doubles become null; invalid UTF-8 becomes U+FFFD.
void append_json(std::string& out, const json::value& v);

/// Appends a number in JSON syntax (precondition: is_number(v)).
void append_number(std::string& out, const json::value& v);

/// Appends `s` escaped for the inside of a JSON string literal (no surrounding quotes).
void append_escaped(std::string& out, std::string_view s);

/// Number of Unicode code points of a UTF-8 string (invalid bytes count one each).
std::size_t utf8_length(std::string_view s) noexcept;

/// Reverses a UTF-8 string by code point.
std::string utf8_reverse(std::string_view s);

/// 1-based column (in code points) of byte offset `pos` in `s`.
std::size_t column_of(std::string_view s, std::size_t pos) noexcept;

/// Parses the JSON number grammar exactly (no surrounding whitespace): integers become int64
/// or uint64 when they fit, others double. Returns false when `s` is not a JSON number or
/// its value is not finite.
bool parse_json_number(std::string_view s, json::value& out) noexcept;

}  // namespace fraiseql::expr::detail
