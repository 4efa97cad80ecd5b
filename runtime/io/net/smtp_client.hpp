#pragma once

// Asynchronous SMTP submission over one libcurl multi handle driven by a
// thread of its own (the same shape as http_client): actor threads never block
// on a mail server, many messages are in flight at once, and a per-message
// timeout aborts the transfer and closes its connection. Every message uses a
// fresh connection (no SMTP session is reused), so nothing stale lingers.

#include "runtime/config/model.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace fraiseql {

struct smtp_message {
  /// "smtp://host:port" or "smtps://host:port".
  std::string url;
  smtp_security security = smtp_security::starttls;
  /// Envelope sender and recipients (bare addresses).
  std::string from;
  std::vector<std::string> to;
  /// The RFC 5322 message, CRLF line endings (see format_email).
  std::string data;
  std::string username;
  std::string password;
  std::string ca_file;
  bool verify_tls = true;
  std::chrono::milliseconds timeout{30000};
};

struct smtp_result {
  /// Last SMTP reply code (250, 451, 550, ...), 0 when none was received.
  long reply = 0;
  /// Empty on success.
  std::string error;
  bool timed_out = false;
  std::chrono::microseconds elapsed{0};
};

class smtp_client {
 public:
  using callback = std::function<void(smtp_result)>;

  smtp_client();
  /// Stops the thread; messages in flight complete with error "shutting down".
  ~smtp_client();
  smtp_client(const smtp_client&) = delete;
  smtp_client& operator=(const smtp_client&) = delete;

  /// Thread-safe; `cb` is called exactly once, on the client thread.
  void submit(smtp_message msg, callback cb);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Parts of one email, before formatting.
struct email_parts {
  std::string from;
  std::vector<std::string> to;
  std::string subject;
  std::string body;
  /// Without angle brackets: "<hex>@fraiseql-observer".
  std::string message_id;
  /// RFC 5322 date, e.g. "Mon, 23 Nov 2026 01:02:03 +0000".
  std::string date;
  /// Extra "Name: value" header lines (already validated).
  std::vector<std::string> headers;
};

/// An RFC 5322 message: From, To, Subject (RFC 2047 encoded when not plain
/// ASCII; CR/LF removed), Date, Message-ID, MIME-Version, text/plain UTF-8
/// body in quoted-printable (so long lines and any bytes survive SMTP).
std::string format_email(const email_parts& p);

/// Quoted-printable (RFC 2045) with CRLF line breaks; input line breaks
/// (LF or CRLF) become CRLF.
std::string quoted_printable(const std::string& text);

/// The current time as an RFC 5322 date in UTC.
std::string rfc5322_date_now();

}  // namespace fraiseql
