// PostgreSQL function calls on the call pool's workers.

#include "runtime/exec/executor.hpp"

#include "runtime/core/observers.hpp"
#include "runtime/io/pg/call_pool.hpp"

namespace fraiseql {

namespace {

class database_executor final : public action_executor {
 public:
  database_executor(std::shared_ptr<const observer_registry> reg,
                    std::shared_ptr<pg_call_pool> pool)
      : reg_(std::move(reg)), pool_(std::move(pool)) {}

  std::optional<attempt_outcome> start(const attempt_request& req, attempt_callback done) override {
    const auto& d = *req.action_cfg->database;
    pg_call c;
    if (auto err = reg_->render_database_params(req.observer, req.action, *req.ev, c.params))
      return attempt_outcome::failure(*err, false);
    c.url = d.url;
    c.function = d.quoted_function();
    c.envelope = req.ev->envelope_json;
    c.timeout = attempt_timeout(d.timeout_ms, req.timeout_cap);
    pool_->submit(std::move(c),
                  [done = std::move(done)](pg_call_result r) { done(classify_pg(r)); });
    return std::nullopt;
  }

 private:
  std::shared_ptr<const observer_registry> reg_;
  std::shared_ptr<pg_call_pool> pool_;
};

}  // namespace

std::shared_ptr<action_executor> make_database_executor(
    std::shared_ptr<const observer_registry> reg, std::shared_ptr<pg_call_pool> pool) {
  return std::make_shared<database_executor>(std::move(reg), std::move(pool));
}

}  // namespace fraiseql
