#include "runtime/core/redis_url.hpp"

#include <algorithm>
#include <cctype>
#include <optional>
#include <string_view>

namespace fraiseql {

namespace {

[[noreturn]] void url_error(const std::string& shown, const std::string& what) {
  throw std::invalid_argument("redis url '" + shown + "': " + what);
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hex_digit(s[i + 1]);
    const int lo = hex_digit(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

/// Digits only, value in [min, max].
std::optional<uint64_t> parse_number(std::string_view s, uint64_t min, uint64_t max) {
  if (s.empty() || s.size() > 10) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v < min || v > max) return std::nullopt;
  return v;
}

}  // namespace

bool redis_tls_supported() {
  // hiredis gained TLS in 1.0 (a separate hiredis_ssl library); Debian 12 ships
  // 0.14.1 without it, and this build does not link one.
  return false;
}

std::string redact_redis_url(const std::string& url) {
  const size_t sep = url.find("://");
  const size_t start = sep == std::string::npos ? 0 : sep + 3;
  const size_t at = url.rfind('@');
  if (at == std::string::npos || at < start) return url;
  const std::string userinfo = url.substr(start, at - start);
  const size_t colon = userinfo.find(':');
  // No ':' may mean "redis://password@host": mask it all.
  const std::string masked =
      colon == std::string::npos ? "***" : userinfo.substr(0, colon) + ":***";
  return url.substr(0, start) + masked + url.substr(at);
}

redis_url redis_url::parse(const std::string& url) {
  const std::string shown = redact_redis_url(url);
  const size_t sep = url.find("://");
  if (sep == std::string::npos)
    url_error(shown, "expected redis://[[user]:password@]host[:port][/db]");
  std::string scheme = url.substr(0, sep);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  redis_url u;
  if (scheme == "rediss") {
    u.tls = true;
    if (!redis_tls_supported())
      url_error(
          shown,
          "TLS (rediss://) is not supported by this build's hiredis (" OBSERVER_HIREDIS_VERSION
          ", built without SSL); use redis:// on a trusted network or through "
          "a TLS tunnel (stunnel, spiped)");
  } else if (scheme != "redis") {
    url_error(shown, "unsupported scheme '" + scheme + "' (expected redis:// or rediss://)");
  }
  std::string_view rest(url);
  rest.remove_prefix(sep + 3);
  // The last '@' ends the user info: a raw '@', '/' or '?' in a password
  // still parses (and is still masked in messages).
  const size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    const size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos)
      url_error(shown,
                "the part before '@' has no ':' (write redis://:password@host or "
                "redis://user:password@host)");
    auto user = percent_decode(userinfo.substr(0, colon));
    if (!user) url_error(shown, "invalid percent-escape in the user name");
    auto password = percent_decode(userinfo.substr(colon + 1));
    if (!password) url_error(shown, "invalid percent-escape in the password");
    if (password->empty()) url_error(shown, "empty password after ':'");
    u.username = std::move(*user);
    u.password = std::move(*password);
  }
  if (rest.find_first_of("?#") != std::string_view::npos)
    url_error(shown,
              "query parameters and fragments are not supported (the database goes in the "
              "path: redis://host:6379/2)");
  const size_t slash = rest.find('/');
  const std::string_view hostport = rest.substr(0, slash);
  const std::string_view path =
      slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
  std::optional<std::string_view> port;
  if (!hostport.empty() && hostport[0] == '[') {
    const size_t close = hostport.find(']');
    if (close == std::string_view::npos) url_error(shown, "unterminated '[' in the host");
    u.host = std::string(hostport.substr(1, close - 1));
    const std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') url_error(shown, "unexpected text after ']'");
      port = after.substr(1);
    }
  } else {
    const size_t colon = hostport.find(':');
    if (colon != std::string_view::npos) {
      if (hostport.find(':', colon + 1) != std::string_view::npos)
        url_error(shown, "an IPv6 address goes in brackets: redis://[::1]:6379");
      port = hostport.substr(colon + 1);
    }
    u.host = std::string(hostport.substr(0, colon));
  }
  if (u.host.empty()) url_error(shown, "missing host");
  if (port) {
    auto p = parse_number(*port, 1, 65535);
    if (!p) url_error(shown, "port '" + std::string(*port) + "' is not a number in 1..65535");
    u.port = static_cast<uint16_t>(*p);
  }
  if (!path.empty()) {
    auto db = parse_number(path, 0, 2147483647);
    if (!db)
      url_error(shown,
                "database '" + std::string(path) + "' is not a number (expected /0, /1, ...)");
    u.db = static_cast<uint32_t>(*db);
  }
  return u;
}

std::string redis_url::endpoint() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string redis_url::to_string() const {
  std::string out = tls ? "rediss://" : "redis://";
  if (!password.empty()) out += username + ":***@";
  out += endpoint();
  out += "/" + std::to_string(db);
  return out;
}

}  // namespace fraiseql
