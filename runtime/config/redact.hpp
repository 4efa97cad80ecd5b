#pragma once

// Secrets never reach logs: connection strings and URLs with their passwords
// masked.

#include <string>

namespace fraiseql {

/// `url` with any password masked as "***" (postgresql://user:***@host, a
/// `password=` query parameter, or a libpq `password=...` keyword). Use it
/// whenever a connection string or webhook URL is logged or printed.
std::string redact_url(const std::string& url);

}  // namespace fraiseql
