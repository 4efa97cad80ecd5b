#pragma once

// Error mapping shared by the PostgreSQL adapters (pg.cpp, job_queue.cpp).
// Internal to runtime/: it includes pqxx.

#include "runtime/io/pg/session.hpp"

#include <pqxx/pqxx>

#include <string>
#include <utility>

namespace fraiseql {

/// Runs f(conn); connection-level failures reset the session and become
/// pg_unavailable, so callers can tell "retry later" from "this will not work".
template <class F, class Reset>
auto guarded(pg_session& s, F&& f, Reset&& reset) -> decltype(f(s.get())) {
  try {
    return f(s.get());
  } catch (const pqxx::broken_connection& e) {
    reset();
    throw pg_unavailable(e.what());
  } catch (const pqxx::in_doubt_error& e) {
    reset();
    throw pg_unavailable(e.what());
  } catch (const pqxx::sql_error& e) {
    // Admin shutdown / crash recovery (class 57P, 08) are availability problems.
    const std::string& st = e.sqlstate();
    if (st.rfind("57P", 0) == 0 || st.rfind("08", 0) == 0) {
      reset();
      throw pg_unavailable(e.what());
    }
    if (!s.connected()) throw pg_unavailable(e.what());
    throw std::runtime_error(e.what());
  } catch (const pqxx::failure& e) {
    // Anything else pqxx raises after the socket died is an availability problem too.
    bool alive = false;
    try {
      alive = s.connected();
    } catch (...) {
    }
    if (!alive) {
      reset();
      throw pg_unavailable(e.what());
    }
    throw std::runtime_error(e.what());
  }
}

/// Connection failures drop the session; the next call reconnects.
template <class F>
auto guarded(pg_session& s, F&& f) -> decltype(f(s.get())) {
  return guarded(s, std::forward<F>(f), [&s] { s.reset(); });
}

}  // namespace fraiseql
