#pragma once

// Structured logging on spdlog. Text ("2026-11-22T10:00:00.123Z INFO listener: ...")
// or one JSON object per line ({"ts":...,"level":...,"msg":...}). Request payloads
// are never logged by the engine at info level or above.

#include <spdlog/spdlog.h>

#include <optional>
#include <string>

namespace fraiseql {

/// Parses trace|debug|info|warn|error (and "warning", "off").
std::optional<spdlog::level::level_enum> parse_log_level(const std::string& s);

/// Sets the default logger: level and format ("text" or "json"), to stderr.
void init_logging(const std::string& level, const std::string& format);

}  // namespace fraiseql
