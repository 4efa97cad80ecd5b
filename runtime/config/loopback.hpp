#pragma once

#include <string>

namespace fraiseql {

/// True for addresses that only this host can reach (127.0.0.0/8, ::1, localhost).
bool is_loopback_address(const std::string& host);

}  // namespace fraiseql
