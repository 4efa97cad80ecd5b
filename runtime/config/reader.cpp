// The loader's error reporting and generic readers: one TOML value of a given
// type, checked against its bounds, and the same for a FRAISEQL_* variable.
// Every message about a described option (descriptors.hpp) is written here.

#include "runtime/config/loader_impl.hpp"

#include <algorithm>

namespace fraiseql::config_detail {

using config_schema::option_spec;
using config_schema::option_type;
using config_schema::value;
using std::string;
using std::string_view;

// --- errors -------------------------------------------------------------------

void loader::error_at(const toml::source_region& r, const string& key, string message) {
  errors_.push_back(config_error{file_, r.begin.line, r.begin.column, key, std::move(message)});
}

void loader::error_at(const toml::node& n, const string& key, string message) {
  error_at(n.source(), key, std::move(message));
}

void loader::error_at(const origin& o, string message) {
  errors_.push_back(config_error{o.file, o.line, o.column, o.key, std::move(message)});
}

void loader::warn_at(const origin& o, string message) {
  warnings_.push_back(config_error{o.file, o.line, o.column, o.key, std::move(message)});
}

void loader::error_env(const char* var, string message) {
  errors_.push_back(config_error{env_source, 0, 0, var, std::move(message)});
}

void loader::type_error(const toml::node& n, const string& key, string_view expected) {
  error_at(n, key, "expected " + string(expected) + ", got " + type_name(n.type()));
}

origin loader::origin_of(const toml::node& n, string key) const {
  return origin{file_, n.source().begin.line, n.source().begin.column, std::move(key)};
}

/// Located errors in file order, then the file's unlocated ones, then the
/// environment's, each group in the order found.
void loader::sort_errors() {
  auto group = [](const config_error& e) { return e.line > 0 ? 0 : e.file == env_source ? 2 : 1; };
  std::stable_sort(errors_.begin(), errors_.end(),
                   [&](const config_error& a, const config_error& b) {
                     if (group(a) != group(b)) return group(a) < group(b);
                     if (group(a) != 0) return false;
                     if (a.line != b.line) return a.line < b.line;
                     return a.column < b.column;
                   });
}

// --- TOML values ----------------------------------------------------------------

/// Reports every key of `t` not in `known`.
void loader::check_keys(const toml::table& t, const string& path, const key_list& known,
                        string_view where) {
  for (auto&& [k, v] : t) {
    if (contains(known, k.str())) continue;
    string msg = "unknown key";
    if (auto s = suggest(k.str(), known)) msg += "; did you mean '" + *s + "'?";
    msg += " (valid keys in " + string(where) + ": " + list(known) + ")";
    report_key(k, v, join_path(path, k.str()), std::move(msg));
  }
}

/// An error about a key itself: located at the key when the parser recorded
/// it (at the `[header]` for a table), else at its value.
void loader::report_key(const toml::key& k, const toml::node& v, const string& path, string msg) {
  const auto* t = v.as_table();
  const bool header = t != nullptr && !t->is_inline() && v.source().begin.line > 0;
  if (!header && k.source().begin.line > 0)
    error_at(k.source(), path, std::move(msg));
  else
    error_at(v, path, std::move(msg));
}

/// A value of TOML type T (std::string, bool) at `key`.
template <class T>
got loader::read_typed(const toml::table& t, string_view key, const string& path,
                       string_view expected, T& out) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return got::absent;
  if (const auto* v = n->as<T>()) {
    out = v->get();
    return got::ok;
  }
  type_error(*n, join_path(path, key), expected);
  return got::bad;
}

got loader::read_string(const toml::table& t, string_view key, const string& path, string& out) {
  return read_typed(t, key, path, "a string", out);
}

got loader::read_bool(const toml::table& t, string_view key, const string& path, bool& out) {
  return read_typed(t, key, path, "a boolean (true or false)", out);
}

got loader::read_required(const toml::table& t, string_view key, const string& path,
                          string_view what, string& out) {
  const got g = read_string(t, key, path, out);
  if (g == got::absent)
    missing(t, join_path(path, key), "required key is missing (" + string(what) + ")");
  return g;
}

got loader::read_u32(const toml::table& t, string_view key, const string& path, uint64_t min,
                     uint64_t max, uint32_t& out) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return got::absent;
  const string full = join_path(path, key);
  const auto* i = n->as_integer();
  if (i == nullptr) {
    type_error(*n, full, "an integer");
    return got::bad;
  }
  const int64_t v = i->get();
  if (v > static_cast<int64_t>(u32_max)) {
    error_at(*n, full,
             "out of range: " + std::to_string(v) + " does not fit in 32 bits (" +
                 (max >= u32_max ? "at most " + std::to_string(u32_max) : range_text(min, max)) +
                 ")");
    return got::bad;
  }
  if (v < 0 || static_cast<uint64_t>(v) < min || static_cast<uint64_t>(v) > max) {
    error_at(*n, full, range_text(min, max) + " (got " + std::to_string(v) + ")");
    return got::bad;
  }
  out = static_cast<uint32_t>(v);
  return got::ok;
}

/// A float or an integer in [low, high] ((low, high] when low_exclusive).
got loader::read_number(const toml::table& t, string_view key, const string& path, double low,
                        double high, bool low_exclusive, double& out) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return got::absent;
  std::optional<double> v;
  if (const auto* f = n->as_floating_point())
    v = f->get();
  else if (const auto* i = n->as_integer())
    v = static_cast<double>(i->get());
  const string full = join_path(path, key);
  const string bounds =
      low_exclusive ? "greater than " + number_text(low) + " and at most " + number_text(high)
                    : "between " + number_text(low) + " and " + number_text(high);
  if (!v) {
    type_error(*n, full, "a number " + bounds);
    return got::bad;
  }
  if (!((low_exclusive ? *v > low : *v >= low) && *v <= high)) {  // also rejects NaN
    error_at(*n, full, "must be " + bounds + " (got " + number_text(*v) + ")");
    return got::bad;
  }
  out = *v;
  return got::ok;
}

/// A string from a closed set. When `fold` is set the input is matched
/// case-insensitively and `out` receives the canonical spelling.
got loader::read_enum(const toml::table& t, string_view key, const string& path,
                      const key_list& allowed, bool fold, string& out) {
  string v;
  const got g = read_string(t, key, path, v);
  if (g != got::ok) return g;
  for (string_view a : allowed) {
    if (fold ? lower(a) == lower(v) : a == v) {
      out = string(a);
      return got::ok;
    }
  }
  error_at(*t.get(key), join_path(path, key),
           "invalid value '" + v + "' (expected one of: " + list(allowed) + ")");
  return got::bad;
}

/// The sub-table `key`, or nullptr if absent or not a table (reported).
const toml::table* loader::read_table(const toml::table& t, string_view key, const string& path) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return nullptr;
  if (const auto* tt = n->as_table()) return tt;
  type_error(*n, join_path(path, key), "a table");
  return nullptr;
}

/// The error for a missing required key, located at its table.
void loader::missing(const toml::table& t, const string& key, string message) {
  error_at(t, key, std::move(message));
}

got loader::read_env_ref(const toml::table& t, string_view key, const string& p, string& name,
                         string& value) {
  const got g = read_string(t, key, p, name);
  if (g != got::ok) return g;
  const toml::node& n = *t.get(key);
  const string kp = join_path(p, key);
  if (!is_identifier(name)) {
    error_at(n, kp,
             "'" + name + "' is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
    return got::bad;
  }
  const auto v = env(name.c_str());
  if (!v) {
    error_at(
        n, kp,
        "environment variable " + name + " (named by " + string(key) + ") is not set or empty");
    return got::bad;
  }
  value = *v;
  return got::ok;
}

got loader::read_option(const toml::table& t, const string& path, const option_spec& o,
                        value& out) {
  switch (o.type) {
    case option_type::boolean: {
      bool b = false;
      const got g = read_bool(t, o.key, path, b);
      if (g == got::ok) out = b;
      return g;
    }
    case option_type::u32: {
      uint32_t u = 0;
      const got g = read_u32(t, o.key, path, o.min, o.max, u);
      if (g == got::ok) out = u;
      return g;
    }
    case option_type::number: {
      double d = 0;
      const got g = read_number(t, o.key, path, o.low, o.high, o.low_exclusive, d);
      if (g == got::ok) out = d;
      return g;
    }
    case option_type::strings:
      return read_strings(t, path, o, out);
    case option_type::choice:
    case option_type::string:
      break;
  }
  string s;
  const got g = o.type == option_type::choice ? read_enum(t, o.key, path, o.choices, o.fold_case, s)
                                              : read_string(t, o.key, path, s);
  if (g != got::ok) return g;
  if (o.check != nullptr) {
    if (auto why = o.check(s)) {
      error_at(*t.get(o.key), join_path(path, o.key), *why);
      return got::bad;
    }
  }
  out = std::move(s);
  return got::ok;
}

got loader::read_strings(const toml::table& t, const string& path, const option_spec& o,
                         value& out) {
  const toml::node* n = t.get(o.key);
  if (n == nullptr) return got::absent;
  const string kp = join_path(path, o.key);
  const toml::array* a = n->as_array();
  if (a == nullptr) {
    type_error(*n, kp, "an array of strings");
    return got::bad;
  }
  std::vector<string> items;
  got g = got::ok;
  for (size_t i = 0; i < a->size(); ++i) {
    const toml::node& e = *a->get(i);
    const string ep = kp + "[" + std::to_string(i) + "]";
    if (!e.is_string()) {
      type_error(e, ep, "a string");
      g = got::bad;
      continue;
    }
    string s = e.value_or(string{});
    if (o.check != nullptr) {
      if (auto why = o.check(s)) {
        error_at(e, ep, *why);
        g = got::bad;
        continue;
      }
    }
    items.push_back(std::move(s));
  }
  if (g == got::ok) out = std::move(items);
  return g;
}

// --- environment ------------------------------------------------------------------

std::optional<string> loader::env(const char* name) const {
  if (env_ == nullptr) return std::nullopt;
  auto v = env_(name);
  if (!v || v->empty()) return std::nullopt;  // empty counts as unset
  return v;
}

std::optional<std::pair<const char*, string>> loader::env_of(const option_spec& o) const {
  if (o.env != nullptr) {
    if (auto v = env(o.env)) return std::make_pair(o.env, std::move(*v));
  }
  if (o.env_alias != nullptr) {
    if (auto v = env(o.env_alias)) return std::make_pair(o.env_alias, std::move(*v));
  }
  return std::nullopt;
}

bool loader::parse_env_option(const char* var, const string& raw, const option_spec& o,
                              value& out) {
  if (o.type == option_type::boolean) {
    const auto b = parse_env_bool(raw);
    if (!b) {
      error_env(var, "invalid boolean '" + raw + "' (expected true, false, 1, 0, yes or no)");
      return false;
    }
    out = *b;
    return true;
  }
  if (o.type == option_type::u32 && o.env_kind == config_schema::env_form::duration) {
    const auto ms = parse_duration_ms(raw);
    if (!ms) {
      error_env(var, "invalid duration '" + raw +
                         "' (expected e.g. 30s, 500ms, 2m, 1h or a number of seconds)");
      return false;
    }
    if (*ms > o.max) {
      error_env(var,
                "duration '" + raw + "' is too long (at most " + std::to_string(o.max) + " ms)");
      return false;
    }
    out = static_cast<uint32_t>(*ms);
    return true;
  }
  if (o.type == option_type::u32) {
    const auto n = parse_digits(trim(raw));
    if (!n) {
      error_env(var, "invalid value '" + raw + "' (expected a non-negative integer)");
      return false;
    }
    if (*n < o.min || *n > o.max) {
      error_env(var, range_text(o.min, o.max) + " (got " + std::to_string(*n) + ")");
      return false;
    }
    out = static_cast<uint32_t>(*n);
    return true;
  }
  const string v(trim(raw));
  if (o.type == option_type::choice) {
    for (string_view c : o.choices) {
      if (o.fold_case ? lower(c) == lower(v) : c == v) {
        out = string(c);
        return true;
      }
    }
    error_env(var, "invalid value '" + raw + "' (expected one of: " + list(o.choices) + ")");
    return false;
  }
  if (o.check != nullptr) {
    if (auto why = o.check(v)) {
      error_env(var, *why);
      return false;
    }
  }
  out = v;  // strings (none are read this way today) and numbers are not parsed here
  return o.type == option_type::string;
}

}  // namespace fraiseql::config_detail
