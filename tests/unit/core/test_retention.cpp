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
    // Transactions that were running when the fast one passed them: of
    // these, only what it has read may go; the bound stays where it was (a
    // long transaction elsewhere in the cluster holds nothing back).
    c = change_log_cutoff({{"fast", 900, 70, "420:17,610:3"}, {"slow", 500, 40, "420:9"}});
    REQUIRE(c);
    CHECK(c->txid == 500);
    CHECK(c->pk == 41);
    REQUIRE(c->pending.size() == 1);  // 610 is past the bound anyway
    CHECK(c->pending[0].txid == 420);
    CHECK(c->pending[0].pk == 9);  // the lowest of the two
    CHECK(c->allows(420, 9));
    CHECK_FALSE(c->allows(420, 10));
    CHECK(c->allows(419, 10000));
    CHECK(c->allows(500, 40));
    CHECK_FALSE(c->allows(500, 41));
  }

  TEST_CASE("a pending list that cannot be read is an error naming the checkpoint") {
    CHECK_THROWS_WITH_AS(change_log_cutoff({{"x", 10, 1, "garbage"}}),
                         doctest::Contains("checkpoint of listener 'x': pending_txids"),
                         std::invalid_argument);
  }

  TEST_CASE("property: the rule allows exactly the rows every checkpoint has read") {
    const bool ok = rc::check("allows iff read by every cursor", [] {
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
      const auto t = *rc::gen::inRange<uint64_t>(0, 201);
      const auto pk = *rc::gen::inRange<int64_t>(0, 2000);
      // The rule lets a row go exactly when every cursor has read it (the
      // definition in runtime/core/cursor.hpp): never more, and nothing less.
      bool read_by_all = true;
      for (const auto& c : cursors) {
        const int64_t p = pending_pk(c, t);
        read_by_all = read_by_all && (p >= 0 ? pk <= p : !(c.pos < position{t, pk}));
      }
      RC_ASSERT(cut->allows(t, pk) == read_by_all);
    });
    CHECK(ok);
  }
}
