#include "runtime/io/net/smtp_client.hpp"

#include "runtime/io/net/curl_multi_worker.hpp"
#include "runtime/io/net/http_client.hpp"  // http_global_init

#include <curl/curl.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace fraiseql {

namespace {

struct mail_transfer {
  smtp_message msg;
  smtp_client::callback cb;
  CURL* easy = nullptr;
  curl_slist* rcpt = nullptr;
  size_t sent = 0;  // bytes of msg.data handed to curl
  std::chrono::steady_clock::time_point started;
  char errbuf[CURL_ERROR_SIZE] = {0};
};

size_t on_read(char* buf, size_t size, size_t n, void* user) {
  auto* t = static_cast<mail_transfer*>(user);
  const size_t room = size * n;
  const size_t left = t->msg.data.size() - t->sent;
  const size_t len = std::min(room, left);
  std::memcpy(buf, t->msg.data.data() + t->sent, len);
  t->sent += len;
  return len;
}

std::string base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(&out[0]),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

/// A header value safe for one line: CR/LF/NUL become spaces; non-ASCII text
/// is sent as an RFC 2047 encoded word.
std::string header_text(const std::string& v) {
  std::string clean;
  bool ascii = true;
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\r' || c == '\n' || c == '\0')
      clean += ' ';
    else
      clean += c;
    if (u >= 0x80) ascii = false;
  }
  if (ascii && clean.size() <= 900) return clean;
  return "=?UTF-8?B?" + base64(clean) + "?=";
}

}  // namespace

std::string quoted_printable(const std::string& text) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  size_t col = 0;
  auto put = [&](const std::string& piece) {
    // Soft line break before exceeding 76 characters.
    if (col + piece.size() > 75) {
      out += "=\r\n";
      col = 0;
    }
    out += piece;
    col += piece.size();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;  // CRLF: take the LF
    if (c == '\n') {
      out += "\r\n";
      col = 0;
      continue;
    }
    const bool at_eol = i + 1 == text.size() || text[i + 1] == '\n' ||
                        (text[i + 1] == '\r' && i + 2 < text.size() && text[i + 2] == '\n');
    const bool plain = (c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol);
    // A leading '.' is left to curl's dot-stuffing; encode it anyway so no
    // line ever starts with one.
    if (plain && !(c == '.' && col == 0)) {
      put(std::string(1, static_cast<char>(c)));
    } else {
      put(std::string{'=', hex[c >> 4], hex[c & 15]});
    }
  }
  return out;
}

std::string rfc5322_date_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

std::string format_email(const email_parts& p) {
  std::string to;
  for (const auto& a : p.to) {
    if (!to.empty()) to += ", ";
    to += a;
  }
  std::string m;
  m += "From: " + p.from + "\r\n";
  m += "To: " + to + "\r\n";
  m += "Subject: " + header_text(p.subject) + "\r\n";
  m += "Date: " + p.date + "\r\n";
  m += "Message-ID: <" + p.message_id + ">\r\n";
  for (const auto& h : p.headers) m += h + "\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\n";
  m += "Content-Transfer-Encoding: quoted-printable\r\n";
  m += "\r\n";
  m += quoted_printable(p.body);
  m += "\r\n";
  return m;
}

struct smtp_client::impl final : curl_multi_worker<smtp_client::impl, mail_transfer> {
  impl() { launch(); }
  ~impl() { shutdown(); }

  CURL* start(mail_transfer& t) {
    CURL* h = curl_easy_init();
    t.easy = h;
    const auto& m = t.msg;
    curl_easy_setopt(h, CURLOPT_URL, m.url.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, ("<" + m.from + ">").c_str());
    for (const auto& r : m.to) t.rcpt = curl_slist_append(t.rcpt, ("<" + r + ">").c_str());
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, t.rcpt);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &t);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(m.data.size()));
    // starttls: STARTTLS is required (no silent fallback to plain text);
    // tls: the smtps:// URL makes the connection TLS from the start.
    curl_easy_setopt(h, CURLOPT_USE_SSL,
                     m.security == smtp_security::none ? static_cast<long>(CURLUSESSL_NONE)
                                                       : static_cast<long>(CURLUSESSL_ALL));
    if (!m.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, m.ca_file.c_str());
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, m.verify_tls ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, m.verify_tls ? 2L : 0L);
    if (!m.username.empty()) {
      curl_easy_setopt(h, CURLOPT_USERNAME, m.username.c_str());
      curl_easy_setopt(h, CURLOPT_PASSWORD, m.password.c_str());
    }
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(m.timeout.count()));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min<int64_t>(m.timeout.count(), 10000)));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t.errbuf);
    curl_easy_setopt(h, CURLOPT_PRIVATE, &t);
    curl_multi_add_handle(multi, h);
    return h;
  }

  void release(CURL* h, mail_transfer& t) {
    curl_multi_remove_handle(multi, h);
    curl_easy_cleanup(h);
    curl_slist_free_all(t.rcpt);
    t.rcpt = nullptr;
  }

  void finish(CURL* h, CURLcode code, std::unique_ptr<mail_transfer> t) {
    smtp_result r;
    r.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - t->started);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.reply);
    if (code != CURLE_OK) {
      r.timed_out = code == CURLE_OPERATION_TIMEDOUT;
      r.error = t->errbuf[0] ? t->errbuf : curl_easy_strerror(code);
    }
    release(h, *t);
    t->cb(std::move(r));
  }

  void abandon(CURL* h, std::unique_ptr<mail_transfer> t) {
    release(h, *t);
    fail(std::move(t), "shutting down");
  }

  static void fail(std::unique_ptr<mail_transfer> t, const std::string& why) {
    smtp_result r;
    r.error = why;
    t->cb(std::move(r));
  }

  void stopped() {}
};

smtp_client::smtp_client() {
  http_global_init();
  impl_ = std::make_unique<impl>();
}

smtp_client::~smtp_client() = default;

void smtp_client::submit(smtp_message msg, callback cb) {
  auto t = std::make_unique<mail_transfer>();
  t->msg = std::move(msg);
  t->cb = std::move(cb);
  t->started = std::chrono::steady_clock::now();
  impl_->enqueue(std::move(t));
}

}  // namespace fraiseql
