#include "runtime/core/cursor.hpp"

#include <algorithm>
#include <stdexcept>

namespace fraiseql {

namespace {

uint64_t parse_txid(const std::string& s, const std::string& what) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 20)
    throw std::invalid_argument(what + ": '" + s + "' is not a transaction id");
  return std::stoull(s);
}

void add_pending(std::vector<pending_txid>& p, uint64_t txid) {
  auto it = std::lower_bound(p.begin(), p.end(), txid,
                             [](const pending_txid& e, uint64_t t) { return e.txid < t; });
  if (it == p.end() || it->txid != txid) p.insert(it, pending_txid{txid, 0});
}

}  // namespace

int64_t pending_pk(const read_cursor& c, uint64_t txid) {
  auto it = std::lower_bound(c.pending.begin(), c.pending.end(), txid,
                             [](const pending_txid& e, uint64_t t) { return e.txid < t; });
  return it != c.pending.end() && it->txid == txid ? it->pk : -1;
}

std::string pending_text(const std::vector<pending_txid>& pending) {
  std::string out;
  for (const auto& p : pending) {
    if (!out.empty()) out += ',';
    out += std::to_string(p.txid);
    out += ':';
    out += std::to_string(p.pk);
  }
  return out;
}

std::vector<pending_txid> parse_pending(const std::string& text) {
  std::vector<pending_txid> out;
  size_t start = 0;
  while (start < text.size()) {
    auto end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    auto item = text.substr(start, end - start);
    auto colon = item.find(':');
    if (colon == std::string::npos)
      throw std::invalid_argument("pending transactions: '" + item + "' is not txid:pk");
    pending_txid p;
    p.txid = parse_txid(item.substr(0, colon), "pending transactions");
    auto pk = item.substr(colon + 1);
    if (pk.empty() || pk.find_first_not_of("0123456789") != std::string::npos || pk.size() > 18)
      throw std::invalid_argument("pending transactions: '" + item + "' has a bad pk");
    p.pk = std::stoll(pk);
    if (!out.empty() && out.back().txid >= p.txid)
      throw std::invalid_argument("pending transactions: '" + text + "' is not sorted");
    out.push_back(p);
    start = end + 1;
  }
  return out;
}

bool snapshot_info::in_progress(uint64_t txid) const {
  return std::binary_search(xip.begin(), xip.end(), txid);
}

snapshot_info snapshot_info::parse(const std::string& text) {
  auto c1 = text.find(':');
  auto c2 = c1 == std::string::npos ? c1 : text.find(':', c1 + 1);
  if (c2 == std::string::npos)
    throw std::invalid_argument("snapshot '" + text + "' is not xmin:xmax:xip");
  snapshot_info s;
  s.xmin = parse_txid(text.substr(0, c1), "snapshot xmin");
  s.xmax = parse_txid(text.substr(c1 + 1, c2 - c1 - 1), "snapshot xmax");
  size_t start = c2 + 1;
  while (start < text.size()) {
    auto end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    s.xip.push_back(parse_txid(text.substr(start, end - start), "snapshot xip"));
    start = end + 1;
  }
  std::sort(s.xip.begin(), s.xip.end());
  return s;
}

std::vector<read_cursor> advance_cursor(read_cursor& c, const snapshot_info& s,
                                        const read_result& r, size_t take) {
  const size_t np = std::min(take, r.pending_rows.size());
  const size_t nm = std::min(take - np, r.main_rows.size());
  const bool pending_done = r.pending_exhausted && np == r.pending_rows.size();
  std::vector<read_cursor> out;
  out.reserve(np + nm);
  auto drop_finished = [&](uint64_t below) {
    // A pending transaction no longer running has all its rows visible; ordered
    // reads past it (or an exhausted pending part) have read them all.
    c.pending.erase(std::remove_if(c.pending.begin(), c.pending.end(),
                                   [&](const pending_txid& p) {
                                     return p.txid < below && !s.in_progress(p.txid);
                                   }),
                    c.pending.end());
  };
  for (size_t i = 0; i < np; ++i) {
    const auto& row = r.pending_rows[i];
    drop_finished(row.txid);
    auto it = std::find_if(c.pending.begin(), c.pending.end(),
                           [&](const pending_txid& p) { return p.txid == row.txid; });
    if (it == c.pending.end() || row.pk <= it->pk)
      throw std::logic_error("cursor: row (" + std::to_string(row.txid) + ", " +
                             std::to_string(row.pk) + ") is not an unread pending row");
    it->pk = row.pk;
    out.push_back(c);
  }
  if (pending_done) drop_finished(UINT64_MAX);
  // Transactions running below the new position must be remembered before the
  // position passes them.
  auto remember_running = [&](uint64_t from, uint64_t below) {
    auto lo = std::lower_bound(s.xip.begin(), s.xip.end(), from);
    for (auto it = lo; it != s.xip.end() && *it < below; ++it) add_pending(c.pending, *it);
  };
  for (size_t j = 0; j < nm; ++j) {
    const auto& row = r.main_rows[j];
    if (!(c.pos < row))
      throw std::logic_error("cursor: row (" + std::to_string(row.txid) + ", " +
                             std::to_string(row.pk) + ") is not after the cursor");
    remember_running(c.pos.txid, row.txid);
    c.pos = row;
    out.push_back(c);
  }
  // The position only ever moves to rows read, never ahead to the snapshot's
  // xmax: txids assigned but not yet logged are handed out again after a
  // server crash, so a cursor parked beyond them would skip their rows.
  if (!out.empty()) out.back() = c;
  return out;
}

}  // namespace fraiseql
