// The read cursor against a model of PostgreSQL transactions: random begins,
// inserts, commits, aborts and reads (each read sees the committed rows of a
// snapshot, queried the way runtime/io/pg/session.cpp queries the change log).

#include "runtime/core/cursor.hpp"

#include <doctest/doctest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <map>
#include <set>

using namespace fraiseql;

namespace {

struct model {
  enum class state { running, committed, aborted };
  struct txn {
    state st = state::running;
    std::vector<int64_t> rows;
  };
  uint64_t next_xid = 100;
  int64_t next_pk = 1;
  std::map<uint64_t, txn> txns;

  std::vector<uint64_t> running() const {
    std::vector<uint64_t> out;
    for (const auto& [x, t] : txns)
      if (t.st == state::running) out.push_back(x);
    return out;
  }
  snapshot_info snapshot() const {
    snapshot_info s;
    s.xip = running();
    s.xmax = next_xid;
    s.xmin = s.xip.empty() ? next_xid : s.xip.front();
    return s;
  }
  /// All committed rows, ascending (txid, pk).
  std::vector<position> visible() const {
    std::vector<position> out;
    for (const auto& [x, t] : txns)
      if (t.st == state::committed)
        for (auto pk : t.rows) out.push_back({x, pk});
    return out;
  }
  /// The two limited queries of one read.
  read_result query(const read_cursor& c, size_t limit) const {
    read_result r;
    for (const auto& p : visible()) {
      auto ppk = pending_pk(c, p.txid);
      if (ppk >= 0 && p.pk > ppk && r.pending_rows.size() < limit) r.pending_rows.push_back(p);
      if (c.pos < p && r.main_rows.size() < limit) r.main_rows.push_back(p);
    }
    r.pending_exhausted = r.pending_rows.size() < limit;
    return r;
  }
};

/// The cursor's definition of "read".
bool marks_read(const read_cursor& c, const position& p) {
  auto ppk = pending_pk(c, p.txid);
  if (ppk >= 0) return p.pk <= ppk;
  return !(c.pos < p);
}

struct reader {
  read_cursor cursor;
  std::multiset<std::pair<uint64_t, int64_t>> delivered;
  std::vector<read_cursor> history;  // cursor after each delivered row

  size_t read(const model& m, size_t limit) {
    auto r = m.query(cursor, limit);
    size_t take = std::min(limit, r.pending_rows.size() + r.main_rows.size());
    std::vector<position> rows(r.pending_rows.begin(), r.pending_rows.end());
    rows.insert(rows.end(), r.main_rows.begin(), r.main_rows.end());
    rows.resize(take);
    const auto snap_at_read = m.snapshot();
    auto after = advance_cursor(cursor, snap_at_read, r, take);
    RC_ASSERT(after.size() == take);
    for (size_t i = 0; i < take; ++i) {
      delivered.insert({rows[i].txid, rows[i].pk});
      // Soundness: a cursor never marks as read a row not delivered yet.
      for (const auto& [x, t] : m.txns)
        for (auto pk : t.rows)
          if (marks_read(after[i], {x, pk}))
            RC_ASSERT(delivered.count({x, pk}) > 0 || t.st == model::state::aborted);
      history.push_back(after[i]);
    }
    // Bounded: once a read has drained the pending part, the pending list only
    // names transactions running in that read's snapshot.
    if (r.pending_exhausted && take >= r.pending_rows.size()) {
      for (const auto& p : cursor.pending) RC_ASSERT(snap_at_read.in_progress(p.txid));
    }
    return take;
  }
};

void run_ops(model& m, reader& rd, bool restarts) {
  const auto n = *rc::gen::inRange(1, 120);
  for (int i = 0; i < n; ++i) {
    auto op = *rc::gen::inRange(0, 10);
    auto run = m.running();
    if (op <= 1 || run.empty()) {
      m.txns[m.next_xid++] = {};
    } else if (op <= 4) {
      auto x = run[*rc::gen::inRange<size_t>(0, run.size())];
      m.txns[x].rows.push_back(m.next_pk++);
    } else if (op == 5) {
      m.txns[run[*rc::gen::inRange<size_t>(0, run.size())]].st = model::state::committed;
    } else if (op == 6) {
      m.txns[run[*rc::gen::inRange<size_t>(0, run.size())]].st =
          *rc::gen::inRange(0, 4) == 0 ? model::state::aborted : model::state::committed;
    } else if (op == 8 && *rc::gen::inRange(0, 3) == 0) {
      // Server crash: running transactions vanish and their txids, never
      // logged, are handed out again.
      for (auto it = m.txns.begin(); it != m.txns.end();)
        it = it->second.st == model::state::running ? m.txns.erase(it) : std::next(it);
      m.next_xid = m.txns.empty() ? 100 : m.txns.rbegin()->first + 1;
    } else if (op == 7 && restarts && !rd.history.empty()) {
      // Crash: resume from a checkpoint saved after some earlier row.
      rd.cursor = rd.history[*rc::gen::inRange<size_t>(0, rd.history.size())];
    } else {
      rd.read(m, *rc::gen::inRange<size_t>(1, 6));
    }
  }
  // Everything ends; read until nothing is left.
  for (auto& [x, t] : m.txns)
    if (t.st == model::state::running) t.st = model::state::committed;
  while (rd.read(m, 4) > 0) {
  }
}

}  // namespace

TEST_SUITE("read cursor") {
  TEST_CASE("snapshot and pending text round-trip; bad text is refused") {
    auto s = snapshot_info::parse("100:105:103,101");
    CHECK(s.xmin == 100);
    CHECK(s.xmax == 105);
    CHECK(s.xip == std::vector<uint64_t>{101, 103});
    CHECK(snapshot_info::parse("7:7:").xip.empty());
    CHECK_THROWS_AS(snapshot_info::parse("7:7"), std::invalid_argument);
    CHECK_THROWS_AS(snapshot_info::parse("a:7:"), std::invalid_argument);
    read_cursor c;
    c.pending = {{5, 0}, {9, 12}};
    CHECK(pending_text(c.pending) == "5:0,9:12");
    CHECK(parse_pending("5:0,9:12") == c.pending);
    CHECK(parse_pending("").empty());
    CHECK_THROWS_AS(parse_pending("9:1,5:0"), std::invalid_argument);
    CHECK_THROWS_AS(parse_pending("9"), std::invalid_argument);
    CHECK_THROWS_AS(parse_pending("9:x"), std::invalid_argument);
  }

  TEST_CASE("a long-running transaction does not hold back later commits") {
    model m;
    reader rd;
    m.txns[100] = {};  // the long one
    m.txns[100].rows.push_back(m.next_pk++);
    m.txns[101] = {model::state::committed, {m.next_pk++}};
    m.next_xid = 102;
    CHECK(rd.read(m, 10) == 1);  // 101 is delivered while 100 runs
    CHECK(pending_text(rd.cursor.pending) == "100:0");
    CHECK(rd.cursor.pos == position{101, 2});
    m.txns[100].st = model::state::committed;
    CHECK(rd.read(m, 10) == 1);  // then 100's row
    CHECK(rd.cursor.pending.empty());
    CHECK(rd.read(m, 10) == 0);
  }

  TEST_CASE("a pending transaction larger than a batch is read in pieces") {
    model m;
    reader rd;
    m.txns[100] = {};
    m.txns[101] = {model::state::committed, {m.next_pk++}};
    m.next_xid = 102;
    CHECK(rd.read(m, 3) == 1);
    CHECK(pending_text(rd.cursor.pending) == "100:0");
    for (int i = 0; i < 7; ++i) m.txns[100].rows.push_back(m.next_pk++);
    m.txns[100].st = model::state::committed;
    CHECK(rd.read(m, 3) == 3);
    CHECK(pending_text(rd.cursor.pending) == "100:4");  // pks 2..8
    CHECK(rd.read(m, 3) == 3);
    CHECK(rd.read(m, 3) == 1);
    CHECK(rd.cursor.pending.empty());
    CHECK(rd.delivered.size() == 8);
  }

  TEST_CASE("property: every committed row is delivered exactly once, in no stall") {
    CHECK(rc::check("exactly once without restarts", [] {
      model m;
      reader rd;
      run_ops(m, rd, false);
      for (const auto& p : m.visible()) RC_ASSERT(rd.delivered.count({p.txid, p.pk}) == 1);
      RC_ASSERT(rd.delivered.size() == m.visible().size());
      RC_ASSERT(rd.cursor.pending.empty());
    }));
  }

  TEST_CASE("property: resuming from any saved cursor loses nothing") {
    CHECK(rc::check("at least once across restarts", [] {
      model m;
      reader rd;
      run_ops(m, rd, true);
      for (const auto& p : m.visible()) RC_ASSERT(rd.delivered.count({p.txid, p.pk}) >= 1);
      for (const auto& [x, t] : m.txns)
        if (t.st == model::state::aborted)
          for (auto pk : t.rows) RC_ASSERT(rd.delivered.count({x, pk}) == 0);
    }));
  }
}
