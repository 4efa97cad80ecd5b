#pragma once

// The evaluator's value handle and entry points.

#include "runtime/expr/detail/ast.hpp"

#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>

#include <utility>

namespace fraiseql::expr::detail {

const boost::json::value& null_value() noexcept;
const boost::json::value& bool_value(bool b) noexcept;

/// A JSON value that is either borrowed (a pointer into the input document, an AST literal or
/// a static constant) or owned (computed). Borrowed results never outlive what they point to:
/// whoever owns an intermediate value detaches results that may point into it.
class jref {
 public:
  jref() noexcept : ptr_(&null_value()) {}
  explicit jref(const boost::json::value& borrowed) noexcept : ptr_(&borrowed) {}
  explicit jref(boost::json::value&& owned) noexcept : own_(std::move(owned)), ptr_(nullptr) {}
  jref(jref&& o) noexcept : own_(std::move(o.own_)), ptr_(o.ptr_) {}
  jref& operator=(jref&& o) noexcept {
    own_ = std::move(o.own_);
    ptr_ = o.ptr_;
    return *this;
  }
  jref(const jref&) = delete;
  jref& operator=(const jref&) = delete;

  const boost::json::value& get() const noexcept { return ptr_ ? *ptr_ : own_; }
  const boost::json::value* operator->() const noexcept { return &get(); }
  bool owned() const noexcept { return ptr_ == nullptr; }

  /// Makes this handle own its value (copying a borrowed one).
  void detach() {
    if (ptr_) {
      own_ = boost::json::value(*ptr_, boost::json::storage_ptr());
      ptr_ = nullptr;
    }
  }

  /// Moves an owned value out, or copies a borrowed one (default memory resource).
  boost::json::value take() && {
    if (ptr_) return boost::json::value(*ptr_, boost::json::storage_ptr());
    return std::move(own_);
  }

 private:
  boost::json::value own_;
  const boost::json::value* ptr_;
};

/// Evaluates `p` against `root`. The result may borrow from `root` and from `p`.
/// Throws eval_failure.
jref evaluate_ref(const program& p, const boost::json::value& root, const eval_options& opts);

}  // namespace fraiseql::expr::detail
