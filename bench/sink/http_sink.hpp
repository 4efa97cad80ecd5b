// Pieces of the benchmark sink that are worth testing on their own: the
// request framer and the little JSON field scanner. Header-only, no I/O.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

namespace bench_sink {

/// Case-insensitive ASCII comparison.
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

/// One parsed HTTP/1.1 request (views into the connection buffer).
struct request {
  std::string_view method;
  std::string_view target;
  std::string_view idempotency_key;
  std::string_view body;
  bool close = false;   // "Connection: close" or HTTP/1.0 without keep-alive
  size_t consumed = 0;  // bytes of the buffer this request occupies
};

enum class parse_status { ok, incomplete, bad };

/// Frames one request at the start of buf. Bodies need Content-Length
/// (libcurl and Node's fetch send it for fixed bodies); chunked is refused.
inline parse_status parse_request(std::string_view buf, request& out) {
  auto end = buf.find("\r\n\r\n");
  if (end == std::string_view::npos)
    return buf.size() > 65536 ? parse_status::bad : parse_status::incomplete;
  std::string_view head = buf.substr(0, end);
  auto eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return parse_status::bad;
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return parse_status::bad;
  out = request{};
  out.method = line.substr(0, sp1);
  out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  bool http10 = version == "HTTP/1.0";
  bool keep_alive_header = false;
  size_t content_length = 0;
  size_t pos = eol == std::string_view::npos ? head.size() : eol + 2;
  while (pos < head.size()) {
    auto next = head.find("\r\n", pos);
    if (next == std::string_view::npos) next = head.size();
    std::string_view h = head.substr(pos, next - pos);
    pos = next + 2;
    auto colon = h.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = h.substr(0, colon);
    std::string_view value = trim(h.substr(colon + 1));
    if (iequals(name, "content-length")) {
      size_t v = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return parse_status::bad;
        v = v * 10 + static_cast<size_t>(c - '0');
      }
      content_length = v;
    } else if (iequals(name, "idempotency-key")) {
      out.idempotency_key = value;
    } else if (iequals(name, "connection")) {
      if (iequals(value, "close")) out.close = true;
      if (iequals(value, "keep-alive")) keep_alive_header = true;
    } else if (iequals(name, "transfer-encoding")) {
      if (!iequals(value, "identity")) return parse_status::bad;
    }
  }
  if (http10 && !keep_alive_header) out.close = true;
  size_t body_start = end + 4;
  if (buf.size() < body_start + content_length) return parse_status::incomplete;
  out.body = buf.substr(body_start, content_length);
  out.consumed = body_start + content_length;
  return parse_status::ok;
}

/// The raw value of the first `"name": value` in a JSON text: a string's
/// content (without quotes, escapes left as they are) or a number's text.
/// A scanner, not a parser: good for the flat envelopes the bench posts.
/// The top-level elements of a JSON array (a batched webhook's body), as
/// views into `json`; empty when `json` is not an array. Strings (and the
/// brackets and commas in them) are skipped; nothing else is validated.
inline std::vector<std::string_view> json_array_elements(std::string_view json) {
  std::vector<std::string_view> out;
  size_t p = 0;
  while (p < json.size() &&
         (json[p] == ' ' || json[p] == '\n' || json[p] == '\r' || json[p] == '\t'))
    ++p;
  if (p >= json.size() || json[p] != '[') return out;
  int depth = 0;
  size_t start = p + 1;
  for (size_t q = p; q < json.size(); ++q) {
    const char c = json[q];
    if (c == '"') {
      for (++q; q < json.size() && json[q] != '"'; ++q)
        if (json[q] == '\\') ++q;
      continue;
    }
    if (c == '[' || c == '{') {
      ++depth;
    } else if (c == ']' || c == '}') {
      if (--depth == 0) {
        if (q > start) out.push_back(json.substr(start, q - start));
        break;
      }
    } else if (c == ',' && depth == 1) {
      out.push_back(json.substr(start, q - start));
      start = q + 1;
    }
  }
  return out;
}

inline std::optional<std::string_view> json_field(std::string_view json, std::string_view name) {
  size_t from = 0;
  while (true) {
    auto at = json.find(name, from);
    if (at == std::string_view::npos) return std::nullopt;
    from = at + 1;
    if (at == 0 || json[at - 1] != '"') continue;
    size_t p = at + name.size();
    if (p >= json.size() || json[p] != '"') continue;
    ++p;
    while (p < json.size() &&
           (json[p] == ' ' || json[p] == '\t' || json[p] == '\n' || json[p] == '\r'))
      ++p;
    if (p >= json.size() || json[p] != ':') continue;
    ++p;
    while (p < json.size() &&
           (json[p] == ' ' || json[p] == '\t' || json[p] == '\n' || json[p] == '\r'))
      ++p;
    if (p >= json.size()) return std::nullopt;
    if (json[p] == '"') {
      size_t q = p + 1;
      while (q < json.size() && json[q] != '"') q += json[q] == '\\' ? 2 : 1;
      if (q >= json.size()) return std::nullopt;
      return json.substr(p + 1, q - p - 1);
    }
    size_t q = p;
    while (q < json.size() && json[q] != ',' && json[q] != '}' && json[q] != ']' && json[q] != ' ')
      ++q;
    return json.substr(p, q - p);
  }
}

inline int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

/// Microseconds since the Unix epoch of an RFC 3339 / ISO 8601 timestamp
/// ("2026-11-22T23:19:00.123456Z", "... +01:00", space instead of T) or of a
/// plain number of epoch seconds ("1795303140.123456").
inline std::optional<int64_t> parse_time_us(std::string_view s) {
  if (s.empty()) return std::nullopt;
  auto digits = [&](size_t at, size_t n, int64_t& v) {
    if (at + n > s.size()) return false;
    v = 0;
    for (size_t i = 0; i < n; ++i) {
      char c = s[at + i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    return true;
  };
  if (s.size() < 19 || s[4] != '-') {
    // Epoch seconds with an optional fraction.
    int64_t whole = 0, frac = 0, scale = 1000000;
    size_t i = 0;
    if (i >= s.size() || s[i] < '0' || s[i] > '9') return std::nullopt;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') whole = whole * 10 + (s[i++] - '0');
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        if (scale > 1) {
          scale /= 10;
          frac += (s[i] - '0') * scale;
        }
        ++i;
      }
    }
    if (i != s.size()) return std::nullopt;
    return whole * 1000000 + frac;
  }
  int64_t Y, M, D, h, m, sec;
  if (!digits(0, 4, Y) || s[4] != '-' || !digits(5, 2, M) || s[7] != '-' || !digits(8, 2, D) ||
      (s[10] != 'T' && s[10] != ' ' && s[10] != 't') || !digits(11, 2, h) || s[13] != ':' ||
      !digits(14, 2, m) || s[16] != ':' || !digits(17, 2, sec))
    return std::nullopt;
  size_t i = 19;
  int64_t frac = 0, scale = 1000000;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      if (scale > 1) {
        scale /= 10;
        frac += (s[i] - '0') * scale;
      }
      ++i;
    }
  }
  int64_t offset_s = 0;
  if (i < s.size()) {
    if (s[i] == 'Z' || s[i] == 'z') {
      ++i;
    } else if (s[i] == '+' || s[i] == '-') {
      int sign = s[i] == '-' ? -1 : 1;
      ++i;
      int64_t oh = 0, om = 0;
      if (!digits(i, 2, oh)) return std::nullopt;
      i += 2;
      if (i < s.size() && s[i] == ':') ++i;
      if (i + 2 <= s.size() && digits(i, 2, om)) i += 2;
      offset_s = sign * (oh * 3600 + om * 60);
    }
  }
  if (i != s.size()) return std::nullopt;
  int64_t days = days_from_civil(Y, static_cast<unsigned>(M), static_cast<unsigned>(D));
  int64_t secs = days * 86400 + h * 3600 + m * 60 + sec - offset_s;
  return secs * 1000000 + frac;
}

/// Parses a decimal integer (optionally quoted already stripped); nullopt otherwise.
inline std::optional<int64_t> parse_int(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

}  // namespace bench_sink
