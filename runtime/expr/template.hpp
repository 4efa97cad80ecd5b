#pragma once

// `{{ expr }}` templates for webhook URLs, headers and bodies, compiled once at config load.
//
// Each hole holds a JMESPath expression evaluated against the event envelope with the same
// `event` alias rule as conditions (`{{ event.data.id }}` and `{{ data.id }}` are the same).
// A hole ends at the first "}}" that follows a complete expression, so multi-select hashes
// such as `{{ {id: data.id} }}` work.

#include "runtime/expr/jmespath.hpp"

#include <boost/json/value.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace fraiseql::expr {

namespace detail {
struct template_program;
}

class template_ {
 public:
  /// The empty template: constant, renders "".
  template_() noexcept = default;

  /// Parses the template and compiles every hole. Errors carry the column (in the template)
  /// of the offending token; `error::expression` is the template text.
  static result<template_> compile(std::string_view text);

  /// A template that is exactly one `{{ expr }}` (whitespace around allowed) yields the JSON
  /// value itself; any other template yields the string of `render_text`.
  result<boost::json::value> render_value(const boost::json::value& root) const;

  /// Interpolates values as text: strings raw, null as nothing, other values as compact JSON.
  result<std::string> render_text(const boost::json::value& root) const;

  /// For JSON bodies: the template text is JSON with holes. A hole inside a JSON string gets
  /// its value escaped for a JSON string (strings raw, null as nothing, other values as compact
  /// JSON, all escaped, without quotes); a hole outside strings gets the value as JSON. The
  /// output is therefore always valid JSON and data can never add keys or break out of a
  /// string. Fails with a syntax error when the template is not JSON with holes (see
  /// `json_error`).
  result<std::string> render_json(const boost::json::value& root) const;

  /// Why `render_json` cannot be used with this template (the text with each hole replaced by
  /// a value is not valid JSON, or a hole follows a backslash inside a string); nullopt when
  /// it can. Meant for validating body templates at config load.
  std::optional<error> json_error() const;

  bool is_single_expression() const noexcept;
  bool is_constant() const noexcept;
  const std::string& text() const noexcept;

 private:
  explicit template_(std::shared_ptr<const detail::template_program> p) noexcept
      : prog_(std::move(p)) {}
  std::shared_ptr<const detail::template_program> prog_;
};

}  // namespace fraiseql::expr
