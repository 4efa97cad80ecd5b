#include "runtime/core/retention.hpp"

#include "runtime/core/cursor.hpp"

#include <stdexcept>

namespace fraiseql {

std::optional<retention_cutoff> change_log_cutoff(const std::vector<checkpoint_bound>& rows) {
  std::optional<retention_cutoff> out;
  for (const auto& r : rows) {
    // Exclusive: every row at or before the checkpoint's position...
    position bound{r.txid, r.pk + 1};
    try {
      // ...but none of a transaction that was running when it passed.
      for (const auto& p : parse_pending(r.pending_txids))
        if (position{p.txid, 0} < bound) bound = position{p.txid, 0};
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("checkpoint of listener '" + r.listener_id +
                                  "': pending_txids: " + e.what());
    }
    if (!out || bound < position{out->txid, out->pk})
      out = retention_cutoff{bound.txid, bound.pk, r.listener_id};
  }
  return out;
}

}  // namespace fraiseql
