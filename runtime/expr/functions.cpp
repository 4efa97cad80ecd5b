// Built-in JMESPath functions and the change-detection extensions.

#include "runtime/expr/detail/eval_impl.hpp"
#include "runtime/expr/detail/json_util.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

namespace fraiseql::expr::detail {

namespace json = boost::json;

namespace {

// Sorted by name for readability; looked up linearly (there are few and this runs at compile).
constexpr function_info function_table[] = {
    {"abs", function_id::abs, 1, 1},
    {"avg", function_id::avg, 1, 1},
    {"ceil", function_id::ceil, 1, 1},
    {"changed", function_id::changed, 1, 1},
    {"changed_from", function_id::changed_from, 2, 2},
    {"changed_to", function_id::changed_to, 2, 2},
    {"contains", function_id::contains, 2, 2},
    {"ends_with", function_id::ends_with, 2, 2},
    {"floor", function_id::floor, 1, 1},
    {"has_field", function_id::has_field, 1, 1},
    {"join", function_id::join, 2, 2},
    {"keys", function_id::keys, 1, 1},
    {"length", function_id::length, 1, 1},
    {"map", function_id::map, 2, 2},
    {"max", function_id::max, 1, 1},
    {"max_by", function_id::max_by, 2, 2},
    {"merge", function_id::merge, 1, -1},
    {"min", function_id::min, 1, 1},
    {"min_by", function_id::min_by, 2, 2},
    {"not_null", function_id::not_null, 1, -1},
    {"reverse", function_id::reverse, 1, 1},
    {"sort", function_id::sort, 1, 1},
    {"sort_by", function_id::sort_by, 2, 2},
    {"starts_with", function_id::starts_with, 2, 2},
    {"sum", function_id::sum, 1, 1},
    {"to_array", function_id::to_array, 1, 1},
    {"to_number", function_id::to_number, 1, 1},
    {"to_string", function_id::to_string, 1, 1},
    {"type", function_id::type, 1, 1},
    {"values", function_id::values, 1, 1},
};

struct arg {
  jref value;
  const node* expr = nullptr;  // set for `&expr` arguments
};

class call {
 public:
  call(const node& n, const json::value& cur, const context& ctx) : n_(n), ctx_(ctx) {
    const std::size_t argc = n.items.size();
    if (argc > inline_capacity) {
      heap_.resize(argc);
      args_ = heap_.data();
    } else {
      args_ = inline_;
    }
    for (std::size_t i = 0; i < argc; ++i) {
      const node& a = *n.items[i];
      if (a.kind == node_kind::expref) {
        args_[i].expr = a.lhs;
      } else {
        args_[i].value = eval(a, cur, ctx);
      }
    }
  }

  std::size_t size() const noexcept { return n_.items.size(); }
  const context& ctx() const noexcept { return ctx_; }
  const json::storage_ptr& sp() const noexcept { return ctx_.sp; }
  std::string_view name() const noexcept { return n_.fn->name; }
  arg& raw(std::size_t i) noexcept { return args_[i]; }

  [[noreturn]] void type_error(std::size_t i, std::string_view expected,
                               std::string_view got) const {
    std::string msg(name());
    msg += "(): argument ";
    msg += std::to_string(i + 1);
    msg += " must be ";
    msg += expected;
    msg += ", got ";
    msg += got;
    fail(error_kind::invalid_type, std::move(msg));
  }

  const json::value& any(std::size_t i) const {
    if (args_[i].expr) type_error(i, "a value", "an expression reference");
    return args_[i].value.get();
  }
  const json::value& number(std::size_t i) const {
    const json::value& v = any(i);
    if (!is_number(v)) type_error(i, "a number", type_name(v));
    return v;
  }
  std::string_view string(std::size_t i) const {
    const json::value& v = any(i);
    if (!v.is_string()) type_error(i, "a string", type_name(v));
    return v.get_string();
  }
  const json::array& array(std::size_t i) const {
    const json::value& v = any(i);
    if (!v.is_array()) type_error(i, "an array", type_name(v));
    return v.get_array();
  }
  const json::object& object(std::size_t i) const {
    const json::value& v = any(i);
    if (!v.is_object()) type_error(i, "an object", type_name(v));
    return v.get_object();
  }
  const node& expr(std::size_t i) const {
    if (!args_[i].expr) type_error(i, "an expression reference (&expr)", type_name(any(i)));
    return *args_[i].expr;
  }
  // An array whose elements are all numbers (true) or all strings (false); empty -> true.
  bool numbers_or_strings(std::size_t i, const json::array& a) const {
    if (a.empty()) return true;
    const bool numbers = is_number(a[0]);
    if (!numbers && !a[0].is_string()) {
      type_error(i, "an array of numbers or an array of strings",
                 std::string("an array containing ") + type_name(a[0]));
    }
    for (const json::value& e : a) {
      if (numbers ? !is_number(e) : !e.is_string()) {
        type_error(i, "an array of numbers or an array of strings", "an array mixing types");
      }
    }
    return numbers;
  }
  void all_numbers(std::size_t i, const json::array& a) const {
    for (const json::value& e : a) {
      if (!is_number(e)) {
        type_error(i, "an array of numbers", std::string("an array containing ") + type_name(e));
      }
    }
  }

  // A reference to `elem`, an element of argument i.
  jref pick(std::size_t i, const json::value& elem) const {
    if (args_[i].value.owned()) return jref(json::value(elem, ctx_.sp));
    return jref(elem);
  }

 private:
  static constexpr std::size_t inline_capacity = 3;
  const node& n_;
  const context& ctx_;
  arg inline_[inline_capacity];
  std::vector<arg> heap_;
  arg* args_;
};

jref make(json::value v) {
  return jref(std::move(v));
}

json::value integral(double d) {
  if (std::isfinite(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
    return json::value(static_cast<std::int64_t>(d));
  }
  return json::value(d);
}

// Sum with integer arithmetic while exact, like the reference implementation.
json::value sum_of(const json::array& a) {
  std::int64_t isum = 0;
  bool integer = true;
  double dsum = 0;
  for (const json::value& e : a) {
    if (integer) {
      std::int64_t x = 0;
      bool fits = false;
      if (e.is_int64()) {
        x = e.get_int64();
        fits = true;
      } else if (e.is_uint64() && e.get_uint64() <= std::uint64_t(INT64_MAX)) {
        x = static_cast<std::int64_t>(e.get_uint64());
        fits = true;
      }
      std::int64_t next = 0;
      if (fits && !__builtin_add_overflow(isum, x, &next)) {
        isum = next;
        continue;
      }
      integer = false;
      dsum = static_cast<double>(isum);
    }
    dsum += number_as_double(e);
  }
  return integer ? json::value(isum) : json::value(dsum);
}

int compare_same_kind(const json::value& a, const json::value& b) {
  if (a.is_string()) {
    const int c = std::string_view(a.get_string()).compare(std::string_view(b.get_string()));
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  return compare_numbers(a, b);
}

const json::value* path_lookup(const json::value* obj, std::string_view field) {
  if (!obj || !obj->is_object()) return nullptr;
  if (const json::value* v = obj->get_object().if_contains(field)) return v;
  if (field.find('.') == std::string_view::npos) return nullptr;
  const json::value* cur = obj;
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = field.find('.', start);
    const std::string_view part =
        field.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!cur->is_object()) return nullptr;
    cur = cur->get_object().if_contains(part);
    if (!cur) return nullptr;
    if (dot == std::string_view::npos) return cur;
    start = dot + 1;
  }
}

const json::value* envelope_member(const context& ctx, std::string_view key) {
  if (!ctx.root->is_object()) return nullptr;
  return ctx.root->get_object().if_contains(key);
}

// For changed*(): the new and old values of `field`.
std::pair<const json::value*, const json::value*> change_of(const call& c, std::string_view field) {
  const json::value* old = envelope_member(c.ctx(), "old");
  if (!old || !old->is_object()) {
    fail(error_kind::invalid_value,
         std::string(c.name()) +
             "(): the event has no pre-image (no \"old\" object), so changes cannot be detected");
  }
  const json::value* now = path_lookup(envelope_member(c.ctx(), "data"), field);
  const json::value* before = path_lookup(old, field);
  return {now ? now : &null_value(), before ? before : &null_value()};
}

// max/min and max_by/min_by: index of the best element (first on ties), or npos if empty.
template <class KeyAt>
std::size_t best_index(std::size_t count, bool want_max, KeyAt key_at) {
  std::size_t best = static_cast<std::size_t>(-1);
  jref best_key;
  for (std::size_t i = 0; i < count; ++i) {
    jref k = key_at(i);
    if (best == static_cast<std::size_t>(-1)) {
      best = i;
      best_key = std::move(k);
      continue;
    }
    const int c = compare_same_kind(k.get(), best_key.get());
    if (want_max ? c > 0 : c < 0) {
      best = i;
      best_key = std::move(k);
    }
  }
  return best;
}

jref by_function(call& c, bool want_max) {
  const json::array& a = c.array(0);
  const node& e = c.expr(1);
  if (a.empty()) return jref();
  bool numbers = false;
  auto key_at = [&](std::size_t i) {
    jref k = eval(e, a[i], c.ctx());
    const json::value& kv = k.get();
    if (i == 0) {
      if (!is_number(kv) && !kv.is_string()) {
        c.type_error(1, "an expression returning numbers or strings",
                     std::string("an expression returning ") + type_name(kv));
      }
      numbers = is_number(kv);
    } else if (numbers ? !is_number(kv) : !kv.is_string()) {
      c.type_error(1, "an expression returning only numbers or only strings",
                   std::string("an expression also returning ") + type_name(kv));
    }
    return k;  // may borrow from the argument array, which outlives this call
  };
  const std::size_t best = best_index(a.size(), want_max, key_at);
  return c.pick(0, a[best]);
}

}  // namespace

const function_info* find_function(std::string_view name) noexcept {
  for (const function_info& f : function_table) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

jref call_function(const node& n, const json::value& cur, const context& ctx) {
  call c(n, cur, ctx);
  switch (n.fn->id) {
    case function_id::abs: {
      const json::value& v = c.number(0);
      if (v.is_int64()) {
        const std::int64_t x = v.get_int64();
        if (x == std::numeric_limits<std::int64_t>::min()) {
          return make(json::value(std::uint64_t{1} << 63));
        }
        return make(json::value(x < 0 ? -x : x));
      }
      if (v.is_uint64()) return c.pick(0, v);
      return make(json::value(std::fabs(v.get_double())));
    }

    case function_id::avg: {
      const json::array& a = c.array(0);
      c.all_numbers(0, a);
      if (a.empty()) return jref();
      const json::value s = sum_of(a);
      return make(json::value(number_as_double(s) / static_cast<double>(a.size())));
    }

    case function_id::ceil:
    case function_id::floor: {
      const json::value& v = c.number(0);
      if (!v.is_double()) return c.pick(0, v);
      const double d =
          n.fn->id == function_id::ceil ? std::ceil(v.get_double()) : std::floor(v.get_double());
      return make(integral(d));
    }

    case function_id::contains: {
      const json::value& subject = c.any(0);
      const json::value& search = c.any(1);
      if (subject.is_string()) {
        if (!search.is_string()) return jref(bool_value(false));
        const std::string_view s = subject.get_string();
        return jref(bool_value(s.find(std::string_view(search.get_string())) != s.npos));
      }
      if (!subject.is_array()) c.type_error(0, "an array or a string", type_name(subject));
      for (const json::value& e : subject.get_array()) {
        if (json_equal(e, search)) return jref(bool_value(true));
      }
      return jref(bool_value(false));
    }

    case function_id::ends_with: {
      const std::string_view s = c.string(0);
      const std::string_view suffix = c.string(1);
      return jref(bool_value(s.size() >= suffix.size() &&
                             s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0));
    }

    case function_id::starts_with: {
      const std::string_view s = c.string(0);
      const std::string_view prefix = c.string(1);
      return jref(bool_value(s.substr(0, prefix.size()) == prefix));
    }

    case function_id::join: {
      const std::string_view glue = c.string(0);
      const json::array& a = c.array(1);
      std::string out;
      bool first = true;
      for (const json::value& e : a) {
        if (!e.is_string()) {
          c.type_error(1, "an array of strings",
                       std::string("an array containing ") + type_name(e));
        }
        if (!first) out.append(glue);
        first = false;
        out.append(e.get_string().data(), e.get_string().size());
      }
      return make(json::value(out, c.sp()));
    }

    case function_id::keys: {
      const json::object& o = c.object(0);
      json::value out(json::array_kind, c.sp());
      json::array& arr = out.get_array();
      arr.reserve(o.size());
      for (const auto& kv : o) arr.emplace_back(kv.key());
      return make(std::move(out));
    }

    case function_id::values: {
      const json::object& o = c.object(0);
      json::value out(json::array_kind, c.sp());
      json::array& arr = out.get_array();
      arr.reserve(o.size());
      for (const auto& kv : o) arr.push_back(kv.value());
      return make(std::move(out));
    }

    case function_id::length: {
      const json::value& v = c.any(0);
      std::size_t len = 0;
      if (v.is_string()) {
        len = utf8_length(v.get_string());
      } else if (v.is_array()) {
        len = v.get_array().size();
      } else if (v.is_object()) {
        len = v.get_object().size();
      } else {
        c.type_error(0, "a string, an array or an object", type_name(v));
      }
      return make(json::value(static_cast<std::int64_t>(len)));
    }

    case function_id::map: {
      const node& e = c.expr(0);
      const json::array& a = c.array(1);
      json::value out(json::array_kind, c.sp());
      json::array& arr = out.get_array();
      arr.reserve(a.size());
      for (const json::value& elem : a) {
        jref r = eval(e, elem, ctx);
        if (r.owned()) {
          arr.push_back(std::move(r).release(c.sp()));
        } else {
          arr.push_back(r.get());
        }
      }
      return make(std::move(out));
    }

    case function_id::max:
    case function_id::min: {
      const json::array& a = c.array(0);
      c.numbers_or_strings(0, a);
      if (a.empty()) return jref();
      const std::size_t best = best_index(a.size(), n.fn->id == function_id::max,
                                          [&](std::size_t i) { return jref(a[i]); });
      return c.pick(0, a[best]);
    }

    case function_id::max_by:
      return by_function(c, true);
    case function_id::min_by:
      return by_function(c, false);

    case function_id::merge: {
      json::value out(json::object_kind, c.sp());
      json::object& o = out.get_object();
      for (std::size_t i = 0; i < c.size(); ++i) {
        for (const auto& kv : c.object(i)) o.insert_or_assign(kv.key(), kv.value());
      }
      return make(std::move(out));
    }

    case function_id::not_null: {
      for (std::size_t i = 0; i < c.size(); ++i) {
        if (!c.any(i).is_null()) return std::move(c.raw(i).value);
      }
      return jref();
    }

    case function_id::reverse: {
      const json::value& v = c.any(0);
      if (v.is_string()) return make(json::value(utf8_reverse(v.get_string()), c.sp()));
      if (!v.is_array()) c.type_error(0, "an array or a string", type_name(v));
      const json::array& a = v.get_array();
      json::value out(json::array_kind, c.sp());
      json::array& arr = out.get_array();
      arr.reserve(a.size());
      for (std::size_t i = a.size(); i-- > 0;) arr.push_back(a[i]);
      return make(std::move(out));
    }

    case function_id::sort: {
      const json::array& a = c.array(0);
      c.numbers_or_strings(0, a);
      std::vector<const json::value*> order;
      order.reserve(a.size());
      for (const json::value& e : a) order.push_back(&e);
      std::stable_sort(order.begin(), order.end(), [](const json::value* x, const json::value* y) {
        return compare_same_kind(*x, *y) < 0;
      });
      json::value out(json::array_kind, c.sp());
      json::array& arr = out.get_array();
      arr.reserve(a.size());
      for (const json::value* e : order) arr.push_back(*e);
      return make(std::move(out));
    }

    case function_id::sort_by: {
      const json::array& a = c.array(0);
      const node& e = c.expr(1);
      std::vector<jref> keys;
      keys.reserve(a.size());
      bool numbers = false;
      for (std::size_t i = 0; i < a.size(); ++i) {
        jref k = eval(e, a[i], ctx);
        const json::value& kv = k.get();
        if (i == 0) {
          if (!is_number(kv) && !kv.is_string()) {
            c.type_error(1, "an expression returning numbers or strings",
                         std::string("an expression returning ") + type_name(kv));
          }
          numbers = is_number(kv);
        } else if (numbers ? !is_number(kv) : !kv.is_string()) {
          c.type_error(1, "an expression returning only numbers or only strings",
                       std::string("an expression also returning ") + type_name(kv));
        }
        keys.push_back(std::move(k));
      }
      std::vector<std::size_t> order(a.size());
      std::iota(order.begin(), order.end(), std::size_t{0});
      std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
        return compare_same_kind(keys[x].get(), keys[y].get()) < 0;
      });
      json::value out(json::array_kind, c.sp());
      json::array& arr = out.get_array();
      arr.reserve(a.size());
      for (std::size_t i : order) arr.push_back(a[i]);
      return make(std::move(out));
    }

    case function_id::sum: {
      const json::array& a = c.array(0);
      c.all_numbers(0, a);
      return make(sum_of(a));
    }

    case function_id::to_array: {
      const json::value& v = c.any(0);
      if (v.is_array()) return std::move(c.raw(0).value);
      json::value out(json::array_kind, c.sp());
      out.get_array().push_back(v);
      return make(std::move(out));
    }

    case function_id::to_string: {
      const json::value& v = c.any(0);
      if (v.is_string()) return std::move(c.raw(0).value);
      std::string s;
      append_json(s, v);
      return make(json::value(s, c.sp()));
    }

    case function_id::to_number: {
      const json::value& v = c.any(0);
      if (is_number(v)) return std::move(c.raw(0).value);
      if (!v.is_string()) return jref();
      json::value out;
      if (!parse_json_number(v.get_string(), out)) return jref();
      return make(std::move(out));
    }

    case function_id::type: {
      if (c.raw(0).expr) return make(json::value("expression", c.sp()));
      return make(json::value(type_name(c.any(0)), c.sp()));
    }

    case function_id::changed: {
      const auto [now, before] = change_of(c, c.string(0));
      return jref(bool_value(!json_equal(*now, *before)));
    }

    case function_id::changed_to:
    case function_id::changed_from: {
      const std::string_view field = c.string(0);
      const json::value& expected = c.any(1);
      const auto [now, before] = change_of(c, field);
      if (json_equal(*now, *before)) return jref(bool_value(false));
      const json::value& side = n.fn->id == function_id::changed_to ? *now : *before;
      return jref(bool_value(json_equal(side, expected)));
    }

    case function_id::has_field: {
      const std::string_view field = c.string(0);
      return jref(bool_value(path_lookup(envelope_member(ctx, "data"), field) != nullptr));
    }
  }
  return jref();
}

}  // namespace fraiseql::expr::detail
