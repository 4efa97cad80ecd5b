// The Elasticsearch / OpenSearch backend without I/O (runtime/core/es_bulk.hpp):
// documents keyed by event id, bounded `_bulk` bodies, per-item verdicts.

#include "runtime/core/es_bulk.hpp"

#include <doctest/doctest.h>
#include <boost/json.hpp>

#include <string>
#include <vector>

using namespace fraiseql;

namespace {

audit_event_record ev(const std::string& id) {
  audit_event_record r;
  r.event_id = id;
  r.timestamp = "2026-12-03T10:00:00.000000Z";
  r.event_type = "INSERT";
  r.entity_type = "Order";
  r.entity_id = "7";
  r.observers = {"o"};
  r.actions = 1;
  r.envelope_json =
      R"({"id":")" + id + R"(","data":{"customer_org":"acme-corp"},"tenant_id":null})";
  return r;
}

}  // namespace

TEST_CASE("es bulk: event documents carry the event id as _id and a daily index") {
  const auto d = es_event_doc("audit", "l1", ev("e-1"));
  CHECK(d.id == "e-1");
  CHECK(d.index == "audit-2026.12.03");
  CHECK_FALSE(d.attempt);
  const auto src = boost::json::parse(d.source).as_object();
  CHECK(src.at("event_kind") == "created");
  CHECK(src.at("data").at("customer_org") == "acme-corp");
  CHECK(src.at("@timestamp") == "2026-12-03T10:00:00.000000Z");

  audit_attempt_record a;
  a.event_id = "e-1";
  a.event_timestamp = "2026-12-02T23:59:59Z";
  a.observer = "o";
  a.action_type = "webhook";
  a.attempt = 2;
  a.status = "retrying";
  a.http_status = 503;
  a.idempotency_key = "e-1:o:0";
  a.ended_ms = 1764806400123;  // 2025-12-04T00:00:00.123Z
  const auto ad = es_attempt_doc("audit", "l1", a);
  CHECK(ad.id == "e-1:o:0:2");
  CHECK(ad.index == "audit-2026.12.02");  // the event's day, like the partitions
  CHECK(ad.attempt);
  CHECK(boost::json::parse(ad.source).at("@timestamp") == "2025-12-04T00:00:00.123Z");
}

TEST_CASE("es bulk: requests are bounded in documents and bytes, at least one each") {
  std::vector<es_doc> docs;
  for (int i = 0; i < 10; ++i) docs.push_back(es_event_doc("a", "l", ev("e" + std::to_string(i))));
  CHECK(es_bulk_count(docs, 0, 4, 1 << 20) == 4);
  CHECK(es_bulk_count(docs, 8, 4, 1 << 20) == 2);
  const size_t one = docs[0].bytes();
  CHECK(es_bulk_count(docs, 0, 100, 3 * one) == 3);
  CHECK(es_bulk_count(docs, 0, 100, 1) == 1);  // a document larger than the bound goes alone
  const auto body = es_bulk_body(docs, 1, 2);
  CHECK(body.find(R"({"create":{"_index":"a-2026.12.03","_id":"e1"}})") == 0);
  CHECK(std::count(body.begin(), body.end(), '\n') == 4);
}

TEST_CASE("es bulk: per-item verdicts (409 indexed, 429/5xx retried, other 4xx refused)") {
  const std::string answer = R"({"took":3,"errors":true,"items":[
    {"create":{"_id":"a","status":201}},
    {"create":{"_id":"b","status":409,"error":{"type":"version_conflict_engine_exception"}}},
    {"create":{"_id":"c","status":429,"error":{"type":"es_rejected_execution_exception"}}},
    {"create":{"_id":"d","status":503}},
    {"create":{"_id":"e","status":400,"error":{"type":"mapper_parsing_exception","reason":"bad"}}}]})";
  const auto v = es_bulk_parse(answer, 5);
  CHECK(v.done == std::vector<size_t>{0, 1});
  CHECK(v.already == 1);
  CHECK(v.retry == std::vector<size_t>{2, 3});
  REQUIRE(v.failed.size() == 1);
  CHECK(v.failed[0].first == 4);
  CHECK(v.failed[0].second == "status 400: mapper_parsing_exception: bad");
  // An answer that does not list every item: everything is sent again.
  CHECK(es_bulk_parse(R"({"items":[]})", 2).retry.size() == 2);
  CHECK(es_bulk_parse("not json", 3).retry.size() == 3);
}
