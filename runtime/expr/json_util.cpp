#include "runtime/expr/detail/json_util.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/string.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <system_error>
#include <vector>

namespace fraiseql::expr::detail {

void fail(error_kind kind, std::string message) {
  throw eval_failure{kind, std::move(message)};
}

double number_as_double(const json::value& v) noexcept {
  switch (v.kind()) {
    case json::kind::int64:
      return static_cast<double>(v.get_int64());
    case json::kind::uint64:
      return static_cast<double>(v.get_uint64());
    case json::kind::double_:
      return v.get_double();
    default:
      return 0.0;
  }
}

namespace {

constexpr double two_pow_63 = 9223372036854775808.0;
constexpr double two_pow_64 = 18446744073709551616.0;

template <class A, class B>
int three_way(A a, B b) noexcept {
  return a < b ? -1 : (b < a ? 1 : 0);
}

// NaN (which only arithmetic on infinities can produce) sorts above every other number and
// equals itself, so that comparisons stay a total order.
int compare_int_double(std::int64_t i, double d) noexcept {
  if (std::isnan(d)) return -1;
  if (d >= two_pow_63) return -1;
  if (d < -two_pow_63) return 1;
  const double t = std::trunc(d);
  const auto ti = static_cast<std::int64_t>(t);
  if (i != ti) return three_way(i, ti);
  const double frac = d - t;
  return frac > 0 ? -1 : (frac < 0 ? 1 : 0);
}

int compare_uint_double(std::uint64_t u, double d) noexcept {
  if (std::isnan(d)) return -1;
  if (d < 0) return 1;
  if (d >= two_pow_64) return -1;
  const double t = std::trunc(d);
  const auto tu = static_cast<std::uint64_t>(t);
  if (u != tu) return three_way(u, tu);
  const double frac = d - t;
  return frac > 0 ? -1 : 0;
}

int compare_int_uint(std::int64_t i, std::uint64_t u) noexcept {
  if (i < 0) return -1;
  return three_way(static_cast<std::uint64_t>(i), u);
}

bool equal_impl(const json::value& a, const json::value& b, std::size_t depth) {
  if (is_number(a) && is_number(b)) return compare_numbers(a, b) == 0;
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case json::kind::null:
      return true;
    case json::kind::bool_:
      return a.get_bool() == b.get_bool();
    case json::kind::string:
      return a.get_string() == b.get_string();
    case json::kind::array: {
      const auto& x = a.get_array();
      const auto& y = b.get_array();
      if (x.size() != y.size()) return false;
      if (depth >= max_nesting_depth) fail(error_kind::depth, "JSON data nested too deeply");
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (!equal_impl(x[i], y[i], depth + 1)) return false;
      }
      return true;
    }
    case json::kind::object: {
      const auto& x = a.get_object();
      const auto& y = b.get_object();
      if (x.size() != y.size()) return false;
      if (depth >= max_nesting_depth) fail(error_kind::depth, "JSON data nested too deeply");
      for (const auto& kv : x) {
        const json::value* other = y.if_contains(kv.key());
        if (!other || !equal_impl(kv.value(), *other, depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;  // numbers handled above
  }
}

// Length of the valid UTF-8 sequence starting at p (n bytes available), or 0 when invalid.
std::size_t utf8_sequence(const unsigned char* p, std::size_t n) noexcept {
  const unsigned c = p[0];
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;
  auto cont = [&](std::size_t k) { return k < n && (p[k] & 0xC0u) == 0x80u; };
  if (c < 0xE0) return cont(1) ? 2 : 0;
  if (c < 0xF0) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;   // overlong
    if (c == 0xED && p[1] >= 0xA0) return 0;  // surrogates
    return 3;
  }
  if (c < 0xF5) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0;   // overlong
    if (c == 0xF4 && p[1] >= 0x90) return 0;  // > U+10FFFF
    return 4;
  }
  return 0;
}

void append_json_impl(std::string& out, const json::value& v, std::size_t depth) {
  switch (v.kind()) {
    case json::kind::null:
      out += "null";
      return;
    case json::kind::bool_:
      out += v.get_bool() ? "true" : "false";
      return;
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      append_number(out, v);
      return;
    case json::kind::string:
      out += '"';
      append_escaped(out, v.get_string());
      out += '"';
      return;
    case json::kind::array: {
      if (depth >= max_nesting_depth) fail(error_kind::depth, "JSON data nested too deeply");
      out += '[';
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out += ',';
        first = false;
        append_json_impl(out, e, depth + 1);
      }
      out += ']';
      return;
    }
    case json::kind::object: {
      if (depth >= max_nesting_depth) fail(error_kind::depth, "JSON data nested too deeply");
      out += '{';
      bool first = true;
      for (const auto& kv : v.get_object()) {
        if (!first) out += ',';
        first = false;
        out += '"';
        append_escaped(out, kv.key());
        out += "\":";
        append_json_impl(out, kv.value(), depth + 1);
      }
      out += '}';
      return;
    }
  }
}

}  // namespace

int compare_numbers(const json::value& a, const json::value& b) noexcept {
  switch (a.kind()) {
    case json::kind::int64: {
      const std::int64_t x = a.get_int64();
      if (b.is_int64()) return three_way(x, b.get_int64());
      if (b.is_uint64()) return compare_int_uint(x, b.get_uint64());
      return compare_int_double(x, b.get_double());
    }
    case json::kind::uint64: {
      const std::uint64_t x = a.get_uint64();
      if (b.is_int64()) return -compare_int_uint(b.get_int64(), x);
      if (b.is_uint64()) return three_way(x, b.get_uint64());
      return compare_uint_double(x, b.get_double());
    }
    default: {
      const double x = a.get_double();
      if (b.is_int64()) return -compare_int_double(b.get_int64(), x);
      if (b.is_uint64()) return -compare_uint_double(b.get_uint64(), x);
      const double y = b.get_double();
      if (std::isnan(x) || std::isnan(y)) return std::isnan(x) - std::isnan(y);
      return three_way(x, y);
    }
  }
}

bool json_equal(const json::value& a, const json::value& b) {
  return equal_impl(a, b, 0);
}

bool truthy(const json::value& v) noexcept {
  switch (v.kind()) {
    case json::kind::null:
      return false;
    case json::kind::bool_:
      return v.get_bool();
    case json::kind::string:
      return !v.get_string().empty();
    case json::kind::array:
      return !v.get_array().empty();
    case json::kind::object:
      return !v.get_object().empty();
    default:
      return true;
  }
}

const char* type_name(const json::value& v) noexcept {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "boolean";
    case json::kind::string:
      return "string";
    case json::kind::array:
      return "array";
    case json::kind::object:
      return "object";
    default:
      return "number";
  }
}

void append_json(std::string& out, const json::value& v) {
  append_json_impl(out, v, 0);
}

void append_number(std::string& out, const json::value& v) {
  char buf[64];
  std::to_chars_result r{};
  switch (v.kind()) {
    case json::kind::int64:
      r = std::to_chars(buf, buf + sizeof buf, v.get_int64());
      break;
    case json::kind::uint64:
      r = std::to_chars(buf, buf + sizeof buf, v.get_uint64());
      break;
    default: {
      const double d = v.get_double();
      if (!std::isfinite(d)) {
        out += "null";
        return;
      }
      r = std::to_chars(buf, buf + sizeof buf, d);
      break;
    }
  }
  out.append(buf, r.ptr);
}

void append_escaped(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    // Copy the longest run that needs no escaping in one go.
    std::size_t j = i;
    while (j < n && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '"' && p[j] != '\\') ++j;
    out.append(s.data() + i, j - i);
    i = j;
    if (i >= n) break;
    const unsigned char c = p[i];
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default: {
          const char esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
          out.append(esc, sizeof esc);
        }
      }
      ++i;
      continue;
    }
    const std::size_t len = utf8_sequence(p + i, n - i);
    if (len == 0) {
      out += "\\ufffd";
      ++i;
    } else {
      out.append(s.data() + i, len);
      i += len;
    }
  }
}

std::size_t utf8_length(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t count = 0;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = utf8_sequence(p + i, s.size() - i);
    i += len ? len : 1;
    ++count;
  }
  return count;
}

std::string utf8_reverse(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::string out(s.size(), '\0');
  std::size_t w = s.size();
  for (std::size_t i = 0; i < s.size();) {
    std::size_t len = utf8_sequence(p + i, s.size() - i);
    if (len == 0) len = 1;
    w -= len;
    out.replace(w, len, s.data() + i, len);
    i += len;
  }
  return out;
}

std::size_t column_of(std::string_view s, std::size_t pos) noexcept {
  if (pos > s.size()) pos = s.size();
  std::size_t col = 1;
  for (std::size_t i = 0; i < pos; ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0u) != 0x80u) ++col;
  }
  return col;
}

bool parse_json_number(std::string_view s, json::value& out) noexcept {
  const std::size_t n = s.size();
  std::size_t i = 0;
  auto digit = [&](std::size_t k) { return k < n && s[k] >= '0' && s[k] <= '9'; };
  if (i < n && s[i] == '-') ++i;
  if (!digit(i)) return false;
  if (s[i] == '0') {
    ++i;
  } else {
    while (digit(i)) ++i;
  }
  bool integral = true;
  bool negative_exponent = false;
  if (i < n && s[i] == '.') {
    integral = false;
    ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    integral = false;
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
      negative_exponent = s[i] == '-';
      ++i;
    }
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  if (i != n) return false;
  const char* first = s.data();
  const char* last = s.data() + n;
  if (integral) {
    std::int64_t iv = 0;
    auto r = std::from_chars(first, last, iv);
    if (r.ec == std::errc() && r.ptr == last) {
      out = iv;
      return true;
    }
    if (s[0] != '-') {
      std::uint64_t uv = 0;
      r = std::from_chars(first, last, uv);
      if (r.ec == std::errc() && r.ptr == last) {
        out = uv;
        return true;
      }
    }
  }
  double d = 0;
  auto r = std::from_chars(first, last, d);
  if (r.ec == std::errc::result_out_of_range) {
    if (!negative_exponent) return false;  // overflow: not representable
    d = s[0] == '-' ? -0.0 : 0.0;          // underflow
  } else if (r.ec != std::errc() || r.ptr != last) {
    return false;
  }
  if (!std::isfinite(d)) return false;
  out = d;
  return true;
}

}  // namespace fraiseql::expr::detail
