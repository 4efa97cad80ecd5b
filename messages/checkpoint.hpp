#pragma once

// The checkpoint as it travels between checkpointer, store and node.

#include "messages/event.hpp"

#include <cstdint>
#include <vector>

namespace fraiseql {

struct checkpoint_record {
  position pos;
  uint64_t events_total = 0;
  /// Transactions running at the last read, with what was read of them.
  std::vector<pending_txid> pending;
  read_cursor cursor() const { return read_cursor{pos, pending}; }
};

}  // namespace fraiseql
