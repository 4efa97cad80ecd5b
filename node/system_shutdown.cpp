#include "node/system_shutdown.hpp"

#include <spdlog/spdlog.h>
#include <caf/actor_system.hpp>
#include <caf/logger.hpp>

#include <future>
#include <thread>

namespace fraiseql {

void destroy_bounded(std::unique_ptr<caf::actor_system> sys, const char* what,
                     std::chrono::milliseconds bound) {
  if (!sys) return;
  // A system keeps its logger alive while any thread's "current logger"
  // points at it, and its destructor waits for the logger to go: this thread
  // (which created it) lets go first, or the reset below never finishes.
  caf::logger::set_current_actor_system(nullptr);
  auto done = std::make_shared<std::promise<void>>();
  auto finished = done->get_future();
  std::thread([s = std::shared_ptr<caf::actor_system>(std::move(sys)), done]() mutable {
    s.reset();
    done->set_value();
  }).detach();
  if (finished.wait_for(bound) != std::future_status::ready)
    spdlog::warn("{} did not stop within {} ms; exiting without it", what, bound.count());
}

}  // namespace fraiseql
