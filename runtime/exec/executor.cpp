#include "runtime/exec/executor.hpp"

#include "runtime/core/observers.hpp"
#include "runtime/io/net/http_client.hpp"
#include "runtime/io/net/smtp_client.hpp"
#include "runtime/io/pg/call_pool.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>

namespace fraiseql {

std::optional<attempt_outcome> action_executor::start_batch(
    const batch_request& req, std::vector<std::pair<size_t, std::string>>&, attempt_callback) {
  return attempt_outcome::failure("action type '" +
                                      (req.action_cfg ? req.action_cfg->type : std::string("?")) +
                                      "' cannot deliver batches",
                                  false);
}

attempt_outcome classify_http(const http_response& r, const http_retry_config& policy) {
  attempt_outcome o;
  if (!r.error.empty()) {
    o.retryable = true;
    o.error = (r.timed_out ? "timeout: " : "transport error: ") + r.error;
    o.overloaded = r.timed_out;
    return o;
  }
  if (r.status >= 200 && r.status < 300) {
    o.ok = true;
    return o;
  }
  o.error = "HTTP " + std::to_string(r.status);
  if (!r.body.empty()) o.error += ": " + r.body.substr(0, 512);
  o.retryable = policy.retryable(r.status);
  o.overloaded = r.status == 429 || r.status == 503;
  o.served = r.status >= 400 && r.status < 500 && !o.overloaded;
  if (r.retry_after) o.retry_after = *r.retry_after;
  return o;
}

attempt_outcome classify_smtp(const smtp_result& r) {
  if (r.error.empty()) return attempt_outcome::success();
  if (r.timed_out) {
    auto o = attempt_outcome::failure("timeout: " + r.error, true);
    o.overloaded = true;
    return o;
  }
  if (r.reply >= 500 && r.reply < 600)
    return attempt_outcome::failure("SMTP " + std::to_string(r.reply) + " (permanent): " + r.error,
                                    false);
  if (r.reply >= 400 && r.reply < 500)
    return attempt_outcome::failure("SMTP " + std::to_string(r.reply) + " (transient): " + r.error,
                                    true);
  return attempt_outcome::failure("transport error: " + r.error, true);
}

attempt_outcome classify_pg(const pg_call_result& r) {
  if (r.ok) return attempt_outcome::success();
  if (r.sqlstate.empty()) return attempt_outcome::failure("database: " + r.error, true);
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

std::chrono::milliseconds attempt_timeout(uint32_t own_ms, std::chrono::milliseconds cap) {
  std::chrono::milliseconds own(own_ms);
  return cap.count() > 0 ? std::min(own, cap) : own;
}

executor_map make_executors(std::shared_ptr<const observer_registry> reg,
                            std::shared_ptr<http_client> http, const executor_options& opt) {
  bool uses_email = false;
  bool uses_database = false;
  bool uses_nats = false;
  for (size_t i = 0; i < reg->size(); ++i)
    for (const auto& a : reg->config(static_cast<uint32_t>(i)).actions) {
      uses_email = uses_email || a.email.has_value();
      uses_database = uses_database || a.database.has_value();
      uses_nats = uses_nats || a.nats.has_value();
    }
  executor_map m;
  m["webhook"] = make_webhook_executor(reg, http);
  m["slack"] = make_slack_executor(reg, std::move(http));
  // The executors own their clients: the action pool drops its executors when
  // it stops, which stops the SMTP thread and the database workers.
  if (uses_email) m["email"] = make_email_executor(reg, std::make_shared<smtp_client>());
  if (uses_database)
    m["database"] =
        make_database_executor(reg, std::make_shared<pg_call_pool>(opt.database_workers));
  // Connections open on first publish (never when no observer uses NATS).
  if (uses_nats) m["nats"] = make_nats_executor(reg);
  m["log"] = make_log_executor(reg);
  return m;
}

}  // namespace fraiseql
