#pragma once

// Shared by the configuration tests: a fake environment, error lookups and
// small valid inputs.

#include "runtime/config/loader.hpp"
#include "runtime/config/model.hpp"

#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <utility>

namespace config_test {

using fraiseql::config_error;
using fraiseql::config_result;

// env_lookup is a plain function pointer, so the fake environment is global.
inline std::map<std::string, std::string>& fake_vars() {
  static std::map<std::string, std::string> vars;
  return vars;
}

inline std::optional<std::string> fake_env(const char* name) {
  auto it = fake_vars().find(name);
  if (it == fake_vars().end()) return std::nullopt;
  return it->second;
}

inline std::optional<std::string> no_env(const char*) {
  return std::nullopt;
}

/// Sets the fake environment for one scope.
struct scoped_env {
  scoped_env() { fake_vars().clear(); }
  scoped_env(std::initializer_list<std::pair<const std::string, std::string>> vars) {
    fake_vars() = vars;
  }
  explicit scoped_env(const std::map<std::string, std::string>& vars) { fake_vars() = vars; }
  ~scoped_env() { fake_vars().clear(); }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;
};

inline std::string all_errors(const config_result& r) {
  std::string out;
  for (const auto& e : r.errors) out += e.to_string() + "\n";
  return out;
}

inline const config_error* find_error(const config_result& r, const std::string& key) {
  for (const auto& e : r.errors)
    if (e.key == key) return &e;
  return nullptr;
}

inline const char* const db = "[database]\nurl = \"postgresql://localhost/app\"\n";

// A valid observer, appended where a case needs one.
inline const char* const observer =
    "[[observers]]\n"
    "event_type = \"INSERT\"\n"
    "entity = \"Order\"\n"
    "[[observers.actions]]\n"
    "type = \"log\"\n";

}  // namespace config_test
