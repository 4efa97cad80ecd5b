// Webhooks: the rendered request through the shared HTTP client, signed when a secret is set.

#include "runtime/exec/executor.hpp"

#include "runtime/core/circuit_breaker.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/exec/caching.hpp"
#include "runtime/io/net/http_client.hpp"

#include <spdlog/spdlog.h>
#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <string>

namespace fraiseql {

namespace {

/// One element of a batch body: the event's rendered body (always JSON: an
/// object for the default envelope and for object templates) with its
/// idempotency key as the first member; a body that is not an object goes
/// under "body".
void append_batch_element(std::string& out, const std::string& key, const std::string& body) {
  out += "{\"idempotency_key\":";
  out += boost::json::serialize(boost::json::string_view(key));
  size_t i = 0;
  while (i < body.size() && std::isspace(static_cast<unsigned char>(body[i]))) ++i;
  if (i < body.size() && body[i] == '{') {
    size_t j = i + 1;
    while (j < body.size() && std::isspace(static_cast<unsigned char>(body[j]))) ++j;
    if (j < body.size() && body[j] == '}') {
      out += '}';
    } else {
      out += ',';
      out.append(body, i + 1, std::string::npos);
    }
  } else {
    out += ",\"body\":";
    out += body;
    out += '}';
  }
}

/// The request's own idempotency key: the same batch (same events, same
/// action) always gets the same one, so a retried batch is recognisable.
std::string batch_key(const std::vector<std::string>& keys) {
  std::string material;
  for (const auto& k : keys) {
    material += k;
    material += '\n';
  }
  return "batch-" + sha256_hex(material).substr(0, 32);
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

  bool adaptive() const override { return true; }

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
    hr.timeout = attempt_timeout(w.timeout_ms, req.timeout_cap);
    hr.body = std::move(rw.body);
    hr.headers.reserve(5 + rw.headers.size());
    hr.headers.push_back("Content-Type: application/json");
    hr.headers.push_back("Idempotency-Key: " + req.idempotency_key);
    hr.headers.push_back("X-Fraiseql-Event-Id: " + ev.id);
    hr.headers.push_back("X-Fraiseql-Event-Type: " + ev.event_type);
    hr.headers.push_back("User-Agent: fraiseql-observer/0.1");
    for (auto& h : rw.headers) hr.headers.push_back(std::move(h));
    return sign_and_submit(std::move(hr), w, std::move(done));
  }

  std::optional<attempt_outcome> start_batch(const batch_request& req,
                                             std::vector<std::pair<size_t, std::string>>& rejected,
                                             attempt_callback done) override {
    const auto& w = *req.action_cfg->webhook;
    http_request hr;
    std::vector<std::string> sent_keys;
    sent_keys.reserve(req.events.size());
    std::string body = "[";
    std::vector<std::string> headers;
    bool first = true;
    for (size_t i = 0; i < req.events.size(); ++i) {
      rendered_webhook rw;
      if (auto err = reg_->render_webhook(req.observer, req.action, *req.events[i], rw)) {
        rejected.emplace_back(i, std::move(*err));
        continue;
      }
      if (first) {
        // URL and headers are not templates (the loader refuses them with
        // batch_size > 1): every event renders the same ones.
        hr.url = std::move(rw.url);
        headers = std::move(rw.headers);
      } else {
        body += ',';
      }
      first = false;
      append_batch_element(body, req.idempotency_keys[i], rw.body);
      sent_keys.push_back(req.idempotency_keys[i]);
    }
    if (sent_keys.empty()) return attempt_outcome::failure("no event of the batch rendered", false);
    body += ']';
    hr.method = w.method;
    hr.timeout = attempt_timeout(w.timeout_ms, req.timeout_cap);
    hr.body = std::move(body);
    hr.headers.reserve(5 + headers.size());
    hr.headers.push_back("Content-Type: application/json");
    hr.headers.push_back("Idempotency-Key: " + batch_key(sent_keys));
    hr.headers.push_back("X-Fraiseql-Batch-Size: " + std::to_string(sent_keys.size()));
    hr.headers.push_back("User-Agent: fraiseql-observer/0.1");
    for (auto& h : headers) hr.headers.push_back(std::move(h));
    return sign_and_submit(std::move(hr), w, std::move(done));
  }

  /// scheme://host:port of the URL. Only a URL whose scheme or authority is
  /// templated is rendered for this; a render error falls back to "webhook"
  /// (start() then fails the attempt as final, which the breaker ignores).
  std::string endpoint(const attempt_request& req) const override {
    const std::string& url = req.action_cfg->webhook->url;
    const size_t sep = url.find("://");
    const size_t end =
        sep == std::string::npos ? std::string::npos : url.find_first_of("/?#", sep + 3);
    if (url.substr(0, end).find("{{") == std::string::npos) {
      if (auto e = http_endpoint(url)) return *e;
      return "webhook";
    }
    rendered_webhook rw;
    if (reg_->render_webhook(req.observer, req.action, *req.ev, rw)) return "webhook";
    return http_endpoint(rw.url).value_or("webhook");
  }

 private:
  /// Signs the request (per attempt: the timestamp lets receivers reject
  /// replays) when a secret is set, and sends it; the outcome comes to `done`.
  std::optional<attempt_outcome> sign_and_submit(http_request hr, const webhook_action_config& w,
                                                 attempt_callback done) {
    if (!w.signing_secret.empty()) {
      const std::string ts = std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count());
      hr.headers.push_back("X-Fraiseql-Timestamp: " + ts);
      hr.headers.push_back("X-Fraiseql-Signature: " +
                           webhook_signature(w.signing_secret, ts, hr.body));
    }
    http_->submit(std::move(hr), [done = std::move(done), policy = w.retry](http_response r) {
      done(classify_http(r, policy));
    });
    return std::nullopt;
  }

  std::shared_ptr<const observer_registry> reg_;
  std::shared_ptr<http_client> http_;
};

}  // namespace

std::shared_ptr<action_executor> make_webhook_executor(std::shared_ptr<const observer_registry> reg,
                                                       std::shared_ptr<http_client> http) {
  return std::make_shared<webhook_executor>(std::move(reg), std::move(http));
}

}  // namespace fraiseql
