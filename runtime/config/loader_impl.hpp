#pragma once

// The configuration loader's walker, internal to runtime/config. One object
// walks one parsed file: reader.cpp holds its error reporting and generic
// readers (descriptors included), loader.cpp the fixed sections, the
// environment and the checks on the effective configuration, observers.cpp
// [[observers]] with their actions and retry policy.

#include "runtime/config/descriptors.hpp"
#include "runtime/config/loader.hpp"
#include "runtime/config/toml_util.hpp"

#include <toml++/toml.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boost::json {
class value;
}

namespace fraiseql::config_detail {

/// Where a value was set, for checks that run on the effective configuration.
struct origin {
  std::string file;
  uint32_t line = 0;
  uint32_t column = 0;
  std::string key;
};

enum class got { absent, bad, ok };

/// What reading a section gave for each of its options, by key.
class section_result {
 public:
  void add(std::string_view key, got g) { results_.emplace_back(key, g); }
  got operator[](std::string_view key) const {
    for (const auto& [k, g] : results_)
      if (k == key) return g;
    return got::absent;
  }

 private:
  std::vector<std::pair<std::string_view, got>> results_;
};

class loader {
 public:
  loader(std::string file, env_lookup env, std::string_view role = "all")
      : file_(std::move(file)), env_(env), role_(role) {}

  config_result run(const toml::table& root);

 private:
  using string = std::string;
  using string_view = std::string_view;

  // --- errors (reader.cpp) ---
  void error_at(const toml::source_region& r, const string& key, string message);
  void error_at(const toml::node& n, const string& key, string message);
  void error_at(const origin& o, string message);
  void error_env(const char* var, string message);
  void type_error(const toml::node& n, const string& key, string_view expected);
  origin origin_of(const toml::node& n, string key) const;
  static origin env_origin(const char* var) { return origin{env_source, 0, 0, var}; }
  void sort_errors();
  /// A key that is accepted but does nothing here (config_result::warnings).
  void warn_at(const origin& o, string message);
  /// The keys set in this configuration (TOML or environment) that have no effect.
  void collect_warnings();
  /// Where `key` was set, or null when it keeps its default.
  const origin* set_at(const string& key) const {
    auto it = origins_.find(key);
    return it == origins_.end() ? nullptr : &it->second;
  }

  // --- generic readers (reader.cpp) ---
  void check_keys(const toml::table& t, const string& path, const key_list& known,
                  string_view where);
  void report_key(const toml::key& k, const toml::node& v, const string& path, string msg);
  template <class T>
  got read_typed(const toml::table& t, string_view key, const string& path, string_view expected,
                 T& out);
  got read_string(const toml::table& t, string_view key, const string& path, string& out);
  /// An array of strings, each checked by `o.check`.
  got read_strings(const toml::table& t, const string& path, const config_schema::option_spec& o,
                   config_schema::value& out);
  /// A string that must be present: absent is reported as missing (`what` it should be).
  got read_required(const toml::table& t, string_view key, const string& path, string_view what,
                    string& out);
  got read_bool(const toml::table& t, string_view key, const string& path, bool& out);
  got read_u32(const toml::table& t, string_view key, const string& path, uint64_t min,
               uint64_t max, uint32_t& out);
  got read_number(const toml::table& t, string_view key, const string& path, double low,
                  double high, bool low_exclusive, double& out);
  got read_enum(const toml::table& t, string_view key, const string& path, const key_list& allowed,
                bool fold, string& out);
  const toml::table* read_table(const toml::table& t, string_view key, const string& path);
  void missing(const toml::table& t, const string& key, string message);
  /// An environment variable name at `key`, and its (non-empty) value.
  got read_env_ref(const toml::table& t, string_view key, const string& p, string& name,
                   string& value);

  /// One described option from the file: type, bounds, validator.
  got read_option(const toml::table& t, const string& path, const config_schema::option_spec& o,
                  config_schema::value& out);
  /// One described option from its variable's value; false when refused (reported).
  bool parse_env_option(const char* var, const string& raw, const config_schema::option_spec& o,
                        config_schema::value& out);
  /// The variable of `o` (or its alias) when set and not empty.
  std::optional<std::pair<const char*, string>> env_of(const config_schema::option_spec& o) const;
  std::optional<string> env(const char* name) const;

  /// Checks the keys of `t` and reads every option of `sec` not read by hand
  /// into `out`, remembering where each value came from.
  template <class S>
  section_result read_section(const toml::table& t, const string& path,
                              const config_schema::section<S>& sec, S& out) {
    key_list keys;
    for (const auto& o : sec.options) keys.push_back(o.key);
    check_keys(t, path, keys, "[" + string(sec.name) + "]");
    section_result result;
    for (const auto& o : sec.options) {
      if (o.by_hand) continue;
      config_schema::value v;
      const got g = read_option(t, path, o, v);
      if (g == got::ok) {
        o.set(out, v);
        origins_[join_path(path, o.key)] = origin_of(*t.get(o.key), join_path(path, o.key));
      }
      result.add(o.key, g);
    }
    return result;
  }

  /// Applies the variables of `sec` (those not read by hand) to `out`; when
  /// `out` is null (an optional section that is absent) each one set is an
  /// error saying `absent`.
  template <class S>
  void apply_env_section(const config_schema::section<S>& sec, S* out,
                         const char* absent = nullptr) {
    for (const auto& o : sec.options) {
      if (o.env_kind == config_schema::env_form::none ||
          o.env_kind == config_schema::env_form::by_hand)
        continue;
      const auto var = env_of(o);
      if (!var) continue;
      if (out == nullptr) {
        error_env(var->first, absent);
        continue;
      }
      config_schema::value v;
      if (!parse_env_option(var->first, var->second, o, v)) continue;
      o.set(*out, v);
      origins_[string(sec.name) + "." + string(o.key)] = env_origin(var->first);
    }
  }
  /// Where the effective value of `key` ("transport.transport") was set.
  const origin& origin_at(const string& key) { return origins_[key]; }

  // --- fixed sections (loader.cpp) ---
  void walk_root(const toml::table& root);
  void walk_database(const toml::table& t);
  void walk_redis(const toml::table& t);
  void walk_nats(const toml::table& t);
  /// user_env / password_env / token_env of [nats], resolved now.
  void read_nats_auth(const toml::table& t, nats_config& n);
  void walk_control(const toml::table& t);
  void walk_cluster(const toml::table& t);
  /// The token and TLS keys [control] and [cluster] share.
  struct auth_fields {
    string& token_env;
    string& token_file;
    string& token;
    const string& cert;
    const string& key;
    const string& ca;
  };
  void read_auth(const toml::table& t, const string& p, auth_fields c);
  void apply_env();
  void apply_database_env();
  void apply_log_env();
  void apply_redis_env();
  void apply_nats_env();
  void final_checks();
  /// [audit]: the Elasticsearch backend's required and checked keys.
  void audit_checks();
  /// [audit] keys that have no effect (disabled, other backend, role).
  void audit_warnings();
  /// config::roles for role_ (resolve_roles), errors and warnings located.
  void settle_roles();
  /// [transport] and [nats] keys that have no effect with transport "postgres".
  void transport_warnings();

  // --- [[observers]] (observers.cpp) ---
  void walk_observers(const toml::node& n);
  const toml::node* walk_observer(const toml::table& t, size_t i, observer_config& obs);
  bool walk_action(const toml::table& t, const string& p, action_config& a);
  void read_async(const toml::table& t, const string& p);
  void settle_async();
  void read_retry_statuses(const toml::table& t, const string& p, http_retry_config& out);
  void read_timeout(const toml::table& t, const string& p, uint32_t& out);
  webhook_action_config walk_webhook(const toml::table& t, const string& p);
  slack_action_config walk_slack(const toml::table& t, const string& p);
  email_action_config walk_email(const toml::table& t, const string& p);
  database_action_config walk_database_action(const toml::table& t, const string& p);
  nats_action_config walk_nats_action(const toml::table& t, const string& p);
  void settle_nats_urls();
  void settle_concurrency();
  void concurrency_warnings();
  /// TOML value -> JSON, reporting unsupported types (dates, non-finite floats).
  bool to_json(const toml::node& n, const string& where, boost::json::value& out);
  void walk_retry(const toml::table& t, const string& p, retry_config& r);

  string file_;
  env_lookup env_;
  string role_;
  config cfg_;
  std::vector<config_error> errors_;
  std::vector<config_error> warnings_;
  std::vector<size_t> observer_index_;  // array index of each cfg_.observers entry
  std::map<string, origin> origins_;    // dotted key -> where its value was set

  const toml::table* database_table_ = nullptr;
  bool url_given_ = false;
  string url_env_;
  origin url_env_origin_;
  origin database_origin_;
  const toml::table* redis_table_ = nullptr;
  bool redis_url_missing_ = false;
  const toml::table* nats_table_ = nullptr;
  std::map<string, std::pair<bool, origin>> async_keys_;  // action path -> explicit async
  std::map<string, origin> nats_url_pending_;             // nats action path without url -> where
};

}  // namespace fraiseql::config_detail
