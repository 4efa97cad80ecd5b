// The control plane's command layer: reply envelopes, argument access,
// token comparison, metric filters and the DLQ id form operators type (no
// actor system, no sockets).
#include "actors/control/commands.hpp"
#include "messages/control.hpp"

#include <doctest/doctest.h>
#include <boost/json.hpp>

namespace json = boost::json;
using namespace fraiseql;

TEST_SUITE("control commands") {
  TEST_CASE("replies are the envelopes observerctl reads") {
    CHECK(json::parse(ok_reply(json::value(3))) == json::parse(R"({"ok":true,"result":3})"));
    CHECK(json::parse(error_reply("not_found", "no such entry")) ==
          json::parse(R"({"ok":false,"code":"not_found","error":"no such entry"})"));
    CHECK(json::parse(error_reply("failed", "x", json::object{{"id", 7}})) ==
          json::parse(R"({"ok":false,"code":"failed","error":"x","result":{"id":7}})"));
  }

  TEST_CASE("arguments: absent or null is empty, a wrong type names the argument") {
    const auto o =
        json::parse(R"({"s":"a","b":true,"n":-4,"u":18446744073709551615,"z":null,"x":1.5})")
            .as_object();
    args_view a{o};
    CHECK(a.str("s") == std::optional<std::string>("a"));
    CHECK_FALSE(a.str("missing"));
    CHECK_FALSE(a.str("z"));
    CHECK(a.flag("b"));
    CHECK_FALSE(a.flag("missing"));
    CHECK(a.num("n") == std::optional<int64_t>(-4));
    CHECK(a.required_num("n") == -4);
    CHECK_THROWS_WITH_AS(a.str("b"), "b must be a string", usage_error);
    CHECK_THROWS_WITH_AS(a.flag("s"), "s must be a boolean", usage_error);
    CHECK_THROWS_WITH_AS(a.num("x"), "x must be an integer", usage_error);
    CHECK_THROWS_WITH_AS(a.num("u"), "u must be an integer", usage_error);  // beyond int64
    CHECK_THROWS_WITH_AS(a.required_num("missing"), "missing missing", usage_error);
  }

  TEST_CASE("tokens compare equal only when identical") {
    CHECK(same_token("secret", "secret"));
    CHECK_FALSE(same_token("secreT", "secret"));
    CHECK_FALSE(same_token("secret-longer", "secret"));
    CHECK_FALSE(same_token("secre", "secret"));
    CHECK_FALSE(same_token("", "secret"));
    CHECK(same_token("", ""));
  }

  TEST_CASE("metric samples and families are read from the text exposition") {
    const std::string text =
        "# HELP observer_events_processed_total Events.\n"
        "# TYPE observer_events_processed_total counter\n"
        "observer_events_processed_total{listener_id=\"a\"} 42\n"
        "observer_backlog 7\n"
        "observer_backlog_size 9\n"
        "# TYPE observer_action_duration_seconds histogram\n"
        "observer_action_duration_seconds_bucket{le=\"0.1\"} 3\n"
        "observer_action_duration_seconds_sum 0.2\n"
        "observer_action_duration_seconds_count 3\n";
    CHECK(sample_value(text, "observer_events_processed_total") == std::optional<double>(42));
    CHECK(sample_value(text, "observer_backlog") == std::optional<double>(7));
    CHECK_FALSE(sample_value(text, "observer_missing"));
    const auto hist = filter_metric(text, "observer_action_duration_seconds");
    CHECK(hist.find("# TYPE observer_action_duration_seconds histogram") != std::string::npos);
    CHECK(hist.find("_bucket{le=\"0.1\"} 3") != std::string::npos);
    CHECK(hist.find("_count 3") != std::string::npos);
    CHECK(hist.find("observer_backlog") == std::string::npos);
    CHECK(filter_metric(text, "observer_backlog") == "observer_backlog 7\n");
  }

  TEST_CASE("times are ISO 8601 UTC with milliseconds") {
    CHECK(iso_time(0) == "1970-01-01T00:00:00.000Z");
    CHECK(iso_time(1700000000123) == "2023-11-14T22:13:20.123Z");
  }

  TEST_CASE("DLQ ids: dlq-001 as shown, dlq-NNN or a number as typed") {
    CHECK(dlq_ref(1) == "dlq-001");
    CHECK(dlq_ref(42) == "dlq-042");
    CHECK(dlq_ref(12345) == "dlq-12345");
    CHECK(parse_dlq_ref("dlq-001") == 1);
    CHECK(parse_dlq_ref("DLQ-17") == 17);
    CHECK(parse_dlq_ref("17") == 17);
    CHECK_FALSE(parse_dlq_ref("dlq-"));
    CHECK_FALSE(parse_dlq_ref("abc"));
    CHECK_FALSE(parse_dlq_ref("dlq-1x"));
    CHECK_FALSE(parse_dlq_ref(""));
    CHECK_FALSE(parse_dlq_ref("-1"));
  }
}
