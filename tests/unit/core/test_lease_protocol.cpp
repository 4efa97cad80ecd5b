// A model of the leader lease protocol (runtime/io/pg/lease.cpp,
// sql/0006_lease_deadline.sql) driven by RapidCheck: three nodes, a database
// whose clock is the reference, nodes whose monotonic clocks drift (within 5%)
// and whose requests take time; random renewals (late or missed), freezes,
// kills and restarts. The row and the advisory lock follow the SQL's rules;
// each node's own view of its lease is the real lease_clock.
//
// Properties: at no moment do two nodes both believe they lead (a node
// believes it leads while its lease_clock is valid on its own clock, frozen or
// not: it checks before acting when it wakes); a checkpoint write is accepted
// only from the current epoch; and a standby that tries after the leader
// stopped renewing for longer than the TTL gets the lease.
#include "runtime/core/lease_clock.hpp"

#include <doctest/doctest.h>
#include <rapidcheck.h>

#include <array>
#include <chrono>
#include <optional>

using namespace fraiseql;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

namespace {

constexpr milliseconds ttl{5000};

struct row_t {
  bool exists = false;
  int64_t epoch = 0;
  int64_t expires_ns = 0;  // database time
  bool lock_held = false;
};

struct node_t {
  bool alive = true;  // the process runs (not killed)
  bool frozen = false;
  bool session = true;  // its database session lives (a frozen one's does)
  std::optional<int64_t> epoch;
  lease_clock lease;
  double rate = 1.0;  // local clock speed against the database's
  int64_t offset_ns = 0;
  /// A fresh process: a standby with no lease.
  void restart(double r, int64_t off) {
    alive = true;
    frozen = false;
    session = true;
    epoch.reset();
    lease.revoke();
    rate = r;
    offset_ns = off;
  }
  lease_clock::clock::time_point local(int64_t real_ns) const {
    return lease_clock::clock::time_point(
        nanoseconds(offset_ns + static_cast<int64_t>(static_cast<double>(real_ns) * rate)));
  }
};

struct world {
  int64_t now_ns = 0;  // real time = database time
  row_t row;
  std::optional<size_t> lock;  // whose session holds the advisory lock
  std::array<node_t, 3> nodes;

  bool lock_free() const { return !lock || !nodes[*lock].session; }

  /// pg_try_advisory_lock on node i's session: true when it holds the lock.
  bool try_lock(size_t i) {
    if (lock != i && lock_free()) lock = i;
    return lock == i;
  }

  /// One statement sent at `now_ns`, executed `latency` later (the database
  /// clock then), answered as long after.
  void acquire(size_t i, int64_t latency_ns) {
    auto& n = nodes[i];
    const auto sent = n.local(now_ns);
    now_ns += latency_ns;
    const bool locked = try_lock(i);
    const bool take = !row.exists || row.expires_ns < now_ns || (locked && row.lock_held);
    if (take) {
      row.exists = true;
      row.epoch += 1;
      row.expires_ns = now_ns + nanoseconds(ttl).count();
      row.lock_held = locked;
      n.epoch = row.epoch;
    } else if (locked) {
      lock.reset();  // unlocked again: somebody leads
    }
    now_ns += latency_ns;
    if (take) n.lease.renewed(sent, ttl);
  }

  /// False when refused (another epoch leads).
  bool renew(size_t i, int64_t latency_ns) {
    auto& n = nodes[i];
    const auto sent = n.local(now_ns);
    now_ns += latency_ns;
    const bool locked = try_lock(i);
    const bool held = row.exists && row.epoch == *n.epoch;
    if (held) {
      row.expires_ns = now_ns + nanoseconds(ttl).count();
      row.lock_held = locked;
    }
    now_ns += latency_ns;
    if (held)
      n.lease.renewed(sent, ttl);
    else
      n.lease.revoke();
    return held;
  }

  /// Nodes that believe they lead now, frozen ones included.
  int believers() const {
    int count = 0;
    for (const auto& n : nodes)
      if (n.alive && n.epoch && n.lease.valid(n.local(now_ns))) ++count;
    return count;
  }
};

}  // namespace

TEST_SUITE("lease protocol") {
  TEST_CASE(
      "property: never two leaders, writes only from the current epoch, takeover after the TTL") {
    bool ok = rc::check("three nodes, drift, latency, freezes, kills, missed renewals", [] {
      world w;
      for (auto& n : w.nodes) {
        n.rate = *rc::gen::inRange(950, 1051) / 1000.0;
        n.offset_ns = *rc::gen::inRange<int64_t>(0, 1'000'000'000);
      }
      const int steps = *rc::gen::inRange(1, 200);
      for (int s = 0; s < steps; ++s) {
        const auto i = static_cast<size_t>(*rc::gen::inRange(0, 3));
        auto& n = w.nodes[i];
        const int64_t latency = *rc::gen::inRange<int64_t>(0, 200) * 1'000'000;
        switch (*rc::gen::inRange(0, 7)) {
          case 0:  // time passes
            w.now_ns += *rc::gen::inRange<int64_t>(0, 3000) * 1'000'000;
            break;
          case 1:  // a standby tries (a running node that does not lead)
            if (n.alive && !n.frozen && !n.epoch) w.acquire(i, latency);
            break;
          case 2:  // the leader renews, also after its deadline passed (it starts
                   // nothing meanwhile); a refused renewal stops it
            if (n.alive && !n.frozen && n.epoch && !w.renew(i, latency)) {
              n.epoch.reset();
              n.alive = false;
              n.session = false;
            }
            break;
          case 3:  // freeze or thaw
            if (n.alive) n.frozen = !n.frozen;
            break;
          case 4:  // kill -9: the session ends with the process
            n.alive = false;
            n.frozen = false;
            n.session = false;
            n.epoch.reset();
            break;
          case 5:  // a killed node restarts as a fresh standby
            if (!n.alive)
              n.restart(*rc::gen::inRange(950, 1051) / 1000.0,
                        *rc::gen::inRange<int64_t>(0, 1'000'000'000));
            break;
          case 6: {  // a checkpoint write, conditional on the epoch
            if (n.alive && !n.frozen && n.epoch && n.lease.valid(n.local(w.now_ns))) {
              const bool accepted = w.row.epoch == *n.epoch;
              // Believing it leads implies its epoch is current.
              RC_ASSERT(accepted);
            }
            break;
          }
        }
        RC_ASSERT(w.believers() <= 1);
      }
      // Liveness: once nobody renewed for longer than the TTL, a running
      // standby that tries gets the lease.
      for (auto& n : w.nodes) n.frozen = n.frozen && n.alive;
      w.now_ns = std::max(w.now_ns, w.row.expires_ns) + 1;
      for (size_t i = 0; i < w.nodes.size(); ++i) {
        auto& n = w.nodes[i];
        if (n.alive && n.epoch) {  // whoever believed it led stops renewing: frozen
          n.frozen = true;
        }
      }
      std::optional<size_t> standby;
      for (size_t i = 0; i < w.nodes.size(); ++i)
        if (w.nodes[i].alive && !w.nodes[i].frozen && !w.nodes[i].epoch) standby = i;
      if (!standby) {
        // Restart a dead node as the standby.
        for (size_t i = 0; i < w.nodes.size() && !standby; ++i)
          if (!w.nodes[i].alive) {
            w.nodes[i].restart(1.0, 0);
            standby = i;
          }
      }
      if (standby) {
        const auto before = w.row.epoch;
        w.acquire(*standby, 0);
        RC_ASSERT(w.nodes[*standby].epoch.has_value());
        RC_ASSERT(w.row.epoch == before + 1);
        RC_ASSERT(w.believers() <= 1);
      }
    });
    CHECK(ok);
  }
}
