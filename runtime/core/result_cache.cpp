#include "runtime/core/result_cache.hpp"

namespace fraiseql {

std::string action_result_key(const std::string& key) {
  return "action_result:" + key;
}

result_cache::result_cache(std::chrono::milliseconds ttl) : ttl_(ttl) {
  if (ttl.count() <= 0) throw std::invalid_argument("cache TTL must be positive");
}

lru_ttl_cache::lru_ttl_cache(size_t capacity, std::chrono::milliseconds ttl, steady_clock_fn clock)
    : result_cache(ttl), capacity_(capacity), clock_(std::move(clock)) {
  if (capacity_ == 0) throw std::invalid_argument("lru_ttl_cache: capacity must be at least 1");
  if (!clock_) throw std::invalid_argument("lru_ttl_cache: no clock");
}

std::optional<std::string> lru_ttl_cache::get_locked(const std::string& key,
                                                     std::chrono::steady_clock::time_point now) {
  auto it = index_.find(key);
  if (it == index_.end()) {
    ++misses_;
    return std::nullopt;
  }
  if (it->second->expires <= now) {
    lru_.erase(it->second);
    index_.erase(it);
    ++misses_;
    ++expired_;
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  ++hits_;
  return it->second->value;
}

std::optional<std::string> lru_ttl_cache::do_get(const std::string& key) {
  std::lock_guard<std::mutex> lk(mtx_);
  return get_locked(key, clock_());
}

std::vector<std::optional<std::string>> lru_ttl_cache::do_get_many(
    const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> lk(mtx_);
  const auto now = clock_();
  std::vector<std::optional<std::string>> out;
  out.reserve(keys.size());
  for (const auto& k : keys) out.push_back(get_locked(k, now));
  return out;
}

void lru_ttl_cache::do_put(const std::string& key, const std::string& value,
                           std::chrono::milliseconds ttl) {
  if (ttl.count() <= 0) throw std::invalid_argument("lru_ttl_cache: TTL must be positive");
  std::lock_guard<std::mutex> lk(mtx_);
  const auto expires = clock_() + ttl;
  auto it = index_.find(key);
  if (it != index_.end()) {
    it->second->value = value;
    it->second->expires = expires;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.push_front(node{key, value, expires});
  index_.emplace(key, lru_.begin());
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
    ++evictions_;
  }
}

size_t lru_ttl_cache::size() {
  std::lock_guard<std::mutex> lk(mtx_);
  return lru_.size();
}

uint64_t lru_ttl_cache::hits() {
  std::lock_guard<std::mutex> lk(mtx_);
  return hits_;
}

cache_usage lru_ttl_cache::usage() {
  std::lock_guard<std::mutex> lk(mtx_);
  cache_usage u;
  u.entries = lru_.size();
  u.capacity = capacity_;
  u.evictions = evictions_;
  u.expired = expired_;
  return u;
}

uint64_t lru_ttl_cache::misses() {
  std::lock_guard<std::mutex> lk(mtx_);
  return misses_;
}

}  // namespace fraiseql
