// Slack incoming webhooks through the shared HTTP client.

#include "runtime/exec/executor.hpp"

#include "runtime/core/circuit_breaker.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/io/net/http_client.hpp"

namespace fraiseql {

namespace {

class slack_executor final : public action_executor {
 public:
  slack_executor(std::shared_ptr<const observer_registry> reg, std::shared_ptr<http_client> http)
      : reg_(std::move(reg)), http_(std::move(http)) {}

  bool adaptive() const override { return true; }

  std::optional<attempt_outcome> start(const attempt_request& req, attempt_callback done) override {
    const auto& s = *req.action_cfg->slack;
    http_request hr;
    if (auto err = reg_->render_slack(req.observer, req.action, *req.ev, hr.body))
      return attempt_outcome::failure(*err, false);
    hr.method = "POST";
    hr.url = s.webhook_url;
    hr.timeout = attempt_timeout(s.timeout_ms, req.timeout_cap);
    hr.headers = {"Content-Type: application/json; charset=utf-8",
                  "User-Agent: fraiseql-observer/0.1"};
    http_->submit(std::move(hr), [done = std::move(done), policy = s.retry](http_response r) {
      done(classify_http(r, policy));
    });
    return std::nullopt;
  }

 private:
  std::shared_ptr<const observer_registry> reg_;
  std::shared_ptr<http_client> http_;
};

}  // namespace

std::shared_ptr<action_executor> make_slack_executor(std::shared_ptr<const observer_registry> reg,
                                                     std::shared_ptr<http_client> http) {
  return std::make_shared<slack_executor>(std::move(reg), std::move(http));
}

}  // namespace fraiseql
