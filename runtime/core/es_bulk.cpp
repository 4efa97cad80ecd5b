#include "runtime/core/es_bulk.hpp"

#include <boost/json.hpp>

#include <cctype>
#include <chrono>
#include <ctime>

namespace fraiseql {

namespace json = boost::json;

std::string es_index_name(const std::string& prefix, const std::string& ts) {
  auto digits = [&](size_t b, size_t n) {
    for (size_t i = b; i < b + n; ++i)
      if (i >= ts.size() || !std::isdigit(static_cast<unsigned char>(ts[i]))) return false;
    return true;
  };
  std::string day;
  if (digits(0, 4) && ts.size() >= 10 && ts[4] == '-' && digits(5, 2) && ts[7] == '-' &&
      digits(8, 2)) {
    day = ts.substr(0, 4) + "." + ts.substr(5, 2) + "." + ts.substr(8, 2);
  } else {
    const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&now, &tm);
    char buf[16];
    std::strftime(buf, sizeof buf, "%Y.%m.%d", &tm);
    day = buf;
  }
  return prefix + "-" + day;
}

es_doc es_event_doc(const std::string& prefix, const std::string& listener_id,
                    const audit_event_record& r) {
  json::object o;
  o["@timestamp"] = r.timestamp;
  o["doc_type"] = "event";
  o["event_id"] = r.event_id;
  o["event_type"] = r.event_type;
  o["event_kind"] = audit_event_kind(r.event_type);
  o["entity_type"] = r.entity_type;
  o["entity_id"] = r.entity_id;
  o["listener_id"] = listener_id;
  json::array obs;
  for (const auto& s : r.observers) obs.emplace_back(s);
  o["observers"] = std::move(obs);
  o["actions"] = r.actions;
  json::error_code ec;
  auto env = json::parse(r.envelope_json, ec);
  if (!ec && env.is_object()) {
    auto& e = env.as_object();
    for (const char* k : {"data", "tenant_id", "user_id", "trace_id"})
      if (auto* v = e.if_contains(k)) o[k] = *v;
  }
  return es_doc{es_index_name(prefix, r.timestamp), r.event_id, json::serialize(o), 0, false};
}

es_doc es_attempt_doc(const std::string& prefix, const std::string& listener_id,
                      const audit_attempt_record& r) {
  json::object o;
  const std::time_t secs = static_cast<std::time_t>(r.ended_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char ms[8];
  std::snprintf(ms, sizeof ms, ".%03dZ", static_cast<int>(r.ended_ms % 1000));
  o["@timestamp"] = std::string(buf) + ms;
  o["doc_type"] = "attempt";
  o["event_id"] = r.event_id;
  o["event_timestamp"] = r.event_timestamp;
  o["entity_type"] = r.entity_type;
  o["entity_id"] = r.entity_id;
  o["event_kind"] = audit_event_kind(r.event_type);
  o["listener_id"] = listener_id;
  o["observer"] = r.observer;
  o["action_index"] = r.action_index;
  o["action_type"] = r.action_type;
  o["attempt"] = r.attempt;
  o["status"] = r.status;
  if (r.http_status > 0) o["http_status"] = r.http_status;
  if (!r.error.empty()) o["error"] = r.error;
  o["latency_ms"] = r.latency_ms;
  o["idempotency_key"] = r.idempotency_key;
  return es_doc{es_index_name(prefix, r.event_timestamp),
                r.idempotency_key + ":" + std::to_string(r.attempt), json::serialize(o), 0, true};
}

size_t es_bulk_count(const std::vector<es_doc>& docs, size_t first, size_t max_docs,
                     size_t max_bytes) {
  size_t n = 0, bytes = 0;
  while (first + n < docs.size() && n < max_docs) {
    const size_t b = docs[first + n].bytes();
    if (n > 0 && bytes + b > max_bytes) break;
    bytes += b;
    ++n;
  }
  return n;
}

std::string es_bulk_body(const std::vector<es_doc>& docs, size_t first, size_t n) {
  std::string out;
  for (size_t i = first; i < first + n; ++i) {
    const auto& d = docs[i];
    out += R"({"create":{"_index":)";
    out += json::serialize(json::string_view(d.index));
    out += R"(,"_id":)";
    out += json::serialize(json::string_view(d.id));
    out += "}}\n";
    out += d.source;
    out += '\n';
  }
  return out;
}

es_bulk_verdict es_bulk_parse(const std::string& answer, size_t n) {
  es_bulk_verdict v;
  auto all_retry = [&] {
    es_bulk_verdict r;
    for (size_t i = 0; i < n; ++i) r.retry.push_back(i);
    return r;
  };
  json::error_code ec;
  auto doc = json::parse(answer, ec);
  if (ec || !doc.is_object()) return all_retry();
  const auto* items = doc.as_object().if_contains("items");
  if (items == nullptr || !items->is_array() || items->as_array().size() != n) return all_retry();
  const auto& arr = items->as_array();
  for (size_t i = 0; i < n; ++i) {
    const json::object* item = arr[i].if_object();
    const json::value* op = nullptr;
    if (item != nullptr && !item->empty()) op = &item->begin()->value();  // "create"
    const json::object* res = op != nullptr ? op->if_object() : nullptr;
    const json::value* st = res != nullptr ? res->if_contains("status") : nullptr;
    if (st == nullptr || !st->is_number()) {
      v.retry.push_back(i);
      continue;
    }
    const auto status = st->to_number<int64_t>();
    if (status == 200 || status == 201 || status == 409) {
      v.done.push_back(i);
      if (status == 409) ++v.already;
    } else if (status == 429 || status >= 500) {
      v.retry.push_back(i);
    } else {
      std::string why = "status " + std::to_string(status);
      if (const auto* err = res->if_contains("error")) {
        if (const auto* eo = err->if_object()) {
          if (const auto* t = eo->if_contains("type"); t && t->is_string())
            why += ": " + std::string(t->as_string());
          if (const auto* r = eo->if_contains("reason"); r && r->is_string())
            why += ": " + std::string(r->as_string());
        } else if (err->is_string()) {
          why += ": " + std::string(err->as_string());
        }
      }
      v.failed.emplace_back(i, std::move(why));
    }
  }
  return v;
}

}  // namespace fraiseql
