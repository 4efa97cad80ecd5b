// What the PostgreSQL session adds to the connection string, and the server
// version check (no server needed).
#include "runtime/io/pg/migrations.hpp"
#include "runtime/io/pg/session.hpp"

#include <doctest/doctest.h>

#include <string>

using fraiseql::process_application_name;
using fraiseql::with_fallback_application_name;

TEST_SUITE("pg session") {
  TEST_CASE("the fallback application name goes into URLs, percent-encoded") {
    CHECK(with_fallback_application_name("postgresql://app@db/app", "fraiseql-observer 42") ==
          "postgresql://app@db/app?fallback_application_name=fraiseql-observer%2042");
    CHECK(with_fallback_application_name("postgres://db/app?sslmode=require", "a/b") ==
          "postgres://db/app?sslmode=require&fallback_application_name=a%2Fb");
  }

  TEST_CASE("the fallback application name goes into keyword strings, quoted") {
    CHECK(with_fallback_application_name("host=db dbname=app", "fraiseql-observer 42") ==
          "host=db dbname=app fallback_application_name='fraiseql-observer 42'");
    CHECK(with_fallback_application_name("", "x") == "fallback_application_name='x'");
    CHECK(with_fallback_application_name("dbname=app", "it's\\") ==
          "dbname=app fallback_application_name='it\\'s\\\\'");
  }

  TEST_CASE("the process's name carries its pid") {
    CHECK(process_application_name().rfind("fraiseql-observer ", 0) == 0);
    CHECK(process_application_name().size() > std::string("fraiseql-observer ").size());
  }
}

TEST_SUITE("server version") {
  TEST_CASE("PostgreSQL 13 and newer hold the schema, older servers are named") {
    CHECK_FALSE(fraiseql::server_version_problem(130000, "13.0"));
    CHECK_FALSE(fraiseql::server_version_problem(150018, "15.18"));
    auto why = fraiseql::server_version_problem(120017, "12.17 (Debian 12.17-1)");
    REQUIRE(why);
    CHECK(*why ==
          "the server runs PostgreSQL 12.17 (Debian 12.17-1) (server_version_num 120017); this "
          "product needs PostgreSQL 13 or newer (the schema uses xid8 and pg_current_snapshot())");
  }
}
