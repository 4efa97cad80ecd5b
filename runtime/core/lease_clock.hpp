#pragma once

// How long this node may still act as leader, on its own monotonic clock.
//
// The lease row's expiry is PostgreSQL's time; a leader cannot read that
// clock before every action. It keeps a local deadline instead: the moment it
// sent its last successful renewal plus the TTL, less a margin. The database
// set the expiry after that moment, so the local deadline always comes first
// (clock rates agree within the margin): once it has passed, a standby may
// take over at any time, and the leader must start nothing more. A process
// frozen (SIGSTOP, a VM pause) finds its deadline passed when it wakes,
// because the monotonic clock kept running.
//
// Thread-safe: the lease's owner renews, the listener and the action pool
// read.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace fraiseql {

class lease_clock {
 public:
  using clock = std::chrono::steady_clock;

  /// A renewal sent at `sent` succeeded: valid until sent + ttl - margin,
  /// where margin = max(ttl / 10, 100 ms) (at most ttl / 2).
  void renewed(clock::time_point sent, std::chrono::milliseconds ttl) {
    const auto margin = std::min<std::chrono::milliseconds>(
        std::max<std::chrono::milliseconds>(ttl / 10, std::chrono::milliseconds(100)), ttl / 2);
    deadline_ns_.store((sent + ttl - margin).time_since_epoch().count(), std::memory_order_release);
  }
  /// The lease is gone (lost, released): never valid again.
  void revoke() { deadline_ns_.store(revoked, std::memory_order_release); }

  /// True while this node may act as leader at `now`.
  bool valid(clock::time_point now) const {
    return now.time_since_epoch().count() < deadline_ns_.load(std::memory_order_acquire);
  }
  bool valid() const { return valid(clock::now()); }
  clock::time_point deadline() const {
    return clock::time_point(clock::duration(deadline_ns_.load(std::memory_order_acquire)));
  }

 private:
  static constexpr int64_t revoked = INT64_MIN;
  std::atomic<int64_t> deadline_ns_{revoked};
};

}  // namespace fraiseql
