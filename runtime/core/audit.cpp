#include "runtime/core/audit.hpp"

#include "runtime/core/clock.hpp"
#include "runtime/core/observers.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cctype>

namespace fraiseql {

uint64_t audit_event_record::bytes() const {
  uint64_t b = sizeof(*this) + event_id.size() + timestamp.size() + event_type.size() +
               entity_type.size() + entity_id.size() + envelope_json.size();
  for (const auto& o : observers) b += o.size() + sizeof(o);
  return b;
}

uint64_t audit_attempt_record::bytes() const {
  return sizeof(*this) + event_id.size() + event_timestamp.size() + entity_type.size() +
         entity_id.size() + event_type.size() + observer.size() + action_type.size() +
         status.size() + error.size() + idempotency_key.size();
}

std::string audit_event_kind(const std::string& event_type) {
  if (event_type == "INSERT") return "created";
  if (event_type == "UPDATE") return "updated";
  if (event_type == "DELETE") return "deleted";
  std::string s = event_type;
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

int audit_http_status(const std::string& error) {
  // runtime/exec/executor.cpp (classify_http) writes "HTTP <status>[: body]".
  if (error.size() < 8 || error.compare(0, 5, "HTTP ") != 0) return 0;
  int v = 0;
  for (size_t i = 5; i < 8; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(error[i]))) return 0;
    v = v * 10 + (error[i] - '0');
  }
  if (error.size() > 8 && std::isdigit(static_cast<unsigned char>(error[8]))) return 0;
  return v;
}

audit_event_record audit_event_of(const event& ev, std::vector<std::string> observers,
                                  uint32_t actions) {
  audit_event_record r;
  r.event_id = ev.id;
  if (const auto* o = ev.envelope.if_object())
    if (const auto* t = o->if_contains("timestamp"))
      if (const auto* s = t->if_string()) r.timestamp.assign(s->data(), s->size());
  r.event_type = ev.event_type;
  r.entity_type = ev.entity_type;
  r.entity_id = ev.entity_id;
  r.pos = ev.pos;
  r.observers = std::move(observers);
  r.actions = actions;
  // A very large envelope is recorded without its data: copying it on the
  // router's thread and holding it in the queue would cost more than its
  // search is worth (entity, kind, time and attempts stay searchable).
  if (ev.envelope_json.size() <= audit_max_envelope_bytes) r.envelope_json = ev.envelope_json;
  return r;
}

void audit_routed(audit_queue& q, const event& ev, const observer_registry& reg,
                  const std::vector<uint32_t>& observers) {
  std::vector<std::string> names;
  names.reserve(observers.size());
  uint32_t actions = 0;
  for (auto o : observers) {
    const auto& oc = reg.config(o);
    names.push_back(oc.name);
    actions += static_cast<uint32_t>(oc.actions.size());
  }
  q.push(audit_event_of(ev, std::move(names), actions));
}

void audit_attempt(audit_queue& q, const event& ev, const observer_registry& reg, uint32_t observer,
                   uint32_t action, uint32_t attempt, const attempt_outcome& o, bool will_retry,
                   double latency_ms, const char* status) {
  const auto& oc = reg.config(observer);
  audit_attempt_record r;
  r.event_id = ev.id;
  if (const auto* env = ev.envelope.if_object())
    if (const auto* t = env->if_contains("timestamp"))
      if (const auto* s = t->if_string()) r.event_timestamp.assign(s->data(), s->size());
  r.entity_type = ev.entity_type;
  r.entity_id = ev.entity_id;
  r.event_type = ev.event_type;
  r.observer = oc.name;
  r.action_index = action;
  r.action_type = oc.actions.at(action).type;
  r.attempt = attempt;
  r.status = status != nullptr ? status : o.ok ? "succeeded" : will_retry ? "retrying" : "failed";
  r.http_status = o.ok ? 0 : audit_http_status(o.error);
  r.error = o.error.substr(0, 2000);
  r.latency_ms = latency_ms;
  r.idempotency_key = idempotency_key(ev.id, oc.name, action);
  r.ended_ms = unix_ms();
  q.push(std::move(r));
}

audit_queue::audit_queue(size_t max_records, uint64_t max_bytes)
    : max_records_(max_records), max_bytes_(max_bytes) {}

bool audit_queue::fits(uint64_t b) const {
  return events_.size() + attempts_.size() < max_records_ && bytes_ + b <= max_bytes_;
}

bool audit_queue::push(audit_event_record r) {
  const auto b = r.bytes();
  std::lock_guard<std::mutex> g{mu_};
  if (!fits(b)) {
    dropped_.fetch_add(1);
    return false;
  }
  bytes_ += b;
  events_.push_back(std::move(r));
  return true;
}

bool audit_queue::push(audit_attempt_record r) {
  const auto b = r.bytes();
  std::lock_guard<std::mutex> g{mu_};
  if (!fits(b)) {
    dropped_.fetch_add(1);
    return false;
  }
  bytes_ += b;
  attempts_.push_back(std::move(r));
  return true;
}

audit_queue::batch audit_queue::take(size_t max) {
  batch out;
  std::lock_guard<std::mutex> g{mu_};
  // Events first: an attempt's event is usually in the same batch or an
  // earlier one (the tables do not require it).
  while (out.size() < max && !events_.empty()) {
    bytes_ -= events_.front().bytes();
    out.events.push_back(std::move(events_.front()));
    events_.pop_front();
  }
  while (out.size() < max && !attempts_.empty()) {
    bytes_ -= attempts_.front().bytes();
    out.attempts.push_back(std::move(attempts_.front()));
    attempts_.pop_front();
  }
  return out;
}

void audit_queue::put_back(batch b) {
  std::lock_guard<std::mutex> g{mu_};
  for (auto it = b.attempts.rbegin(); it != b.attempts.rend(); ++it) {
    const auto n = it->bytes();
    if (!fits(n)) {
      dropped_.fetch_add(1);
      continue;
    }
    bytes_ += n;
    attempts_.push_front(std::move(*it));
  }
  for (auto it = b.events.rbegin(); it != b.events.rend(); ++it) {
    const auto n = it->bytes();
    if (!fits(n)) {
      dropped_.fetch_add(1);
      continue;
    }
    bytes_ += n;
    events_.push_front(std::move(*it));
  }
}

size_t audit_queue::size() const {
  std::lock_guard<std::mutex> g{mu_};
  return events_.size() + attempts_.size();
}

uint64_t audit_queue::bytes() const {
  std::lock_guard<std::mutex> g{mu_};
  return bytes_;
}

}  // namespace fraiseql
