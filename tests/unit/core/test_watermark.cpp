#include "runtime/core/watermark.hpp"

#include <doctest/doctest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <set>

using fraiseql::position;
using fraiseql::watermark_tracker;

TEST_SUITE("watermark") {
  TEST_CASE("advances only over a contiguous finished prefix") {
    watermark_tracker w{position{5, 50}, 1};
    w.admit(1, {6, 60});
    w.admit(2, {6, 61});
    w.admit(3, {9, 10});  // a later txid may carry a smaller pk: fence order is (txid, pk)
    CHECK(w.in_flight() == 3);
    CHECK_FALSE(w.finish(2));
    CHECK(w.watermark() == position{5, 50});
    CHECK(w.finish(1));
    CHECK(w.watermark() == position{6, 61});
    CHECK(w.finished_total() == 2);
    CHECK(w.finish(3));
    CHECK(w.watermark() == position{9, 10});
    CHECK(w.pending() == 0);
    CHECK(w.next_seq() == 4);
  }

  TEST_CASE("rejects protocol violations loudly") {
    watermark_tracker w;
    w.admit(1, {1, 1});
    CHECK_THROWS_AS(w.admit(3, {1, 2}), std::logic_error);  // gap in sequence
    CHECK_THROWS_AS(w.finish(7), std::logic_error);         // never admitted
    w.finish(1);
    CHECK_THROWS_AS(w.finish(1), std::logic_error);  // finished twice
  }

  TEST_CASE("the saved cursor is the one of the last event of the finished prefix") {
    watermark_tracker w{position{10, 5}, 1, {{8, 0}}};
    CHECK(w.cursor() == fraiseql::read_cursor{{10, 5}, {{8, 0}}});
    auto c1 = std::make_shared<const fraiseql::read_cursor>(
        fraiseql::read_cursor{{11, 7}, {{8, 0}, {10, 0}}});
    auto c2 = std::make_shared<const fraiseql::read_cursor>(fraiseql::read_cursor{{12, 0}, {}});
    w.admit(1, {11, 7}, c1);
    w.admit(2, {8, 9}, c2);  // a pending transaction's row: lower txid, later
    w.finish(2);
    CHECK(w.cursor() == fraiseql::read_cursor{{10, 5}, {{8, 0}}});
    w.finish(1);
    CHECK(w.cursor() == *c2);
    CHECK(w.watermark() == position{8, 9});
  }

  TEST_CASE("property: the watermark never passes an unfinished event") {
    bool ok = rc::check("any completion order, any crash point", [] {
      const auto n = *rc::gen::inRange<size_t>(1, 200);
      // Positions: increasing (txid, pk) with repeated txids.
      std::vector<position> pos;
      uint64_t txid = 100;
      int64_t pk = 0;
      for (size_t i = 0; i < n; ++i) {
        if (*rc::gen::inRange(0, 3) == 0) ++txid;
        pos.push_back({txid, ++pk});
      }
      auto order = *rc::gen::unique<std::vector<size_t>>(n, rc::gen::inRange<size_t>(0, n));
      const auto crash_after = *rc::gen::inRange<size_t>(0, n + 1);
      watermark_tracker w{position{99, 0}, 1};
      for (size_t i = 0; i < n; ++i) w.admit(i + 1, pos[i]);
      std::set<size_t> finished;
      for (size_t k = 0; k < crash_after; ++k) {
        w.finish(order[k] + 1);
        finished.insert(order[k]);
        // Invariant at every step (any step may be the last save before a crash).
        for (size_t i = 0; i < n; ++i)
          if (!(w.watermark() < pos[i])) RC_ASSERT(finished.count(i) == 1);
      }
      // And it is as far as it can be: the next event after it is unfinished.
      size_t prefix = 0;
      while (prefix < n && finished.count(prefix)) ++prefix;
      if (prefix == 0)
        RC_ASSERT(w.watermark() == (position{99, 0}));
      else
        RC_ASSERT(w.watermark() == pos[prefix - 1]);
      RC_ASSERT(w.in_flight() == n - finished.size());
    });
    CHECK(ok);
  }
}
