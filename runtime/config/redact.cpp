#include "runtime/config/redact.hpp"

#include "runtime/config/text.hpp"

#include <algorithm>
#include <string_view>

namespace fraiseql {

namespace {

using std::string;
using std::string_view;

using config_text::is_space;
using config_text::lower;

/// Masks the value of every libpq `password` keyword in a key=value string.
string redact_conninfo(const string& s) {
  string out;
  size_t i = 0;
  while (i < s.size()) {
    const bool at_word_start = i == 0 || is_space(s[i - 1]);
    if (at_word_start && lower(string_view(s).substr(i, 8)) == "password") {
      size_t j = i + 8;
      while (j < s.size() && is_space(s[j])) ++j;
      if (j < s.size() && s[j] == '=') {
        ++j;
        while (j < s.size() && is_space(s[j])) ++j;
        out.append(s, i, j - i);
        out += "***";
        if (j < s.size() && s[j] == '\'') {
          ++j;
          while (j < s.size() && s[j] != '\'') j += (s[j] == '\\' && j + 1 < s.size()) ? 2 : 1;
          if (j < s.size()) ++j;
        } else {
          while (j < s.size() && !is_space(s[j])) ++j;
        }
        i = j;
        continue;
      }
    }
    out += s[i++];
  }
  return out;
}

}  // namespace

std::string redact_url(const std::string& url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return redact_conninfo(url);
  const size_t auth_begin = scheme_end + 3;
  const size_t auth_end = std::min(url.find_first_of("/?#", auth_begin), url.size());
  std::string out = url.substr(0, auth_begin);
  const std::string authority = url.substr(auth_begin, auth_end - auth_begin);
  const size_t at = authority.rfind('@');
  if (at != std::string::npos) {
    const std::string userinfo = authority.substr(0, at);
    const size_t colon = userinfo.find(':');
    if (colon != std::string::npos)
      out += userinfo.substr(0, colon) + ":***";
    else
      out += userinfo;
    out += authority.substr(at);
  } else {
    out += authority;
  }
  // Query parameters named password (libpq accepts them in URLs).
  std::string rest = url.substr(auth_end);
  const size_t q = rest.find('?');
  if (q != std::string::npos) {
    const size_t frag = std::min(rest.find('#', q), rest.size());
    std::string query;
    size_t i = q + 1;
    while (i <= frag) {
      size_t amp = std::min(rest.find('&', i), frag);
      const std::string param = rest.substr(i, amp - i);
      const size_t eq = param.find('=');
      if (!query.empty()) query += '&';
      if (eq != std::string::npos && lower(param.substr(0, eq)) == "password")
        query += param.substr(0, eq) + "=***";
      else
        query += param;
      i = amp + 1;
    }
    rest = rest.substr(0, q + 1) + query + rest.substr(frag);
  }
  return out + rest;
}

}  // namespace fraiseql
