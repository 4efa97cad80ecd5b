#pragma once

// The compiled form of an expression: an immutable tree of nodes owned by a `program`.

#include "runtime/expr/detail/json_util.hpp"
#include "runtime/expr/jmespath.hpp"

#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace fraiseql::expr::detail {

enum class node_kind : std::uint8_t {
  current,            // @ (also the implicit left side of projections)
  field,              // name, looked up in the current node
  field_path,         // names[0].names[1]... (a chain of plain fields)
  literal,            // `json` or 'raw string'
  index,              // lhs[index]
  slice,              // lhs[start:stop:step] (the array, projected by the parent)
  subexpr,            // lhs . rhs
  pipe,               // lhs | rhs
  list_projection,    // lhs is projected: each element -> rhs, nulls dropped
  value_projection,   // lhs.* : each object value -> rhs
  filter_projection,  // lhs[?cond] : elements with truthy cond -> rhs
  flatten,            // lhs[] (the flattening itself; projected by the parent)
  multi_list,         // [items...]
  multi_hash,         // {names[i]: items[i]...}
  or_,
  and_,
  not_,
  compare,
  function,  // fn(items...)
  expref,    // &lhs, only as a function argument
};

enum class compare_op : std::uint8_t { eq, ne, lt, le, gt, ge };

enum class function_id : std::uint8_t {
  abs,
  avg,
  ceil,
  contains,
  ends_with,
  floor,
  join,
  keys,
  length,
  map,
  max,
  max_by,
  merge,
  min,
  min_by,
  not_null,
  reverse,
  sort,
  sort_by,
  starts_with,
  sum,
  to_array,
  to_string,
  to_number,
  type,
  values,
  // Change-detection extensions (read the root envelope).
  changed,
  changed_to,
  changed_from,
  has_field,
};

struct function_info {
  std::string_view name;
  function_id id;
  int min_args;
  int max_args;  // -1: variadic
};

/// The function called `name`, or nullptr.
const function_info* find_function(std::string_view name) noexcept;

struct node {
  node_kind kind = node_kind::current;
  compare_op op = compare_op::eq;
  bool event_alias = false;  // field (or first path element) named "event"
  bool has_start = false, has_stop = false;
  std::uint16_t depth = 1;
  const function_info* fn = nullptr;
  const node* lhs = nullptr;
  const node* rhs = nullptr;
  const node* cond = nullptr;
  std::vector<const node*> items;              // multi_list, multi_hash values, function arguments
  std::vector<std::string> names;              // field_path names, multi_hash keys
  std::string name;                            // field
  boost::json::value literal;                  // literal
  std::int64_t index = 0;                      // index
  std::int64_t start = 0, stop = 0, step = 1;  // slice
  std::size_t pos = 0;                         // byte offset in the source text
};

struct program {
  std::string text;
  std::deque<node> nodes;  // stable addresses
  const node* root = nullptr;
};

struct program_access {
  static expression make(std::shared_ptr<const program> p) noexcept {
    return expression(std::move(p));
  }
  static const program* get(const expression& e) noexcept { return e.prog_.get(); }
};

/// Parse failure (syntax, or a statically detected unknown function / arity / slice step).
struct parse_failure {
  error_kind kind = error_kind::syntax;
  std::string message;
  std::size_t pos = 0;  // byte offset in the source
};

/// Parses a whole expression. On failure returns nullptr and fills `err`.
std::shared_ptr<const program> parse_expression(std::string_view text, parse_failure& err);

/// Parses an expression embedded in `text` at byte offset `start`, which must be followed
/// (after optional whitespace) by "}}". `close` receives the offset of that "}}".
std::shared_ptr<const program> parse_embedded(std::string_view text, std::size_t start,
                                              std::size_t& close, parse_failure& err);

/// Evaluation options.
struct eval_options {
  bool event_alias = false;
};

/// Evaluates and returns a copy (default memory resource). Throws eval_failure.
boost::json::value evaluate_copy(const program& p, const boost::json::value& root,
                                 const eval_options& opts);

/// Evaluates and returns the truthiness of the result. Throws eval_failure.
bool evaluate_truthy(const program& p, const boost::json::value& root, const eval_options& opts);

/// Converts an internal failure to a public error for `text`.
error make_error(const eval_failure& f, std::string_view text);
error make_error(const parse_failure& f, std::string_view text, std::size_t column_base = 0);

}  // namespace fraiseql::expr::detail
