#include "runtime/core/membership.hpp"

#include "runtime/config/loopback.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <stdexcept>

namespace fraiseql {

namespace json = boost::json;

json::value to_json(const member_info& m) {
  json::array peers;
  for (const auto& p : m.peers) peers.push_back(json::string(p));
  return json::object{{"name", m.name},
                      {"address", m.address},
                      {"process", m.process},
                      {"version", m.version},
                      {"role", m.role},
                      {"state", m.state},
                      {"listener_id", m.listener_id},
                      {"epoch", m.epoch},
                      {"listener_healthy", m.listener_healthy},
                      {"backlog", m.backlog ? json::value(*m.backlog) : json::value(nullptr)},
                      {"peers", std::move(peers)}};
}

namespace {

const json::object& object_of(const json::value& v) {
  if (!v.is_object()) throw std::invalid_argument("member description is not a JSON object");
  return v.get_object();
}

std::string text_field(const json::object& o, const char* k, bool required = true) {
  auto it = o.find(k);
  if (it == o.end()) {
    if (!required) return {};
    throw std::invalid_argument(std::string("member description lacks '") + k + "'");
  }
  if (!it->value().is_string())
    throw std::invalid_argument(std::string("member field '") + k + "' is not a string");
  const auto& s = it->value().get_string();
  if (s.size() > 256)
    throw std::invalid_argument(std::string("member field '") + k + "' is longer than 256");
  for (char c : s)
    if (static_cast<unsigned char>(c) < 0x20)
      throw std::invalid_argument(std::string("member field '") + k +
                                  "' holds a control character");
  if (required && s.empty())
    throw std::invalid_argument(std::string("member field '") + k + "' is empty");
  return std::string(s);
}

uint64_t count_field(const json::object& o, const char* k) {
  auto it = o.find(k);
  if (it == o.end()) return 0;
  const auto& v = it->value();
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<uint64_t>(v.get_int64());
  throw std::invalid_argument(std::string("member field '") + k +
                              "' is not a non-negative integer");
}

}  // namespace

member_info member_from_json(const json::value& v) {
  const auto& o = object_of(v);
  member_info m;
  m.name = text_field(o, "name");
  m.address = text_field(o, "address");
  if (!parse_host_port(m.address))
    throw std::invalid_argument("member field 'address' is not host:port");
  m.process = text_field(o, "process");
  m.version = text_field(o, "version", false);
  m.role = text_field(o, "role", false);
  m.state = text_field(o, "state");
  m.listener_id = text_field(o, "listener_id", false);
  m.epoch = count_field(o, "epoch");
  if (auto it = o.find("listener_healthy"); it != o.end()) {
    if (!it->value().is_bool())
      throw std::invalid_argument("member field 'listener_healthy' is not a boolean");
    m.listener_healthy = it->value().get_bool();
  }
  if (auto it = o.find("backlog"); it != o.end() && !it->value().is_null())
    m.backlog = count_field(o, "backlog");
  if (auto it = o.find("peers"); it != o.end()) {
    if (!it->value().is_array()) throw std::invalid_argument("member field 'peers' is not a list");
    const auto& a = it->value().get_array();
    if (a.size() > 1024) throw std::invalid_argument("member field 'peers' has over 1024 entries");
    for (const auto& p : a) {
      if (!p.is_string() || p.get_string().size() > 256 ||
          !parse_host_port(std::string(p.get_string())))
        throw std::invalid_argument("member field 'peers' holds an entry that is not an address");
      m.peers.emplace_back(p.get_string());
    }
  }
  return m;
}

membership::membership(member_info self, std::chrono::milliseconds timeout,
                       std::chrono::milliseconds forget_after, clock::time_point now)
    : self_name_(self.name), timeout_(timeout), forget_after_(forget_after) {
  entry e;
  e.info = std::move(self);
  e.last_heard = now;
  e.self = true;
  by_name_.emplace(self_name_, std::move(e));
  note_leaders();
}

membership::verdict membership::observe(const member_info& m, clock::time_point now) {
  if (m.name == self_name_) {
    if (m.process == self().process) return {};
    return {false, "this node is named '" + m.name + "' already (" + self().process + " at " +
                       self().address + "); node names must be unique"};
  }
  if (m.process == self().process)
    return {false, "'" + m.name + "' at " + m.address + " claims this node's process identity (" +
                       m.process + "); hosts need distinct host names"};
  auto it = by_name_.find(m.name);
  if (it != by_name_.end() && it->second.info.process != m.process) {
    if (it->second.reachable)
      return {false, "a node named '" + m.name + "' is already a member (" +
                         it->second.info.process + " at " + it->second.info.address +
                         "); node names must be unique"};
    by_name_.erase(it);  // the unreachable holder of the name restarted (or is gone)
    it = by_name_.end();
  }
  // A process has one name: an entry of the same process under another name
  // is stale.
  for (auto i = by_name_.begin(); i != by_name_.end();) {
    if (!i->second.self && i->first != m.name && i->second.info.process == m.process)
      i = by_name_.erase(i);
    else
      ++i;
  }
  entry& e = by_name_[m.name];
  e.info = m;
  e.last_heard = now;
  e.reachable = true;
  note_leaders();
  return {};
}

void membership::update_self(member_info m, clock::time_point now) {
  auto& e = by_name_.at(self_name_);
  m.name = self_name_;
  e.info = std::move(m);
  e.last_heard = now;
  note_leaders();
}

bool membership::leave(const std::string& process) {
  for (auto it = by_name_.begin(); it != by_name_.end(); ++it) {
    if (it->second.self || it->second.info.process != process) continue;
    by_name_.erase(it);
    note_leaders();
    return true;
  }
  return false;
}

bool membership::lost(const std::string& process, clock::time_point now) {
  for (auto& [name, e] : by_name_) {
    if (e.self || e.info.process != process) continue;
    if (e.reachable) {
      e.reachable = false;
      e.unreachable_since = now;
      note_leaders();
    }
    return true;
  }
  return false;
}

void membership::tick(clock::time_point now) {
  bool changed = false;
  for (auto it = by_name_.begin(); it != by_name_.end();) {
    auto& e = it->second;
    if (!e.self && e.reachable && now - e.last_heard > timeout_) {
      e.reachable = false;
      e.unreachable_since = now;
      changed = true;
    }
    if (!e.self && !e.reachable && now - e.unreachable_since > forget_after_) {
      it = by_name_.erase(it);
      changed = true;
      continue;
    }
    ++it;
  }
  if (changed) note_leaders();
}

bool membership::healthy(const entry& e) const {
  if (!e.reachable) return false;
  const auto& s = e.info.state;
  if (s == "leader") return e.info.listener_healthy;
  return s == "standby" || s == "dry-run";
}

const membership::entry* membership::find_process(const std::string& process) const {
  for (const auto& [name, e] : by_name_)
    if (e.info.process == process) return &e;
  return nullptr;
}

const membership::entry* membership::find_name(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &it->second;
}

uint32_t membership::healthy_count() const {
  return static_cast<uint32_t>(std::count_if(
      by_name_.begin(), by_name_.end(), [this](const auto& kv) { return healthy(kv.second); }));
}

std::vector<membership::listener_view> membership::listeners() const {
  std::map<std::string, listener_view> out;
  std::map<std::string, const entry*> lead;
  for (const auto& [name, e] : by_name_) {
    auto& v = out[e.info.listener_id];
    v.listener_id = e.info.listener_id;
    ++v.members;
    if (healthy(e)) ++v.healthy;
    if (e.info.state != "leader") continue;
    const entry*& best = lead[e.info.listener_id];
    // Reachable claims first, then the newest lease epoch.
    if (best == nullptr || (e.reachable && !best->reachable) ||
        (e.reachable == best->reachable && e.info.epoch > best->info.epoch))
      best = &e;
  }
  std::vector<listener_view> rows;
  for (auto& [id, v] : out) {
    if (auto it = lead.find(id); it != lead.end()) {
      v.leader = it->second->info.name;
      v.epoch = it->second->info.epoch;
      v.leader_healthy = healthy(*it->second);
    }
    rows.push_back(std::move(v));
  }
  return rows;
}

std::vector<std::string> membership::addresses() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : by_name_)
    if (e.reachable) out.push_back(e.info.address);
  return out;
}

void membership::note_leaders() {
  for (const auto& v : listeners()) {
    if (v.leader.empty() || v.epoch == 0) continue;
    auto& last = last_epoch_[v.listener_id];
    if (v.epoch > last) {
      if (last != 0) changes_.push_back({v.listener_id, v.leader, v.epoch});
      last = v.epoch;
    }
  }
}

std::vector<membership::leader_change> membership::take_leader_changes() {
  std::vector<leader_change> out;
  out.swap(changes_);
  return out;
}

json::value membership::to_json(clock::time_point now) const {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  json::array members;
  for (const auto& [name, e] : by_name_) {
    auto o = fraiseql::to_json(e.info).as_object();
    o.erase("peers");
    o["self"] = e.self;
    o["reachable"] = e.reachable;
    o["healthy"] = healthy(e);
    o["heartbeat_age_ms"] = e.self ? 0 : duration_cast<milliseconds>(now - e.last_heard).count();
    members.push_back(std::move(o));
  }
  json::array listeners;
  for (const auto& v : this->listeners())
    listeners.push_back(
        json::object{{"listener_id", v.listener_id},
                     {"leader", v.leader.empty() ? json::value(nullptr) : json::value(v.leader)},
                     {"epoch", v.epoch},
                     {"leader_healthy", v.leader_healthy},
                     {"healthy", v.healthy},
                     {"members", v.members}});
  return json::object{{"members", std::move(members)}, {"listeners", std::move(listeners)}};
}

}  // namespace fraiseql
