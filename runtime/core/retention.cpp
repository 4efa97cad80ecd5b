#include "runtime/core/retention.hpp"

#include "runtime/core/cursor.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace fraiseql {

bool retention_cutoff::allows(uint64_t t, int64_t p) const {
  if (!(position{t, p} < position{txid, pk})) return false;
  for (const auto& q : pending)
    if (q.txid == t && p > q.pk) return false;
  return true;
}

std::optional<retention_cutoff> change_log_cutoff(const std::vector<checkpoint_bound>& rows) {
  std::optional<retention_cutoff> out;
  std::map<uint64_t, int64_t> pending;  // txid -> lowest pending pk
  for (const auto& r : rows) {
    // Exclusive: every row at or before the checkpoint's position.
    const position bound{r.txid, r.pk + 1};
    try {
      for (const auto& p : parse_pending(r.pending_txids)) {
        auto [it, fresh] = pending.emplace(p.txid, p.pk);
        if (!fresh) it->second = std::min(it->second, p.pk);
      }
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("checkpoint of listener '" + r.listener_id +
                                  "': pending_txids: " + e.what());
    }
    if (!out || bound < position{out->txid, out->pk}) {
      if (!out) out.emplace();
      out->txid = bound.txid;
      out->pk = bound.pk;
      out->held_by = r.listener_id;
    }
  }
  if (out)
    for (const auto& [t, p] : pending)
      if (position{t, 0} < position{out->txid, out->pk}) out->pending.push_back({t, p});
  return out;
}

}  // namespace fraiseql
