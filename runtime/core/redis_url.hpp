#pragma once

// What the engine knows about Redis before talking to it: the errors every
// Redis call may throw, and the URL (`[redis] url`) parsed and redacted.
// Pure; the hiredis adapters live in runtime/io/redis/.

#include <cstdint>
#include <stdexcept>
#include <string>

namespace fraiseql {

/// Redis cannot be reached now (refused, connection lost, timeout, server
/// loading or out of memory, reconnect backoff in progress): retry later, or
/// apply the failure policy. When thrown from a pipeline after the commands
/// were sent, their effect is unknown.
struct redis_unavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A problem a retry will not fix: authentication refused, SELECT of a bad
/// database, an error or unexpected reply to a protocol script.
struct redis_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// True when this build's hiredis can speak TLS (`rediss://`). Debian 12's
/// hiredis 0.14.1 has no SSL support (no hiredis_ssl library or header).
bool redis_tls_supported();

/// `redis://[[user]:password@]host[:port][/db]`. User and password may be
/// percent-encoded; an IPv6 host goes in brackets. `rediss://` (TLS) is
/// rejected with a clear message when redis_tls_supported() is false.
struct redis_url {
  std::string host;
  uint16_t port = 6379;
  /// ACL user (Redis 6+); empty: `AUTH <password>` as the default user.
  std::string username;
  /// Empty: no AUTH.
  std::string password;
  uint32_t db = 0;
  bool tls = false;

  /// Throws std::invalid_argument naming what is wrong; the password never
  /// appears in the message.
  static redis_url parse(const std::string& url);
  /// `redis://user:***@host:port/db`: safe for logs.
  std::string to_string() const;
  /// `host:port`.
  std::string endpoint() const;
};

/// `url` with any password replaced by "***" (also for URLs that do not parse).
std::string redact_redis_url(const std::string& url);

}  // namespace fraiseql
