#pragma once

// The listener's read cursor over the change log, and how one read advances it.
//
// Rows carry their writer's top-level txid. A plain fence (read only txids below
// the snapshot's xmin) is simple but lets one long-running transaction hold back
// every later event. This cursor instead reads every row visible (committed) in
// the read's snapshot and remembers the transactions that were still in
// progress (the snapshot's xip list), so their rows are read when they commit:
//
//   a row (t, pk) has been read  iff  (t, pk) <= (hi, hpk)  and t is not pending,
//                                     or t is pending and pk <= pending[t].
//
// `pending` only holds txids that were running at some read, so its size is
// bounded by the number of concurrent transactions, not by the event rate; an
// entry leaves once its transaction has ended and its rows are read. Restarting
// from any earlier cursor is safe: it marks a subset of the rows as read.
//
// Pure: the SQL lives in runtime/io/pg/session.cpp, this file is the bookkeeping, tested
// against a model of transactions in tests/unit/test_cursor.cpp.

#include "messages/event.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace fraiseql {

/// Rows a cursor has read of pending transaction `txid` (0: none), or -1 when
/// `txid` is not pending.
int64_t pending_pk(const read_cursor& c, uint64_t txid);
/// "txid:pk,txid:pk" (empty when nothing is pending): checkpoint storage and logs.
std::string pending_text(const std::vector<pending_txid>& pending);
/// Inverse of pending_text(); throws std::invalid_argument naming the bad part.
std::vector<pending_txid> parse_pending(const std::string& text);

/// The snapshot a read ran under (pg_current_snapshot() of the same statement).
struct snapshot_info {
  uint64_t xmin = 0;
  uint64_t xmax = 0;
  /// In-progress txids, sorted.
  std::vector<uint64_t> xip;
  bool in_progress(uint64_t txid) const;
  /// Parses PostgreSQL's text form "xmin:xmax:xip1,xip2"; throws std::invalid_argument.
  static snapshot_info parse(const std::string& text);
};

/// What one read returned, in order: first the rows of pending transactions
/// (ascending (txid, pk)), then the rows after `pos` (ascending). Each part was
/// limited separately; `pending_exhausted` says the pending part returned fewer
/// rows than its limit (nothing more visible), before the caller kept only a
/// prefix of rows.
struct read_result {
  std::vector<position> pending_rows;
  std::vector<position> main_rows;
  bool pending_exhausted = true;
};

/// Advances `c` over the first `take` rows of `r` (pending rows first, then
/// main rows), read under snapshot `s`. Returns the cursor after each taken row
/// (the one after the last row also accounts for what an exhausted pending
/// part proves), and leaves `c` at the final cursor (which may change even when
/// no row was taken: pending transactions that ended are dropped).
std::vector<read_cursor> advance_cursor(read_cursor& c, const snapshot_info& s,
                                        const read_result& r, size_t take);

}  // namespace fraiseql
