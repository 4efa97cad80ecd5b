#pragma once

// A PostgreSQL session shared by every store of runtime/io/pg/: one lazily
// (re)connected connection used from a single thread (a detached actor or a
// worker). All SQL is parameterized. Every call of a store throws
// pg_unavailable when the server cannot be reached (the caller backs off and
// retries) and std::runtime_error for other failures.

#include <memory>
#include <stdexcept>
#include <string>

namespace pqxx {
class connection_base;
}

namespace fraiseql {

/// The server is down or the connection broke; retrying later may succeed.
struct pg_unavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Converts a postgresql:// URL or a libpq keyword string into what libpq takes
/// (libpq accepts both; this only validates it is non-empty).
std::string normalize_dsn(const std::string& dsn);

/// `dsn` with libpq's `fallback_application_name` set to `name` (URL or
/// keyword form), so that pg_stat_activity names the process behind each
/// connection unless the DSN sets `application_name` itself.
std::string with_fallback_application_name(const std::string& dsn, const std::string& name);

/// "fraiseql-observer <pid>": the fallback application name of every
/// connection this process opens.
const std::string& process_application_name();

/// Deletes a connection through its real type (pqxx::connection_base has no
/// virtual destructor: deleting through it would skip closing the socket).
struct pg_connection_deleter {
  void operator()(pqxx::connection_base* c) const noexcept;
};

/// A lazily (re)connected connection.
class pg_session {
 public:
  explicit pg_session(std::string dsn);
  ~pg_session();
  pg_session(const pg_session&) = delete;
  pg_session& operator=(const pg_session&) = delete;

  /// Connects if needed; throws pg_unavailable.
  pqxx::connection_base& get();
  /// Drops the connection (after an error), the next get() reconnects.
  void reset();
  bool connected() const;

 private:
  std::string dsn_;
  std::unique_ptr<pqxx::connection_base, pg_connection_deleter> conn_;
};

}  // namespace fraiseql
