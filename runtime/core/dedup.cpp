#include "runtime/core/dedup.hpp"

#include <algorithm>
#include <cstdint>
#include <random>
#include <stdexcept>

#include <unistd.h>

namespace fraiseql {

namespace {

constexpr const char* done_value = dedup_done_value;

void check_string_arg(const std::string& s, const char* what) {
  if (s.empty()) throw std::invalid_argument(std::string("redis dedup: empty ") + what);
}

}  // namespace

std::chrono::steady_clock::time_point steady_now() {
  return std::chrono::steady_clock::now();
}

const char* to_string(claim_status s) {
  switch (s) {
    case claim_status::claimed:
      return "claimed";
    case claim_status::done:
      return "done";
    case claim_status::busy:
      return "busy";
  }
  return "?";
}

const char* to_string(confirm_status s) {
  switch (s) {
    case confirm_status::confirmed:
      return "confirmed";
    case confirm_status::confirmed_after_expiry:
      return "confirmed_after_expiry";
    case confirm_status::already_done:
      return "already_done";
    case confirm_status::lost:
      return "lost";
  }
  return "?";
}

std::string dedup_key(const std::string& event_id) {
  return "event:" + event_id;
}

std::string make_owner_token(const std::string& name, const std::string& family,
                             uint64_t generation) {
  if (family.empty()) throw std::invalid_argument("redis dedup: empty owner family");
  // The unique part sits between two '|': keep the separator out of it.
  std::string unique = make_owner_token(name);
  std::replace(unique.begin(), unique.end(), '|', '_');
  return "e" + std::to_string(generation) + "|" + unique + "|" + family;
}

std::optional<owner_lineage> parse_owner_lineage(const std::string& token) {
  // The same rule as the Redis takeover script: ^e(%d+)|[^|]*|(.+)$
  if (token.size() < 2 || token[0] != 'e') return std::nullopt;
  size_t i = 1;
  uint64_t generation = 0;
  while (i < token.size() && token[i] >= '0' && token[i] <= '9') {
    if (generation > (UINT64_MAX - 9) / 10) return std::nullopt;
    generation = generation * 10 + static_cast<uint64_t>(token[i] - '0');
    ++i;
  }
  if (i == 1 || i >= token.size() || token[i] != '|') return std::nullopt;
  const size_t second = token.find('|', i + 1);
  if (second == std::string::npos || second + 1 >= token.size()) return std::nullopt;
  return owner_lineage{token.substr(second + 1), generation};
}

bool supersedes(const std::string& mine, const std::string& theirs) {
  const auto m = parse_owner_lineage(mine);
  const auto t = parse_owner_lineage(theirs);
  return m && t && m->family == t->family && t->generation < m->generation;
}

std::string make_owner_token(const std::string& name) {
  static thread_local std::mt19937_64 rng{[] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }()};
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(rng()));
  return name + ":" + std::to_string(::getpid()) + ":" + hex;
}

dedup_store::dedup_store(std::chrono::milliseconds window) : window_(window) {
  if (window.count() <= 0) throw std::invalid_argument("dedup window must be positive");
}

void dedup_store::check_args(const std::vector<std::string>& event_ids, const std::string& owner,
                             std::chrono::milliseconds ttl) {
  check_string_arg(owner, "owner token");
  if (owner == done_value)
    throw std::invalid_argument("redis dedup: owner token must not be \"done\"");
  if (ttl.count() <= 0) throw std::invalid_argument("redis dedup: TTL must be positive");
  for (const auto& id : event_ids) check_string_arg(id, "event id");
}

confirm_status dedup_store::confirm(const std::string& event_id, const std::string& owner) {
  return confirm_all(std::vector<std::string>{event_id}, owner).front();
}

bool dedup_store::release(const std::string& event_id, const std::string& owner) {
  return release_all(std::vector<std::string>{event_id}, owner).front();
}

// --- memory_dedup ---------------------------------------------------------------------

memory_dedup::memory_dedup(std::chrono::milliseconds window, steady_clock_fn clock)
    : dedup_store(window), clock_(std::move(clock)) {
  if (!clock_) throw std::invalid_argument("memory_dedup: no clock");
}

memory_dedup::entry* memory_dedup::live(const std::string& key,
                                        std::chrono::steady_clock::time_point now) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  if (it->second.expires <= now) {
    entries_.erase(it);
    return nullptr;
  }
  return &it->second;
}

void memory_dedup::maybe_sweep(std::chrono::steady_clock::time_point now) {
  // A full pass once per size() operations: amortized O(1), and the map never
  // holds more than the live entries plus one pass worth of expired ones.
  if (ops_since_sweep_ < entries_.size()) return;
  ops_since_sweep_ = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.expires <= now)
      it = entries_.erase(it);
    else
      ++it;
  }
}

std::vector<claim_status> memory_dedup::claim(const std::vector<std::string>& event_ids,
                                              const std::string& owner,
                                              std::chrono::milliseconds claim_ttl) {
  check_args(event_ids, owner, claim_ttl);
  std::lock_guard<std::mutex> lk(mtx_);
  const auto now = clock_();
  ops_since_sweep_ += event_ids.size();
  maybe_sweep(now);
  std::vector<claim_status> out;
  out.reserve(event_ids.size());
  for (const auto& id : event_ids) {
    entry* e = live(id, now);
    if (e == nullptr) {
      entries_[id] = entry{owner, now + claim_ttl};
      out.push_back(claim_status::claimed);
    } else if (e->value == done_value) {
      out.push_back(claim_status::done);
    } else if (e->value == owner) {
      out.push_back(claim_status::claimed);  // like Redis: the TTL is not refreshed
    } else if (supersedes(owner, e->value)) {
      *e = entry{owner, now + claim_ttl};  // an earlier generation's claim: taken over
      out.push_back(claim_status::claimed);
    } else {
      out.push_back(claim_status::busy);
    }
  }
  return out;
}

std::vector<bool> memory_dedup::extend(const std::vector<std::string>& event_ids,
                                       const std::string& owner,
                                       std::chrono::milliseconds claim_ttl) {
  check_args(event_ids, owner, claim_ttl);
  std::lock_guard<std::mutex> lk(mtx_);
  const auto now = clock_();
  std::vector<bool> out;
  out.reserve(event_ids.size());
  for (const auto& id : event_ids) {
    entry* e = live(id, now);
    const bool held = e != nullptr && e->value == owner;
    if (held) e->expires = now + claim_ttl;
    out.push_back(held);
  }
  return out;
}

std::vector<confirm_status> memory_dedup::confirm_all(const std::vector<std::string>& event_ids,
                                                      const std::string& owner) {
  check_args(event_ids, owner, window());
  std::lock_guard<std::mutex> lk(mtx_);
  const auto now = clock_();
  ops_since_sweep_ += event_ids.size();
  maybe_sweep(now);
  std::vector<confirm_status> out;
  out.reserve(event_ids.size());
  for (const auto& id : event_ids) {
    entry* e = live(id, now);
    if (e == nullptr) {
      entries_[id] = entry{done_value, now + window()};
      out.push_back(confirm_status::confirmed_after_expiry);
    } else if (e->value == owner) {
      *e = entry{done_value, now + window()};
      out.push_back(confirm_status::confirmed);
    } else if (e->value == done_value) {
      out.push_back(confirm_status::already_done);
    } else {
      out.push_back(confirm_status::lost);
    }
  }
  return out;
}

std::vector<bool> memory_dedup::release_all(const std::vector<std::string>& event_ids,
                                            const std::string& owner) {
  check_args(event_ids, owner, window());
  std::lock_guard<std::mutex> lk(mtx_);
  const auto now = clock_();
  std::vector<bool> out;
  out.reserve(event_ids.size());
  for (const auto& id : event_ids) {
    entry* e = live(id, now);
    const bool held = e != nullptr && e->value == owner;
    if (held) entries_.erase(id);
    out.push_back(held);
  }
  return out;
}

size_t memory_dedup::size() {
  std::lock_guard<std::mutex> lk(mtx_);
  const auto now = clock_();
  ops_since_sweep_ = entries_.size();
  maybe_sweep(now);
  return entries_.size();
}

}  // namespace fraiseql
