#include "runtime/io/pg/migrations.hpp"

#include "runtime/io/pg/session.hpp"

#include <pqxx/pqxx>

#include <algorithm>
#include <set>
#include <stdexcept>

namespace fraiseql {

namespace {

// Arbitrary constant: serializes concurrent `migrate` runs on one database.
constexpr int64_t migrate_lock_key = 0x0F5A15E0B5E7;

constexpr const char* ledger_sql =
    "CREATE TABLE IF NOT EXISTS observer_schema_migrations ("
    " version int PRIMARY KEY, name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

int read_version(pqxx::transaction_base& tx) {
  auto r = tx.exec("SELECT coalesce(max(version), 0) FROM observer_schema_migrations");
  return r[0][0].as<int>();
}

std::set<int> applied_versions(pqxx::transaction_base& tx) {
  std::set<int> out;
  for (const auto& row : tx.exec("SELECT version FROM observer_schema_migrations"))
    out.insert(row[0].as<int>());
  return out;
}

/// Throws when the connected server is older than PostgreSQL 13.
void require_server_version(pqxx::connection_base& c) {
  const int num = c.server_version();
  pqxx::nontransaction tx{c};
  const auto text = tx.exec("SHOW server_version")[0][0].as<std::string>();
  if (auto why = server_version_problem(num, text)) throw std::runtime_error(*why);
}

}  // namespace

std::optional<std::string> server_version_problem(int version_num, const std::string& version) {
  if (version_num >= min_server_version_num) return std::nullopt;
  return "the server runs PostgreSQL " + version + " (server_version_num " +
         std::to_string(version_num) +
         "); this product needs PostgreSQL 13 or newer (the schema uses xid8 and "
         "pg_current_snapshot())";
}

int latest_schema_version() {
  const auto& all = embedded_migrations();
  return all.empty() ? 0 : all.back().version;
}

int current_schema_version(const std::string& dsn) {
  pg_session session{dsn};
  require_server_version(session.get());
  pqxx::nontransaction tx{session.get()};
  auto r = tx.exec("SELECT to_regclass('observer_schema_migrations') IS NOT NULL");
  if (!r[0][0].as<bool>()) return 0;
  // Migrations merged from parallel branches may land below the highest one
  // applied: the schema is current only when every embedded one is applied.
  auto have = applied_versions(tx);
  int version = 0;
  for (const auto& m : embedded_migrations()) {
    if (have.count(m.version) == 0) return version;
    version = m.version;
  }
  return read_version(tx);
}

migrate_report apply_migrations(const std::string& dsn) {
  pg_session session{dsn};  // throws pg_unavailable, password redacted
  auto* c = &session.get();
  require_server_version(*c);
  migrate_report report;
  {
    pqxx::nontransaction tx{*c};
    tx.exec_params("SELECT pg_advisory_lock($1)", migrate_lock_key);
    tx.exec0(ledger_sql);
    report.from_version = read_version(tx);
  }
  std::set<int> have;
  {
    pqxx::nontransaction tx{*c};
    have = applied_versions(tx);
  }
  report.to_version = report.from_version;
  try {
    for (const auto& m : embedded_migrations()) {
      if (have.count(m.version) != 0) continue;
      try {
        pqxx::work tx{*c};
        tx.exec0(m.sql);
        tx.exec_params0("INSERT INTO observer_schema_migrations (version, name) VALUES ($1, $2)",
                        m.version, std::string(m.name));
        tx.commit();
      } catch (const std::exception& e) {
        throw std::runtime_error(std::string("migration ") + m.name + " failed: " + e.what());
      }
      report.applied.emplace_back(m.name);
      report.to_version = std::max(report.to_version, m.version);
    }
  } catch (...) {
    pqxx::nontransaction tx{*c};
    tx.exec_params("SELECT pg_advisory_unlock($1)", migrate_lock_key);
    throw;
  }
  pqxx::nontransaction tx{*c};
  tx.exec_params("SELECT pg_advisory_unlock($1)", migrate_lock_key);
  return report;
}

}  // namespace fraiseql
