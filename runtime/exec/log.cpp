// Log lines through spdlog at the configured level.

#include "runtime/exec/executor.hpp"

#include "runtime/core/observers.hpp"
#include "runtime/ops/logging.hpp"

#include <spdlog/spdlog.h>

namespace fraiseql {

namespace {

class log_executor final : public action_executor {
 public:
  explicit log_executor(std::shared_ptr<const observer_registry> reg) : reg_(std::move(reg)) {}

  std::optional<attempt_outcome> start(const attempt_request& req, attempt_callback) override {
    const auto& ev = *req.ev;
    auto lvl = parse_log_level(req.action_cfg->log->level).value_or(spdlog::level::info);
    auto msg = reg_->render_log_message(req.observer, req.action, ev);
    spdlog::log(lvl, "observer '{}' event {} ({} {} {}): {}", req.observer_cfg->name, ev.id,
                ev.event_type, ev.entity_type, ev.entity_id, msg);
    return attempt_outcome::success();
  }

 private:
  std::shared_ptr<const observer_registry> reg_;
};

}  // namespace

std::shared_ptr<action_executor> make_log_executor(std::shared_ptr<const observer_registry> reg) {
  return std::make_shared<log_executor>(std::move(reg));
}

}  // namespace fraiseql
