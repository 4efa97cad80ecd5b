#pragma once

#include <optional>
#include <string>
#include <vector>

namespace fraiseql {

/// One versioned schema step, embedded from sql/NNNN_name.sql at build time.
struct migration {
  int version;
  const char* name;
  const char* sql;
};

/// All migrations, ascending by version.
const std::vector<migration>& embedded_migrations();

/// Highest version this binary knows.
int latest_schema_version();

struct migrate_report {
  int from_version = 0;
  int to_version = 0;
  std::vector<std::string> applied;
};

/// Applies the missing migrations in order, each in its own transaction, under
/// an advisory lock so concurrent `migrate` runs serialize. Idempotent.
/// Throws std::runtime_error naming the migration that failed, or the server
/// version when it is older than PostgreSQL 13 (nothing applied).
migrate_report apply_migrations(const std::string& dsn);

/// Version recorded in observer_schema_migrations (0 when absent). Throws
/// std::runtime_error when the server is older than PostgreSQL 13.
int current_schema_version(const std::string& dsn);

/// The oldest PostgreSQL the schema runs on (xid8, pg_current_snapshot()).
constexpr int min_server_version_num = 130000;

/// Why a server of this `server_version_num` (and `server_version` text, for
/// the message) cannot hold the schema; nullopt when it can.
std::optional<std::string> server_version_problem(int version_num, const std::string& version);

}  // namespace fraiseql
