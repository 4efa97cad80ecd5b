// Text helpers of the configuration loader (see toml_util.hpp).

#include "runtime/config/toml_util.hpp"

#include "runtime/config/loopback.hpp"
#include "runtime/config/redact.hpp"
#include "runtime/core/redis_url.hpp"

#include <algorithm>
#include <exception>
#include <sstream>

namespace fraiseql::config_detail {

using std::string;
using std::string_view;

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
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

string index_path(const string& path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

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

static size_t edit_distance(string_view a, string_view b) {
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
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

/// [A-Za-z_][A-Za-z0-9_]*
bool is_identifier(string_view s) {
  if (s.empty() || !(is_alpha(s[0]) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return is_alpha(c) || is_digit(c) || c == '_'; });
}

/// RFC 9110 token characters (header field names).
bool is_token(string_view s) {
  if (s.empty()) return false;
  static constexpr string_view extra = "!#$%&'*+-.^_`|~";
  return std::all_of(s.begin(), s.end(), [](char c) {
    return is_alpha(c) || is_digit(c) || extra.find(c) != string_view::npos;
  });
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
  if (unit.empty() || unit == "s")
    factor = 1000;
  else if (unit == "ms")
    factor = 1;
  else if (unit == "m")
    factor = 60 * 1000;
  else if (unit == "h")
    factor = 60 * 60 * 1000;
  else
    return std::nullopt;
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
    if (!target_level || rank(level) < 0 ||
        (rank(*target_level) >= 0 && rank(level) < rank(*target_level)))
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
  if (head.rfind("http://", 0) == 0)
    rest = 7;
  else if (head.rfind("https://", 0) == 0)
    rest = 8;
  else
    return "'" + redact_url(url) + "' is not an http:// or https:// URL";
  string_view authority = string_view(url).substr(rest);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  const size_t at = authority.rfind('@');
  if (at != string_view::npos) authority.remove_prefix(at + 1);
  if (authority.empty() || authority[0] == ':') return "'" + redact_url(url) + "' has no host";
  return std::nullopt;
}

string range_text(uint64_t min, uint64_t max) {
  if (max >= u32_max)
    return min == 0 ? "must not be negative" : "must be at least " + std::to_string(min);
  return "must be between " + std::to_string(min) + " and " + std::to_string(max);
}

string number_text(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

std::optional<string> check_redis_url(const string& url) {
  try {
    redis_url::parse(url);
    return std::nullopt;
  } catch (const std::exception& e) {
    return string(e.what());
  }
}

std::optional<string> check_nats_urls(const string& urls) {
  if (trim(urls).empty()) return string("must not be empty (nats://host:port, comma-separated)");
  size_t begin = 0;
  for (size_t index = 0;; ++index) {
    const size_t comma = urls.find(',', begin);
    const string entry(trim(std::string_view(urls).substr(
        begin, comma == string::npos ? string::npos : comma - begin)));
    const string which = "entry " + std::to_string(index + 1) + " '" + entry + "'";
    const size_t sep = entry.find("://");
    if (entry.empty()) return "entry " + std::to_string(index + 1) + " is empty";
    if (sep == string::npos)
      return which + " has no scheme (expected nats://host:port or tls://host:port)";
    const string scheme = lower(entry.substr(0, sep));
    if (scheme != "nats" && scheme != "tls")
      return which + ": unsupported scheme '" + scheme + "' (expected nats:// or tls://)";
    const string rest = entry.substr(sep + 3);
    if (rest.find('@') != string::npos)
      return "entry " + std::to_string(index + 1) +
             " has credentials in the URL: use user_env / password_env or token_env";
    if (rest.find_first_of("/?#") != string::npos)
      return which + " has a path or query (expected " + scheme + "://host:port)";
    // host, host:port, [v6] or [v6]:port
    const bool bracketed = !rest.empty() && rest.front() == '[';
    const size_t close = bracketed ? rest.find(']') : string::npos;
    if (bracketed && close == string::npos) return which + ": unterminated [IPv6] host";
    const size_t colon = rest.find(':', bracketed ? close : 0);
    if (colon == string::npos || (bracketed && colon != close + 1)) {
      if (bracketed && close + 1 != rest.size()) return which + ": bad host";
      const string host = bracketed ? rest.substr(1, close - 1) : rest;
      if (host.empty() || host.find_first_of(" \t") != string::npos || has_control_char(host))
        return which + " has no valid host";
      if (!bracketed && host.find(':') != string::npos)
        return which + ": an IPv6 host needs brackets ([::1]:4222)";
    } else {
      const auto hp = parse_host_port(rest);
      if (!hp || has_control_char(rest) || rest.find_first_of(" \t") != string::npos)
        return which + " is not " + scheme + "://host:port with a port 1-65535";
    }
    if (comma == string::npos) break;
    begin = comma + 1;
  }
  return std::nullopt;
}

}  // namespace fraiseql::config_detail
