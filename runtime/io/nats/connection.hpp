#pragma once

// A NATS connection (nats.c 3.4.1) that reconnects forever, with its state
// changes surfaced to the owner, and the errors every call of this library
// throws.
//
// Blocking calls (connect, JetStream API requests, fetch) are bounded by the
// timeouts in the options; call them from detached actors or worker threads,
// never from an actor on CAF's cooperative scheduler. Callbacks (state
// changes, publish completions) run on nats.c's own threads: keep them short
// and never destroy the object that invoked them from inside them.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

struct __natsConnection;    // nats.c: natsConnection
struct __natsSubscription;  // nats.c: natsSubscription

namespace fraiseql {

/// A failure a retry will not fix: bad configuration, an invalid subject,
/// a stream or consumer the server refuses, a message already acknowledged.
/// `status` is the natsStatus, `js_code` the JetStream error code (0: none).
class nats_error : public std::runtime_error {
 public:
  nats_error(const std::string& what, int status, int js_code)
      : std::runtime_error(what), status_(status), js_code_(js_code) {}
  int status() const { return status_; }
  int js_code() const { return js_code_; }

 private:
  int status_;
  int js_code_;
};

/// "Retry later": no server reachable, connection closed or reconnecting,
/// request timed out, JetStream not answering (no responders).
class nats_unavailable : public nats_error {
 public:
  using nats_error::nats_error;
};

/// Text for a natsStatus: natsStatus_GetText plus nats.c's last error of
/// this thread (nats_GetLastError) when it says more, plus the JetStream
/// error code when not 0. `context` names the operation.
std::string nats_error_text(const std::string& context, int status, int js_code = 0);
/// Throws nats_unavailable or nats_error for a status other than NATS_OK.
void nats_throw(const std::string& context, int status, int js_code = 0);
/// True for the statuses that mean "retry later".
bool nats_status_is_transient(int status);

struct nats_connection_options {
  /// nats://host:port (tls:// for TLS); at least one. All of them are tried
  /// in this order (no randomization), at connect and at every reconnect.
  std::vector<std::string> urls;
  /// Client name shown by the server's /connz.
  std::string name = "fraiseql-observer";
  /// Credentials: user + password, or a token, or a .creds file (JWT + NKey
  /// seed). Empty: none.
  std::string user;
  std::string password;
  std::string token;
  std::string credentials_file;
  /// TLS: on with `tls` or a tls:// URL. CA bundle to verify the server
  /// (empty: the system's), client certificate and key for mutual TLS.
  bool tls = false;
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  /// Verify the server's host name against this name instead of the URL's.
  std::string tls_expected_hostname;

  /// Per TCP connect attempt.
  std::chrono::milliseconds connect_timeout{2000};
  /// Reconnect attempts: -1 = forever (the default; a bridge must never give up).
  int max_reconnect = -1;
  /// Wait between two attempts against the same server.
  std::chrono::milliseconds reconnect_wait{250};
  /// Bytes buffered while disconnected (publishes beyond fail at once).
  int reconnect_buffer_bytes = 8 * 1024 * 1024;
  /// Keep-alive: PING every interval; the connection is declared broken after
  /// max_pings_out unanswered PINGs.
  std::chrono::milliseconds ping_interval{2000};
  int max_pings_out = 3;
  /// When no server is reachable at construction: false (default) throws
  /// nats_unavailable; true returns a connection that keeps trying
  /// (state callback `connected` when it succeeds).
  bool retry_on_failed_connect = false;
  /// Timeout of JetStream API requests (stream / consumer management, info).
  std::chrono::milliseconds api_timeout{5000};
};

/// What the state callback reports.
enum class nats_event {
  connected,     ///< first connect (only with retry_on_failed_connect)
  disconnected,  ///< lost the server; nats.c reconnects on its own
  reconnected,   ///< connected again (maybe to another server of the list)
  closed,        ///< closed for good (destroyed, or reconnect attempts exhausted)
  error,         ///< an asynchronous error (slow consumer, permission violation...)
};
const char* to_string(nats_event e);

/// One connection. Thread-safe: publishers, consumers and management calls
/// of several threads share it. Hold it by shared_ptr: the publisher and the
/// consumers keep it alive.
class nats_connection {
 public:
  /// (event, detail: the server URL or the error text).
  using state_callback = std::function<void(nats_event, const std::string&)>;

  /// Connects (throws nats_unavailable when no server answers and
  /// !opts.retry_on_failed_connect, nats_error for bad options).
  static std::shared_ptr<nats_connection> connect(nats_connection_options opts,
                                                  state_callback on_state = {});
  ~nats_connection();
  nats_connection(const nats_connection&) = delete;
  nats_connection& operator=(const nats_connection&) = delete;

  /// Connected now (not reconnecting, not closed).
  bool connected() const;
  bool closed() const;
  /// The server URL connected to, empty when not connected.
  std::string connected_url() const;
  /// The max_payload announced by the server connected to (bytes; 0 when
  /// never connected).
  int64_t max_payload() const;
  /// Round trip to the server (PING/PONG) within timeout; throws on failure.
  void flush(std::chrono::milliseconds timeout);
  /// Reconnects so far.
  uint64_t reconnects() const;

  const nats_connection_options& options() const { return opts_; }
  /// The nats.c handle, for what this library does not wrap.
  __natsConnection* raw() const { return nc_; }

 private:
  explicit nats_connection(nats_connection_options opts, state_callback cb);
  static void on_disconnected(__natsConnection*, void* self);
  static void on_reconnected(__natsConnection*, void* self);
  static void on_closed(__natsConnection*, void* self);
  static void on_connected(__natsConnection*, void* self);
  static void on_async_error(__natsConnection*, __natsSubscription*, int status, void* self);
  void emit(nats_event e, const std::string& detail);

  nats_connection_options opts_;
  state_callback on_state_;
  __natsConnection* nc_ = nullptr;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool closed_cb_ran_ = false;
};

}  // namespace fraiseql
