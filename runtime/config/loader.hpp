#pragma once

// Loading a configuration: the TOML file, strictly validated, then the
// FRAISEQL_* environment variables. Errors name file, line, column and key.

#include "runtime/config/model.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace fraiseql {

/// Environment lookup, injectable for tests.
using env_lookup = std::optional<std::string> (*)(const char* name);
std::optional<std::string> process_env(const char* name);

/// Parses and validates a TOML file, then applies FRAISEQL_* overrides, then
/// resolves the process roles for `role` ("all", "bridge" or "worker", the
/// `--role` of observer-node; resolve_roles in roles.hpp) into config::roles,
/// its errors and warnings located like the others.
config_result load_config_file(const std::string& path, env_lookup env = process_env,
                               std::string_view role = "all");

/// Same, from text (`source` names it in messages).
config_result load_config_string(const std::string& text, const std::string& source,
                                 env_lookup env = process_env, std::string_view role = "all");

}  // namespace fraiseql
