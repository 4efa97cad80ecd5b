#include "runtime/io/pg/session.hpp"

#include "runtime/config/redact.hpp"

#include <pqxx/pqxx>

namespace fraiseql {

std::string normalize_dsn(const std::string& dsn) {
  if (dsn.empty()) throw std::runtime_error("database url is empty");
  return dsn;
}

// --- pg_session --------------------------------------------------------------

pg_session::pg_session(std::string dsn) : dsn_(std::move(dsn)) {}
pg_session::~pg_session() = default;

pqxx::connection_base& pg_session::get() {
  if (conn_ && conn_->is_open()) return *conn_;
  conn_.reset();
  try {
    conn_ =
        std::make_unique<pqxx::connection>(dsn_);  // pqxx::connection derives from connection_base
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
