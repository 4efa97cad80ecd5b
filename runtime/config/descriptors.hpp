#pragma once

// The scalar options of the fixed configuration sections ([database] ...
// [job_queue], and [observers.retry]), one descriptor each: key, type and
// bounds, where the value lives in the model, its FRAISEQL_* variable and a
// line of documentation. The loader reads the TOML file and the environment
// through these tables, so a bound is written once; the default is the model's
// (a default-constructed struct). tests/unit/config/test_config_docs.cpp checks
// docs/configuration.md against them.

#include "runtime/config/model.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace fraiseql::config_schema {

enum class option_type {
  boolean,  // TOML boolean
  u32,      // TOML integer in [min, max]
  number,   // TOML float or integer in [low, high] (or (low, high])
  string,   // TOML string, optionally checked by a validator
  choice,   // TOML string from a closed set
  strings,  // TOML array of strings, each checked by the validator
};

/// How the option's environment variable is read.
enum class env_form {
  none,      // the option has no variable
  value,     // as the option's type: boolean, integer in bounds, choice
  duration,  // "30s", "500ms", "2m", "1h" or bare seconds, stored in ms
  by_hand,   // read by the loader's own code (connection URLs, log directives)
};

/// A value read from the file or the environment.
using value = std::variant<bool, uint32_t, double, std::string, std::vector<std::string>>;
/// Why a string value is refused, or nullopt when it is accepted.
using validator = std::optional<std::string> (*)(const std::string&);

/// What an option is, independent of the struct that holds it.
struct option_spec {
  std::string_view key;
  option_type type = option_type::string;
  uint64_t min = 0;  // u32: inclusive bounds
  uint64_t max = 0;
  double low = 0;  // number: bounds, `low` exclusive when low_exclusive
  double high = 0;
  bool low_exclusive = false;
  std::vector<std::string_view> choices;  // choice, canonical spelling
  bool fold_case = false;                 // choice: matched ignoring case
  validator check = nullptr;              // string
  /// Read by the loader's own code (rules across keys); the tables still
  /// list it for the key check, its default and the documentation.
  bool by_hand = false;
  const char* env = nullptr;
  const char* env_alias = nullptr;  // read when `env` is unset
  env_form env_kind = env_form::none;
  std::string_view doc;
};

/// An option of the section struct S.
template <class S>
struct option : option_spec {
  std::function<void(S&, const value&)> set;
  std::function<value(const S&)> get;

  /// The FRAISEQL_* variable that overrides it (and an older alias).
  option with_env(const char* var, env_form form = env_form::value,
                  const char* alias = nullptr) const {
    option o = *this;
    o.env = var;
    o.env_kind = form;
    o.env_alias = alias;
    return o;
  }
  option validated_by(validator v) const {
    option o = *this;
    o.check = v;
    return o;
  }
  option read_by_hand() const {
    option o = *this;
    o.by_hand = true;
    return o;
  }
};

template <class S, class T>
option<S> make_option(std::string_view key, option_type type, T S::*field, std::string_view doc) {
  option<S> o;
  o.key = key;
  o.type = type;
  o.doc = doc;
  o.set = [field](S& s, const value& v) { s.*field = std::get<T>(v); };
  o.get = [field](const S& s) { return value(s.*field); };
  return o;
}

template <class S>
option<S> flag(std::string_view key, bool S::*field, std::string_view doc) {
  return make_option(key, option_type::boolean, field, doc);
}

template <class S>
option<S> integer(std::string_view key, uint32_t S::*field, uint64_t min, uint64_t max,
                  std::string_view doc) {
  option<S> o = make_option(key, option_type::u32, field, doc);
  o.min = min;
  o.max = max;
  return o;
}

/// A number in [low, high], or (low, high] when low_exclusive.
template <class S>
option<S> number(std::string_view key, double S::*field, double low, double high,
                 bool low_exclusive, std::string_view doc) {
  option<S> o = make_option(key, option_type::number, field, doc);
  o.low = low;
  o.high = high;
  o.low_exclusive = low_exclusive;
  return o;
}

template <class S>
option<S> text(std::string_view key, std::string S::*field, std::string_view doc) {
  return make_option(key, option_type::string, field, doc);
}

template <class S>
option<S> text_list(std::string_view key, std::vector<std::string> S::*field,
                    std::string_view doc) {
  return make_option(key, option_type::strings, field, doc);
}

template <class S>
option<S> choice(std::string_view key, std::string S::*field, std::vector<std::string_view> choices,
                 std::string_view doc, bool fold_case = false) {
  option<S> o = make_option(key, option_type::choice, field, doc);
  o.choices = std::move(choices);
  o.fold_case = fold_case;
  return o;
}

/// A choice stored as an enum whose enumerators are in the order of `choices`.
template <class S, class E, class = std::enable_if_t<std::is_enum_v<E>>>
option<S> choice(std::string_view key, E S::*field, std::vector<std::string_view> choices,
                 std::string_view doc) {
  option<S> o;
  o.key = key;
  o.type = option_type::choice;
  o.doc = doc;
  o.choices = std::move(choices);
  const auto names = o.choices;
  o.set = [field, names](S& s, const value& v) {
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == std::get<std::string>(v)) s.*field = static_cast<E>(i);
  };
  o.get = [field, names](const S& s) {
    return value(std::string(names.at(static_cast<size_t>(s.*field))));
  };
  return o;
}

/// The options of one table, in the order its messages list them.
template <class S>
struct section {
  std::string_view name;  // "listener", "observers.retry"
  std::vector<option<S>> options;

  const option<S>& operator[](std::string_view key) const {
    for (const auto& o : options)
      if (o.key == key) return o;
    throw std::out_of_range("no option " + std::string(key) + " in [" + std::string(name) + "]");
  }
};

struct tables {
  section<database_config> database;
  section<transport_config> transport;
  section<listener_config> listener;
  section<checkpoint_config> checkpoint;
  section<performance_config> performance;
  section<circuit_breaker_config> circuit_breaker;
  section<adaptive_concurrency_config> adaptive_concurrency;
  section<redis_config> redis;
  section<nats_config> nats;
  section<shutdown_config> shutdown;
  section<failover_config> failover;
  section<logging_config> logging;
  section<metrics_config> metrics;
  section<control_config> control;
  section<cluster_config> cluster;
  section<change_log_config> change_log;
  section<audit_config> audit;
  section<job_queue_config> job_queue;
  section<retry_config> retry;
};

/// The descriptor tables (built once).
const tables& options();

/// One option of any section, for listings and the documentation check.
struct option_info {
  std::string section;  // "listener", "observers.retry"
  const option_spec* spec = nullptr;
  /// The model's default as the documentation writes it: 1000, true, 0.5,
  /// "default" (quoted); empty for an empty string (no default).
  std::string default_text;
};

/// Every option of every section, sections in file order.
std::vector<option_info> list_options();

}  // namespace fraiseql::config_schema
