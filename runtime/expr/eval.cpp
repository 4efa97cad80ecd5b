// The tree-walking evaluator. Values are passed around as `jref`s that borrow from the input
// wherever possible, so field access, comparisons and boolean logic never copy or allocate.

#include "runtime/expr/detail/eval_impl.hpp"
#include "runtime/expr/detail/json_util.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <cstdint>
#include <new>

namespace fraiseql::expr::detail {

namespace json = boost::json;

const json::value& null_value() noexcept {
  static const json::value v;
  return v;
}

const json::value& bool_value(bool b) noexcept {
  static const json::value t(true);
  static const json::value f(false);
  return b ? t : f;
}

namespace {

// Appends a result to a projection/multi-select output, moving owned values.
inline void push(json::array& out, jref&& r) {
  if (r.owned()) {
    out.push_back(std::move(r).release(out.storage()));
  } else {
    out.push_back(r.get());
  }
}

// A reference to `elem`, an element of `container`; copied when the container is owned
// (and therefore dies with the caller's frame).
inline jref pick(const jref& container, const json::value& elem, const context& ctx) {
  if (container.owned()) return jref(json::value(elem, ctx.sp));
  return jref(elem);
}

inline jref lookup_field(const std::string& name, bool alias, const json::value& cur,
                         const context& ctx) {
  if (cur.is_object()) {
    if (const json::value* v = cur.get_object().if_contains(name)) return jref(*v);
  }
  if (alias && ctx.event_alias && &cur == ctx.root) return jref(*ctx.root);
  return jref();
}

std::int64_t adjust_slice_endpoint(std::int64_t v, std::int64_t len, std::int64_t step) {
  if (v < 0) {
    v += len;
    if (v < 0) v = step < 0 ? -1 : 0;
  } else if (v >= len) {
    v = step < 0 ? len - 1 : len;
  }
  return v;
}

jref eval_slice(const node& n, const json::value& cur, const context& ctx) {
  jref l = eval(*n.lhs, cur, ctx);
  if (!l->is_array()) return jref();
  const json::array& a = l->get_array();
  const auto len = static_cast<std::int64_t>(a.size());
  const std::int64_t step = n.step;
  if (step == 0) fail(error_kind::invalid_value, "slice step cannot be 0");
  const std::int64_t start =
      n.has_start ? adjust_slice_endpoint(n.start, len, step) : (step > 0 ? 0 : len - 1);
  const std::int64_t stop =
      n.has_stop ? adjust_slice_endpoint(n.stop, len, step) : (step > 0 ? len : -1);
  json::value out(json::array_kind, ctx.sp);
  json::array& o = out.get_array();
  if (step > 0) {
    for (std::int64_t i = start; i < stop; i += step) o.push_back(a[static_cast<std::size_t>(i)]);
  } else {
    for (std::int64_t i = start; i > stop; i += step) o.push_back(a[static_cast<std::size_t>(i)]);
  }
  return jref(std::move(out));
}

jref eval_compare(const node& n, const json::value& cur, const context& ctx) {
  const jref l = eval(*n.lhs, cur, ctx);
  const jref r = eval(*n.rhs, cur, ctx);
  const json::value& a = l.get();
  const json::value& b = r.get();
  switch (n.op) {
    case compare_op::eq:
      return jref(bool_value(json_equal(a, b)));
    case compare_op::ne:
      return jref(bool_value(!json_equal(a, b)));
    default:
      break;
  }
  // Ordering comparisons are only defined on numbers; anything else gives null.
  if (!is_number(a) || !is_number(b)) return jref();
  const int c = compare_numbers(a, b);
  switch (n.op) {
    case compare_op::lt:
      return jref(bool_value(c < 0));
    case compare_op::le:
      return jref(bool_value(c <= 0));
    case compare_op::gt:
      return jref(bool_value(c > 0));
    default:
      return jref(bool_value(c >= 0));
  }
}

}  // namespace

jref eval(const node& n, const json::value& cur, const context& ctx) {
  switch (n.kind) {
    case node_kind::current:
      return jref(cur);

    case node_kind::field:
      return lookup_field(n.name, n.event_alias, cur, ctx);

    case node_kind::field_path: {
      const json::value* v = &cur;
      for (const std::string& name : n.names) {
        const json::value* next = v->is_object() ? v->get_object().if_contains(name) : nullptr;
        if (!next) {
          if (n.event_alias && ctx.event_alias && v == ctx.root && name == "event") {
            next = ctx.root;
          } else {
            return jref();
          }
        }
        v = next;
      }
      return jref(*v);
    }

    case node_kind::literal:
      return jref(n.literal);

    case node_kind::index: {
      jref l = eval(*n.lhs, cur, ctx);
      if (!l->is_array()) return jref();
      const json::array& a = l->get_array();
      std::int64_t i = n.index;
      const auto len = static_cast<std::int64_t>(a.size());
      if (i < 0) i += len;
      if (i < 0 || i >= len) return jref();
      return pick(l, a[static_cast<std::size_t>(i)], ctx);
    }

    case node_kind::slice:
      return eval_slice(n, cur, ctx);

    case node_kind::subexpr:
    case node_kind::pipe: {
      jref l = eval(*n.lhs, cur, ctx);
      jref r = eval(*n.rhs, l.get(), ctx);
      if (l.owned() && !r.owned()) r.detach(ctx.sp);
      return r;
    }

    case node_kind::list_projection: {
      jref l = eval(*n.lhs, cur, ctx);
      if (!l->is_array()) return jref();
      const json::array& a = l->get_array();
      json::value out(json::array_kind, ctx.sp);
      json::array& o = out.get_array();
      o.reserve(a.size());
      const bool identity = n.rhs->kind == node_kind::current;
      for (const json::value& e : a) {
        if (identity) {
          if (!e.is_null()) o.push_back(e);
          continue;
        }
        jref r = eval(*n.rhs, e, ctx);
        if (!r->is_null()) push(o, std::move(r));
      }
      return jref(std::move(out));
    }

    case node_kind::value_projection: {
      jref l = eval(*n.lhs, cur, ctx);
      if (!l->is_object()) return jref();
      const json::object& obj = l->get_object();
      json::value out(json::array_kind, ctx.sp);
      json::array& o = out.get_array();
      o.reserve(obj.size());
      for (const auto& kv : obj) {
        jref r = eval(*n.rhs, kv.value(), ctx);
        if (!r->is_null()) push(o, std::move(r));
      }
      return jref(std::move(out));
    }

    case node_kind::filter_projection: {
      jref l = eval(*n.lhs, cur, ctx);
      if (!l->is_array()) return jref();
      const json::array& a = l->get_array();
      json::value out(json::array_kind, ctx.sp);
      json::array& o = out.get_array();
      const bool identity = n.rhs->kind == node_kind::current;
      for (const json::value& e : a) {
        if (!truthy(eval(*n.cond, e, ctx).get())) continue;
        if (identity) {
          if (!e.is_null()) o.push_back(e);
          continue;
        }
        jref r = eval(*n.rhs, e, ctx);
        if (!r->is_null()) push(o, std::move(r));
      }
      return jref(std::move(out));
    }

    case node_kind::flatten: {
      jref l = eval(*n.lhs, cur, ctx);
      if (!l->is_array()) return jref();
      json::value out(json::array_kind, ctx.sp);
      json::array& o = out.get_array();
      for (const json::value& e : l->get_array()) {
        if (e.is_array()) {
          for (const json::value& inner : e.get_array()) o.push_back(inner);
        } else {
          o.push_back(e);
        }
      }
      return jref(std::move(out));
    }

    case node_kind::multi_list: {
      if (cur.is_null()) return jref();
      json::value out(json::array_kind, ctx.sp);
      json::array& o = out.get_array();
      o.reserve(n.items.size());
      for (const node* item : n.items) push(o, eval(*item, cur, ctx));
      return jref(std::move(out));
    }

    case node_kind::multi_hash: {
      if (cur.is_null()) return jref();
      json::value out(json::object_kind, ctx.sp);
      json::object& o = out.get_object();
      for (std::size_t i = 0; i < n.items.size(); ++i) {
        jref r = eval(*n.items[i], cur, ctx);
        if (r.owned()) {
          o.insert_or_assign(n.names[i], std::move(r).release(ctx.sp));
        } else {
          o.insert_or_assign(n.names[i], r.get());
        }
      }
      return jref(std::move(out));
    }

    case node_kind::or_: {
      jref l = eval(*n.lhs, cur, ctx);
      if (truthy(l.get())) return l;
      return eval(*n.rhs, cur, ctx);
    }

    case node_kind::and_: {
      jref l = eval(*n.lhs, cur, ctx);
      if (!truthy(l.get())) return l;
      return eval(*n.rhs, cur, ctx);
    }

    case node_kind::not_:
      return jref(bool_value(!truthy(eval(*n.lhs, cur, ctx).get())));

    case node_kind::compare:
      return eval_compare(n, cur, ctx);

    case node_kind::function:
      return call_function(n, cur, ctx);

    case node_kind::expref:
      fail(error_kind::invalid_type, "an expression reference cannot be used as a value");
  }
  return jref();
}

void* eval_arena::do_allocate(std::size_t n, std::size_t align) {
  if (n > limit_ - used_) throw budget_exceeded();
  void* p = ::operator new(n, std::align_val_t(align));
  used_ += n;
  return p;
}

void eval_arena::do_deallocate(void* p, std::size_t n, std::size_t align) {
  ::operator delete(p, std::align_val_t(align));
  used_ -= n;
}

jref evaluate_ref(const program& p, const json::value& root, const eval_options& opts,
                  eval_arena& arena) {
  if (!p.root) return jref();
  const context ctx{&root, opts.event_alias, arena.storage()};
  return eval(*p.root, root, ctx);
}

json::value evaluate_copy(const program& p, const json::value& root, const eval_options& opts) {
  eval_arena arena;
  return evaluate_ref(p, root, opts, arena).take();
}

bool evaluate_truthy(const program& p, const json::value& root, const eval_options& opts) {
  eval_arena arena;
  return truthy(evaluate_ref(p, root, opts, arena).get());
}

}  // namespace fraiseql::expr::detail
