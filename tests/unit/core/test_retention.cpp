// Change-log retention's cutoff (runtime/core/retention.hpp): the lowest txid
// any checkpoint may still need, and a property against the cursor's own
// definition of "read" (runtime/core/cursor.hpp).
#include "runtime/core/cursor.hpp"
#include "runtime/core/retention.hpp"

#include <doctest/doctest.h>
#include <rapidcheck.h>

#include <algorithm>

using namespace fraiseql;

TEST_SUITE("retention") {
  TEST_CASE("no checkpoint: nothing may go") {
    CHECK_FALSE(change_log_cutoff({}).has_value());
  }

  TEST_CASE("the lowest bound over every checkpoint, pending transactions included") {
    auto c = change_log_cutoff({{"fast", 900, 70, ""}, {"slow", 500, 40, ""}});
    REQUIRE(c);
    CHECK(c->txid == 500);
    CHECK(c->pk == 41);  // exclusive: the checkpoint's own row is read
    CHECK(c->held_by == "slow");
    // A transaction that was running when the fast one passed it holds it back.
    c = change_log_cutoff({{"fast", 900, 70, "420:17,610:3"}, {"slow", 500, 40, ""}});
    REQUIRE(c);
    CHECK(c->txid == 420);
    CHECK(c->pk == 0);
    CHECK(c->held_by == "fast");
  }

  TEST_CASE("a pending list that cannot be read is an error naming the checkpoint") {
    CHECK_THROWS_WITH_AS(change_log_cutoff({{"x", 10, 1, "garbage"}}),
                         doctest::Contains("checkpoint of listener 'x': pending_txids"),
                         std::invalid_argument);
  }

  TEST_CASE("property: every row below the cutoff has been read by every checkpoint") {
    const bool ok = rc::check("cutoff below what every cursor read", [] {
      const auto readers = *rc::gen::inRange(1, 4);
      std::vector<read_cursor> cursors;
      std::vector<checkpoint_bound> bounds;
      for (int i = 0; i < readers; ++i) {
        read_cursor c;
        c.pos.txid = *rc::gen::inRange<uint64_t>(1, 200);
        c.pos.pk = *rc::gen::inRange<int64_t>(0, 1000);
        // Pending: distinct txids below pos.txid, sorted, with read progress.
        auto txids = *rc::gen::container<std::vector<uint64_t>>(
            *rc::gen::inRange(0, 4), rc::gen::inRange<uint64_t>(1, c.pos.txid + 1));
        std::sort(txids.begin(), txids.end());
        txids.erase(std::unique(txids.begin(), txids.end()), txids.end());
        for (auto t : txids)
          if (t < c.pos.txid) c.pending.push_back({t, *rc::gen::inRange<int64_t>(0, 1000)});
        bounds.push_back({"l" + std::to_string(i), c.pos.txid, c.pos.pk, pending_text(c.pending)});
        cursors.push_back(c);
      }
      const auto cut = change_log_cutoff(bounds);
      RC_ASSERT(cut.has_value());
      // Any row (t, pk) with t below the cutoff...
      const auto t = *rc::gen::inRange<uint64_t>(0, 201);
      const auto pk = *rc::gen::inRange<int64_t>(0, 2000);
      if (!(position{t, pk} < position{cut->txid, cut->pk})) return;
      for (const auto& c : cursors) {
        // ...is read by c (the definition in runtime/core/cursor.hpp).
        const int64_t p = pending_pk(c, t);
        const bool read = p >= 0 ? pk <= p : !(c.pos < position{t, pk});
        RC_ASSERT(read);
        RC_ASSERT(p < 0);  // and its transaction was not pending anywhere
      }
    });
    CHECK(ok);
  }
}
