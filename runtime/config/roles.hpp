#pragma once

// What one process runs (config::roles), from `--role` and [transport]:
//
//   transport   --role all                          --role bridge   --role worker
//   postgres    pipeline                            error           error
//   nats        bridge = run_bridge,                bridge          workers
//               workers = run_executors
//
// --role bridge / worker override [transport] run_bridge / run_executors. A
// bridge runs no actions, so keys that configure actions ([job_queue] enabled,
// [performance] enable_dedup / enable_caching) are errors with --role bridge;
// keys that only one role reads warn when this process does not run it.
// No CAF: the loader calls this (load_config_file's `role`), with locations.

#include "runtime/config/model.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fraiseql {

/// The roles `--role` accepts.
inline constexpr std::string_view role_names[] = {"all", "bridge", "worker"};

/// Where the effective value of a dotted key ("performance.enable_dedup") was
/// set: file (or "environment" with the variable as key), line, column.
struct config_location {
  std::string file;
  uint32_t line = 0;
  uint32_t column = 0;
  /// The key as it should be named in the message (the variable for env).
  std::string key;
};

/// nullopt when the key keeps its default (set neither in the file nor the
/// environment).
using config_locator = std::function<std::optional<config_location>(std::string_view key)>;

/// Sets cfg.roles for `role` ("all", "bridge" or "worker") and returns the
/// errors (empty: the roles are valid). Warnings (keys with no effect for the
/// resolved roles) are appended to `warnings` when given. Without `where`,
/// errors name the key in cfg.source without a line, and warnings that need
/// to know whether a key was set explicitly are not produced.
std::vector<config_error> resolve_roles(config& cfg, std::string_view role,
                                        std::vector<config_error>* warnings = nullptr,
                                        const config_locator& where = {});

/// "pipeline", "bridge, workers", "bridge", "workers" (or "nothing").
std::string roles_text(const process_roles& roles);

}  // namespace fraiseql
