#include "runtime/core/replay.hpp"

#include "runtime/core/observers.hpp"

#include <algorithm>
#include <cctype>

namespace fraiseql {

void narrow_replay_observers(const event& ev, const std::string& listener_id,
                             const observer_registry& registry, std::vector<uint32_t>& observers) {
  if (ev.replay_id == 0) return;
  if (ev.replay_listener != listener_id) {
    observers.clear();
    return;
  }
  if (ev.replay_observer.empty()) return;
  observers.erase(std::remove_if(observers.begin(), observers.end(),
                                 [&](uint32_t o) {
                                   return o >= registry.size() ||
                                          registry.config(o).name != ev.replay_observer;
                                 }),
                  observers.end());
}

std::optional<replay_bound> parse_replay_bound(const std::string& raw) {
  size_t b = 0, e = raw.size();
  while (b < e && std::isspace(static_cast<unsigned char>(raw[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(raw[e - 1]))) --e;
  if (b == e) return std::nullopt;
  std::string t = raw.substr(b, e - b);
  bool uuid = t.size() == 36;
  for (size_t i = 0; uuid && i < t.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    uuid = dash ? t[i] == '-' : std::isxdigit(static_cast<unsigned char>(t[i])) != 0;
  }
  replay_bound r;
  if (uuid) {
    r.k = replay_bound::kind::event_id;
    for (auto& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  r.text = std::move(t);
  return r;
}

}  // namespace fraiseql

namespace fraiseql {

std::optional<std::string> sql_condition_problem(const std::string& s) {
  auto at = [](size_t i, const std::string& what) {
    return "at character " + std::to_string(i + 1) + ": " + what;
  };
  bool blank = true;
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c))) blank = false;
  if (blank) return std::string("the condition is empty");
  std::vector<size_t> open;  // positions of unclosed '('
  const size_t n = s.size();
  for (size_t i = 0; i < n; ++i) {
    const char c = s[i];
    if (c == '\'') {
      // E'...' takes backslash escapes; '' is a quote in both forms.
      const bool escapes =
          i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e') &&
          (i < 2 || !(std::isalnum(static_cast<unsigned char>(s[i - 2])) || s[i - 2] == '_'));
      size_t j = i + 1;
      for (; j < n; ++j) {
        if (escapes && s[j] == '\\') {
          ++j;
          continue;
        }
        if (s[j] == '\'') {
          if (j + 1 < n && s[j + 1] == '\'') {
            ++j;
            continue;
          }
          break;
        }
      }
      if (j >= n) return at(i, "unterminated string literal");
      i = j;
    } else if (c == '"') {
      size_t j = i + 1;
      for (; j < n; ++j) {
        if (s[j] == '"') {
          if (j + 1 < n && s[j + 1] == '"') {
            ++j;
            continue;
          }
          break;
        }
      }
      if (j >= n) return at(i, "unterminated quoted identifier");
      i = j;
    } else if (c == '$' && (i == 0 || !(std::isalnum(static_cast<unsigned char>(s[i - 1])) ||
                                        s[i - 1] == '_'))) {
      // $tag$ ... $tag$ (a $1 parameter has a digit first: not a quote).
      size_t j = i + 1;
      while (j < n && (std::isalpha(static_cast<unsigned char>(s[j])) || s[j] == '_' ||
                       (j > i + 1 && std::isdigit(static_cast<unsigned char>(s[j])))))
        ++j;
      if (j < n && s[j] == '$') {
        const std::string tag = s.substr(i, j - i + 1);
        const auto end = s.find(tag, j + 1);
        if (end == std::string::npos) return at(i, "unterminated dollar-quoted string " + tag);
        i = end + tag.size() - 1;
      }
    } else if (c == '-' && i + 1 < n && s[i + 1] == '-') {
      return at(i, "comments (--) are not allowed in the condition");
    } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
      return at(i, "comments (/* */) are not allowed in the condition");
    } else if (c == ';') {
      return at(i, "';' is not allowed: the condition is one SQL expression");
    } else if (c == '(') {
      open.push_back(i);
    } else if (c == ')') {
      if (open.empty()) return at(i, "')' without a matching '('");
      open.pop_back();
    }
  }
  if (!open.empty()) return at(open.back(), "'(' is never closed");
  return std::nullopt;
}

}  // namespace fraiseql
