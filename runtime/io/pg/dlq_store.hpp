#pragma once

// observer_dlq: exhausted actions, durable before their event finishes.

#include "messages/event.hpp"
#include "runtime/io/pg/session.hpp"

#include <cstdint>

namespace fraiseql {

/// observer_dlq writer.
class dlq_store {
 public:
  explicit dlq_store(std::string dsn);
  ~dlq_store();
  /// Inserts (or, for a redelivered failure, updates) the row of this
  /// idempotency key. Durable when it returns. Returns the row id.
  int64_t insert(const dlq_entry& e);
  void reset();

 private:
  pg_session session_;
};

}  // namespace fraiseql
