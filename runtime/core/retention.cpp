#include "runtime/core/retention.hpp"

#include "runtime/core/cursor.hpp"

#include <stdexcept>

namespace fraiseql {

std::optional<retention_cutoff> change_log_cutoff(const std::vector<checkpoint_bound>& rows) {
  std::optional<retention_cutoff> out;
  for (const auto& r : rows) {
    uint64_t bound = r.txid;
    try {
      for (const auto& p : parse_pending(r.pending_txids)) bound = std::min(bound, p.txid);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("checkpoint of listener '" + r.listener_id +
                                  "': pending_txids: " + e.what());
    }
    if (!out || bound < out->txid) out = retention_cutoff{bound, r.listener_id};
  }
  return out;
}

}  // namespace fraiseql
