#include "runtime/io/pg/session.hpp"

#include "runtime/config/redact.hpp"

#include <pqxx/pqxx>

#include <cctype>
#include <cstdio>

#include <unistd.h>

namespace fraiseql {

std::string normalize_dsn(const std::string& dsn) {
  if (dsn.empty()) throw std::runtime_error("database url is empty");
  return dsn;
}

// --- pg_session --------------------------------------------------------------

std::string with_fallback_application_name(const std::string& dsn, const std::string& name) {
  // libpq takes the value quoted in the keyword form and percent-encoded in URLs.
  if (dsn.find("://") != std::string::npos) {
    std::string enc;
    for (unsigned char c : name) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        enc += static_cast<char>(c);
      } else {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%%%02X", c);
        enc += buf;
      }
    }
    return dsn + (dsn.find('?') == std::string::npos ? "?" : "&") +
           "fallback_application_name=" + enc;
  }
  std::string quoted;
  for (char c : name) {
    if (c == '\\' || c == '\'') quoted += '\\';
    quoted += c;
  }
  return dsn + (dsn.empty() ? "" : " ") + "fallback_application_name='" + quoted + "'";
}

const std::string& process_application_name() {
  static const std::string name = "fraiseql-observer " + std::to_string(::getpid());
  return name;
}

void pg_connection_deleter::operator()(pqxx::connection_base* c) const noexcept {
  // Every connection a session holds is a pqxx::connection (see get()).
  delete static_cast<pqxx::connection*>(c);
}

pg_session::pg_session(std::string dsn) : dsn_(std::move(dsn)) {}
pg_session::~pg_session() = default;

pqxx::connection_base& pg_session::get() {
  if (conn_ && conn_->is_open()) return *conn_;
  conn_.reset();
  try {
    conn_.reset(
        new pqxx::connection(with_fallback_application_name(dsn_, process_application_name())));
  } catch (const pqxx::broken_connection& e) {
    throw pg_unavailable(std::string("cannot connect to ") + redact_url(dsn_) + ": " + e.what());
  }
  return *conn_;
}

void pg_session::reset() {
  conn_.reset();
}

bool pg_session::connected() const {
  return conn_ && conn_->is_open();
}

}  // namespace fraiseql
