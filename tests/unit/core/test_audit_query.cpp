// The search language of `observerctl search` (runtime/core/audit_query.hpp):
// the spec's queries as written, operators, located errors, the compiled SQL
// keeping every user value in a parameter, and properties (no input crashes
// the parser; printing a parsed query and parsing it again is stable).

#include "runtime/core/audit.hpp"
#include "runtime/core/audit_query.hpp"

#include <doctest/doctest.h>
#include <rapidcheck.h>
#include <boost/json.hpp>

#include <string>

using namespace fraiseql;

namespace {

std::string norm(const std::string& q) {
  return to_string(*parse_audit_query(q));
}

/// The error of a query that must not parse or compile.
audit_query_error error_of(const std::string& q) {
  try {
    compile_audit_query(q, 10);
  } catch (const audit_query_error& e) {
    return e;
  }
  FAIL("query accepted: " << q);
  return audit_query_error(0, 0, "");
}

bool has_param(const audit_search_sql& s, const std::string& v) {
  for (const auto& p : s.params)
    if (p == v) return true;
  return false;
}

}  // namespace

TEST_CASE("audit query: the spec's three examples parse as written") {
  CHECK(norm("entity_type:Order AND event_kind:created AND timestamp:[now-1d TO now]") ==
        "entity_type:Order AND event_kind:created AND timestamp:[now-1d TO now]");
  CHECK(norm("entity_type:Product AND action_type:webhook AND status:failed") ==
        "entity_type:Product AND action_type:webhook AND status:failed");
  CHECK(norm("customer_org:acme-corp") == "customer_org:acme-corp");

  auto q1 = compile_audit_query(
      "entity_type:Order AND event_kind:created AND timestamp:[now-1d TO now]", 50);
  CHECK_FALSE(q1.attempts);
  CHECK(has_param(q1, "Order"));
  CHECK(has_param(q1, "created"));
  CHECK(has_param(q1, "1 days"));
  CHECK(q1.sql.find("FROM observer_audit_events e") != std::string::npos);

  auto q2 = compile_audit_query("entity_type:Product AND action_type:webhook AND status:failed", 5);
  CHECK(q2.attempts);
  CHECK(has_param(q2, "webhook"));
  CHECK(has_param(q2, "failed"));
  CHECK(q2.sql.find("FROM observer_audit_attempts a") != std::string::npos);
  // Entity and kind are copied to the attempts: the limit comes before the join.
  CHECK_FALSE(q2.events_joined_first);
  CHECK(compile_audit_query("customer_org:x AND status:failed", 5).events_joined_first);
  CHECK(compile_audit_query("status:failed AND event_type:update", 5).sql.find("a.event_kind") !=
        std::string::npos);

  auto q3 = compile_audit_query("customer_org:acme-corp", 5);
  CHECK(has_param(q3, R"({"customer_org":"acme-corp"})"));
  CHECK(q3.sql.find("e.data @>") != std::string::npos);
}

TEST_CASE("audit query: operators, precedence, phrases, implicit AND") {
  CHECK(norm("a OR b AND c") == "a OR (b AND c)");
  CHECK(norm("(a OR b) c") == "(a OR b) AND c");
  CHECK(norm("NOT status:failed") == "NOT status:failed");
  CHECK(norm("-entity_type:Order") == "NOT entity_type:Order");
  CHECK(norm("!(a || b) && c") == "NOT (a OR b) AND c");
  CHECK(norm("\"payment declined\"") == "\"payment declined\"");
  CHECK(norm("note:\"two words\"") == "note:\"two words\"");
  CHECK(norm("http_status:>=500") == "http_status:>=500");
  CHECK(norm("latency_ms:{10 TO *]") == "latency_ms:{10 TO *]");
  CHECK(norm("entity_id:ord*") == "entity_id:ord*");
  CHECK(norm("customer.org:*") == "customer.org:*");
  CHECK(norm("timestamp:[\"2026-12-01T10:00:00Z\" TO now]") ==
        "timestamp:[2026-12-01T10:00:00Z TO now]");
  CHECK(norm("timestamp:2026-12-01T10:00:00Z") == "timestamp:2026-12-01T10:00:00Z");
}

TEST_CASE("audit query: user values only travel as parameters") {
  const std::string evil = "x'); DROP TABLE observer_dlq; --";
  auto s = compile_audit_query("entity_type:\"" + evil + "\" OR \"" + evil + "\"", 10);
  CHECK(s.sql.find("DROP") == std::string::npos);
  CHECK(has_param(s, evil));
  auto d = compile_audit_query("a-b.c_d:1", 10);  // field names too: inside a JSON parameter
  CHECK(d.sql.find("a-b") == std::string::npos);
}

TEST_CASE("audit query: numbers and booleans of data fields match either JSON type") {
  auto s = compile_audit_query("amount:42 AND paid:true AND tag:\"42\"", 10);
  CHECK(has_param(s, R"({"amount":"42"})"));
  CHECK(has_param(s, R"({"amount":42})"));
  CHECK(has_param(s, R"({"paid":true})"));
  CHECK_FALSE(has_param(s, R"({"tag":42})"));  // quoted: a string only
  auto n = compile_audit_query("customer.org:acme", 10);
  CHECK(has_param(n, R"({"customer":{"org":"acme"}})"));
}

TEST_CASE("audit query: errors name the column of the offending token") {
  auto e = error_of("entity_type:Order AND");
  CHECK(e.column == 19);
  CHECK(std::string(e.what()).find("expected a term after AND") != std::string::npos);
  CHECK(describe_query_error("entity_type:Order AND", e) ==
        "column 19: expected a term after AND\n  entity_type:Order AND\n                    ^^^");

  CHECK(error_of("(entity_type:Order").column == 1);
  CHECK(error_of("entity_type:Order)").column == 18);
  CHECK(error_of("status:broken").column == 1);
  CHECK(std::string(error_of("status:broken").what()).find("one of succeeded") !=
        std::string::npos);
  auto t = error_of("a AND timestamp:[yesterday TO now]");
  CHECK(t.column == 7);
  CHECK(std::string(t.what()).find("'yesterday' is not a time") != std::string::npos);
  CHECK(error_of("timestamp:[now-1d now]").column == 19);
  CHECK(error_of("timestamp:[now-1d TO now").column == 11);
  CHECK(error_of("note:\"open").column == 6);
  CHECK(error_of("entity_type:").column == 1);
  CHECK(error_of("OR b").column == 1);
  CHECK(error_of("http_status:abc").column == 1);
  CHECK(error_of("id:123").column == 1);
  CHECK(error_of("   ").column == 1);
  CHECK(error_of("a:b:c:[").column >= 1);
}

TEST_CASE("audit query: never crashes, and printing is stable (property)") {
  const bool ok = rc::check("any input: a tree or an audit_query_error", [] {
    const auto alphabet = std::string("ab:()[]{}\"*-!<>=&| TONDR\\.1now");
    const auto s = *rc::gen::container<std::string>(rc::gen::elementOf(alphabet));
    std::unique_ptr<audit_query_node> t;
    try {
      t = parse_audit_query(s);
      compile_audit_query(s, 10);
    } catch (const audit_query_error& e) {
      RC_ASSERT(e.column >= 1);
      RC_ASSERT(e.column <= s.size() + 1);
      RC_ASSERT(!describe_query_error(s, e).empty());
    }
    if (t) {
      // Whatever parses prints to a query that parses to the same print.
      const auto once = to_string(*t);
      try {
        RC_ASSERT(to_string(*parse_audit_query(once)) == once);
      } catch (const audit_query_error& e) {
        RC_FAIL("'" + s + "' printed as '" + once + "', which fails: " + e.what());
      }
    }
  });
  CHECK(ok);
}

TEST_CASE("audit queue: bounded in records and bytes, drops and counts, never blocks") {
  audit_queue q(3, 1u << 20);
  for (int i = 0; i < 5; ++i) {
    audit_attempt_record r;
    r.event_id = std::to_string(i);
    q.push(std::move(r));
  }
  CHECK(q.size() == 3);
  CHECK(q.dropped() == 2);
  auto b = q.take(2);
  CHECK(b.attempts.size() == 2);
  CHECK(b.attempts[0].event_id == "0");
  q.put_back(std::move(b));
  CHECK(q.size() == 3);
  CHECK(q.take(10).attempts[0].event_id == "0");
  CHECK(q.bytes() == 0);

  audit_queue small(100, 2000);
  audit_event_record big;
  big.envelope_json.assign(5000, 'x');
  CHECK_FALSE(small.push(big));
  CHECK(small.dropped() == 1);
}

TEST_CASE("audit: an event record copies the envelope, unless it is over 1 MB") {
  event ev;
  ev.id = "e";
  ev.event_type = "INSERT";
  ev.envelope = boost::json::object{{"timestamp", "2026-12-03T10:00:00Z"}};
  ev.envelope_json = R"({"timestamp":"2026-12-03T10:00:00Z","data":{}})";
  auto r = audit_event_of(ev, {"o"}, 2);
  CHECK(r.timestamp == "2026-12-03T10:00:00Z");
  CHECK(r.envelope_json == ev.envelope_json);
  CHECK(r.actions == 2);
  ev.envelope_json.assign(audit_max_envelope_bytes + 1, ' ');
  CHECK(audit_event_of(ev, {}, 0).envelope_json.empty());
}

TEST_CASE("audit: event kinds and HTTP statuses of attempt errors") {
  CHECK(audit_event_kind("INSERT") == "created");
  CHECK(audit_event_kind("UPDATE") == "updated");
  CHECK(audit_event_kind("DELETE") == "deleted");
  CHECK(audit_event_kind("CUSTOM") == "custom");
  CHECK(audit_http_status("HTTP 503: busy") == 503);
  CHECK(audit_http_status("HTTP 404") == 404);
  CHECK(audit_http_status("HTTP 5030") == 0);
  CHECK(audit_http_status("timeout: x") == 0);
}
