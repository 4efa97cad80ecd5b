#pragma once

// Destroying an auxiliary actor system (control plane, cluster coordinator) at
// process exit without letting a peer connection CAF is still tearing down
// hold the exit up.

#include <caf/fwd.hpp>

#include <chrono>
#include <memory>

namespace fraiseql {

/// Destroys `sys` on a thread of its own and waits at most `bound`; logs a
/// warning naming `what` when it takes longer (the process then exits
/// without it). Call from the thread that created the system.
void destroy_bounded(std::unique_ptr<caf::actor_system> sys, const char* what,
                     std::chrono::milliseconds bound = std::chrono::seconds(5));

}  // namespace fraiseql
