#pragma once

// Internals shared by the evaluator core (eval.cpp) and the functions (functions.cpp).

#include "runtime/expr/detail/ast.hpp"
#include "runtime/expr/detail/eval.hpp"

#include <boost/json/value.hpp>

namespace fraiseql::expr::detail {

struct context {
  const boost::json::value* root;
  bool event_alias;
  boost::json::storage_ptr sp;  // where intermediate values are allocated (the eval_arena)
};

/// Evaluates `n` against the current node `cur`. The result may borrow from `cur`, from the
/// root document and from the AST.
jref eval(const node& n, const boost::json::value& cur, const context& ctx);

/// Evaluates a function call node.
jref call_function(const node& n, const boost::json::value& cur, const context& ctx);

}  // namespace fraiseql::expr::detail
