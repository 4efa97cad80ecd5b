#pragma once

// A JetStream key-value bucket (nats.c's kvStore) used for leases: every key
// expires `ttl` after its last write (the bucket's max age, the server's
// clock), create() succeeds only when the key is absent, update() only when
// the key is still at the revision the caller last wrote. So a holder that
// stops renewing loses its key after ttl, and a holder whose key was taken
// over learns it on its next update.
//
// Blocking calls bounded by the connection's api_timeout; throw
// nats_unavailable (retry later) or nats_error.

#include "runtime/io/nats/connection.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct __kvStore;  // nats.c: kvStore

namespace fraiseql {

class kv_bucket {
 public:
  /// Creates the bucket (history 1) or binds to the existing one.
  kv_bucket(std::shared_ptr<nats_connection> conn, const std::string& bucket,
            std::chrono::milliseconds ttl, int replicas);
  ~kv_bucket();
  kv_bucket(const kv_bucket&) = delete;
  kv_bucket& operator=(const kv_bucket&) = delete;

  /// The new revision, or nullopt when the key exists.
  std::optional<uint64_t> create(const std::string& key, const std::string& value);
  /// The new revision, or nullopt when the key is no longer at `last`
  /// (written by someone else, deleted, or expired).
  std::optional<uint64_t> update(const std::string& key, const std::string& value, uint64_t last);
  /// Writes unconditionally; the new revision.
  uint64_t put(const std::string& key, const std::string& value);
  /// (value, revision), nullopt when absent.
  std::optional<std::pair<std::string, uint64_t>> get(const std::string& key);
  /// Deletes (a delete marker; create() succeeds afterwards).
  void remove(const std::string& key);
  /// The live keys starting with `prefix` (one stream-info request plus
  /// one get per key: for small key sets).
  std::vector<std::string> keys(const std::string& prefix = "");

  const std::string& name() const { return name_; }

 private:
  std::shared_ptr<nats_connection> conn_;
  std::string name_;
  __kvStore* kv_ = nullptr;
  void* js_ = nullptr;  // jsCtx*
};

}  // namespace fraiseql
