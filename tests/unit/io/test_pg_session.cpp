// What the PostgreSQL session adds to the connection string (no server needed).
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
