#include "runtime/core/envelope.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <stdexcept>

namespace fraiseql {

event_ptr make_event(uint64_t seq, position pos, std::string id, std::string event_type,
                     std::string entity_type, std::string entity_id, const std::string& object_data,
                     const std::string& object_data_before, std::string timestamp,
                     std::optional<std::string> tenant_id, std::optional<std::string> user_id,
                     std::optional<std::string> trace_id, std::shared_ptr<const read_cursor> cursor,
                     uint64_t row_bytes, uint64_t oversize_limit, const std::string& replay) {
  namespace json = boost::json;
  auto ev = std::make_shared<event>();
  ev->seq = seq;
  ev->pos = pos;
  ev->cursor = std::move(cursor);
  ev->read_at = std::chrono::steady_clock::now();
  json::object env;
  env.reserve(13);
  env["id"] = id;
  env["event_type"] = event_type;
  env["entity_type"] = entity_type;
  env["entity_id"] = entity_id;
  json::value data = object_data.empty() ? json::value(nullptr) : json::parse(object_data);
  if (!object_data_before.empty()) {
    json::value old = json::parse(object_data_before);
    if (event_type == "UPDATE" && data.is_object() && old.is_object()) {
      json::object changes;
      const auto& n = data.get_object();
      const auto& o = old.get_object();
      for (const auto& kv : n) {
        auto it = o.find(kv.key());
        if (it == o.end() || it->value() != kv.value())
          changes[kv.key()] = json::object{
              {"old", it == o.end() ? json::value(nullptr) : it->value()}, {"new", kv.value()}};
      }
      for (const auto& kv : o)
        if (!n.contains(kv.key()))
          changes[kv.key()] = json::object{{"old", kv.value()}, {"new", nullptr}};
      env["changes"] = std::move(changes);
    }
    env["old"] = std::move(old);
  } else {
    env["old"] = nullptr;
  }
  env["data"] = std::move(data);
  env["timestamp"] = timestamp;
  auto opt = [](const std::optional<std::string>& s) {
    return s ? json::value(*s) : json::value(nullptr);
  };
  env["tenant_id"] = opt(tenant_id);
  env["user_id"] = opt(user_id);
  env["trace_id"] = opt(trace_id);
  env["position"] = json::object{{"txid", std::to_string(pos.txid)}, {"pk", pos.pk}};
  if (row_bytes == 0) row_bytes = object_data.size() + object_data_before.size();
  if (oversize_limit > 0)
    env["oversize"] = json::object{{"bytes", row_bytes}, {"limit", oversize_limit}};
  std::optional<replay_marker> marker;
  if (!replay.empty()) {
    marker = parse_replay_marker(replay);
    env["replay"] = json::parse(replay);
  }
  ev->envelope = std::move(env);
  // The serialized envelope splices PostgreSQL's own JSON text for `data` and
  // `old`, so webhook bodies carry numbers exactly as stored (a numeric(30,10)
  // survives; a round trip through double would not). The parsed `envelope`
  // serves conditions and templates.
  std::string out;
  out.reserve(256 + object_data.size() + object_data_before.size());
  auto str = [&](const char* key, const std::string& v) {
    out += '"';
    out += key;
    out += "\":";
    out += json::serialize(json::string_view(v));
    out += ',';
  };
  auto opt_str = [&](const char* key, const std::optional<std::string>& v) {
    if (v) return str(key, *v);
    out += '"';
    out += key;
    out += "\":null,";
  };
  out += '{';
  str("id", id);
  str("event_type", event_type);
  str("entity_type", entity_type);
  str("entity_id", entity_id);
  str("timestamp", timestamp);
  out += "\"data\":";
  out += object_data.empty() ? "null" : object_data;
  out += ",\"old\":";
  out += object_data_before.empty() ? "null" : object_data_before;
  out += ',';
  if (auto it = ev->envelope.as_object().find("changes"); it != ev->envelope.as_object().end()) {
    out += "\"changes\":";
    out += json::serialize(it->value());
    out += ',';
  }
  opt_str("tenant_id", tenant_id);
  opt_str("user_id", user_id);
  opt_str("trace_id", trace_id);
  out += "\"position\":{\"txid\":\"";
  out += std::to_string(pos.txid);
  out += "\",\"pk\":";
  out += std::to_string(pos.pk);
  out += '}';
  if (oversize_limit > 0) {
    out += ",\"oversize\":{\"bytes\":";
    out += std::to_string(row_bytes);
    out += ",\"limit\":";
    out += std::to_string(oversize_limit);
    out += '}';
  }
  if (marker) {
    out += ",\"replay\":";
    out += replay;
  }
  out += '}';
  if (marker) {
    ev->replay_id = marker->id;
    ev->replay_listener = std::move(marker->listener_id);
    ev->replay_observer = std::move(marker->observer);
  }
  ev->id = std::move(id);
  ev->event_type = std::move(event_type);
  ev->entity_type = std::move(entity_type);
  ev->entity_id = std::move(entity_id);
  ev->envelope_json = std::move(out);
  ev->row_bytes = row_bytes;
  ev->oversize_limit = oversize_limit;
  ev->footprint = event_footprint(*ev);
  return ev;
}

namespace {

uint64_t string_bytes(size_t size) {
  // Short strings live inside their owner (SSO); longer ones are allocated.
  return size > 15 ? size + 1 : 0;
}

uint64_t json_bytes(const boost::json::value& v) {
  namespace json = boost::json;
  uint64_t n = 0;
  switch (v.kind()) {
    case json::kind::string:
      n += string_bytes(v.get_string().size());
      break;
    case json::kind::array: {
      const auto& a = v.get_array();
      n += 16 + a.capacity() * sizeof(json::value);
      for (const auto& x : a) n += json_bytes(x);
      break;
    }
    case json::kind::object: {
      const auto& o = v.get_object();
      // Entries, plus the hash index Boost.JSON keeps for larger objects.
      n += 32 + o.capacity() * (sizeof(json::key_value_pair) + sizeof(uint32_t));
      for (const auto& kv : o) n += kv.key().size() + 1 + json_bytes(kv.value());
      break;
    }
    default:
      break;
  }
  return n;
}

}  // namespace

uint64_t event_footprint(const event& ev) {
  return sizeof(event) + sizeof(boost::json::value) + json_bytes(ev.envelope) +
         string_bytes(ev.id.size()) + string_bytes(ev.event_type.size()) +
         string_bytes(ev.entity_type.size()) + string_bytes(ev.entity_id.size()) +
         ev.envelope_json.capacity() + 1;
}

replay_marker parse_replay_marker(const std::string& text) {
  namespace bj = boost::json;
  bj::error_code ec;
  bj::value v = bj::parse(text, ec);
  if (ec) throw std::runtime_error("replay marker is not JSON: " + ec.message());
  if (!v.is_object()) throw std::runtime_error("replay marker is not a JSON object");
  const auto& o = v.get_object();
  replay_marker m;
  auto id = o.find("id");
  if (id == o.end() || !(id->value().is_int64() || id->value().is_uint64()))
    throw std::runtime_error("replay marker has no numeric 'id'");
  m.id = id->value().is_int64() ? static_cast<uint64_t>(id->value().get_int64())
                                : id->value().get_uint64();
  if (m.id == 0) throw std::runtime_error("replay marker has id 0");
  if (auto l = o.find("listener_id"); l != o.end() && l->value().is_string())
    m.listener_id = std::string(l->value().get_string());
  if (auto ob = o.find("observer"); ob != o.end() && ob->value().is_string())
    m.observer = std::string(ob->value().get_string());
  return m;
}

std::string oversize_reason(uint64_t bytes, uint64_t limit) {
  return "event of " + std::to_string(bytes) + " bytes exceeds the per-event limit of " +
         std::to_string(limit) +
         " bytes (listener.max_event_bytes): not routed, no action ran; raise the limit and "
         "replay the event to deliver it";
}

event_ptr event_from_envelope(const std::string& json, uint64_t seq) {
  namespace bj = boost::json;
  bj::error_code ec;
  bj::value v = bj::parse(json, ec);
  if (ec) throw std::runtime_error("stored event envelope is not JSON: " + ec.message());
  if (!v.is_object()) throw std::runtime_error("stored event envelope is not a JSON object");
  const auto& o = v.get_object();
  auto text = [&](const char* key) -> std::string {
    auto it = o.find(key);
    if (it == o.end() || !it->value().is_string())
      throw std::runtime_error(std::string("stored event envelope has no string '") + key + "'");
    return std::string(it->value().get_string());
  };
  auto ev = std::make_shared<event>();
  ev->seq = seq;
  ev->id = text("id");
  ev->event_type = text("event_type");
  ev->entity_type = text("entity_type");
  // entity_id is a string in envelopes this engine writes; tolerate null.
  if (auto it = o.find("entity_id"); it != o.end() && it->value().is_null())
    ev->entity_id.clear();
  else
    ev->entity_id = text("entity_id");
  if (auto it = o.find("position"); it != o.end() && it->value().is_object()) {
    const auto& p = it->value().get_object();
    auto tx = p.find("txid");
    auto pk = p.find("pk");
    try {
      if (tx != p.end() && tx->value().is_string())
        ev->pos.txid = std::stoull(std::string(tx->value().get_string()));
      if (pk != p.end() && pk->value().is_int64()) ev->pos.pk = pk->value().get_int64();
    } catch (const std::exception&) {
      throw std::runtime_error("stored event envelope has a malformed position");
    }
  }
  if (auto it = o.find("replay"); it != o.end() && it->value().is_object()) {
    auto m = parse_replay_marker(bj::serialize(it->value()));
    ev->replay_id = m.id;
    ev->replay_listener = std::move(m.listener_id);
    ev->replay_observer = std::move(m.observer);
  }
  ev->envelope = std::move(v);
  ev->envelope_json = json;
  ev->read_at = std::chrono::steady_clock::now();
  ev->footprint = event_footprint(*ev);
  return ev;
}

}  // namespace fraiseql
