#pragma once

// One observer node (role `all`): wires listener -> router -> action pool ->
// checkpointer (+ DLQ) from a validated config. No CAF in this header: apps and
// tests drive a node through this façade.

#include "runtime/config.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace fraiseql {

struct node_status {
  uint64_t in_flight = 0;
  uint64_t finished = 0;
  uint64_t read = 0;
};

class node {
public:
  /// `dry_run`: connect, read, match and log; execute and checkpoint nothing.
  node(config cfg, bool dry_run);
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Takes the leader lease of the listener id, loads the checkpoint and starts
  /// the actors. Throws pg_unavailable when the database cannot be reached,
  /// standby when another node leads (the caller retries both), and
  /// std::runtime_error for problems a retry will not fix (schema missing).
  void start();

  /// Another node holds the lease of this listener id.
  struct standby : std::runtime_error {
    using std::runtime_error::runtime_error;
  };

  /// Graceful stop: stop reading, wait up to `timeout` for in-flight events to
  /// finish, save the checkpoint, stop every actor. Returns true when nothing
  /// was left in flight. Idempotent.
  bool stop(std::chrono::milliseconds timeout);

  node_status status();

private:
  void acquire_and_run();
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace fraiseql
