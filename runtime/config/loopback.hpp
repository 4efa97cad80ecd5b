#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace fraiseql {

struct host_port {
  std::string host;  // without the brackets of "[::1]:7480"
  uint16_t port = 0;
};

/// "host:port" or "[v6]:port"; nullopt unless the host is non-empty (no
/// space or slash) and the port is 1-65535. The one parser of [cluster]
/// seeds and of the addresses peers advertise.
std::optional<host_port> parse_host_port(const std::string& s);

/// True for addresses that only this host can reach (127.0.0.0/8, ::1, localhost).
bool is_loopback_address(const std::string& host);

}  // namespace fraiseql
