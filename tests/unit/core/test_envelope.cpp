#include "runtime/core/envelope.hpp"

#include <doctest/doctest.h>
#include <boost/json.hpp>

using namespace fraiseql;
namespace json = boost::json;

TEST_SUITE("envelope") {
  TEST_CASE("an UPDATE with pre-image carries old, data and changes") {
    auto ev = make_event(7, position{42, 9}, "e-1", "UPDATE", "Order", "17",
                         R"({"id": 17, "status": "shipped", "total": 100.50, "tags": ["a"]})",
                         R"({"id": 17, "status": "new", "total": 100.50, "note": "x"})",
                         "2026-11-22T10:00:00.000001Z", std::string("acme"), std::nullopt,
                         std::string("t-1"));
    CHECK(ev->seq == 7);
    CHECK(ev->pos == position{42, 9});
    const auto& e = ev->envelope.as_object();
    CHECK(e.at("id") == "e-1");
    CHECK(e.at("data").at("status") == "shipped");
    CHECK(e.at("old").at("status") == "new");
    CHECK(e.at("changes") == json::parse(R"({"status": {"old": "new", "new": "shipped"},
                                             "tags": {"old": null, "new": ["a"]},
                                             "note": {"old": "x", "new": null}})"));
    CHECK(e.at("tenant_id") == "acme");
    CHECK(e.at("user_id").is_null());
    // The serialized envelope is valid JSON equal to the parsed one.
    CHECK(json::parse(ev->envelope_json) == ev->envelope);
  }

  TEST_CASE("numbers in webhook bodies keep PostgreSQL's exact text") {
    auto ev = make_event(1, position{1, 1}, "e-2", "INSERT", "Ledger", "1",
                         R"({"amount": 12345678901234567890.123456789, "n": 1.10})", "",
                         "2026-11-22T10:00:00.000000Z", std::nullopt, std::nullopt, std::nullopt);
    CHECK(ev->envelope_json.find("12345678901234567890.123456789") != std::string::npos);
    CHECK(ev->envelope_json.find("\"n\": 1.10") != std::string::npos);
    CHECK(ev->envelope.at("old").is_null());
    CHECK_FALSE(ev->envelope.as_object().contains("changes"));
  }

  TEST_CASE("strings are escaped, so no field can break the envelope") {
    auto ev = make_event(1, position{1, 1}, "e-3", "CUSTOM", "We\"ird\\", "a\nb", R"({"k": "v"})",
                         "", "ts", std::string("t\"x"), std::nullopt, std::nullopt);
    auto v = json::parse(ev->envelope_json);
    CHECK(v.at("entity_type") == "We\"ird\\");
    CHECK(v.at("entity_id") == "a\nb");
    CHECK(v.at("tenant_id") == "t\"x");
  }
}
