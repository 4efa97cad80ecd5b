#pragma once

// Event deduplication: the claim / confirm / release protocol's interface, its
// in-memory implementation (one process, injected clock), and the names it
// uses. The Redis implementation is runtime/io/redis/dedup.hpp.
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
//                           earlier claim, e.g. a retried pipeline), a claim
//                           of an earlier generation of our own lineage ->
//                           taken over (Lua, atomically: SET <owner> PX
//                           <ttl>) -> claimed; anything else or gone -> busy
//                           (retry later).
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
//   3. A node dies before the side effect and its successor belongs to the
//      same lineage (same listener id, a newer lease epoch: the lease says
//      the dead node is gone or fenced): the successor takes the claims over
//      at once. Any other worker waits: the claim expires after claim_ttl;
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
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace fraiseql {

/// The value of an event's key once its side effects are done.
inline constexpr const char* dedup_done_value = "done";

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

/// A token that also names its lineage: `e<generation>|<name>:<pid>:<hex>|<family>`.
/// Its claims may take over those of earlier generations of the same family
/// (see supersedes). The engine uses the listener id as family and the lease
/// epoch as generation: a leader of epoch N knows that every holder of an
/// epoch below N is dead or fenced. `family` must not be empty.
std::string make_owner_token(const std::string& name, const std::string& family,
                             uint64_t generation);

/// The lineage a token names, if any.
struct owner_lineage {
  std::string family;
  uint64_t generation = 0;
};
std::optional<owner_lineage> parse_owner_lineage(const std::string& token);

/// True when a claim held by `theirs` may be taken over by `mine`: both name a
/// lineage, the same family, and theirs is of an earlier generation.
bool supersedes(const std::string& mine, const std::string& theirs);

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

}  // namespace fraiseql
