#pragma once

// The action-result cache: its interface and the in-memory LRU + TTL
// implementation (injected clock). The Redis implementation is
// runtime/io/redis/cache.hpp.

#include "runtime/core/dedup.hpp"  // steady_clock_fn, steady_now

#include <chrono>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace fraiseql {

/// `action_result:<key>`.
std::string action_result_key(const std::string& key);

/// What a cache holds now, as far as its store can tell (`observerctl
/// cache-stats`); unknown figures stay empty.
struct cache_usage {
  std::optional<uint64_t> entries;
  std::optional<uint64_t> capacity;
  /// Entries dropped to make room (memory: least recently used; Redis: the
  /// server's evicted_keys, all keys of its databases).
  std::optional<uint64_t> evictions;
  /// Entries dropped because their TTL passed (Redis: the server's expired_keys).
  std::optional<uint64_t> expired;
};

/// Values are opaque (binary-safe) strings that expire after a TTL. Thread-safe.
class result_cache {
 public:
  virtual ~result_cache() = default;
  /// May block (Redis) and throw like the other calls.
  virtual cache_usage usage() { return {}; }
  std::optional<std::string> get(const std::string& key) { return do_get(key); }
  /// One round trip for many keys.
  std::vector<std::optional<std::string>> get_many(const std::vector<std::string>& keys) {
    return do_get_many(keys);
  }
  /// With the default TTL.
  void put(const std::string& key, const std::string& value) { do_put(key, value, ttl_); }
  void put(const std::string& key, const std::string& value, std::chrono::milliseconds ttl) {
    do_put(key, value, ttl);
  }
  std::chrono::milliseconds ttl() const { return ttl_; }

 protected:
  explicit result_cache(std::chrono::milliseconds ttl);

 private:
  virtual std::optional<std::string> do_get(const std::string& key) = 0;
  virtual std::vector<std::optional<std::string>> do_get_many(
      const std::vector<std::string>& keys) = 0;
  virtual void do_put(const std::string& key, const std::string& value,
                      std::chrono::milliseconds ttl) = 0;

  std::chrono::milliseconds ttl_;
};

/// In memory: least-recently-used eviction beyond `capacity` entries, plus TTL.
class lru_ttl_cache final : public result_cache {
 public:
  lru_ttl_cache(size_t capacity, std::chrono::milliseconds ttl, steady_clock_fn clock = steady_now);
  size_t size();
  uint64_t hits();
  uint64_t misses();
  cache_usage usage() override;

 private:
  std::optional<std::string> do_get(const std::string& key) override;
  std::vector<std::optional<std::string>> do_get_many(
      const std::vector<std::string>& keys) override;
  void do_put(const std::string& key, const std::string& value,
              std::chrono::milliseconds ttl) override;
  std::optional<std::string> get_locked(const std::string& key,
                                        std::chrono::steady_clock::time_point now);

  struct node {
    std::string key;
    std::string value;
    std::chrono::steady_clock::time_point expires;
  };
  size_t capacity_;
  steady_clock_fn clock_;
  std::mutex mtx_;
  std::list<node> lru_;  // front: most recently used
  std::unordered_map<std::string, std::list<node>::iterator> index_;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  uint64_t evictions_ = 0;
  uint64_t expired_ = 0;
};

}  // namespace fraiseql
