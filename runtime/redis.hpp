#pragma once

// Redis layer (hiredis): URL parsing, single-thread connections with
// pipelining and reconnect backoff, a connection pool, the event
// deduplication claim protocol, the action-result cache, and the policy for
// Redis outages. In-memory twins of the dedup store and of the cache (same
// interfaces, injected clock) serve the PostgreSQL-only topology and tests.
//
// Every Redis call blocks the calling thread (bounded by the connect and
// command timeouts): call them from detached actors or a worker thread, never
// from an actor on CAF's cooperative scheduler. Calls throw redis_unavailable
// for "retry later" (connection refused or lost, timeout, server loading,
// reconnect backoff in progress) and redis_error for problems a retry will not
// fix (authentication refused, bad database index, unexpected reply).
//
// ## Deduplication: the claim / confirm / release protocol
//
// One key per event, `event:<event id>`, holding either an owner token (a
// claim: "this worker is running the event's side effects") with a short TTL
// (`claim_ttl`), or the literal "done" with the dedup window as TTL. Owner
// tokens are unique per worker incarnation (make_owner_token) and are never
// "done".
//
//   claim(ids, owner, ttl)  SET event:<id> <owner> NX PX <ttl>, pipelined per
//                           batch. Set -> claimed. Not set -> GET: "done" ->
//                           done (skip the event), <owner> -> claimed (our own
//                           earlier claim, e.g. a retried pipeline), anything
//                           else or gone -> busy (retry later).
//   extend(ids, owner, ttl) PEXPIRE only while the value is still <owner> (Lua).
//   confirm(id, owner)      after the side effects succeeded. Lua,
//                           atomically: value is <owner> -> SET "done" PX
//                           <window> (confirmed); no value (our claim expired
//                           and nobody took it) -> SET "done" too
//                           (confirmed_after_expiry); "done" -> already_done;
//                           another owner -> lost (left untouched: that owner
//                           is running the event now and will confirm it).
//   release(id, owner)      after the side effects failed (to be retried):
//                           DEL only while the value is still <owner> (Lua).
//
// The decisions are single atomic Redis operations (SET NX, or a Lua script),
// so the protocol is race-free under any interleaving of workers:
//
//   1. Two workers handed the same event: exactly one SET NX wins. The other
//      gets busy and retries later; it then sees "done" (skip) or, if the
//      winner released or died, claims and runs the event. Side effects run
//      once.
//   2. A node dies after a side effect and its confirm, before its checkpoint:
//      the redelivered event finds "done" and is skipped for the dedup window.
//   3. A node dies before the side effect: its claim expires after claim_ttl;
//      until then the redelivery gets busy (retries later), afterwards it
//      claims and runs the event. Delay bounded by claim_ttl.
//
// What the protocol cannot rule out (at-least-once remains the contract; the
// webhook's Idempotency-Key lets receivers drop these duplicates):
//
//   - Death between the side effect and the confirm: the claim expires and the
//     redelivery runs the side effect again. The gap is one Redis round trip.
//   - Claim expiry while a slow side effect is still running: once claim_ttl
//     has passed, another worker handed the same event may claim and run it
//     concurrently; the slow worker's confirm then returns `lost` (log and
//     count it: claim_ttl is too short). Bounded by choosing claim_ttl above
//     the longest action run (attempts x per-attempt timeout + backoff delays),
//     or by extend()ing the claim every claim_ttl/3 while the action runs, in
//     which case only a worker that stalls (or loses Redis) for a whole
//     claim_ttl can be overtaken.
//   - The dedup memory lasts dedup_window: a redelivery after the window runs
//     again. Redis restarted without persistence, or a failover to a replica
//     that missed the last writes (asynchronous replication), forgets claims
//     and "done" marks the same way.
//   - Redis unavailable: see redis_failure_policy (fail-open runs events
//     without dedup, fail-closed pauses).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct redisContext;  // hiredis

namespace fraiseql {

// --- errors ---------------------------------------------------------------------------

/// Redis cannot be reached now (refused, connection lost, timeout, server
/// loading or out of memory, reconnect backoff in progress): retry later, or
/// apply the failure policy. When thrown from a pipeline after the commands
/// were sent, their effect is unknown.
struct redis_unavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A problem a retry will not fix: authentication refused, SELECT of a bad
/// database, an error or unexpected reply to a protocol script.
struct redis_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// --- URL ------------------------------------------------------------------------------

/// True when this build's hiredis can speak TLS (`rediss://`). Debian 12's
/// hiredis 0.14.1 has no SSL support (no hiredis_ssl library or header).
bool redis_tls_supported();

/// `redis://[[user]:password@]host[:port][/db]`. User and password may be
/// percent-encoded; an IPv6 host goes in brackets. `rediss://` (TLS) is
/// rejected with a clear message when redis_tls_supported() is false.
struct redis_url {
  std::string host;
  uint16_t port = 6379;
  /// ACL user (Redis 6+); empty: `AUTH <password>` as the default user.
  std::string username;
  /// Empty: no AUTH.
  std::string password;
  uint32_t db = 0;
  bool tls = false;

  /// Throws std::invalid_argument naming what is wrong; the password never
  /// appears in the message.
  static redis_url parse(const std::string& url);
  /// `redis://user:***@host:port/db`: safe for logs.
  std::string to_string() const;
  /// `host:port`.
  std::string endpoint() const;
};

/// `url` with any password replaced by "***" (also for URLs that do not parse).
std::string redact_redis_url(const std::string& url);

// --- connection -----------------------------------------------------------------------

/// One reply; arrays nest.
struct redis_reply {
  enum class kind : uint8_t { nil, status, error, integer, string, array };
  kind type = kind::nil;
  long long integer = 0;
  /// Text of a status, error or (binary-safe) string reply.
  std::string str;
  std::vector<redis_reply> elements;

  bool is_nil() const { return type == kind::nil; }
  bool is_error() const { return type == kind::error; }
  bool is_ok() const { return type == kind::status && str == "OK"; }
};

struct redis_connection_options {
  redis_url url;
  std::chrono::milliseconds connect_timeout{5000};
  /// Bounds every socket read and write of a command or pipeline.
  std::chrono::milliseconds command_timeout{2000};
  /// After a failure, connection attempts are refused (redis_unavailable at
  /// once, no blocking) for initial * 2^(failures-1), capped at max.
  std::chrono::milliseconds reconnect_initial_delay{100};
  std::chrono::milliseconds reconnect_max_delay{5000};
  /// redis_pool::acquire waits at most this long for a free connection.
  std::chrono::milliseconds acquire_timeout{5000};
};

namespace detail {
struct redis_gate;  // reconnect backoff state, shared by the connections of a pool
}

/// One hiredis context. Not thread-safe: one thread at a time (a pool lease).
/// Connects lazily (AUTH, SELECT, timeouts, TCP keep-alive) and reconnects
/// after errors; failed attempts back off (see redis_connection_options).
/// The first one constructed sets SIGPIPE to SIG_IGN when it is SIG_DFL
/// (hiredis writes with write(2); a reset connection must not kill the process).
class redis_connection {
 public:
  explicit redis_connection(redis_connection_options opts);
  ~redis_connection();
  redis_connection(const redis_connection&) = delete;
  redis_connection& operator=(const redis_connection&) = delete;

  /// Connects now if not connected. Throws redis_unavailable / redis_error.
  void connect();
  bool connected() const { return ctx_ != nullptr; }
  /// Drops the connection; the next call reconnects.
  void reset();

  /// Sends all commands in one write and reads all replies (one round trip).
  /// Arguments are binary-safe. Error replies are returned, not thrown, except
  /// the server-state errors LOADING, BUSY, MASTERDOWN, TRYAGAIN, CLUSTERDOWN,
  /// READONLY and OOM, which throw redis_unavailable. When the connection was
  /// found closed by the peer (an idle connection across a server restart) and
  /// `idempotent` is true, the pipeline is sent once more on a new connection;
  /// otherwise the failure throws redis_unavailable.
  std::vector<redis_reply> pipeline(const std::vector<std::vector<std::string>>& cmds,
                                    bool idempotent = false);
  /// One command (a pipeline of one).
  redis_reply command(const std::vector<std::string>& args, bool idempotent = false);

  const redis_connection_options& options() const { return opts_; }
  /// Successful connects so far (the first one included).
  uint64_t connects() const { return connects_; }

 private:
  friend class redis_pool;
  redis_connection(redis_connection_options opts, std::shared_ptr<detail::redis_gate> gate);
  /// True when a new connection was opened.
  bool ensure_connected();
  void open();

  redis_connection_options opts_;
  std::shared_ptr<detail::redis_gate> gate_;
  redisContext* ctx_ = nullptr;
  uint64_t connects_ = 0;
};

/// `size` connections shared by threads: acquire() lends one exclusively
/// (RAII lease), returning it when the lease ends. Connections connect lazily
/// and share one reconnect backoff: while Redis is down, every lease fails
/// fast instead of each connection waiting for its own timeout. The pool must
/// outlive its leases.
class redis_pool {
 public:
  redis_pool(redis_connection_options opts, size_t size);
  ~redis_pool();
  redis_pool(const redis_pool&) = delete;
  redis_pool& operator=(const redis_pool&) = delete;

  class lease {
   public:
    lease(lease&& other) noexcept;
    lease& operator=(lease&& other) noexcept;
    ~lease();
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    redis_connection& operator*() const { return *conn_; }
    redis_connection* operator->() const { return conn_; }

   private:
    friend class redis_pool;
    lease(redis_pool* pool, redis_connection* conn) : pool_(pool), conn_(conn) {}
    redis_pool* pool_ = nullptr;
    redis_connection* conn_ = nullptr;
  };

  /// Waits up to options().acquire_timeout for a free connection; throws
  /// redis_unavailable when none frees up. Thread-safe.
  lease acquire();
  /// A free connection, or nullopt at once.
  std::optional<lease> try_acquire();

  /// PING on one connection (connecting it): throws redis_unavailable / redis_error.
  void check();

  size_t size() const { return all_.size(); }
  /// Connections not lent out now.
  size_t idle() const;
  const redis_connection_options& options() const { return opts_; }

 private:
  void give_back(redis_connection* c) noexcept;

  redis_connection_options opts_;
  std::shared_ptr<detail::redis_gate> gate_;
  std::vector<std::unique_ptr<redis_connection>> all_;
  mutable std::mutex mtx_;
  std::condition_variable freed_;
  std::vector<redis_connection*> idle_;
};

// --- dedup ----------------------------------------------------------------------------

using steady_clock_fn = std::function<std::chrono::steady_clock::time_point()>;
/// std::chrono::steady_clock::now.
std::chrono::steady_clock::time_point steady_now();

enum class claim_status : uint8_t {
  claimed,  ///< this owner holds the claim: run the side effects, then confirm or release
  done,     ///< already completed within the dedup window: skip
  busy      ///< another owner holds a live claim: retry later
};
enum class confirm_status : uint8_t {
  confirmed,               ///< held the claim; now "done" for the window
  confirmed_after_expiry,  ///< the claim had expired, nobody took it; now "done"
  already_done,            ///< was "done" already (a retried confirm, or another owner)
  lost                     ///< another owner holds it now: a duplicate run happened
};
const char* to_string(claim_status s);
const char* to_string(confirm_status s);

/// `event:<event id>`.
std::string dedup_key(const std::string& event_id);

/// A token unique to this worker incarnation: `<name>:<pid>:<16 random hex digits>`.
std::string make_owner_token(const std::string& name);

/// The protocol's interface (see the top of this file). Batch calls return one
/// entry per id, in order. Ids must be non-empty; owner tokens non-empty and
/// not "done"; TTLs positive (std::invalid_argument otherwise). An id given
/// twice in one claim batch is claimed for both (same owner). Thread-safe.
class dedup_store {
 public:
  virtual ~dedup_store() = default;

  virtual std::vector<claim_status> claim(const std::vector<std::string>& event_ids,
                                          const std::string& owner,
                                          std::chrono::milliseconds claim_ttl) = 0;
  /// Pushes the expiry of claims still held by `owner`; false where not held.
  virtual std::vector<bool> extend(const std::vector<std::string>& event_ids,
                                   const std::string& owner,
                                   std::chrono::milliseconds claim_ttl) = 0;
  virtual std::vector<confirm_status> confirm_all(const std::vector<std::string>& event_ids,
                                                  const std::string& owner) = 0;
  /// Deletes claims still held by `owner`; false where not held.
  virtual std::vector<bool> release_all(const std::vector<std::string>& event_ids,
                                        const std::string& owner) = 0;

  confirm_status confirm(const std::string& event_id, const std::string& owner);
  bool release(const std::string& event_id, const std::string& owner);

  /// How long "done" is remembered.
  std::chrono::milliseconds window() const { return window_; }

 protected:
  explicit dedup_store(std::chrono::milliseconds window);
  static void check_args(const std::vector<std::string>& event_ids, const std::string& owner,
                         std::chrono::milliseconds ttl);

 private:
  std::chrono::milliseconds window_;
};

/// The protocol on Redis: one pipeline per batch call (claims needing a
/// second look cost one more round trip); confirm, release and extend run Lua
/// scripts through EVALSHA, one script run per chunk of 256 events (reloaded
/// after NOSCRIPT, e.g. after a restart). A script run touches many keys: this
/// needs a standalone Redis (or one whose keys all live on one node), not
/// Redis Cluster, which hiredis 0.14 does not speak anyway. All its commands
/// are safe to resend, so a connection found dead is retried once on a new one.
class redis_dedup final : public dedup_store {
 public:
  redis_dedup(redis_pool& pool, std::chrono::milliseconds window);

  std::vector<claim_status> claim(const std::vector<std::string>& event_ids,
                                  const std::string& owner,
                                  std::chrono::milliseconds claim_ttl) override;
  std::vector<bool> extend(const std::vector<std::string>& event_ids, const std::string& owner,
                           std::chrono::milliseconds claim_ttl) override;
  std::vector<confirm_status> confirm_all(const std::vector<std::string>& event_ids,
                                          const std::string& owner) override;
  std::vector<bool> release_all(const std::vector<std::string>& event_ids,
                                const std::string& owner) override;

 private:
  enum script_id : size_t { confirm_script, release_script, extend_script, script_count };
  /// Runs script `id` once per event id (KEYS[1] = event key, ARGV = owner, arg).
  std::vector<long long> run_script(script_id id, const std::vector<std::string>& event_ids,
                                    const std::string& owner, const std::string& arg);
  std::string script_sha(redis_connection& c, script_id id, bool reload);

  redis_pool& pool_;
  std::mutex sha_mtx_;
  std::string sha_[script_count];
};

/// The same protocol in process memory, for a single node without Redis
/// (PostgreSQL-only topology: it dedups within this process only). Expired
/// entries are swept as calls go by (amortized O(1) per call).
class memory_dedup final : public dedup_store {
 public:
  explicit memory_dedup(std::chrono::milliseconds window, steady_clock_fn clock = steady_now);

  std::vector<claim_status> claim(const std::vector<std::string>& event_ids,
                                  const std::string& owner,
                                  std::chrono::milliseconds claim_ttl) override;
  std::vector<bool> extend(const std::vector<std::string>& event_ids, const std::string& owner,
                           std::chrono::milliseconds claim_ttl) override;
  std::vector<confirm_status> confirm_all(const std::vector<std::string>& event_ids,
                                          const std::string& owner) override;
  std::vector<bool> release_all(const std::vector<std::string>& event_ids,
                                const std::string& owner) override;

  /// Live entries (claims and "done" marks).
  size_t size();

 private:
  struct entry {
    std::string value;  // owner token or "done"
    std::chrono::steady_clock::time_point expires;
  };
  /// The live entry of `key`, or null (an expired one is erased).
  entry* live(const std::string& key, std::chrono::steady_clock::time_point now);
  void maybe_sweep(std::chrono::steady_clock::time_point now);

  steady_clock_fn clock_;
  std::mutex mtx_;
  std::unordered_map<std::string, entry> entries_;
  size_t ops_since_sweep_ = 0;
};

// --- action-result cache ----------------------------------------------------------------

/// `action_result:<key>`.
std::string action_result_key(const std::string& key);

/// Values are opaque (binary-safe) strings that expire after a TTL. Thread-safe.
class result_cache {
 public:
  virtual ~result_cache() = default;
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
};

/// On Redis: GET / SET PX of `action_result:<key>` (GETs of a batch pipelined).
class redis_result_cache final : public result_cache {
 public:
  redis_result_cache(redis_pool& pool, std::chrono::milliseconds ttl);

 private:
  std::optional<std::string> do_get(const std::string& key) override;
  std::vector<std::optional<std::string>> do_get_many(
      const std::vector<std::string>& keys) override;
  void do_put(const std::string& key, const std::string& value,
              std::chrono::milliseconds ttl) override;

  redis_pool& pool_;
};

// --- outage policy ----------------------------------------------------------------------

/// What to do while Redis is unavailable.
enum class redis_failure_policy {
  /// Process events without dedup (and without cache); log and count. Default:
  /// delivery stays at-least-once, only dedup is lost meanwhile.
  fail_open,
  /// Pause processing and keep retrying until Redis answers again.
  fail_closed
};
/// "fail_open" / "fail_closed" (also with '-'); nullopt otherwise.
std::optional<redis_failure_policy> parse_redis_failure_policy(std::string_view s);
const char* to_string(redis_failure_policy p);

/// The decision after a call threw redis_unavailable.
struct redis_outage_decision {
  /// fail-open: go on without Redis for this batch (treat every event as claimed).
  bool proceed_without_redis = false;
  /// fail-closed: wait this long, then retry the same call. (fail-open: when
  /// to try Redis again; calls before then fail fast anyway.)
  std::chrono::milliseconds retry_after{0};
  /// Log now: the first failure of an outage, then at most every `log_every`.
  bool log = false;
};

/// Counts and rate-limits an outage and applies the policy. Pure (time is
/// passed in); not thread-safe: one per actor.
class redis_outage_tracker {
 public:
  explicit redis_outage_tracker(
      redis_failure_policy policy,
      std::chrono::milliseconds initial_delay = std::chrono::milliseconds(100),
      std::chrono::milliseconds max_delay = std::chrono::milliseconds(5000),
      std::chrono::milliseconds log_every = std::chrono::seconds(10));

  redis_outage_decision on_unavailable(std::chrono::steady_clock::time_point now);
  /// A call succeeded. True when this ends an outage (log "redis recovered").
  bool on_success();

  redis_failure_policy policy() const { return policy_; }
  bool in_outage() const { return consecutive_ > 0; }
  /// Failures in the current outage (0 when none).
  uint32_t consecutive_failures() const { return consecutive_; }
  /// All redis_unavailable seen.
  uint64_t unavailable_total() const { return unavailable_total_; }
  /// Batches fail-open let through without Redis.
  uint64_t bypassed_total() const { return bypassed_total_; }
  uint64_t outages_total() const { return outages_total_; }

 private:
  redis_failure_policy policy_;
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  std::chrono::milliseconds log_every_;
  uint32_t consecutive_ = 0;
  std::chrono::steady_clock::time_point last_log_{};
  uint64_t unavailable_total_ = 0;
  uint64_t bypassed_total_ = 0;
  uint64_t outages_total_ = 0;
};

}  // namespace fraiseql
