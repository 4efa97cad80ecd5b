#pragma once

// observer_dlq: exhausted actions, durable before their event finishes.

#include "messages/event.hpp"
#include "runtime/io/pg/session.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace fraiseql {

/// observer_dlq writer. With a fence (the leader's listener id and lease
/// epoch), a write only happens while that epoch is current, like a
/// checkpoint write: a former leader never adds a DLQ row for an event its
/// successor delivers.
class dlq_store {
 public:
  struct fence {
    std::string listener_id;
    int64_t epoch = 0;
  };
  explicit dlq_store(std::string dsn, std::optional<fence> f = std::nullopt);
  ~dlq_store();
  /// Inserts (or, for a redelivered failure, updates) the row of this
  /// idempotency key. Durable when it returns. Returns the row id. Throws
  /// fenced_out when the fence's epoch is no longer current.
  int64_t insert(const dlq_entry& e);
  void reset();

 private:
  std::optional<fence> fence_;
  pg_session session_;
};

}  // namespace fraiseql
