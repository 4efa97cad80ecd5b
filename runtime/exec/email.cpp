// Email over SMTP on the SMTP client's thread.

#include "runtime/exec/executor.hpp"

#include "runtime/core/observers.hpp"
#include "runtime/io/net/smtp_client.hpp"

namespace fraiseql {

namespace {

class email_executor final : public action_executor {
 public:
  email_executor(std::shared_ptr<const observer_registry> reg, std::shared_ptr<smtp_client> smtp)
      : reg_(std::move(reg)), smtp_(std::move(smtp)) {}

  bool adaptive() const override { return true; }

  std::optional<attempt_outcome> start(const attempt_request& req, attempt_callback done) override {
    const auto& e = *req.action_cfg->email;
    const auto& ev = *req.ev;
    email_parts parts;
    if (auto err = reg_->render_email(req.observer, req.action, ev, parts.subject, parts.body))
      return attempt_outcome::failure(*err, false);
    parts.from = e.from;
    parts.to = e.to;
    // Stable across attempts: receivers can drop a duplicate of a retried message.
    parts.message_id = hmac_sha256_hex("fraiseql-message-id", req.idempotency_key).substr(0, 32) +
                       "@fraiseql-observer";
    parts.date = rfc5322_date_now();
    parts.headers = {"X-Fraiseql-Event-Id: " + ev.id, "X-Fraiseql-Event-Type: " + ev.event_type};
    smtp_message m;
    m.url = e.url();
    m.security = e.security;
    m.from = e.from;
    m.to = e.to;
    m.data = format_email(parts);
    m.username = e.username;
    m.password = e.password;
    m.ca_file = e.ca_file;
    m.verify_tls = e.verify_tls;
    m.timeout = attempt_timeout(e.timeout_ms, req.timeout_cap);
    smtp_->submit(std::move(m),
                  [done = std::move(done)](smtp_result r) { done(classify_smtp(r)); });
    return std::nullopt;
  }

 private:
  std::shared_ptr<const observer_registry> reg_;
  std::shared_ptr<smtp_client> smtp_;
};

}  // namespace

std::shared_ptr<action_executor> make_email_executor(std::shared_ptr<const observer_registry> reg,
                                                     std::shared_ptr<smtp_client> smtp) {
  return std::make_shared<email_executor>(std::move(reg), std::move(smtp));
}

}  // namespace fraiseql
