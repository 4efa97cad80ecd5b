#pragma once

// Where the checkpointer saves (the PostgreSQL store implements it; tests use
// in-memory sinks).

#include "messages/checkpoint.hpp"

#include <stdexcept>

namespace fraiseql {

/// Where the checkpointer saves. Implementations throw on failure (the
/// checkpointer keeps the record dirty and retries).
class checkpoint_sink {
 public:
  virtual ~checkpoint_sink() = default;
  virtual void save(const checkpoint_record& rec) = 0;
};

/// A checkpoint write was refused because another node took over this
/// listener id (its lease epoch is newer): this node must stop at once.
struct fenced_out : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace fraiseql
