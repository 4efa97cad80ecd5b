#pragma once

// The evaluator's value handle and entry points.

#include "runtime/expr/detail/ast.hpp"

#include <boost/json/memory_resource.hpp>
#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <new>
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

  /// Makes this handle own its value (copying a borrowed one into `sp`).
  void detach(const boost::json::storage_ptr& sp) {
    if (ptr_) {
      own_ = boost::json::value(*ptr_, sp);
      ptr_ = nullptr;
    }
  }

  /// Moves an owned value out (keeping its storage), or copies a borrowed one into `sp`.
  boost::json::value release(const boost::json::storage_ptr& sp) && {
    if (ptr_) return boost::json::value(*ptr_, sp);
    return std::move(own_);
  }

  /// The value in the default memory resource (for the public API): moved when possible.
  boost::json::value take() && {
    if (!ptr_ && own_.storage().get() == boost::json::storage_ptr().get()) return std::move(own_);
    return boost::json::value(get(), boost::json::storage_ptr());
  }

 private:
  boost::json::value own_;
  const boost::json::value* ptr_;
};

/// Thrown when an evaluation exceeds its memory budget.
struct budget_exceeded : std::bad_alloc {
  const char* what() const noexcept override { return "evaluation memory budget exceeded"; }
};

/// The memory resource of one evaluation: every intermediate JSON value is allocated here,
/// and live bytes beyond the budget throw budget_exceeded. Lives on the caller's stack and
/// must outlive the jref returned by evaluate_ref.
class eval_arena final : public boost::json::memory_resource {
 public:
  explicit eval_arena(std::size_t limit = max_evaluation_bytes) noexcept : limit_(limit) {}
  eval_arena(const eval_arena&) = delete;
  eval_arena& operator=(const eval_arena&) = delete;
  ~eval_arena() override = default;

  boost::json::storage_ptr storage() noexcept { return boost::json::storage_ptr(this); }

 private:
  void* do_allocate(std::size_t n, std::size_t align) override;
  void do_deallocate(void* p, std::size_t n, std::size_t align) override;
  bool do_is_equal(const boost::json::memory_resource& other) const noexcept override {
    return this == &other;
  }
  std::size_t used_ = 0;
  std::size_t limit_;
};

/// Evaluates `p` against `root`. The result may borrow from `root` and from `p`, and owned
/// results live in `arena`. Throws eval_failure and budget_exceeded.
jref evaluate_ref(const program& p, const boost::json::value& root, const eval_options& opts,
                  eval_arena& arena);

}  // namespace fraiseql::expr::detail
