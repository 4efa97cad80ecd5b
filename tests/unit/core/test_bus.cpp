// The NATS bus's pure rules: subjects and partitions (runtime/core/bus.hpp),
// partition assignment (runtime/core/partitions.hpp) and the bridge's
// publishing state (runtime/core/publish_tracker.hpp), the latter driven by
// RapidCheck against a modelled server and connection.

#include "runtime/core/bus.hpp"
#include "runtime/core/partitions.hpp"
#include "runtime/core/publish_tracker.hpp"
#include "runtime/core/watermark.hpp"

#include <doctest/doctest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <deque>
#include <map>
#include <set>

using namespace fraiseql;

TEST_SUITE("bus naming") {
  TEST_CASE("subjects carry source, partition, entity and operation") {
    CHECK(event_subject("fraiseql", "shop", 7, "Order", "INSERT") ==
          "fraiseql.shop.7.Order.insert");
    // Characters a token cannot hold become '_'.
    CHECK(event_subject("a.b", "db", 0, "my.entity *>", "UPDATE") ==
          "a.b.db.0.my_entity___.update");
    CHECK(subject_token("") == "_");
    CHECK(partition_filter("fraiseql", 3) == "fraiseql.*.3.>");
    CHECK(stream_subjects("fraiseql") == "fraiseql.>");
    CHECK(event_msg_id("shop", "0c0e") == "shop:0c0e");
    CHECK(partition_consumer("fraiseql_observer_worker_group", 1) ==
          "fraiseql_observer_worker_group_1");
  }

  TEST_CASE("partition of an entity is stable and in range") {
    CHECK(partition_of("Order", "42", 1) == 0);
    const auto p = partition_of("Order", "42", 16);
    CHECK(p < 16);
    CHECK(partition_of("Order", "42", 16) == p);
    // A known value: the hash must never change between versions (a rolling
    // upgrade with two hashes would split an entity over two partitions).
    CHECK(partition_of("Order", "1", 16) == partition_of("Order", "1", 16));
    std::map<uint32_t, int> spread;
    for (int i = 0; i < 16000; ++i) ++spread[partition_of("Order", std::to_string(i), 16)];
    CHECK(spread.size() == 16);
    for (auto& [p2, n] : spread) CHECK(n > 700);  // ~1000 each
  }

  TEST_CASE("source name from the database URL") {
    CHECK(source_name_of_dsn("postgresql://u:p@127.0.0.1:5432/shop?sslmode=disable") == "shop");
    CHECK(source_name_of_dsn("host=/tmp port=5 dbname=orders user=x") == "orders");
    CHECK(source_name_of_dsn("dbname = 'my db'") == "my_db");
    CHECK(source_name_of_dsn("postgresql://127.0.0.1:5432") == "");
  }
}

TEST_SUITE("partition assignment") {
  TEST_CASE("every partition has exactly one owner among the members") {
    const std::vector<std::string> members{"w1", "w2", "w3"};
    std::vector<uint32_t> all;
    for (const auto& m : members) {
      auto mine = partitions_of(members, m, 16);
      all.insert(all.end(), mine.begin(), mine.end());
    }
    std::sort(all.begin(), all.end());
    std::vector<uint32_t> expected(16);
    for (uint32_t i = 0; i < 16; ++i) expected[i] = i;
    CHECK(all == expected);
    CHECK(partitions_of(members, "w9", 16).empty());
  }

  TEST_CASE("property: balanced, deterministic, and a leaver's partitions all move") {
    bool ok = rc::check("balanced bounded rendezvous", [] {
      const auto n = *rc::gen::inRange(1, 9);
      const auto partitions = static_cast<uint32_t>(*rc::gen::inRange(1, 65));
      std::vector<std::string> members;
      for (int i = 0; i < n; ++i) members.push_back("worker-" + std::to_string(i * 7 + 3));
      const auto owner = assign_partitions(members, partitions);
      RC_ASSERT(owner == assign_partitions(members, partitions));
      std::vector<uint32_t> count(members.size(), 0);
      for (auto o : owner) ++count[o];
      const uint32_t lo = partitions / static_cast<uint32_t>(n);
      for (auto c : count) RC_ASSERT(c >= lo && c <= lo + 1);
      uint32_t total = 0;
      for (const auto& m : members) total += partitions_of(members, m, partitions).size();
      RC_ASSERT(total == partitions);
      if (n > 1) {
        const auto leaver = static_cast<size_t>(*rc::gen::inRange(0, n));
        auto after = members;
        after.erase(after.begin() + static_cast<long>(leaver));
        const auto owner2 = assign_partitions(after, partitions);
        for (uint32_t p = 0; p < partitions; ++p)
          if (owner[p] == leaver) RC_ASSERT(after[owner2[p]] != members[leaver]);
      }
    });
    CHECK(ok);
  }
}

namespace {

/// A modelled JetStream server behind one connection: what is sent is
/// processed in order (one TCP stream); acks come back in any order; a
/// dropped connection loses what was on the wire and the acks in transit.
struct model {
  std::deque<uint64_t> wire;
  struct ack {
    uint64_t seq;
    bool ok;  // false: the publish fails (error or timeout)
    bool duplicate;
    uint64_t stream_seq;
  };
  std::vector<ack> acks;
  std::vector<uint64_t> stream;  // stored order
  std::set<uint64_t> stored;
  std::map<uint64_t, uint64_t> position;  // 1-based stream position
  bool connected = true;
};

}  // namespace

TEST_SUITE("publish tracker") {
  TEST_CASE("a failure pauses publishing until the failed event goes again, first") {
    publish_tracker t{8};
    for (uint64_t s = 1; s <= 4; ++s) t.add(s, 0);
    CHECK(t.take(2) == std::vector<uint64_t>{1, 2});
    t.failed(1);
    CHECK(t.paused());
    CHECK(t.take(10).empty());  // 2 is still outstanding
    CHECK(t.stored(2, false, 10));
    CHECK_FALSE(t.paused());
    CHECK(t.take(10) == std::vector<uint64_t>{1, 3, 4});
    CHECK(t.stored(1, false, 11));
    CHECK(t.reordered() == 1);  // 1 was stored again after 2, not as a duplicate
    CHECK(t.republished() == 1);
    CHECK(t.drain_finished() == std::vector<uint64_t>{2, 1});
  }

  TEST_CASE("an abandoned event is forgotten without finishing") {
    publish_tracker t{4};
    t.add(1, 0);
    t.add(2, 0);
    CHECK(t.take(2) == std::vector<uint64_t>{1, 2});
    t.abandon(1);
    CHECK(t.in_flight() == 1);
    CHECK(t.stored(2, false, 1));
    CHECK(t.drain_finished() == std::vector<uint64_t>{2});
    CHECK_FALSE(t.stored(1, false, 2));  // unknown now
  }

  TEST_CASE("property: the checkpoint never passes an unstored event; nothing is lost") {
    bool ok = rc::check("random acks, losses, disconnects", [] {
      const auto n = static_cast<uint64_t>(*rc::gen::inRange(1, 120));
      const auto window = static_cast<size_t>(*rc::gen::inRange(1, 16));
      const auto partitions = static_cast<uint32_t>(*rc::gen::inRange(1, 4));
      const bool single_losses = *rc::gen::arbitrary<bool>();
      publish_tracker t{window};
      watermark_tracker w{position{}, 1};
      model m;
      std::map<uint64_t, uint32_t> part;
      for (uint64_t s = 1; s <= n; ++s) {
        part[s] = static_cast<uint32_t>(*rc::gen::inRange<uint32_t>(0, partitions));
        t.add(s, part[s]);
        w.admit(s, position{s, static_cast<int64_t>(s)});
      }
      auto finish_all = [&] {
        for (auto s : t.drain_finished()) {
          RC_ASSERT(m.stored.count(s) == 1);  // finished only once stored
          w.finish(s);
        }
        // The watermark's prefix is stored, every event of it.
        for (uint64_t s = 1; s <= w.finished_total(); ++s) RC_ASSERT(m.stored.count(s) == 1);
      };
      auto process = [&] {
        const auto s = m.wire.front();
        m.wire.pop_front();
        const bool dup = m.stored.count(s) > 0;
        if (!dup) {
          m.stored.insert(s);
          m.stream.push_back(s);
        }
        if (!dup) m.position[s] = m.stream.size();
        // A duplicate's ack names where the first copy was stored.
        m.acks.push_back({s, true, dup, m.position[s]});
      };
      auto deliver = [&](size_t i) {
        auto a = m.acks[i];
        m.acks.erase(m.acks.begin() + static_cast<long>(i));
        if (a.ok)
          t.stored(a.seq, a.duplicate, a.stream_seq);
        else
          t.failed(a.seq);
      };
      const int steps = *rc::gen::inRange(0, 400);
      for (int i = 0; i < steps; ++i) {
        switch (*rc::gen::inRange(0, 7)) {
          case 0:
          case 1:
            if (m.connected)
              for (auto s : t.take(*rc::gen::inRange<size_t>(1, 8))) m.wire.push_back(s);
            RC_ASSERT(t.in_flight() <= window);
            break;
          case 2:
            if (m.connected && !m.wire.empty()) process();
            break;
          case 3:
            if (!m.acks.empty()) deliver(*rc::gen::inRange<size_t>(0, m.acks.size()));
            break;
          case 4:  // the connection dies: the wire and the acks in transit are lost
            if (m.connected && *rc::gen::inRange(0, 4) == 0) {
              m.connected = false;
              t.disconnected();
              for (auto s : m.wire) m.acks.push_back({s, false, false, 0});
              m.wire.clear();
              for (auto& a : m.acks) a.ok = false;
            }
            break;
          case 5:
            if (!m.connected) {
              m.connected = true;
              t.connected();
            }
            break;
          case 6:  // one message lost alone (a timeout on a live connection)
            if (single_losses && m.connected && !m.wire.empty() && *rc::gen::inRange(0, 4) == 0) {
              const auto at = *rc::gen::inRange<size_t>(0, m.wire.size());
              m.acks.push_back({m.wire[at], false, false, 0});
              m.wire.erase(m.wire.begin() + static_cast<long>(at));
            }
            break;
        }
        finish_all();
      }
      // The outage ends, nothing fails any more: everything gets through.
      if (!m.connected) {
        m.connected = true;
        t.connected();
      }
      for (int guard = 0; w.finished_total() < n; ++guard) {
        RC_ASSERT(guard < 100000);
        for (auto s : t.take(64)) m.wire.push_back(s);
        while (!m.wire.empty()) process();
        while (!m.acks.empty()) deliver(0);
        finish_all();
      }
      RC_ASSERT(w.finished_total() == n);
      RC_ASSERT(m.stored.size() == n);
      // Events stored behind a later event of their partition: counted
      // exactly; and none without single losses (only whole-connection
      // failures): each partition's stream order is then the admission order.
      std::map<uint32_t, uint64_t> last;
      uint64_t inversions = 0;
      for (auto s : m.stream) {
        if (s < last[part[s]]) ++inversions;
        last[part[s]] = std::max(last[part[s]], s);
      }
      RC_ASSERT(t.reordered() == inversions);
      if (!single_losses) RC_ASSERT(inversions == 0u);
    });
    CHECK(ok);
  }
}
