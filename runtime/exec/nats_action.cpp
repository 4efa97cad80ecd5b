// NATS actions: the rendered payload published to a JetStream subject with
// Nats-Msg-Id = the attempt's idempotency key, so a retried attempt (or a
// redelivered event) is stored once within the stream's duplicate window.
//
// One nats_connection per distinct server list (and credentials), created on
// first use with retry_on_failed_connect: a dead server never makes start()
// wait longer than one connect attempt per URL (refused at once on a closed
// port, at most connect_timeout on a silent host), and publishes made before
// it answers are buffered by nats.c and time out as retryable attempts. One
// async_publisher per (connection, expected stream, ack timeout): those are
// publisher-wide options. Completions run on nats.c's threads (or the
// publisher's timeout thread) and only call `done`.

#include "runtime/exec/executor.hpp"

#include "runtime/core/observers.hpp"
#include "runtime/io/nats/connection.hpp"
#include "runtime/io/nats/publisher.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>

namespace fraiseql {

attempt_outcome classify_nats(const publish_result& r) {
  if (r.stored()) return attempt_outcome::success();
  // Timeouts, a closed or reconnecting connection and "no responders" (no
  // stream captures the subject, or the stream's leader is being elected:
  // nats-server cannot tell them apart) may succeed later.
  if (nats_status_is_transient(r.nats_status))
    return attempt_outcome::failure("NATS publish: " + r.error, true);
  // The server refused the message (wrong expected stream, above the
  // stream's max_msg_size, ...): the same message is refused every time.
  return attempt_outcome::failure("NATS publish refused: " + r.error, false);
}

namespace {

/// One publisher and the attempts waiting for its completions, by token.
struct nats_link {
  std::mutex mu;
  std::unordered_map<uint64_t, attempt_callback> waiting;
  std::shared_ptr<nats_connection> conn;
  /// Last member: destroyed first, its "publisher closed" completions still
  /// find `waiting`.
  std::unique_ptr<async_publisher> pub;
};

class nats_executor final : public action_executor {
 public:
  explicit nats_executor(std::shared_ptr<const observer_registry> reg) : reg_(std::move(reg)) {}

  ~nats_executor() override {
    // Publishers first (each fails its outstanding attempts as retryable,
    // calling their `done` outside our lock), then the connections.
    decltype(links_) links;
    decltype(conns_) conns;
    {
      std::lock_guard<std::mutex> lock(mu_);
      links.swap(links_);
      conns.swap(conns_);
    }
    links.clear();
    conns.clear();
  }

  std::optional<attempt_outcome> start(const attempt_request& req, attempt_callback done) override {
    const auto& n = *req.action_cfg->nats;
    std::string subject, payload;
    // A template that fails renders the same way every time: final.
    if (auto err = reg_->render_nats(req.observer, req.action, *req.ev, subject, payload))
      return attempt_outcome::failure(*err, false);
    const auto ack_timeout = attempt_timeout(n.timeout_ms, req.timeout_cap);
    std::shared_ptr<nats_link> link;
    try {
      link = link_for(n, ack_timeout);
    } catch (const nats_unavailable& e) {
      return attempt_outcome::failure(std::string("NATS: ") + e.what(), true);
    } catch (const nats_error& e) {
      // Bad options (an unreadable credentials file, a TLS file): final.
      return attempt_outcome::failure(std::string("NATS: ") + e.what(), false);
    }
    const uint64_t token = next_token_.fetch_add(1, std::memory_order_relaxed);
    {
      // Before the publish: the ack may arrive before publish() returns.
      std::lock_guard<std::mutex> lock(link->mu);
      link->waiting.emplace(token, std::move(done));
    }
    const auto s = link->pub->publish(subject, payload, req.idempotency_key, token);
    if (s.accepted()) return std::nullopt;
    {
      std::lock_guard<std::mutex> lock(link->mu);
      link->waiting.erase(token);
    }
    switch (s.status) {
      case async_publisher::submit::full:
        return attempt_outcome::failure(
            "NATS publish to '" + subject + "': " + std::to_string(link->pub->pending()) +
                " publishes already wait for their acknowledgment (the publisher's window is full)",
            true);
      case async_publisher::submit::too_large:
        return attempt_outcome::failure("NATS publish: " + s.error, false);
      default:
        // The reconnect buffer is full, or the connection is closed.
        return attempt_outcome::failure("NATS publish: " + s.error, true);
    }
  }

  /// "nats://host:port" (tls:// for TLS) of the first server, no credentials.
  std::string endpoint(const attempt_request& req) const override {
    const auto urls = req.action_cfg->nats->urls();
    if (urls.empty()) return "nats";
    if (auto a = parse_nats_url(urls.front())) return a->endpoint();
    return "nats";
  }

 private:
  /// Connection identity: the server list and how to authenticate.
  static std::string conn_key(const nats_action_config& n) {
    std::string k;
    for (const auto* f : {&n.url, &n.user, &n.password, &n.token, &n.credentials_file,
                          &n.tls_ca_file, &n.tls_cert_file, &n.tls_key_file}) {
      k += std::to_string(f->size());
      k += ':';
      k += *f;
    }
    k += n.tls ? '1' : '0';
    return k;
  }

  std::shared_ptr<nats_link> link_for(const nats_action_config& n,
                                      std::chrono::milliseconds ack_timeout) {
    const std::string ck = conn_key(n);
    std::lock_guard<std::mutex> lock(mu_);
    auto key = std::make_tuple(ck, n.stream, ack_timeout.count());
    if (auto it = links_.find(key); it != links_.end()) return it->second;
    std::shared_ptr<nats_connection> conn;
    if (auto it = conns_.find(ck); it != conns_.end()) {
      conn = it->second;
    } else {
      nats_connection_options o;
      o.urls = n.urls();
      o.user = n.user;
      o.password = n.password;
      o.token = n.token;
      o.credentials_file = n.credentials_file;
      o.tls = n.tls;
      o.tls_ca_file = n.tls_ca_file;
      o.tls_cert_file = n.tls_cert_file;
      o.tls_key_file = n.tls_key_file;
      o.name = "fraiseql-observer-actions";
      o.retry_on_failed_connect = true;
      std::string where;
      if (!o.urls.empty())
        if (auto a = parse_nats_url(o.urls.front())) where = a->endpoint();
      conn =
          nats_connection::connect(std::move(o), [where](nats_event e, const std::string& detail) {
            if (e == nats_event::disconnected)
              spdlog::warn("nats actions: {} {}{}", where, to_string(e),
                           detail.empty() ? "" : ": " + detail);
            else if (e == nats_event::error)
              spdlog::warn("nats actions: {}: {}", where, detail);
            else
              spdlog::info("nats actions: {} {}", where, to_string(e));
          });
      conns_.emplace(ck, conn);
    }
    auto link = std::make_shared<nats_link>();
    link->conn = conn;
    publisher_options po;
    po.ack_timeout = ack_timeout.count() > 0 ? ack_timeout : std::chrono::milliseconds(1);
    po.expect_stream = n.stream;
    nats_link* raw = link.get();  // the link outlives its publisher (member order)
    link->pub = std::make_unique<async_publisher>(conn, po, [raw](const publish_result& r) {
      attempt_callback done;
      {
        std::lock_guard<std::mutex> l(raw->mu);
        auto it = raw->waiting.find(r.token);
        if (it == raw->waiting.end()) return;
        done = std::move(it->second);
        raw->waiting.erase(it);
      }
      done(classify_nats(r));
    });
    links_.emplace(std::move(key), link);
    return link;
  }

  std::shared_ptr<const observer_registry> reg_;
  std::atomic<uint64_t> next_token_{1};
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<nats_connection>> conns_;
  std::map<std::tuple<std::string, std::string, int64_t>, std::shared_ptr<nats_link>> links_;
};

}  // namespace

std::shared_ptr<action_executor> make_nats_executor(std::shared_ptr<const observer_registry> reg) {
  return std::make_shared<nats_executor>(std::move(reg));
}

}  // namespace fraiseql
