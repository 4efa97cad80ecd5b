#pragma once

// Text helpers shared by the configuration loader's parts: key paths, "did
// you mean" suggestions, TOML type names, the parsing of environment values
// and the checks on connection strings. Internal to runtime/config.

#include "runtime/config/text.hpp"

#include <toml++/toml.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fraiseql::config_detail {

constexpr uint32_t u32_max = std::numeric_limits<uint32_t>::max();
/// The `file` of errors caused by environment variables.
constexpr const char* env_source = "environment";

using key_list = std::vector<std::string_view>;

using config_text::ascii_lower;
using config_text::is_space;
using config_text::lower;
bool is_alpha(char c);
bool is_digit(char c);
bool has_control_char(std::string_view s);
std::string_view trim(std::string_view s);

/// A TOML key as it would be written in a dotted path: bare when possible.
std::string quote_key(std::string_view k);
std::string join_path(const std::string& path, std::string_view key);
std::string index_path(const std::string& path, size_t i);

/// "a, b, c".
std::string list(const key_list& items);
bool contains(const key_list& items, std::string_view s);
/// The closest known key, if it is close enough to be a likely typo.
std::optional<std::string> suggest(std::string_view key, const key_list& known);
/// "a string", "an integer", ... for messages.
std::string type_name(toml::node_type t);

/// [A-Za-z_][A-Za-z0-9_]*
bool is_identifier(std::string_view s);
/// RFC 9110 token characters (header field names).
bool is_token(std::string_view s);

/// "must be between 1 and 10", "must be at least 1", "must not be negative".
std::string range_text(uint64_t min, uint64_t max);
/// `v` as printed in messages (ostream formatting: 0.5, 1, nan).
std::string number_text(double v);

/// true/false/1/0/yes/no, any case, surrounding space ignored.
std::optional<bool> parse_env_bool(std::string_view raw);
/// A non-negative decimal integer (no sign, no fraction), or nullopt.
std::optional<uint64_t> parse_digits(std::string_view s);
/// "30s", "500ms", "2m", "1h" or bare seconds, in milliseconds.
std::optional<uint64_t> parse_duration_ms(std::string_view raw);

extern const key_list log_levels;
/// The level a RUST_LOG-style spec selects for this program, lower case and
/// not yet validated; nullopt when the spec says nothing about it.
std::optional<std::string> select_log_level(std::string_view spec);

/// Why `url` cannot be a PostgreSQL connection string, or nullopt if it can.
std::optional<std::string> check_db_url(const std::string& url);
/// Why `url` cannot be a webhook target, or nullopt if it can.
std::optional<std::string> check_http_url(const std::string& url);
/// Why `url` is not a usable Redis URL (password masked), or nullopt.
std::optional<std::string> check_redis_url(const std::string& url);
/// Why `urls` (comma-separated nats://host[:port] or tls://host[:port]) is not
/// a usable NATS server list, naming the offending entry, or nullopt.
std::optional<std::string> check_nats_urls(const std::string& urls);

}  // namespace fraiseql::config_detail
