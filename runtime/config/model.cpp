#include "runtime/config/model.hpp"

#include "runtime/config/loopback.hpp"

#include <algorithm>

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
