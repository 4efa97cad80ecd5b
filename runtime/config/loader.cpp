// Loading and strict validation of the observer node's TOML configuration.
//
// The file is parsed with toml++, then every table is walked against a fixed
// set of known keys. Each problem (unknown key, wrong type, bad value) becomes a
// config_error located at the offending node; nothing stops at the first one.
// The FRAISEQL_* environment variables are applied afterwards, and the checks
// that concern the effective value (features this build lacks, the required
// database url) run last, blaming whichever source set the value.

#include "runtime/config/loader.hpp"

#include "runtime/config/loopback.hpp"
#include "runtime/config/redact.hpp"
#include "runtime/core/outage.hpp"
#include "runtime/core/redis_url.hpp"
#include "runtime/core/circuit_breaker.hpp"

#include <boost/json.hpp>

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include <sys/stat.h>
#include <unistd.h>

namespace fraiseql {

std::optional<std::string> process_env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}







namespace {

using std::string;
using std::string_view;

constexpr uint32_t u32_max = std::numeric_limits<uint32_t>::max();
/// The `file` of errors caused by environment variables.
constexpr const char* env_source = "environment";

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

string lower(string_view s) {
  string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

bool has_control_char(string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

string_view trim(string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

/// A TOML key as it would be written in a dotted path: bare when possible.
string quote_key(string_view k) {
  const bool bare = !k.empty() && std::all_of(k.begin(), k.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || c == '_' || c == '-';
  });
  if (bare) return string(k);
  string out = "\"";
  for (char c : k) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

string join_path(const string& path, string_view key) {
  return path.empty() ? quote_key(key) : path + "." + quote_key(key);
}

string index_path(const string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

using key_list = std::vector<string_view>;

string list(const key_list& items) {
  string out;
  for (string_view s : items) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

bool contains(const key_list& items, string_view s) {
  return std::find(items.begin(), items.end(), s) != items.end();
}

size_t edit_distance(string_view a, string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t subst = prev[j - 1] + (ascii_lower(a[i - 1]) == ascii_lower(b[j - 1]) ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

/// The closest known key, if it is close enough to be a likely typo.
std::optional<string> suggest(string_view key, const key_list& known) {
  std::optional<string> best;
  size_t best_d = 3;  // at most 2 edits
  const string lkey = lower(key);
  for (string_view k : known) {
    // A prefix ("timeout" for "timeout_ms") counts as a near miss.
    const bool prefix = lkey.size() >= 3 && (k.rfind(lkey, 0) == 0 || lkey.rfind(k, 0) == 0);
    const size_t d = prefix ? 1 : edit_distance(key, k);
    if (d < best_d) {
      best_d = d;
      best = string(k);
    }
  }
  return best;
}

string type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

/// [A-Za-z_][A-Za-z0-9_]*
bool is_identifier(string_view s) {
  if (s.empty() || !(is_alpha(s[0]) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return is_alpha(c) || is_digit(c) || c == '_'; });
}

/// RFC 9110 token characters (header field names).
bool is_token(string_view s) {
  if (s.empty()) return false;
  static constexpr string_view extra = "!#$%&'*+-.^_`|~";
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return is_alpha(c) || is_digit(c) || extra.find(c) != string_view::npos; });
}

std::optional<bool> parse_env_bool(string_view raw) {
  const string v = lower(trim(raw));
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  return std::nullopt;
}

/// A non-negative decimal integer (no sign, no fraction), or nullopt.
std::optional<uint64_t> parse_digits(string_view s) {
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

/// "30s", "500ms", "2m", "1h" or bare seconds, in milliseconds.
std::optional<uint64_t> parse_duration_ms(string_view raw) {
  const string_view s = trim(raw);
  size_t n = 0;
  while (n < s.size() && is_digit(s[n])) ++n;
  const auto number = parse_digits(s.substr(0, n));
  if (!number) return std::nullopt;
  const string unit = lower(trim(s.substr(n)));
  uint64_t factor = 0;
  if (unit.empty() || unit == "s") factor = 1000;
  else if (unit == "ms") factor = 1;
  else if (unit == "m") factor = 60 * 1000;
  else if (unit == "h") factor = 60 * 60 * 1000;
  else return std::nullopt;
  if (*number > std::numeric_limits<uint64_t>::max() / factor) return std::nullopt;
  return *number * factor;
}

const key_list log_levels = {"trace", "debug", "info", "warn", "error"};

/// The level a RUST_LOG-style spec selects for this program: the level of a
/// `fraiseql*` / `observer*` target (the most verbose one if several), else the
/// bare default level, else nothing. Directives for other targets are ignored.
/// A bare word is a target when it contains "::" or names one of our targets
/// (env_logger then enables every level: trace), and a level otherwise.
/// Returns the level text in lower case; the caller validates it.
std::optional<string> select_log_level(string_view spec) {
  auto ours = [](const string& target) {
    return target.rfind("fraiseql", 0) == 0 || target.rfind("observer", 0) == 0;
  };
  auto rank = [](const string& level) {
    int i = 0;
    for (string_view l : log_levels) {
      if (level == l) return i;
      ++i;
    }
    return -1;  // unknown: chosen first so that it gets reported
  };
  std::optional<string> target_level;
  std::optional<string> default_level;
  spec = spec.substr(0, spec.find('/'));  // env_logger's trailing "/regex" filter
  while (!spec.empty()) {
    const size_t comma = spec.find(',');
    const string_view directive = trim(spec.substr(0, comma));
    spec = comma == string_view::npos ? string_view{} : spec.substr(comma + 1);
    if (directive.empty()) continue;
    const size_t eq = directive.find('=');
    string target;
    string level;
    if (eq == string_view::npos) {
      const string word = lower(directive);
      if (!ours(word) && word.find("::") == string::npos) {
        default_level = word;
        continue;
      }
      target = word;
      level = "trace";
    } else {
      target = lower(trim(directive.substr(0, eq)));
      level = lower(trim(directive.substr(eq + 1)));
    }
    if (!ours(target)) continue;
    if (!target_level || rank(level) < 0 || (rank(*target_level) >= 0 && rank(level) < rank(*target_level)))
      target_level = level;
  }
  return target_level ? target_level : default_level;
}

/// Why `url` cannot be a PostgreSQL connection string, or nullopt if it can.
std::optional<string> check_db_url(const string& url) {
  if (trim(url).empty()) return string("must not be empty");
  if (has_control_char(url)) return string("must not contain control characters");
  const size_t scheme_end = url.find("://");
  if (scheme_end != string::npos) {
    const string scheme = lower(string_view(url).substr(0, scheme_end));
    if (scheme != "postgresql" && scheme != "postgres")
      return "unsupported URL scheme '" + scheme +
             "://' (expected postgresql:// or postgres://, or a libpq key=value string)";
    return std::nullopt;
  }
  if (url.find('=') == string::npos)
    return string("is neither a postgresql:// URL nor a libpq key=value connection string");
  return std::nullopt;
}

/// Why `url` cannot be a webhook target, or nullopt if it can.
std::optional<string> check_http_url(const string& url) {
  if (url.empty()) return string("must not be empty");
  if (has_control_char(url)) return string("must not contain control characters");
  const string head = lower(string_view(url).substr(0, 8));
  size_t rest = 0;
  if (head.rfind("http://", 0) == 0) rest = 7;
  else if (head.rfind("https://", 0) == 0) rest = 8;
  else return "'" + redact_url(url) + "' is not an http:// or https:// URL";
  string_view authority = string_view(url).substr(rest);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  const size_t at = authority.rfind('@');
  if (at != string_view::npos) authority.remove_prefix(at + 1);
  if (authority.empty() || authority[0] == ':') return "'" + redact_url(url) + "' has no host";
  return std::nullopt;
}

/// Where a value was set, for checks that run on the effective configuration.
struct origin {
  string file;
  uint32_t line = 0;
  uint32_t column = 0;
  string key;
};

enum class got { absent, bad, ok };

class loader {
 public:
  loader(string file, env_lookup env) : file_(std::move(file)), env_(env) {}

  config_result run(const toml::table& root) {
    cfg_.source = file_;
    database_origin_ = origin{file_, 0, 0, "database.url"};
    walk_root(root);
    apply_env();
    final_checks();
    config_result result;
    sort_errors();
    result.errors = std::move(errors_);
    if (result.errors.empty()) result.value = std::move(cfg_);
    return result;
  }

 private:
  // --- errors ---------------------------------------------------------------

  void error_at(const toml::source_region& r, const string& key, string message) {
    errors_.push_back(config_error{file_, r.begin.line, r.begin.column, key, std::move(message)});
  }
  void error_at(const toml::node& n, const string& key, string message) {
    error_at(n.source(), key, std::move(message));
  }
  void error_at(const origin& o, string message) {
    errors_.push_back(config_error{o.file, o.line, o.column, o.key, std::move(message)});
  }
  void error_env(const char* var, string message) {
    errors_.push_back(config_error{env_source, 0, 0, var, std::move(message)});
  }
  void type_error(const toml::node& n, const string& key, string_view expected) {
    error_at(n, key, "expected " + string(expected) + ", got " + type_name(n.type()));
  }

  origin origin_of(const toml::node& n, string key) const {
    return origin{file_, n.source().begin.line, n.source().begin.column, std::move(key)};
  }
  static origin env_origin(const char* var) { return origin{env_source, 0, 0, var}; }

  /// Located errors in file order, then the file's unlocated ones, then the
  /// environment's, each group in the order found.
  void sort_errors() {
    auto group = [](const config_error& e) { return e.line > 0 ? 0 : e.file == env_source ? 2 : 1; };
    std::stable_sort(errors_.begin(), errors_.end(), [&](const config_error& a, const config_error& b) {
      if (group(a) != group(b)) return group(a) < group(b);
      if (group(a) != 0) return false;
      if (a.line != b.line) return a.line < b.line;
      return a.column < b.column;
    });
  }

  // --- generic readers --------------------------------------------------------

  /// Reports every key of `t` not in `known`.
  void check_keys(const toml::table& t, const string& path, const key_list& known,
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
  void report_key(const toml::key& k, const toml::node& v, const string& path, string msg) {
    const auto* t = v.as_table();
    const bool header = t != nullptr && !t->is_inline() && v.source().begin.line > 0;
    if (!header && k.source().begin.line > 0) error_at(k.source(), path, std::move(msg));
    else error_at(v, path, std::move(msg));
  }

  got read_string(const toml::table& t, string_view key, const string& path, string& out) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return got::absent;
    if (const auto* s = n->as_string()) {
      out = s->get();
      return got::ok;
    }
    type_error(*n, join_path(path, key), "a string");
    return got::bad;
  }

  got read_bool(const toml::table& t, string_view key, const string& path, bool& out) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return got::absent;
    if (const auto* b = n->as_boolean()) {
      out = b->get();
      return got::ok;
    }
    type_error(*n, join_path(path, key), "a boolean (true or false)");
    return got::bad;
  }

  static string range_text(uint64_t min, uint64_t max) {
    if (max >= u32_max) return min == 0 ? "must not be negative" : "must be at least " + std::to_string(min);
    return "must be between " + std::to_string(min) + " and " + std::to_string(max);
  }

  got read_u32(const toml::table& t, string_view key, const string& path, uint64_t min, uint64_t max,
               uint32_t& out) {
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
                   (max >= u32_max ? "at most " + std::to_string(u32_max) : range_text(min, max)) + ")");
      return got::bad;
    }
    if (v < 0 || static_cast<uint64_t>(v) < min || static_cast<uint64_t>(v) > max) {
      error_at(*n, full, range_text(min, max) + " (got " + std::to_string(v) + ")");
      return got::bad;
    }
    out = static_cast<uint32_t>(v);
    return got::ok;
  }

  /// A string from a closed set. When `fold` is set the input is matched
  /// case-insensitively and `out` receives the canonical spelling.
  got read_enum(const toml::table& t, string_view key, const string& path,
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
  const toml::table* read_table(const toml::table& t, string_view key, const string& path) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return nullptr;
    if (const auto* tt = n->as_table()) return tt;
    type_error(*n, join_path(path, key), "a table");
    return nullptr;
  }

  /// The error for a missing required key, located at its table.
  void missing(const toml::table& t, const string& key, string message) {
    error_at(t, key, std::move(message));
  }

  // --- sections ---------------------------------------------------------------

  void walk_root(const toml::table& root) {
    static const key_list top = {
        "database", "transport", "listener", "checkpoint", "performance",
        "circuit_breaker", "redis", "shutdown", "logging", "metrics", "control", "job_queue",
        "observers"};
    for (auto&& [k, v] : root) {
      const string_view name = k.str();
      if (contains(top, name)) continue;
      if (name == "nats") {
        error_at(v, quote_key(name),
                 "[" + string(name) + "] is not supported in this build (the PostgreSQL-only and "
                 "PostgreSQL + Redis topologies are); remove this table");
        continue;
      }
      string msg = "unknown top-level key or table";
      if (auto s = suggest(name, top)) msg += "; did you mean '" + *s + "'?";
      msg += " (valid: " + list(top) + ")";
      report_key(k, v, quote_key(name), std::move(msg));
    }
    if (const auto* t = read_table(root, "database", "")) walk_database(*t);
    if (const auto* t = read_table(root, "transport", "")) walk_transport(*t);
    if (const auto* t = read_table(root, "listener", "")) walk_listener(*t);
    if (const auto* t = read_table(root, "checkpoint", "")) walk_checkpoint(*t);
    if (const auto* t = read_table(root, "performance", "")) walk_performance(*t);
    if (const auto* t = read_table(root, "circuit_breaker", "")) walk_circuit_breaker(*t);
    if (const auto* t = read_table(root, "redis", "")) walk_redis(*t);
    if (const auto* t = read_table(root, "shutdown", "")) walk_shutdown(*t);
    if (const auto* t = read_table(root, "logging", "")) walk_logging(*t);
    if (const auto* t = read_table(root, "metrics", "")) walk_metrics(*t);
    if (const auto* t = read_table(root, "control", "")) walk_control(*t);
    if (const auto* t = read_table(root, "job_queue", "")) walk_job_queue(*t);
    if (const toml::node* n = root.get("observers")) walk_observers(*n);
  }

  void walk_database(const toml::table& t) {
    const string p = "database";
    database_table_ = &t;
    check_keys(t, p, {"url", "url_env", "reconnect_max_delay_ms"}, "[database]");
    string url;
    if (read_string(t, "url", p, url) == got::ok) {
      if (auto why = check_db_url(url)) {
        error_at(*t.get("url"), "database.url", *why);
      } else {
        cfg_.database.url = url;
        database_origin_ = origin_of(*t.get("url"), "database.url");
      }
      url_given_ = true;
    } else if (t.get("url") != nullptr) {
      url_given_ = true;  // present but mistyped: already reported
    }
    string url_env;
    if (read_string(t, "url_env", p, url_env) == got::ok) {
      const toml::node& n = *t.get("url_env");
      if (t.get("url") != nullptr) {
        error_at(n, "database.url_env", "set either url or url_env, not both");
      } else if (!is_identifier(url_env)) {
        error_at(n, "database.url_env",
                 "'" + url_env + "' is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
      } else {
        url_env_ = url_env;
        url_env_origin_ = origin_of(n, "database.url_env");
      }
      url_given_ = true;
    } else if (t.get("url_env") != nullptr) {
      url_given_ = true;
    }
    read_u32(t, "reconnect_max_delay_ms", p, 1, 3600000, cfg_.database.reconnect_max_delay_ms);
  }

  void walk_transport(const toml::table& t) {
    const string p = "transport";
    check_keys(t, p, {"transport", "run_bridge", "run_executors"}, "[transport]");
    if (read_enum(t, "transport", p, {"postgres", "nats", "in_memory"}, false, cfg_.transport.transport) ==
        got::ok)
      transport_origin_ = origin_of(*t.get("transport"), "transport.transport");
    if (read_bool(t, "run_bridge", p, cfg_.transport.run_bridge) == got::ok)
      bridge_origin_ = origin_of(*t.get("run_bridge"), "transport.run_bridge");
    if (read_bool(t, "run_executors", p, cfg_.transport.run_executors) == got::ok)
      executors_origin_ = origin_of(*t.get("run_executors"), "transport.run_executors");
  }

  void walk_listener(const toml::table& t) {
    const string p = "listener";
    check_keys(t, p, {"listener_id", "batch_size", "poll_interval_ms", "max_in_flight"}, "[listener]");
    string id;
    if (read_string(t, "listener_id", p, id) == got::ok) {
      const bool ok = !id.empty() && std::all_of(id.begin(), id.end(), [](char c) {
        return is_alpha(c) || is_digit(c) || c == '_' || c == '.' || c == '-';
      });
      if (ok) cfg_.listener.listener_id = id;
      else
        error_at(*t.get("listener_id"), "listener.listener_id",
                 "'" + id + "' is not a valid listener id (non-empty, characters A-Z a-z 0-9 _ . -)");
    }
    read_u32(t, "batch_size", p, 1, 100000, cfg_.listener.batch_size);
    read_u32(t, "poll_interval_ms", p, 1, 3600000, cfg_.listener.poll_interval_ms);
    read_u32(t, "max_in_flight", p, 1, 10000000, cfg_.listener.max_in_flight);
  }

  void walk_checkpoint(const toml::table& t) {
    const string p = "checkpoint";
    check_keys(t, p, {"batch_size", "interval_ms"}, "[checkpoint]");
    read_u32(t, "batch_size", p, 1, u32_max, cfg_.checkpoint.batch_size);
    read_u32(t, "interval_ms", p, 1, u32_max, cfg_.checkpoint.interval_ms);
  }

  void walk_performance(const toml::table& t) {
    const string p = "performance";
    check_keys(t, p,
               {"enable_dedup", "enable_caching", "cache_capacity", "enable_concurrent",
                "max_concurrent_actions", "concurrent_timeout_ms"},
               "[performance]");
    if (read_bool(t, "enable_dedup", p, cfg_.performance.enable_dedup) == got::ok)
      dedup_origin_ = origin_of(*t.get("enable_dedup"), "performance.enable_dedup");
    if (read_bool(t, "enable_caching", p, cfg_.performance.enable_caching) == got::ok)
      caching_origin_ = origin_of(*t.get("enable_caching"), "performance.enable_caching");
    read_u32(t, "cache_capacity", p, 1, 100000000, cfg_.performance.cache_capacity);
    read_bool(t, "enable_concurrent", p, cfg_.performance.enable_concurrent);
    read_u32(t, "max_concurrent_actions", p, 1, 100000, cfg_.performance.max_concurrent_actions);
    read_u32(t, "concurrent_timeout_ms", p, 1, u32_max, cfg_.performance.concurrent_timeout_ms);
  }

  /// A number in (0, 1] (integers 1 accepted); reports and returns bad otherwise.
  got read_ratio(const toml::table& t, string_view key, const string& path, double& out) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return got::absent;
    std::optional<double> v;
    if (const auto* f = n->as_floating_point()) v = f->get();
    else if (const auto* i = n->as_integer()) v = static_cast<double>(i->get());
    const string full = join_path(path, key);
    if (!v) {
      type_error(*n, full, "a number greater than 0 and at most 1");
      return got::bad;
    }
    if (!(*v > 0.0 && *v <= 1.0)) {  // also rejects NaN
      std::ostringstream os;
      os << *v;
      error_at(*n, full, "must be greater than 0 and at most 1 (got " + os.str() + ")");
      return got::bad;
    }
    out = *v;
    return got::ok;
  }

  void walk_circuit_breaker(const toml::table& t) {
    const string p = "circuit_breaker";
    check_keys(t, p,
               {"enabled", "failure_threshold", "success_threshold", "timeout_ms", "sample_size",
                "half_open_probes"},
               "[circuit_breaker]");
    auto& c = cfg_.circuit_breaker;
    read_bool(t, "enabled", p, c.enabled);
    read_ratio(t, "failure_threshold", p, c.failure_threshold);
    read_ratio(t, "success_threshold", p, c.success_threshold);
    read_u32(t, "timeout_ms", p, 1, 86400000, c.timeout_ms);
    read_u32(t, "sample_size", p, 1, 10000, c.sample_size);
    read_u32(t, "half_open_probes", p, 1, 1000, c.half_open_probes);
  }

  void walk_redis(const toml::table& t) {
    const string p = "redis";
    check_keys(t, p,
               {"url", "pool_size", "connect_timeout_secs", "command_timeout_secs", "dedup_window_secs",
                "cache_ttl_secs", "claim_ttl_secs", "failure_policy"},
               "[redis]");
    redis_config r;
    redis_table_ = &t;
    string url;
    const got gu = read_string(t, "url", p, url);
    if (gu == got::ok) {
      if (auto why = check_redis_url(url)) error_at(*t.get("url"), "redis.url", *why);
      else r.url = url;
    } else if (gu == got::absent) {
      redis_url_missing_ = true;
    }
    read_u32(t, "pool_size", p, 1, 1000, r.pool_size);
    read_u32(t, "connect_timeout_secs", p, 1, 3600, r.connect_timeout_secs);
    read_u32(t, "command_timeout_secs", p, 1, 3600, r.command_timeout_secs);
    read_u32(t, "dedup_window_secs", p, 1, 30 * 86400, r.dedup_window_secs);
    read_u32(t, "cache_ttl_secs", p, 1, 30 * 86400, r.cache_ttl_secs);
    read_u32(t, "claim_ttl_secs", p, 1, 86400, r.claim_ttl_secs);
    read_enum(t, "failure_policy", p, {"fail_open", "fail_closed"}, false, r.failure_policy);
    cfg_.redis = std::move(r);
  }

  /// Why `url` is not a usable Redis URL (password masked), or nullopt.
  static std::optional<string> check_redis_url(const string& url) {
    try {
      redis_url::parse(url);
      return std::nullopt;
    } catch (const std::exception& e) {
      return string(e.what());
    }
  }

  void walk_shutdown(const toml::table& t) {
    check_keys(t, "shutdown", {"timeout_ms"}, "[shutdown]");
    read_u32(t, "timeout_ms", "shutdown", 0, u32_max, cfg_.shutdown.timeout_ms);
  }

  void walk_metrics(const toml::table& t) {
    const string p = "metrics";
    check_keys(t, p, {"enabled", "bind", "port", "readiness_max_checkpoint_age_ms"}, "[metrics]");
    read_bool(t, "enabled", p, cfg_.metrics.enabled);
    string bind;
    if (read_string(t, "bind", p, bind) == got::ok) {
      if (bind.empty() || bind.find_first_of(" /:") != string::npos)
        error_at(*t.get("bind"), p + ".bind", "'" + bind + "' is not an IPv4 address or host name");
      else
        cfg_.metrics.bind = bind;
    }
    read_u32(t, "port", p, 0, 65535, cfg_.metrics.port);
    read_u32(t, "readiness_max_checkpoint_age_ms", p, 0, 86400000,
             cfg_.metrics.readiness_max_checkpoint_age_ms);
  }

  // --- control plane ---
  void walk_control(const toml::table& t) {
    const string p = "control";
    check_keys(t, p,
               {"enabled", "bind", "port", "token_env", "token_file", "tls_certificate", "tls_key",
                "tls_ca", "journal_size"},
               "[control]");
    auto& c = cfg_.control;
    read_bool(t, "enabled", p, c.enabled);
    string bind;
    if (read_string(t, "bind", p, bind) == got::ok) {
      if (bind.empty() || bind.find_first_of(" /") != string::npos)
        error_at(*t.get("bind"), p + ".bind", "'" + bind + "' is not an IP address or host name");
      else
        c.bind = bind;
    }
    read_u32(t, "port", p, 0, 65535, c.port);
    read_u32(t, "journal_size", p, 0, 1000000, c.journal_size);
    if (read_string(t, "token_env", p, c.token_env) == got::ok) {
      const toml::node& n = *t.get("token_env");
      if (t.get("token_file") != nullptr) {
        error_at(n, p + ".token_env", "set either token_env or token_file, not both");
      } else if (!is_identifier(c.token_env)) {
        error_at(n, p + ".token_env",
                 "'" + c.token_env + "' is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
      } else if (auto v = env(c.token_env.c_str())) {
        c.token = *v;
      } else {
        error_at(n, p + ".token_env",
                 "environment variable " + c.token_env + " (named by token_env) is not set or empty");
      }
    }
    if (read_string(t, "token_file", p, c.token_file) == got::ok) {
      const toml::node& n = *t.get("token_file");
      if (auto why = read_token_file(c.token_file, c.token))
        error_at(n, p + ".token_file", *why);
    }
    read_string(t, "tls_certificate", p, c.tls_certificate);
    read_string(t, "tls_key", p, c.tls_key);
    read_string(t, "tls_ca", p, c.tls_ca);
    const int tls_set = !c.tls_certificate.empty() + !c.tls_key.empty() + !c.tls_ca.empty();
    if (tls_set != 0 && tls_set != 3)
      error_at(t, p, "TLS needs all of tls_certificate, tls_key and tls_ca (the CA verifies peers)");
    for (const char* k : {"tls_certificate", "tls_key", "tls_ca"}) {
      string v;
      if (const toml::node* n = t.get(k); n != nullptr && n->is_string()) {
        v = n->value_or(string{});
        if (!v.empty() && ::access(v.c_str(), R_OK) != 0)
          error_at(*n, p + "." + k, "cannot read '" + v + "': " + std::strerror(errno));
      }
    }
    if (c.enabled && !is_loopback_address(c.bind) && (!c.tls() || c.token.empty())) {
      const toml::node* n = t.get("bind");
      error_at(n != nullptr ? n->source() : t.source(), p + ".bind",
               "'" + c.bind + "' is not a loopback address: a control plane reachable from other "
               "hosts requires TLS (tls_certificate, tls_key, tls_ca) and a token (token_env or "
               "token_file)");
    }
  }

  /// Reads a token file: it must exist, be non-empty and not be readable by
  /// group or others (like an SSH key). Returns the problem, if any.
  static std::optional<string> read_token_file(const string& path, string& out) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
      return "cannot read '" + path + "': " + std::strerror(errno);
    if ((st.st_mode & 077) != 0)
      return "'" + path + "' is readable by group or others (chmod 600 it)";
    std::ifstream in(path);
    if (!in) return "cannot read '" + path + "'";
    std::getline(in, out);
    while (!out.empty() && (out.back() == '\r' || out.back() == ' ')) out.pop_back();
    if (out.empty()) return "'" + path + "' is empty (the first line is the token)";
    return std::nullopt;
  }

  // --- job queue (sql/0003_jobs.sql) ------------------------------------------------

  void walk_job_queue(const toml::table& t) {
    const string p = "job_queue";
    check_keys(t, p, {"enabled", "workers", "poll_interval_ms", "batch_size", "lease_ms"}, "[job_queue]");
    read_bool(t, "enabled", p, cfg_.job_queue.enabled);
    read_u32(t, "workers", p, 1, 10000, cfg_.job_queue.workers);
    read_u32(t, "poll_interval_ms", p, 1, 3600000, cfg_.job_queue.poll_interval_ms);
    read_u32(t, "batch_size", p, 1, 10000, cfg_.job_queue.batch_size);
    read_u32(t, "lease_ms", p, 1000, 86400000, cfg_.job_queue.lease_ms);
  }

  /// `async` of one action (any type); the effective value is settled in
  /// final_checks, once [job_queue] enabled is known.
  void read_async(const toml::table& t, const string& p) {
    bool v = false;
    if (read_bool(t, "async", p, v) == got::ok) async_keys_[p] = {v, origin_of(*t.get("async"), p + ".async")};
  }

  /// Effective `async` of every action: the explicit key, else the type's
  /// default; async without an enabled queue is an error at the key.
  void settle_async() {
    const bool enabled = cfg_.job_queue.enabled;
    for (auto& o : cfg_.observers) {
      for (auto& a : o.actions) {
        auto it = async_keys_.find(a.where);
        a.async = it != async_keys_.end() ? it->second.first : async_by_default(a.type, enabled);
        if (a.async && !enabled)
          error_at(it->second.second,
                   "async = true needs the job queue: set enabled = true in [job_queue] "
                   "(job_queue.enabled is false)");
      }
    }
  }

  void walk_logging(const toml::table& t) {
    const string p = "logging";
    check_keys(t, p, {"level", "format"}, "[logging]");
    read_enum(t, "level", p, log_levels, true, cfg_.logging.level);
    read_enum(t, "format", p, {"text", "json"}, false, cfg_.logging.format);
  }

  void walk_observers(const toml::node& n) {
    const auto* arr = n.as_array();
    if (arr == nullptr) {
      type_error(n, "observers", "an array of tables ([[observers]])");
      return;
    }
    std::vector<const toml::node*> name_nodes;  // explicit name node per observer, or null
    std::vector<const toml::table*> tables;
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& el = *arr->get(i);
      const string p = index_path("observers", i);
      const auto* t = el.as_table();
      if (t == nullptr) {
        type_error(el, p, "a table ([[observers]])");
        continue;
      }
      observer_config obs;
      name_nodes.push_back(walk_observer(*t, i, obs));
      tables.push_back(t);
      cfg_.observers.push_back(std::move(obs));
    }
    // Names are unique (after defaulting), since they key idempotency and the DLQ.
    std::map<string, size_t> seen;
    for (size_t k = 0; k < cfg_.observers.size(); ++k) {
      const string& name = cfg_.observers[k].name;
      auto [it, inserted] = seen.emplace(name, k);
      if (inserted) continue;
      const string p = index_path("observers", observer_index_[k]) + ".name";
      string msg = "duplicate observer name '" + name + "' (also used by " +
                   index_path("observers", observer_index_[it->second]) + ")";
      if (name_nodes[k] != nullptr) error_at(*name_nodes[k], p, msg);
      else error_at(*tables[k], p, msg + "; give this observer an explicit name");
    }
  }

  /// Returns the node of an explicit name, or nullptr.
  const toml::node* walk_observer(const toml::table& t, size_t i, observer_config& obs) {
    const string p = index_path("observers", i);
    observer_index_.push_back(i);
    check_keys(t, p, {"name", "event_type", "entity", "condition", "actions", "retry"}, "[[observers]]");

    const toml::node* name_node = nullptr;
    obs.name = "observer-" + std::to_string(i + 1);
    string name;
    if (read_string(t, "name", p, name) == got::ok) {
      if (trim(name).empty() || has_control_char(name)) {
        error_at(*t.get("name"), p + ".name", "must be a non-empty name without control characters");
      } else {
        obs.name = name;
        name_node = t.get("name");
      }
    }

    const got et = read_enum(t, "event_type", p, {"INSERT", "UPDATE", "DELETE", "CUSTOM", "*"}, true,
                             obs.event_type);
    if (et == got::absent)
      missing(t, p + ".event_type", "required key is missing (one of INSERT, UPDATE, DELETE, CUSTOM, *)");

    const got en = read_string(t, "entity", p, obs.entity);
    if (en == got::absent) {
      missing(t, p + ".entity", "required key is missing (an entity type such as \"Order\", or \"*\")");
    } else if (en == got::ok && trim(obs.entity).empty()) {
      error_at(*t.get("entity"), p + ".entity", "must not be empty (use \"*\" for any entity)");
    }

    read_string(t, "condition", p, obs.condition);

    if (const toml::node* an = t.get("actions")) {
      const auto* arr = an->as_array();
      if (arr == nullptr) {
        type_error(*an, p + ".actions", "an array of tables ([[observers.actions]])");
      } else if (arr->empty()) {
        error_at(*an, p + ".actions", "at least one action is required");
      } else {
        for (size_t j = 0; j < arr->size(); ++j) {
          const toml::node& el = *arr->get(j);
          const string ap = index_path(p + ".actions", j);
          const auto* at = el.as_table();
          if (at == nullptr) {
            type_error(el, ap, "a table ([[observers.actions]])");
            continue;
          }
          action_config a;
          a.where = ap;
          if (walk_action(*at, ap, a)) obs.actions.push_back(std::move(a));
        }
      }
    } else {
      missing(t, p + ".actions", "at least one [[observers.actions]] is required");
    }

    if (const auto* rt = read_table(t, "retry", p)) walk_retry(*rt, p + ".retry", obs.retry);
    return name_node;
  }

  /// Keys of each action type ("type" included).
  static const std::vector<std::pair<string_view, key_list>>& action_keys() {
    static const std::vector<std::pair<string_view, key_list>> k = {
        {"webhook",
         {"type", "url", "method", "headers", "body_template", "timeout_ms", "signing_secret_env",
          "retry_on_status", "cache", "cache_ttl_secs"}},
        {"slack",
         {"type", "webhook_url", "webhook_url_env", "channel", "message", "username", "icon_emoji", "timeout_ms",
          "retry_on_status"}},
        {"email",
         {"type", "host", "port", "security", "from", "to", "subject", "body", "username_env", "password_env",
          "ca_file", "verify_tls", "timeout_ms"}},
        {"database", {"type", "function", "params", "url_env", "timeout_ms"}},
        {"log", {"type", "level", "message"}},
    };
    return k;
  }

  /// Returns whether `a` is usable (errors were reported otherwise).
  bool walk_action(const toml::table& t, const string& p, action_config& a) {
    static const char* const types_text = "webhook, slack, email, database, log";
    string type;
    const got g = read_string(t, "type", p, type);
    if (g == got::absent) {
      missing(t, p + ".type", string("required key is missing (one of: ") + types_text + ")");
      return false;
    }
    if (g == got::bad) return false;
    const toml::node& type_node = *t.get("type");
    const key_list* own = nullptr;
    for (const auto& [name, keys] : action_keys())
      if (name == type) own = &keys;
    if (own == nullptr) {
      error_at(type_node, p + ".type",
               "unknown action type '" + type + "' (valid types: " + types_text + ")");
      return false;
    }
    a.type = type;
    const size_t before = errors_.size();
    read_async(t, p);  // job queue: valid for every action type
    for (auto&& [k, v] : t) {
      if (k.str() == "async") continue;  // job queue: read above
      if (contains(*own, k.str())) continue;
      string owners;
      for (const auto& [name, keys] : action_keys()) {
        if (!contains(keys, k.str())) continue;
        if (!owners.empty()) owners += ", ";
        owners += name;
      }
      if (!owners.empty()) {
        report_key(k, v, join_path(p, k.str()),
                   "key is only valid for " + owners + " actions, not " + type + " actions");
        continue;
      }
      string msg = "unknown key";
      if (auto s = suggest(k.str(), *own)) msg += "; did you mean '" + *s + "'?";
      msg += " (valid keys for a " + type + " action: " + list(*own) + ")";
      report_key(k, v, join_path(p, k.str()), std::move(msg));
    }
    if (type == "webhook") {
      a.webhook = walk_webhook(t, p);
    } else if (type == "slack") {
      a.slack = walk_slack(t, p);
    } else if (type == "email") {
      a.email = walk_email(t, p);
    } else if (type == "database") {
      a.database = walk_database_action(t, p);
    } else {
      log_action_config l;
      read_enum(t, "level", p, log_levels, true, l.level);
      read_string(t, "message", p, l.message);
      a.log = std::move(l);
    }
    return errors_.size() == before;
  }

  /// An environment variable name at `key`, and its (non-empty) value.
  got read_env_ref(const toml::table& t, string_view key, const string& p, string& name, string& value) {
    const got g = read_string(t, key, p, name);
    if (g != got::ok) return g;
    const toml::node& n = *t.get(key);
    const string kp = join_path(p, key);
    if (!is_identifier(name)) {
      error_at(n, kp, "'" + name + "' is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
      return got::bad;
    }
    const auto v = env(name.c_str());
    if (!v) {
      error_at(n, kp, "environment variable " + name + " (named by " + string(key) + ") is not set or empty");
      return got::bad;
    }
    value = *v;
    return got::ok;
  }

  /// `retry_on_status = [429, 503, "5xx"]`: statuses 300-599 or classes.
  void read_retry_statuses(const toml::table& t, const string& p, http_retry_config& out) {
    const toml::node* n = t.get("retry_on_status");
    if (n == nullptr) return;
    const string kp = p + ".retry_on_status";
    const auto* arr = n->as_array();
    if (arr == nullptr) {
      type_error(*n, kp, "an array of HTTP statuses (300-599) or classes (\"4xx\", \"5xx\")");
      return;
    }
    std::vector<uint16_t> statuses;
    bool ok = true;
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& el = *arr->get(i);
      const string ep = index_path(kp, i);
      std::vector<uint16_t> add;
      if (const auto* in = el.as_integer()) {
        if (in->get() < 300 || in->get() > 599) {
          error_at(el, ep, "must be an HTTP error status between 300 and 599 (got " + std::to_string(in->get()) +
                               ")");
          ok = false;
          continue;
        }
        add.push_back(static_cast<uint16_t>(in->get()));
      } else if (const auto* sn = el.as_string()) {
        const string c = lower(sn->get());
        if (c != "3xx" && c != "4xx" && c != "5xx") {
          error_at(el, ep, "invalid status class '" + sn->get() + "' (expected \"3xx\", \"4xx\" or \"5xx\")");
          ok = false;
          continue;
        }
        const uint16_t base = static_cast<uint16_t>((c[0] - '0') * 100);
        for (uint16_t s = base; s < base + 100; ++s) add.push_back(s);
      } else {
        type_error(el, ep, "an HTTP status (integer) or a status class (\"4xx\")");
        ok = false;
        continue;
      }
      for (uint16_t s : add) {
        if (std::find(statuses.begin(), statuses.end(), s) != statuses.end()) {
          error_at(el, ep, "status " + std::to_string(s) + " is listed twice");
          ok = false;
          break;
        }
        statuses.push_back(s);
      }
    }
    if (ok) {
      std::sort(statuses.begin(), statuses.end());
      out.retry_on_status = std::move(statuses);
    }
  }

  void read_timeout(const toml::table& t, const string& p, uint32_t& out) {
    read_u32(t, "timeout_ms", p, 1, 600000, out);
  }

  webhook_action_config walk_webhook(const toml::table& t, const string& p) {
    webhook_action_config w;
    string url;
    const got gu = read_string(t, "url", p, url);
    if (gu == got::absent) {
      missing(t, p + ".url", "required key is missing (an http:// or https:// URL)");
    } else if (gu == got::ok) {
      if (auto why = check_http_url(url)) error_at(*t.get("url"), p + ".url", *why);
      else w.url = url;
    }
    read_enum(t, "method", p, {"POST", "PUT", "PATCH"}, true, w.method);
    if (const toml::node* hn = t.get("headers")) {
      const string hp = p + ".headers";
      if (const auto* ht = hn->as_table()) {
        std::map<string, string> lowered;  // lower-case name -> as written
        for (auto&& [k, v] : *ht) {
          const string name(k.str());
          const string kp = join_path(hp, name);
          const auto* s = v.as_string();
          if (s == nullptr) {
            type_error(v, kp, "a string");
            continue;
          }
          if (!is_token(name)) {
            report_key(k, v, kp, "'" + name + "' is not a valid HTTP header name");
            continue;
          }
          const string& value = s->get();
          if (std::any_of(value.begin(), value.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; })) {
            error_at(v, kp, "header value must not contain CR, LF or NUL");
            continue;
          }
          auto [it, inserted] = lowered.emplace(lower(name), name);
          if (!inserted) {
            report_key(k, v, kp, "duplicate header (header names are case-insensitive; see '" + it->second + "')");
            continue;
          }
          w.headers.emplace(name, value);
        }
      } else {
        type_error(*hn, hp, "a table of header names to strings (e.g. headers = { \"X-Token\" = \"...\" })");
      }
    }
    read_string(t, "body_template", p, w.body_template);
    read_timeout(t, p, w.timeout_ms);
    read_env_ref(t, "signing_secret_env", p, w.signing_secret_env, w.signing_secret);
    read_retry_statuses(t, p, w.retry);
    read_bool(t, "cache", p, w.cache);
    uint32_t ttl = 0;
    if (read_u32(t, "cache_ttl_secs", p, 1, 30 * 86400, ttl) == got::ok) {
      if (!w.cache) error_at(*t.get("cache_ttl_secs"), p + ".cache_ttl_secs", "needs cache = true in the same action");
      else w.cache_ttl_secs = ttl;
    }
    return w;
  }

  slack_action_config walk_slack(const toml::table& t, const string& p) {
    slack_action_config s;
    string url;
    const got gu = read_string(t, "webhook_url", p, url);
    string env_name, env_url;
    const got ge = read_env_ref(t, "webhook_url_env", p, env_name, env_url);
    if (gu == got::absent && ge == got::absent) {
      missing(t, p + ".webhook_url",
              "required key is missing (the incoming-webhook URL, or webhook_url_env naming a variable holding it)");
    } else if (gu != got::absent && ge != got::absent) {
      error_at(*t.get("webhook_url_env"), p + ".webhook_url_env", "set either webhook_url or webhook_url_env, not both");
    } else if (gu == got::ok) {
      if (auto why = check_http_url(url)) error_at(*t.get("webhook_url"), p + ".webhook_url", *why);
      else s.webhook_url = url;
    } else if (ge == got::ok) {
      if (auto why = check_http_url(env_url))
        error_at(*t.get("webhook_url_env"), p + ".webhook_url_env",
                 "value of environment variable " + env_name + " " + *why);
      else {
        s.webhook_url = env_url;
        s.webhook_url_env = env_name;
      }
    }
    read_string(t, "channel", p, s.channel);
    read_string(t, "username", p, s.username);
    read_string(t, "icon_emoji", p, s.icon_emoji);
    if (read_string(t, "message", p, s.message) == got::absent)
      missing(t, p + ".message", "required key is missing (the message text template)");
    read_timeout(t, p, s.timeout_ms);
    read_retry_statuses(t, p, s.retry);
    return s;
  }

  /// A bare mail address: local@domain, no spaces, brackets or control characters.
  static bool is_mail_address(const string& a) {
    const size_t at = a.rfind('@');
    if (at == string::npos || at == 0 || at + 1 >= a.size()) return false;
    return std::none_of(a.begin(), a.end(), [](char c) {
      const auto u = static_cast<unsigned char>(c);
      return u <= 0x20 || u == 0x7f || c == '<' || c == '>' || c == ',' || c == '"' || c == '(' || c == ')';
    });
  }

  email_action_config walk_email(const toml::table& t, const string& p) {
    email_action_config e;
    string host;
    const got gh = read_string(t, "host", p, host);
    if (gh == got::absent) {
      missing(t, p + ".host", "required key is missing (the SMTP server's host name or address)");
    } else if (gh == got::ok) {
      if (host.empty() || host.find_first_of(" /@?#") != string::npos || has_control_char(host))
        error_at(*t.get("host"), p + ".host", "'" + host + "' is not a host name or address");
      else e.host = host;
    }
    string security;
    if (read_enum(t, "security", p, {"none", "starttls", "tls"}, false, security) == got::ok)
      e.security = security == "none" ? smtp_security::none
                   : security == "tls" ? smtp_security::tls
                                       : smtp_security::starttls;
    read_u32(t, "port", p, 1, 65535, e.port);
    if (e.port == 0) e.port = e.security == smtp_security::none ? 25 : e.security == smtp_security::tls ? 465 : 587;
    string from;
    const got gf = read_string(t, "from", p, from);
    if (gf == got::absent) {
      missing(t, p + ".from", "required key is missing (the sender address)");
    } else if (gf == got::ok) {
      if (is_mail_address(from)) e.from = from;
      else error_at(*t.get("from"), p + ".from", "'" + from + "' is not a mail address (local@domain)");
    }
    if (const toml::node* tn = t.get("to")) {
      const string tp = p + ".to";
      auto add = [&](const toml::node& n, const string& where) {
        const auto* s = n.as_string();
        if (s == nullptr) {
          type_error(n, where, "a string");
        } else if (!is_mail_address(s->get())) {
          error_at(n, where, "'" + s->get() + "' is not a mail address (local@domain)");
        } else {
          e.to.push_back(s->get());
        }
      };
      if (tn->is_string()) {
        add(*tn, tp);
      } else if (const auto* arr = tn->as_array()) {
        if (arr->empty()) error_at(*tn, tp, "at least one recipient is required");
        for (size_t i = 0; i < arr->size(); ++i) add(*arr->get(i), index_path(tp, i));
      } else {
        type_error(*tn, tp, "a mail address or an array of them");
      }
    } else {
      missing(t, p + ".to", "required key is missing (a recipient address or an array of them)");
    }
    if (read_string(t, "subject", p, e.subject) == got::ok && has_control_char(e.subject))
      error_at(*t.get("subject"), p + ".subject", "must not contain control characters");
    else if (!t.get("subject"))
      missing(t, p + ".subject", "required key is missing (the subject template)");
    read_string(t, "body", p, e.body);
    const got gu = read_env_ref(t, "username_env", p, e.username_env, e.username);
    const got gp = read_env_ref(t, "password_env", p, e.password_env, e.password);
    if ((gu == got::absent) != (gp == got::absent)) {
      const char* have = gu == got::absent ? "password_env" : "username_env";
      error_at(*t.get(have), join_path(p, have), "username_env and password_env go together: set both or neither");
    }
    if (gp != got::absent && e.security == smtp_security::none)
      error_at(*t.get("password_env"), p + ".password_env",
               "refusing to send credentials without TLS: set security = \"starttls\" or \"tls\"");
    string ca;
    if (read_string(t, "ca_file", p, ca) == got::ok) {
      std::error_code ec;
      if (ca.empty() || !std::filesystem::is_regular_file(ca, ec))
        error_at(*t.get("ca_file"), p + ".ca_file", "'" + ca + "' is not a readable file");
      else e.ca_file = ca;
    }
    read_bool(t, "verify_tls", p, e.verify_tls);
    if (e.security == smtp_security::none) {
      for (const char* k : {"ca_file", "verify_tls"})
        if (const toml::node* n = t.get(k))
          error_at(*n, join_path(p, k), "has no effect with security = \"none\"");
    }
    read_timeout(t, p, e.timeout_ms);
    return e;
  }

  /// "name" or "schema.name", each part an unquoted SQL identifier.
  static bool is_qualified_name(const string& s) {
    const size_t dot = s.find('.');
    auto part = [](string_view x) {
      if (x.empty() || x.size() > 63 || !(is_alpha(x[0]) || x[0] == '_')) return false;
      return std::all_of(x.begin(), x.end(), [](char c) { return is_alpha(c) || is_digit(c) || c == '_' || c == '$'; });
    };
    if (dot == string::npos) return part(s);
    return part(string_view(s).substr(0, dot)) && part(string_view(s).substr(dot + 1));
  }

  /// TOML value -> JSON, reporting unsupported types (dates, non-finite floats).
  std::optional<boost::json::value> to_json(const toml::node& n, const string& where) {
    namespace json = boost::json;
    if (const auto* s = n.as_string()) return json::value(s->get());
    if (const auto* i = n.as_integer()) return json::value(i->get());
    if (const auto* b = n.as_boolean()) return json::value(b->get());
    if (const auto* f = n.as_floating_point()) {
      if (!std::isfinite(f->get())) {
        error_at(n, where, "must be a finite number (JSON has no nan or inf)");
        return std::nullopt;
      }
      return json::value(f->get());
    }
    if (const auto* a = n.as_array()) {
      json::array out;
      bool ok = true;
      for (size_t i = 0; i < a->size(); ++i) {
        auto v = to_json(*a->get(i), index_path(where, i));
        if (v) out.push_back(std::move(*v));
        else ok = false;
      }
      if (!ok) return std::nullopt;
      return json::value(std::move(out));
    }
    if (const auto* t = n.as_table()) {
      json::object out;
      bool ok = true;
      for (auto&& [k, v] : *t) {
        auto jv = to_json(v, join_path(where, k.str()));
        if (jv) out[k.str()] = std::move(*jv);
        else ok = false;
      }
      if (!ok) return std::nullopt;
      return json::value(std::move(out));
    }
    type_error(n, where, "a string, number, boolean, array or table (JSON has no dates)");
    return std::nullopt;
  }

  database_action_config walk_database_action(const toml::table& t, const string& p) {
    database_action_config d;
    string fn;
    const got gf = read_string(t, "function", p, fn);
    if (gf == got::absent) {
      missing(t, p + ".function", "required key is missing (a function name such as \"app.on_order\")");
    } else if (gf == got::ok) {
      if (is_qualified_name(fn)) d.function = fn;
      else
        error_at(*t.get("function"), p + ".function",
                 "'" + fn + "' is not a function name (name or schema.name; letters, digits, _ and $, "
                 "not starting with a digit)");
    }
    if (const toml::node* pn = t.get("params")) {
      if (!pn->is_table()) {
        type_error(*pn, p + ".params", "a table (rendered as a JSON object)");
      } else if (auto v = to_json(*pn, p + ".params")) {
        d.params_json = boost::json::serialize(*v);
      }
    }
    string url;
    if (read_env_ref(t, "url_env", p, d.url_env, url) == got::ok) {
      if (auto why = check_db_url(url))
        error_at(*t.get("url_env"), p + ".url_env", "value of environment variable " + d.url_env + " " + *why);
      else d.url = url;
    }
    read_timeout(t, p, d.timeout_ms);
    return d;
  }

  void walk_retry(const toml::table& t, const string& p, retry_config& r) {
    check_keys(t, p, {"max_attempts", "initial_delay_ms", "max_delay_ms", "backoff_strategy", "jitter"},
               "[observers.retry]");
    read_u32(t, "max_attempts", p, 1, 1000, r.max_attempts);
    const got gi = read_u32(t, "initial_delay_ms", p, 0, u32_max, r.initial_delay_ms);
    const got gm = read_u32(t, "max_delay_ms", p, 0, u32_max, r.max_delay_ms);
    string strategy;
    if (read_enum(t, "backoff_strategy", p, {"exponential", "linear", "fixed"}, false, strategy) == got::ok) {
      r.strategy = strategy == "exponential" ? backoff_strategy::exponential
                   : strategy == "linear"    ? backoff_strategy::linear
                                             : backoff_strategy::fixed;
    }
    if (const toml::node* jn = t.get("jitter")) {
      std::optional<double> j;
      if (const auto* f = jn->as_floating_point()) j = f->get();
      else if (const auto* i = jn->as_integer()) j = static_cast<double>(i->get());
      if (!j) {
        type_error(*jn, p + ".jitter", "a number between 0 and 1");
      } else if (!(*j >= 0.0 && *j <= 1.0)) {  // also rejects NaN
        std::ostringstream os;
        os << *j;
        error_at(*jn, p + ".jitter", "must be between 0 and 1 (got " + os.str() + ")");
      } else {
        r.jitter = *j;
      }
    }
    if (gi != got::bad && gm != got::bad && r.max_delay_ms < r.initial_delay_ms) {
      if (gm == got::ok) {
        error_at(*t.get("max_delay_ms"), p + ".max_delay_ms",
                 "must be >= initial_delay_ms (" + std::to_string(r.initial_delay_ms) + ")");
      } else {
        error_at(*t.get("initial_delay_ms"), p + ".initial_delay_ms",
                 "exceeds max_delay_ms (default " + std::to_string(r.max_delay_ms) + "); set max_delay_ms too");
      }
    }
  }

  // --- environment --------------------------------------------------------------

  std::optional<string> env(const char* name) const {
    if (env_ == nullptr) return std::nullopt;
    auto v = env_(name);
    if (!v || v->empty()) return std::nullopt;  // empty counts as unset
    return v;
  }

  void env_bool(const char* var, bool& field, origin* o) {
    const auto v = env(var);
    if (!v) return;
    if (const auto b = parse_env_bool(*v)) {
      field = *b;
      if (o != nullptr) *o = env_origin(var);
    } else {
      error_env(var, "invalid boolean '" + *v + "' (expected true, false, 1, 0, yes or no)");
    }
  }

  void env_u32(const char* var, const std::optional<string>& v, uint64_t min, uint64_t max, uint32_t& field) {
    if (!v) return;
    const auto n = parse_digits(trim(*v));
    if (!n) {
      error_env(var, "invalid value '" + *v + "' (expected a non-negative integer)");
    } else if (*n < min || *n > max) {
      error_env(var, range_text(min, max) + " (got " + std::to_string(*n) + ")");
    } else {
      field = static_cast<uint32_t>(*n);
    }
  }

  void apply_env() {
    // Database URL: FRAISEQL_DATABASE_URL, then DATABASE_URL, then the url_env variable.
    const char* url_var = nullptr;
    std::optional<string> url;
    if ((url = env("FRAISEQL_DATABASE_URL"))) url_var = "FRAISEQL_DATABASE_URL";
    else if ((url = env("DATABASE_URL"))) url_var = "DATABASE_URL";
    if (url_var != nullptr) {
      if (auto why = check_db_url(*url)) {
        error_env(url_var, *why);
      } else {
        cfg_.database.url = *url;
      }
      database_origin_ = env_origin(url_var);
      url_given_ = true;
    } else if (!url_env_.empty()) {
      const auto v = env(url_env_.c_str());
      if (!v) {
        error_at(url_env_origin_, "environment variable " + url_env_ + " (named by url_env) is not set or empty");
      } else if (auto why = check_db_url(*v)) {
        error_at(url_env_origin_, "value of environment variable " + url_env_ + " " + *why);
      } else {
        cfg_.database.url = *v;
        cfg_.database.url_env = url_env_;
      }
      database_origin_ = url_env_origin_;
    }

    if (const auto v = env("FRAISEQL_OBSERVER_TRANSPORT")) {
      const string t(trim(*v));
      if (t == "postgres" || t == "nats" || t == "in_memory") {
        cfg_.transport.transport = t;
        transport_origin_ = env_origin("FRAISEQL_OBSERVER_TRANSPORT");
      } else {
        error_env("FRAISEQL_OBSERVER_TRANSPORT", "invalid value '" + *v + "' (expected one of: postgres, nats, in_memory)");
      }
    }
    env_bool("FRAISEQL_NATS_ENABLE_BRIDGE", cfg_.transport.run_bridge, &bridge_origin_);
    env_bool("FRAISEQL_NATS_RUN_EXECUTORS", cfg_.transport.run_executors, &executors_origin_);
    env_bool("FRAISEQL_ENABLE_DEDUP", cfg_.performance.enable_dedup, &dedup_origin_);
    env_bool("FRAISEQL_ENABLE_CACHING", cfg_.performance.enable_caching, &caching_origin_);
    env_bool("FRAISEQL_ENABLE_CONCURRENT", cfg_.performance.enable_concurrent, nullptr);

    if (const auto v = env("FRAISEQL_MAX_CONCURRENT_ACTIONS"))
      env_u32("FRAISEQL_MAX_CONCURRENT_ACTIONS", v, 1, 100000, cfg_.performance.max_concurrent_actions);
    else if (const auto alias = env("FRAISEQL_MAX_CONCURRENCY"))
      env_u32("FRAISEQL_MAX_CONCURRENCY", alias, 1, 100000, cfg_.performance.max_concurrent_actions);

    env_u32("FRAISEQL_CHANNEL_CAPACITY", env("FRAISEQL_CHANNEL_CAPACITY"), 1, 10000000,
            cfg_.listener.max_in_flight);

    if (const auto v = env("FRAISEQL_SHUTDOWN_TIMEOUT")) {
      const auto ms = parse_duration_ms(*v);
      if (!ms) {
        error_env("FRAISEQL_SHUTDOWN_TIMEOUT",
                  "invalid duration '" + *v + "' (expected e.g. 30s, 500ms, 2m, 1h or a number of seconds)");
      } else if (*ms > u32_max) {
        error_env("FRAISEQL_SHUTDOWN_TIMEOUT", "duration '" + *v + "' is too long (at most " +
                                                   std::to_string(u32_max) + " ms)");
      } else {
        cfg_.shutdown.timeout_ms = static_cast<uint32_t>(*ms);
      }
    }

    const char* log_var = nullptr;
    std::optional<string> log_spec;
    if ((log_spec = env("FRAISEQL_LOG"))) log_var = "FRAISEQL_LOG";
    else if ((log_spec = env("RUST_LOG"))) log_var = "RUST_LOG";
    if (log_var != nullptr) {
      if (const auto level = select_log_level(*log_spec)) {
        if (contains(log_levels, *level)) {
          cfg_.logging.level = *level;
        } else {
          error_env(log_var, "unknown log level '" + *level + "' in '" + *log_spec +
                                 "' (expected one of: " + list(log_levels) + ")");
        }
      }
    }

    if (env("FRAISEQL_NATS_URL"))
      error_env("FRAISEQL_NATS_URL",
                "is set, but NATS is not supported in this build (PostgreSQL-only and PostgreSQL + Redis "
                "topologies); unset it");
    apply_redis_env();
  }

  void apply_redis_env() {
    if (const auto v = env("FRAISEQL_REDIS_URL")) {
      if (!cfg_.redis) cfg_.redis.emplace();
      if (auto why = check_redis_url(*v)) {
        error_env("FRAISEQL_REDIS_URL", *why);
      } else {
        cfg_.redis->url = *v;
        redis_url_missing_ = false;
      }
    }
    struct num {
      const char* var;
      uint32_t redis_config::*field;
      uint64_t min, max;
    };
    static const num nums[] = {
        {"FRAISEQL_REDIS_POOL_SIZE", &redis_config::pool_size, 1, 1000},
        {"FRAISEQL_REDIS_CONNECT_TIMEOUT_SECS", &redis_config::connect_timeout_secs, 1, 3600},
        {"FRAISEQL_REDIS_COMMAND_TIMEOUT_SECS", &redis_config::command_timeout_secs, 1, 3600},
        {"FRAISEQL_REDIS_DEDUP_WINDOW_SECS", &redis_config::dedup_window_secs, 1, 30 * 86400},
        {"FRAISEQL_REDIS_CACHE_TTL_SECS", &redis_config::cache_ttl_secs, 1, 30 * 86400},
        {"FRAISEQL_REDIS_CLAIM_TTL_SECS", &redis_config::claim_ttl_secs, 1, 86400},
    };
    for (const auto& n : nums) {
      const auto v = env(n.var);
      if (!v) continue;
      if (!cfg_.redis) {
        error_env(n.var, "is set, but Redis is not configured: add [redis] url or set FRAISEQL_REDIS_URL");
        continue;
      }
      env_u32(n.var, v, n.min, n.max, (*cfg_.redis).*n.field);
    }
    if (const auto v = env("FRAISEQL_REDIS_FAILURE_POLICY")) {
      const string t(trim(*v));
      if (!cfg_.redis)
        error_env("FRAISEQL_REDIS_FAILURE_POLICY",
                  "is set, but Redis is not configured: add [redis] url or set FRAISEQL_REDIS_URL");
      else if (t == "fail_open" || t == "fail_closed")
        cfg_.redis->failure_policy = t;
      else
        error_env("FRAISEQL_REDIS_FAILURE_POLICY", "invalid value '" + *v + "' (expected one of: fail_open, fail_closed)");
    }
  }

  // --- checks on the effective configuration -----------------------------------

  void final_checks() {
    // Database actions without url_env use the engine's own database.
    for (auto& o : cfg_.observers)
      for (auto& a : o.actions)
        if (a.database && a.database->url.empty()) a.database->url = cfg_.database.url;
    settle_async();  // job queue
    if (!url_given_) {
      origin o = database_origin_;
      if (database_table_ != nullptr) {
        o.line = database_table_->source().begin.line;
        o.column = database_table_->source().begin.column;
      }
      error_at(o,
               "is required: set url (or url_env) in [database], or the FRAISEQL_DATABASE_URL or DATABASE_URL "
               "environment variable");
    }
    const string& tr = cfg_.transport.transport;
    if (tr != "postgres") {
      error_at(transport_origin_, "transport '" + tr +
                                      "' is a valid FraiseQL transport but is not implemented in this build "
                                      "(only \"postgres\" is)");
    }
    if (cfg_.transport.run_bridge) {
      error_at(bridge_origin_,
               "the PostgreSQL -> NATS bridge is not implemented in this build; run_bridge must be false");
    }
    if (!cfg_.transport.run_executors) {
      error_at(executors_origin_,
               "this build always runs the observer executors in-process; run_executors must be true");
    }
    if (cfg_.redis && redis_url_missing_)
      missing(*redis_table_, "redis.url",
              "required key is missing (redis://host:port[/db]; or set FRAISEQL_REDIS_URL)");
    // Dedup claims must be visible to every node that may be handed the same
    // event (a second listener, a failover): process memory is not enough.
    if (cfg_.performance.enable_dedup && !cfg_.redis)
      error_at(dedup_origin_,
               "enable_dedup requires [redis] (PostgreSQL + Redis topology): add a [redis] table with url, "
               "or set FRAISEQL_REDIS_URL");
  }

  string file_;
  env_lookup env_;
  config cfg_;
  std::vector<config_error> errors_;
  std::vector<size_t> observer_index_;  // array index of each cfg_.observers entry

  const toml::table* database_table_ = nullptr;
  bool url_given_ = false;
  string url_env_;
  origin url_env_origin_;
  origin database_origin_;
  origin transport_origin_;
  origin bridge_origin_;
  origin executors_origin_;
  origin dedup_origin_;
  origin caching_origin_;
  const toml::table* redis_table_ = nullptr;
  bool redis_url_missing_ = false;
  std::map<string, std::pair<bool, origin>> async_keys_;  // action path -> explicit async
};


}  // namespace




config_result load_config_string(const std::string& text, const std::string& source, env_lookup env) {
  try {
    const toml::table root = toml::parse(text, source);
    return loader(source, env).run(root);
  } catch (const toml::parse_error& e) {
    config_result r;
    r.errors.push_back(config_error{source, e.source().begin.line, e.source().begin.column, "",
                                    "TOML syntax error: " + std::string(e.description())});
    return r;
  }
}

config_result load_config_file(const std::string& path, env_lookup env) {
  auto fail = [&](std::string message) {
    config_result r;
    r.errors.push_back(config_error{path, 0, 0, "", std::move(message)});
    return r;
  };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return fail("cannot read configuration file: is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(std::string("cannot open configuration file: ") + std::strerror(errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return fail(std::string("cannot read configuration file: ") + std::strerror(errno));
  return load_config_string(buf.str(), path, env);
}

}  // namespace fraiseql
