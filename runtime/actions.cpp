#include "runtime/actions.hpp"

#include "runtime/circuit_breaker.hpp"
#include "runtime/http_client.hpp"
#include "runtime/logging.hpp"
#include "runtime/observers.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace fraiseql {

attempt_outcome classify_http(const http_response& r) {
  attempt_outcome o;
  if (!r.error.empty()) {
    o.retryable = true;
    o.error = (r.timed_out ? "timeout: " : "transport error: ") + r.error;
    return o;
  }
  if (r.status >= 200 && r.status < 300) {
    o.ok = true;
    return o;
  }
  o.error = "HTTP " + std::to_string(r.status);
  if (!r.body.empty()) o.error += ": " + r.body.substr(0, 512);
  o.retryable = r.status >= 500 || r.status == 429 || r.status == 408;
  if (r.retry_after) o.retry_after = *r.retry_after;
  return o;
}

namespace {

std::chrono::milliseconds capped(uint32_t own_ms, std::chrono::milliseconds cap) {
  std::chrono::milliseconds own(own_ms);
  return cap.count() > 0 ? std::min(own, cap) : own;
}

class webhook_executor final : public action_executor {
public:
  webhook_executor(std::shared_ptr<const observer_registry> reg, std::shared_ptr<http_client> http)
    : reg_(std::move(reg)), http_(std::move(http)) {}

  std::optional<attempt_outcome> start(const attempt_request& req, attempt_callback done) override {
    const auto& w = *req.action_cfg->webhook;
    const auto& ev = *req.ev;
    rendered_webhook rw;
    // A template that fails renders the same way every time: final, no retry.
    if (auto err = reg_->render_webhook(req.observer, req.action, ev, rw))
      return attempt_outcome::failure(*err, false);
    http_request hr;
    hr.method = w.method;
    hr.url = std::move(rw.url);
    hr.timeout = capped(w.timeout_ms, req.timeout_cap);
    hr.body = std::move(rw.body);
    hr.headers.reserve(5 + rw.headers.size());
    hr.headers.push_back("Content-Type: application/json");
    hr.headers.push_back("Idempotency-Key: " + req.idempotency_key);
    hr.headers.push_back("X-Fraiseql-Event-Id: " + ev.id);
    hr.headers.push_back("X-Fraiseql-Event-Type: " + ev.event_type);
    hr.headers.push_back("User-Agent: fraiseql-observer/0.1");
    for (auto& h : rw.headers) hr.headers.push_back(std::move(h));
    http_->submit(std::move(hr),
                  [done = std::move(done)](http_response r) { done(classify_http(r)); });
    return std::nullopt;
  }

  /// scheme://host:port of the URL. Only a URL whose scheme or authority is
  /// templated is rendered for this; a render error falls back to "webhook"
  /// (start() then fails the attempt as final, which the breaker ignores).
  std::string endpoint(const attempt_request& req) const override {
    const std::string& url = req.action_cfg->webhook->url;
    const size_t sep = url.find("://");
    const size_t end = sep == std::string::npos ? std::string::npos : url.find_first_of("/?#", sep + 3);
    if (url.substr(0, end).find("{{") == std::string::npos) {
      if (auto e = http_endpoint(url)) return *e;
      return "webhook";
    }
    rendered_webhook rw;
    if (reg_->render_webhook(req.observer, req.action, *req.ev, rw)) return "webhook";
    return http_endpoint(rw.url).value_or("webhook");
  }

private:
  std::shared_ptr<const observer_registry> reg_;
  std::shared_ptr<http_client> http_;
};

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

std::shared_ptr<action_executor> make_webhook_executor(std::shared_ptr<const observer_registry> reg,
                                                       std::shared_ptr<http_client> http) {
  return std::make_shared<webhook_executor>(std::move(reg), std::move(http));
}

std::shared_ptr<action_executor> make_log_executor(std::shared_ptr<const observer_registry> reg) {
  return std::make_shared<log_executor>(std::move(reg));
}

executor_map make_executors(std::shared_ptr<const observer_registry> reg,
                            std::shared_ptr<http_client> http) {
  executor_map m;
  m["webhook"] = make_webhook_executor(reg, std::move(http));
  m["log"] = make_log_executor(reg);
  return m;
}

}  // namespace fraiseql
