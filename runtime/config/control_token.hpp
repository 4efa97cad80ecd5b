#pragma once

// Where a node publishes the control token it generated, so that observerctl
// on the same host authenticates without the operator typing it: one file per
// control port (only one process on the host holds a port, so two nodes never
// write the same file), owner-only (0600), in a runtime directory:
//
//   [control] runtime_dir / FRAISEQL_RUNTIME_DIR, when set;
//   else $XDG_RUNTIME_DIR/fraiseql (a login session's private directory);
//   else /run/fraiseql as root;
//   else /tmp/fraiseql-<uid> (created 0700, must be owned by the user).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fraiseql {

/// The node's runtime directory: `configured` when non-empty, else the
/// default above for this process's environment and effective uid.
std::string control_runtime_dir(const std::string& configured);

/// Directories observerctl looks in, first match wins: `configured` alone
/// when non-empty; else the default, then /run/fraiseql (a packaged service's
/// directory, readable by root).
std::vector<std::string> control_runtime_dirs(const std::string& configured);

/// `<dir>/control-<port>.token`.
std::string control_token_path(const std::string& dir, uint16_t port);

/// Creates `dir` (mode 0700) when missing and checks it is a directory that
/// neither group nor others can write, owned by this user or root. Returns the
/// problem, if any.
std::optional<std::string> prepare_runtime_dir(const std::string& dir);

/// Writes `token` to `path` atomically with mode 0600 (a temporary file in
/// the same directory, then rename). Returns the problem, if any.
std::optional<std::string> write_token_file(const std::string& path, const std::string& token);

/// 32 random bytes from the kernel, hex-encoded. Throws std::runtime_error
/// when no randomness is available.
std::string random_token();

}  // namespace fraiseql
