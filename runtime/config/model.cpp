#include "runtime/config/model.hpp"

#include "runtime/config/loopback.hpp"

#include <algorithm>
#include <cctype>

namespace fraiseql {

std::string config_error::to_string() const {
  std::string out = file.empty() ? std::string("<config>") : file;
  if (line > 0) {
    out += ':';
    out += std::to_string(line);
    if (column > 0) {
      out += ':';
      out += std::to_string(column);
    }
  }
  out += ": ";
  if (!key.empty()) {
    out += key;
    out += ": ";
  }
  out += message;
  return out;
}

bool http_retry_config::retryable(long status) const {
  if (!retry_on_status) return status >= 500 || status == 429 || status == 408;
  return std::binary_search(retry_on_status->begin(), retry_on_status->end(),
                            static_cast<uint16_t>(status));
}

std::string email_action_config::url() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return std::string(security == smtp_security::tls ? "smtps://" : "smtp://") + (ipv6 ? "[" : "") +
         host + (ipv6 ? "]" : "") + ":" + std::to_string(port);
}

std::vector<std::string> nats_action_config::urls() const {
  return split_nats_urls(url);
}

std::vector<std::string> nats_config::urls() const {
  return split_nats_urls(url);
}

std::vector<std::string> split_nats_urls(const std::string& url) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= url.size()) {
    const size_t comma = url.find(',', start);
    const size_t end = comma == std::string::npos ? url.size() : comma;
    size_t b = start, e = end;
    while (b < e && (url[b] == ' ' || url[b] == '\t')) ++b;
    while (e > b && (url[e - 1] == ' ' || url[e - 1] == '\t')) --e;
    if (e > b) out.push_back(url.substr(b, e - b));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string nats_server_address::endpoint() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  return scheme + "://" + (ipv6 ? "[" : "") + host + (ipv6 ? "]" : "") + ":" + std::to_string(port);
}

std::optional<nats_server_address> parse_nats_url(const std::string& url, std::string* why) {
  auto fail = [why](std::string w) -> std::optional<nats_server_address> {
    if (why != nullptr) *why = std::move(w);
    return std::nullopt;
  };
  nats_server_address a;
  const size_t sep = url.find("://");
  if (sep == std::string::npos)
    return fail("is not a URL (expected nats://host:port or tls://host:port)");
  a.scheme = url.substr(0, sep);
  for (char& c : a.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (a.scheme != "nats" && a.scheme != "tls")
    return fail("has scheme '" + a.scheme + "' (expected nats:// or tls://)");
  std::string rest = url.substr(sep + 3);
  const size_t at = rest.rfind('@');
  if (at != std::string::npos) rest = rest.substr(at + 1);  // credentials: never echoed
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.empty()) return fail("has no host");
  if (rest.find_first_of(" \t/?#,") != std::string::npos ||
      std::any_of(rest.begin(), rest.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
    return fail("has an invalid host:port '" + rest + "'");
  const bool bracketed = rest.front() == '[';
  const size_t close = bracketed ? rest.find(']') : std::string::npos;
  const bool has_port = bracketed ? (close != std::string::npos && close + 1 < rest.size())
                                  : rest.find(':') != std::string::npos;
  if (has_port) {
    const auto hp = parse_host_port(rest);
    if (!hp) return fail("has an invalid host:port '" + rest + "' (port 1-65535)");
    a.host = hp->host;
    a.port = hp->port;
  } else {
    a.host = bracketed ? rest.substr(1, close == std::string::npos ? std::string::npos : close - 1)
                       : rest;
    if (a.host.empty() || (bracketed && close == std::string::npos))
      return fail("has an invalid host '" + rest + "'");
  }
  return a;
}

std::optional<std::string> check_nats_subject(std::string_view s) {
  if (s.empty()) return std::string("must not be empty");
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f) return std::string("must not contain spaces or control characters");
    if (c == '*' || c == '>')
      return std::string("must not contain wildcards ('*', '>'): a message goes to one subject");
  }
  if (s.front() == '.' || s.back() == '.' || s.find("..") != std::string_view::npos)
    return std::string("has an empty token (tokens are separated by single dots)");
  return std::nullopt;
}

std::string database_action_config::quoted_function() const {
  // Validated at load: identifiers only, so quoting needs no escaping, but
  // double any quote anyway so this stays safe if the rules ever loosen.
  std::string out = "\"";
  for (char c : function) {
    if (c == '.')
      out += "\".\"";
    else if (c == '"')
      out += "\"\"";
    else
      out += c;
  }
  return out + "\"";
}

bool is_loopback_address(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::optional<host_port> parse_host_port(const std::string& s) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  std::string host = s.substr(0, colon);
  const std::string port = s.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty() || host.find_first_of(" /") != std::string::npos) return std::nullopt;
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  const unsigned long n = std::stoul(port);
  if (n < 1 || n > 65535) return std::nullopt;
  return host_port{host, static_cast<uint16_t>(n)};
}

bool async_by_default(const std::string& type, bool job_queue_enabled) {
  return job_queue_enabled && type == "email";
}

}  // namespace fraiseql
