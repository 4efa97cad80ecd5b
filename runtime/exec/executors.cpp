#include "runtime/exec/executor.hpp"
#include "messages/attempt.hpp"

#include "runtime/exec/caching.hpp"
#include "runtime/core/circuit_breaker.hpp"
#include "runtime/io/net/http_client.hpp"
#include "runtime/ops/logging.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/io/pg/call_pool.hpp"
#include "runtime/io/net/smtp_client.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <spdlog/spdlog.h>

#include <algorithm>

namespace fraiseql {

attempt_outcome classify_http(const http_response& r, const http_retry_config& policy) {
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
  o.retryable = policy.retryable(r.status);
  if (r.retry_after) o.retry_after = *r.retry_after;
  return o;
}

attempt_outcome classify_smtp(const smtp_result& r) {
  if (r.error.empty()) return attempt_outcome::success();
  if (r.timed_out) return attempt_outcome::failure("timeout: " + r.error, true);
  if (r.reply >= 500 && r.reply < 600)
    return attempt_outcome::failure("SMTP " + std::to_string(r.reply) + " (permanent): " + r.error, false);
  if (r.reply >= 400 && r.reply < 500)
    return attempt_outcome::failure("SMTP " + std::to_string(r.reply) + " (transient): " + r.error, true);
  return attempt_outcome::failure("transport error: " + r.error, true);
}

attempt_outcome classify_pg(const pg_call_result& r) {
  if (r.ok) return attempt_outcome::success();
  if (r.sqlstate.empty())
    return attempt_outcome::failure("database: " + r.error, true);
  const bool retry = r.connection_lost || pg_sqlstate_retryable(r.sqlstate);
  return attempt_outcome::failure("SQLSTATE " + r.sqlstate + ": " + r.error, retry);
}

std::string hmac_sha256_hex(const std::string& key, const std::string& data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  static const char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[mac[i] >> 4];
    out += hex[mac[i] & 15];
  }
  return out;
}

std::string webhook_signature(const std::string& secret, const std::string& timestamp,
                              const std::string& body) {
  std::string signed_text;
  signed_text.reserve(timestamp.size() + 1 + body.size());
  signed_text += timestamp;
  signed_text += '.';
  signed_text += body;
  return "sha256=" + hmac_sha256_hex(secret, signed_text);
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

  std::optional<action_cache_key> cache_key(const attempt_request& req) const override {
    const auto& w = *req.action_cfg->webhook;
    if (!w.cache) return std::nullopt;
    rendered_webhook rw;
    if (reg_->render_webhook(req.observer, req.action, *req.ev, rw)) return std::nullopt;
    // The per-event headers (Idempotency-Key, X-Fraiseql-Event-*) are left out:
    // they are what makes every event's request unique. Length prefixes keep
    // the fields apart whatever bytes they hold.
    std::string material = "webhook\n";
    auto add = [&material](const std::string& f) {
      material += std::to_string(f.size());
      material += ':';
      material += f;
    };
    add(w.method);
    add(rw.url);
    for (const auto& h : rw.headers) add(h);
    material += '|';
    add(rw.body);
    action_cache_key k;
    k.key = "webhook:" + sha256_hex(material);
    if (w.cache_ttl_secs) k.ttl = std::chrono::seconds(*w.cache_ttl_secs);
    return k;
  }

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
    if (!w.signing_secret.empty()) {
      // Signed per attempt: the timestamp lets receivers reject replays.
      const std::string ts = std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
      hr.headers.push_back("X-Fraiseql-Timestamp: " + ts);
      hr.headers.push_back("X-Fraiseql-Signature: " + webhook_signature(w.signing_secret, ts, hr.body));
    }
    http_->submit(std::move(hr), [done = std::move(done), policy = w.retry](http_response r) {
      done(classify_http(r, policy));
    });
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

class slack_executor final : public action_executor {
public:
  slack_executor(std::shared_ptr<const observer_registry> reg, std::shared_ptr<http_client> http)
    : reg_(std::move(reg)), http_(std::move(http)) {}

  std::optional<attempt_outcome> start(const attempt_request& req, attempt_callback done) override {
    const auto& s = *req.action_cfg->slack;
    http_request hr;
    if (auto err = reg_->render_slack(req.observer, req.action, *req.ev, hr.body))
      return attempt_outcome::failure(*err, false);
    hr.method = "POST";
    hr.url = s.webhook_url;
    hr.timeout = capped(s.timeout_ms, req.timeout_cap);
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

class email_executor final : public action_executor {
public:
  email_executor(std::shared_ptr<const observer_registry> reg, std::shared_ptr<smtp_client> smtp)
    : reg_(std::move(reg)), smtp_(std::move(smtp)) {}

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
    m.timeout = capped(e.timeout_ms, req.timeout_cap);
    smtp_->submit(std::move(m), [done = std::move(done)](smtp_result r) { done(classify_smtp(r)); });
    return std::nullopt;
  }

private:
  std::shared_ptr<const observer_registry> reg_;
  std::shared_ptr<smtp_client> smtp_;
};

class database_executor final : public action_executor {
public:
  database_executor(std::shared_ptr<const observer_registry> reg, std::shared_ptr<pg_call_pool> pool)
    : reg_(std::move(reg)), pool_(std::move(pool)) {}

  std::optional<attempt_outcome> start(const attempt_request& req, attempt_callback done) override {
    const auto& d = *req.action_cfg->database;
    pg_call c;
    if (auto err = reg_->render_database_params(req.observer, req.action, *req.ev, c.params))
      return attempt_outcome::failure(*err, false);
    c.url = d.url;
    c.function = d.quoted_function();
    c.envelope = req.ev->envelope_json;
    c.timeout = capped(d.timeout_ms, req.timeout_cap);
    pool_->submit(std::move(c), [done = std::move(done)](pg_call_result r) { done(classify_pg(r)); });
    return std::nullopt;
  }

private:
  std::shared_ptr<const observer_registry> reg_;
  std::shared_ptr<pg_call_pool> pool_;
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

std::shared_ptr<action_executor> make_slack_executor(std::shared_ptr<const observer_registry> reg,
                                                     std::shared_ptr<http_client> http) {
  return std::make_shared<slack_executor>(std::move(reg), std::move(http));
}

std::shared_ptr<action_executor> make_email_executor(std::shared_ptr<const observer_registry> reg,
                                                     std::shared_ptr<smtp_client> smtp) {
  return std::make_shared<email_executor>(std::move(reg), std::move(smtp));
}

std::shared_ptr<action_executor> make_database_executor(std::shared_ptr<const observer_registry> reg,
                                                        std::shared_ptr<pg_call_pool> pool) {
  return std::make_shared<database_executor>(std::move(reg), std::move(pool));
}

std::shared_ptr<action_executor> make_log_executor(std::shared_ptr<const observer_registry> reg) {
  return std::make_shared<log_executor>(std::move(reg));
}

executor_map make_executors(std::shared_ptr<const observer_registry> reg,
                            std::shared_ptr<http_client> http, const executor_options& opt) {
  bool uses_email = false;
  bool uses_database = false;
  for (size_t i = 0; i < reg->size(); ++i)
    for (const auto& a : reg->config(static_cast<uint32_t>(i)).actions) {
      uses_email = uses_email || a.email.has_value();
      uses_database = uses_database || a.database.has_value();
    }
  executor_map m;
  m["webhook"] = make_webhook_executor(reg, http);
  m["slack"] = make_slack_executor(reg, std::move(http));
  // The executors own their clients: the action pool drops its executors when
  // it stops, which stops the SMTP thread and the database workers.
  if (uses_email) m["email"] = make_email_executor(reg, std::make_shared<smtp_client>());
  if (uses_database)
    m["database"] = make_database_executor(reg, std::make_shared<pg_call_pool>(opt.database_workers));
  m["log"] = make_log_executor(reg);
  return m;
}

}  // namespace fraiseql
