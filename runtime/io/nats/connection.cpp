#include "runtime/io/nats/connection.hpp"

#include <nats/nats.h>

#include <cstring>

namespace fraiseql {

namespace {

/// Options are owned here: nats.c copies what it needs at connect.
struct options_guard {
  natsOptions* o = nullptr;
  ~options_guard() { natsOptions_Destroy(o); }
};

void check_option(const char* what, natsStatus s) {
  if (s != NATS_OK) nats_throw(std::string("NATS option ") + what, s);
}

}  // namespace

std::string nats_error_text(const std::string& context, int status, int js_code) {
  const auto s = static_cast<natsStatus>(status);
  std::string text = context + ": " + natsStatus_GetText(s);
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  // nats.c keeps the last error per thread; it belongs to this failure only
  // when its status is the same one.
  if (detail != nullptr && *detail != '\0' && last == s &&
      std::strcmp(detail, natsStatus_GetText(s)) != 0) {
    text += " (";
    text += detail;
    text += ")";
  }
  if (js_code != 0) text += " [JetStream error " + std::to_string(js_code) + "]";
  return text;
}

bool nats_status_is_transient(int status) {
  switch (static_cast<natsStatus>(status)) {
    case NATS_IO_ERROR:
    case NATS_CONNECTION_CLOSED:
    case NATS_NO_SERVER:
    case NATS_STALE_CONNECTION:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_TIMEOUT:
    case NATS_NOT_YET_CONNECTED:
    case NATS_NO_RESPONDERS:
    case NATS_DRAINING:
    case NATS_INSUFFICIENT_BUFFER:
      return true;
    default:
      return false;
  }
}

void nats_throw(const std::string& context, int status, int js_code) {
  if (status == NATS_OK) return;
  std::string text = nats_error_text(context, status, js_code);
  if (nats_status_is_transient(status)) throw nats_unavailable(text, status, js_code);
  throw nats_error(text, status, js_code);
}

const char* to_string(nats_event e) {
  switch (e) {
    case nats_event::connected:
      return "connected";
    case nats_event::disconnected:
      return "disconnected";
    case nats_event::reconnected:
      return "reconnected";
    case nats_event::closed:
      return "closed";
    case nats_event::error:
      return "error";
  }
  return "?";
}

nats_connection::nats_connection(nats_connection_options opts, state_callback cb)
    : opts_(std::move(opts)), on_state_(std::move(cb)) {}

std::shared_ptr<nats_connection> nats_connection::connect(nats_connection_options opts,
                                                          state_callback on_state) {
  if (opts.urls.empty())
    throw nats_error("NATS connection: no server URL given", NATS_INVALID_ARG, 0);
  for (const auto& u : opts.urls) {
    if (u.empty()) throw nats_error("NATS connection: an empty server URL", NATS_INVALID_ARG, 0);
  }
  if (opts.user.empty() != opts.password.empty()) {
    throw nats_error("NATS connection: user and password go together (one of them is empty)",
                     NATS_INVALID_ARG, 0);
  }
  std::shared_ptr<nats_connection> self(new nats_connection(std::move(opts), std::move(on_state)));
  const auto& o = self->opts_;

  options_guard g;
  check_option("create", natsOptions_Create(&g.o));
  std::vector<const char*> urls;
  for (const auto& u : o.urls) urls.push_back(u.c_str());
  check_option("servers", natsOptions_SetServers(g.o, urls.data(), static_cast<int>(urls.size())));
  check_option("no randomize", natsOptions_SetNoRandomize(g.o, true));
  check_option("name", natsOptions_SetName(g.o, o.name.c_str()));
  check_option("timeout", natsOptions_SetTimeout(g.o, o.connect_timeout.count()));
  check_option("allow reconnect", natsOptions_SetAllowReconnect(g.o, true));
  check_option("max reconnect", natsOptions_SetMaxReconnect(g.o, o.max_reconnect));
  check_option("reconnect wait", natsOptions_SetReconnectWait(g.o, o.reconnect_wait.count()));
  check_option("reconnect buffer", natsOptions_SetReconnectBufSize(g.o, o.reconnect_buffer_bytes));
  check_option("ping interval", natsOptions_SetPingInterval(g.o, o.ping_interval.count()));
  check_option("max pings out", natsOptions_SetMaxPingsOut(g.o, o.max_pings_out));
  if (!o.user.empty()) {
    check_option("user", natsOptions_SetUserInfo(g.o, o.user.c_str(), o.password.c_str()));
  }
  if (!o.token.empty()) check_option("token", natsOptions_SetToken(g.o, o.token.c_str()));
  if (!o.credentials_file.empty()) {
    check_option("credentials file",
                 natsOptions_SetUserCredentialsFromFiles(g.o, o.credentials_file.c_str(), nullptr));
  }
  if (o.tls) check_option("TLS", natsOptions_SetSecure(g.o, true));
  if (!o.tls_ca_file.empty()) {
    check_option("TLS CA file", natsOptions_LoadCATrustedCertificates(g.o, o.tls_ca_file.c_str()));
  }
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    throw nats_error(
        "NATS connection: a TLS client certificate needs its key and the key its "
        "certificate (one of tls_cert_file / tls_key_file is empty)",
        NATS_INVALID_ARG, 0);
  }
  if (!o.tls_cert_file.empty()) {
    check_option(
        "TLS client certificate",
        natsOptions_LoadCertificatesChain(g.o, o.tls_cert_file.c_str(), o.tls_key_file.c_str()));
  }
  if (!o.tls_expected_hostname.empty()) {
    check_option("TLS expected host name",
                 natsOptions_SetExpectedHostname(g.o, o.tls_expected_hostname.c_str()));
  }
  void* closure = self.get();
  check_option("disconnected callback",
               natsOptions_SetDisconnectedCB(g.o, &on_disconnected, closure));
  check_option("reconnected callback", natsOptions_SetReconnectedCB(g.o, &on_reconnected, closure));
  check_option("closed callback", natsOptions_SetClosedCB(g.o, &on_closed, closure));
  check_option("error handler", natsOptions_SetErrorHandler(
                                    g.o,
                                    [](natsConnection* nc, natsSubscription* sub, natsStatus err,
                                       void* c) { on_async_error(nc, sub, err, c); },
                                    closure));
  if (o.retry_on_failed_connect) {
    check_option("retry on failed connect",
                 natsOptions_SetRetryOnFailedConnect(g.o, true, &on_connected, closure));
  }

  natsConnection* nc = nullptr;
  natsStatus s = natsConnection_Connect(&nc, g.o);
  if (s == NATS_NOT_YET_CONNECTED && o.retry_on_failed_connect) s = NATS_OK;  // keeps trying
  if (s != NATS_OK) {
    std::string list;
    for (const auto& u : o.urls) list += (list.empty() ? "" : ", ") + u;
    // natsConnection_Connect destroys nothing we own on failure; nc stays null.
    nats_throw("NATS connect to " + list, s);
  }
  self->nc_ = nc;
  return self;
}

nats_connection::~nats_connection() {
  if (nc_ == nullptr) return;
  // Close, then wait (bounded) for the closed callback: nats.c runs the
  // connection callbacks on a thread of its own, in order, and the closed one
  // comes last; after it no callback can reach this object any more.
  natsConnection_Close(nc_);
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(5), [&] { return closed_cb_ran_; });
  }
  natsConnection_Destroy(nc_);
}

void nats_connection::emit(nats_event e, const std::string& detail) {
  if (on_state_) {
    try {
      on_state_(e, detail);
    } catch (...) {
      // A callback must not throw into nats.c.
    }
  }
}

void nats_connection::on_disconnected(natsConnection* nc, void* self) {
  auto* me = static_cast<nats_connection*>(self);
  const char* last = nullptr;
  natsConnection_GetLastError(nc, &last);
  me->emit(nats_event::disconnected, last != nullptr ? last : "");
}

void nats_connection::on_reconnected(natsConnection* nc, void* self) {
  char url[256] = {0};
  natsConnection_GetConnectedUrl(nc, url, sizeof url);
  static_cast<nats_connection*>(self)->emit(nats_event::reconnected, url);
}

void nats_connection::on_connected(natsConnection* nc, void* self) {
  char url[256] = {0};
  natsConnection_GetConnectedUrl(nc, url, sizeof url);
  static_cast<nats_connection*>(self)->emit(nats_event::connected, url);
}

void nats_connection::on_closed(natsConnection* nc, void* self) {
  auto* me = static_cast<nats_connection*>(self);
  const char* last = nullptr;
  natsConnection_GetLastError(nc, &last);
  me->emit(nats_event::closed, last != nullptr ? last : "");
  std::lock_guard<std::mutex> lock(me->mu_);
  me->closed_cb_ran_ = true;
  me->cv_.notify_all();
}

void nats_connection::on_async_error(natsConnection*, natsSubscription*, int status, void* self) {
  static_cast<nats_connection*>(self)->emit(nats_event::error,
                                            natsStatus_GetText(static_cast<natsStatus>(status)));
}

bool nats_connection::connected() const {
  return natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED;
}

bool nats_connection::closed() const {
  return natsConnection_IsClosed(nc_);
}

std::string nats_connection::connected_url() const {
  char url[256] = {0};
  if (natsConnection_GetConnectedUrl(nc_, url, sizeof url) != NATS_OK) return {};
  return url;
}

int64_t nats_connection::max_payload() const {
  return natsConnection_GetMaxPayload(nc_);
}

void nats_connection::flush(std::chrono::milliseconds timeout) {
  nats_throw("NATS flush", natsConnection_FlushTimeout(nc_, timeout.count()));
}

uint64_t nats_connection::reconnects() const {
  natsStatistics* st = nullptr;
  if (natsStatistics_Create(&st) != NATS_OK) return 0;
  uint64_t reconnects = 0;
  if (natsConnection_GetStats(nc_, st) == NATS_OK) {
    natsStatistics_GetCounts(st, nullptr, nullptr, nullptr, nullptr, &reconnects);
  }
  natsStatistics_Destroy(st);
  return reconnects;
}

}  // namespace fraiseql
