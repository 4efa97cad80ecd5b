#include "runtime/ops/monitoring_server.hpp"

#include "runtime/core/health.hpp"

#include <civetweb.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

namespace fraiseql {

struct monitoring_server::impl {
  std::function<std::string()> scrape;
  std::shared_ptr<const health_state> health;
  std::string bind;
  mg_context* ctx = nullptr;
  uint16_t port = 0;
};

namespace {

void reply(mg_connection* conn, int status, const char* type, const std::string& body) {
  mg_response_header_start(conn, status);
  mg_response_header_add(conn, "Content-Type", type, -1);
  mg_response_header_add(conn, "Content-Length", std::to_string(body.size()).c_str(), -1);
  mg_response_header_add(conn, "Cache-Control", "no-store", -1);
  mg_response_header_send(conn);
  const auto* ri = mg_get_request_info(conn);
  if (std::strcmp(ri->request_method, "HEAD") != 0) mg_write(conn, body.data(), body.size());
}

bool method_ok(mg_connection* conn) {
  const auto* ri = mg_get_request_info(conn);
  if (std::strcmp(ri->request_method, "GET") == 0 || std::strcmp(ri->request_method, "HEAD") == 0)
    return true;
  reply(conn, 405, "text/plain; charset=utf-8", "only GET and HEAD\n");
  return false;
}

int on_metrics(mg_connection* conn, void* data) {
  if (!method_ok(conn)) return 405;
  auto* d = static_cast<monitoring_server::impl*>(data);
  reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", d->scrape());
  return 200;
}

int on_verdict(mg_connection* conn, const health_verdict& v) {
  // Plain text, one line: probes only read the status; humans read the reason.
  int status = v.ok ? 200 : 503;
  reply(conn, status, "text/plain; charset=utf-8", (v.ok ? "ok" : v.reason) + "\n");
  return status;
}

int on_healthz(mg_connection* conn, void* data) {
  if (!method_ok(conn)) return 405;
  return on_verdict(conn, static_cast<monitoring_server::impl*>(data)->health->live());
}

int on_readyz(mg_connection* conn, void* data) {
  if (!method_ok(conn)) return 405;
  return on_verdict(conn, static_cast<monitoring_server::impl*>(data)->health->ready());
}

int on_other(mg_connection* conn, void*) {
  reply(conn, 404, "text/plain; charset=utf-8", "not found: try /metrics, /healthz or /readyz\n");
  return 404;
}

/// civetweb's accept loop polls with a 2 s timeout and checks its stop flag
/// only between polls, so mg_stop alone waits up to 2 s. A connection to the
/// listening socket wakes the poll at once.
void poke(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string target = host == "0.0.0.0" ? "127.0.0.1" : host == "::" ? "::1" : host;
  if (getaddrinfo(target.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return;
  for (auto* a = res; a; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    bool ok = connect(fd, a->ai_addr, a->ai_addrlen) == 0;
    close(fd);
    if (ok) break;
  }
  freeaddrinfo(res);
}

}  // namespace

monitoring_server::monitoring_server(const std::string& bind, uint32_t port,
                                     std::function<std::string()> scrape,
                                     std::shared_ptr<const health_state> health)
    : impl_(std::make_unique<impl>()) {
  static std::once_flag library_once;
  std::call_once(library_once, [] { mg_init_library(0); });
  impl_->scrape = std::move(scrape);
  impl_->health = std::move(health);
  impl_->bind = bind;
  const std::string addr = bind + ":" + std::to_string(port);
  const char* options[] = {
      "listening_ports",    addr.c_str(), "num_threads", "2", "enable_keep_alive", "no",
      "request_timeout_ms", "10000",      nullptr};
  mg_callbacks callbacks{};
  // Quiet civetweb's own stderr logging; failures surface as the error below.
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
  mg_init_data init{&callbacks, impl_.get(), options};
  char text[256] = "";
  unsigned code = 0;
  mg_error_data err{&code, text, sizeof text};
  impl_->ctx = mg_start2(&init, &err);
  if (!impl_->ctx)
    throw std::runtime_error("monitoring: cannot listen on " + addr + ": " +
                             (text[0] ? text : "unknown civetweb error"));
  mg_set_request_handler(impl_->ctx, "/metrics$", on_metrics, impl_.get());
  mg_set_request_handler(impl_->ctx, "/healthz$", on_healthz, impl_.get());
  mg_set_request_handler(impl_->ctx, "/readyz$", on_readyz, impl_.get());
  mg_set_request_handler(impl_->ctx, "/", on_other, impl_.get());
  mg_server_port ports[4]{};
  int n = mg_get_server_ports(impl_->ctx, 4, ports);
  impl_->port = n > 0 ? static_cast<uint16_t>(ports[0].port) : 0;
}

monitoring_server::~monitoring_server() {
  if (!impl_->ctx) return;
  std::atomic<bool> done{false};
  std::thread stopper([&] {
    mg_stop(impl_->ctx);
    done = true;
  });
  // Wake the accept loop until mg_stop returns (usually the first poke).
  for (int i = 0; i < 100 && !done; ++i) {
    poke(impl_->bind, impl_->port);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stopper.join();
}

uint16_t monitoring_server::port() const {
  return impl_->port;
}

}  // namespace fraiseql
