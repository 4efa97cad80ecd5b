#include "runtime/io/nats/kv.hpp"

#include "runtime/io/nats/internal.hpp"

#include <cstring>

namespace fraiseql {

namespace {

jsCtx* js_of(void* p) {
  return static_cast<jsCtx*>(p);
}

/// A failed conditional write (create on an existing key, update at a stale
/// revision): the server's "wrong last sequence" (JetStream 10071) or nats.c's
/// own "key exists".
bool is_conflict(natsStatus s) {
  if (s != NATS_ERR && s != NATS_NOT_FOUND) return false;
  const char* last = nats_GetLastError(nullptr);
  if (last == nullptr) return false;
  return std::strstr(last, "wrong last sequence") != nullptr ||
         std::strstr(last, "10071") != nullptr || std::strstr(last, "exists") != nullptr;
}

}  // namespace

kv_bucket::kv_bucket(std::shared_ptr<nats_connection> conn, const std::string& bucket,
                     std::chrono::milliseconds ttl, int replicas)
    : conn_(std::move(conn)), name_(bucket) {
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = conn_->options().api_timeout.count();
  jsCtx* js = nullptr;
  nats_throw("JetStream context", natsConnection_JetStream(&js, conn_->raw(), &o));
  js_ = js;
  natsStatus s = js_KeyValue(&kv_, js, bucket.c_str());
  if (s == NATS_OK) return;
  kvConfig cfg;
  kvConfig_Init(&cfg);
  cfg.Bucket = bucket.c_str();
  cfg.History = 1;
  cfg.TTL = ttl.count() * 1000000;  // nanoseconds: nats.c 3.4.1 passes it as the max age
  cfg.Replicas = replicas;
  s = js_CreateKeyValue(&kv_, js, &cfg);
  if (s != NATS_OK) {
    // Created meanwhile by another process: bind to it.
    if (js_KeyValue(&kv_, js, bucket.c_str()) == NATS_OK) return;
    jsCtx_Destroy(js);
    js_ = nullptr;
    nats_throw("key-value bucket '" + bucket + "'", s);
  }
}

kv_bucket::~kv_bucket() {
  kvStore_Destroy(kv_);
  jsCtx_Destroy(js_of(js_));
}

std::optional<uint64_t> kv_bucket::create(const std::string& key, const std::string& value) {
  uint64_t rev = 0;
  natsStatus s =
      kvStore_Create(&rev, kv_, key.c_str(), value.data(), static_cast<int>(value.size()));
  if (s == NATS_OK) return rev;
  if (is_conflict(s)) return std::nullopt;
  nats_throw("create " + name_ + "/" + key, s);
  return std::nullopt;
}

std::optional<uint64_t> kv_bucket::update(const std::string& key, const std::string& value,
                                          uint64_t last) {
  uint64_t rev = 0;
  natsStatus s =
      kvStore_Update(&rev, kv_, key.c_str(), value.data(), static_cast<int>(value.size()), last);
  if (s == NATS_OK) return rev;
  if (is_conflict(s)) return std::nullopt;
  nats_throw("update " + name_ + "/" + key, s);
  return std::nullopt;
}

uint64_t kv_bucket::put(const std::string& key, const std::string& value) {
  uint64_t rev = 0;
  nats_throw("put " + name_ + "/" + key,
             kvStore_Put(&rev, kv_, key.c_str(), value.data(), static_cast<int>(value.size())));
  return rev;
}

std::optional<std::pair<std::string, uint64_t>> kv_bucket::get(const std::string& key) {
  kvEntry* e = nullptr;
  natsStatus s = kvStore_Get(&e, kv_, key.c_str());
  if (s == NATS_NOT_FOUND) return std::nullopt;
  nats_throw("get " + name_ + "/" + key, s);
  std::pair<std::string, uint64_t> out{std::string(static_cast<const char*>(kvEntry_Value(e)),
                                                   static_cast<size_t>(kvEntry_ValueLen(e))),
                                       kvEntry_Revision(e)};
  kvEntry_Destroy(e);
  return out;
}

void kv_bucket::remove(const std::string& key) {
  nats_throw("delete " + name_ + "/" + key, kvStore_Delete(kv_, key.c_str()));
}

std::vector<std::string> kv_bucket::keys(const std::string& prefix) {
  // The stream's subject list (one server-side snapshot), not nats.c's
  // kvStore_Keys: that one replays the bucket through a watcher and misses or
  // repeats keys rewritten meanwhile, which members renewing every second do.
  const std::string subject_prefix = "$KV." + name_ + ".";
  const std::string filter = subject_prefix + prefix + ">";
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = conn_->options().api_timeout.count();
  o.Stream.Info.SubjectsFilter = filter.c_str();
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, js_of(js_), ("KV_" + name_).c_str(), &o, &jerr);
  nats_throw("keys of " + name_, s, static_cast<int>(jerr));
  std::vector<std::string> out;
  if (si->State.Subjects != nullptr)
    for (int i = 0; i < si->State.Subjects->Count; ++i) {
      const char* subj = si->State.Subjects->List[i].Subject;
      if (std::strncmp(subj, subject_prefix.c_str(), subject_prefix.size()) == 0)
        out.emplace_back(subj + subject_prefix.size());
    }
  jsStreamInfo_Destroy(si);
  // A deleted key keeps its subject (a delete marker) until it expires.
  std::vector<std::string> live;
  for (auto& k : out)
    if (get(k)) live.push_back(std::move(k));
  return live;
}

}  // namespace fraiseql
