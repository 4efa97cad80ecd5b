// Loading and strict validation of the observer node's TOML configuration.
//
// The file is parsed with toml++, then every table is walked against a fixed
// set of known keys. Each problem (unknown key, wrong type, bad value) becomes a
// config_error located at the offending node; nothing stops at the first one.
// The FRAISEQL_* environment variables are applied afterwards, and the checks
// that concern the effective value (features this build lacks, the required
// database url) run last, blaming whichever source set the value.
//
// The scalar keys of the fixed sections come from the descriptor tables
// (descriptors.cpp); this file holds what does not fit a table: the database
// url and its sources, the control plane's token and TLS rules, the Redis url,
// the log directives of FRAISEQL_LOG / RUST_LOG and the checks across sections.

#include "runtime/config/loader.hpp"

#include "runtime/config/loader_impl.hpp"
#include "runtime/config/loopback.hpp"
#include "runtime/config/roles.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>

#include <sys/stat.h>
#include <unistd.h>

namespace fraiseql {

std::optional<std::string> process_env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

namespace config_detail {

using std::string;
using std::string_view;

namespace {

const char* const redis_absent =
    "is set, but Redis is not configured: add [redis] url or set FRAISEQL_REDIS_URL";

/// Reads a token file: it must exist, be non-empty and not be readable by
/// group or others (like an SSH key). Returns the problem, if any.
std::optional<string> read_token_file(const string& path, string& out) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "cannot read '" + path + "': " + std::strerror(errno);
  if ((st.st_mode & 077) != 0)
    return "'" + path + "' is readable by group or others (chmod 600 it)";
  std::ifstream in(path);
  if (!in) return "cannot read '" + path + "'";
  std::getline(in, out);
  while (!out.empty() && (out.back() == '\r' || out.back() == ' ')) out.pop_back();
  if (out.empty()) return "'" + path + "' is empty (the first line is the token)";
  return std::nullopt;
}

}  // namespace

config_result loader::run(const toml::table& root) {
  cfg_.source = file_;
  database_origin_ = origin{file_, 0, 0, "database.url"};
  walk_root(root);
  apply_env();
  final_checks();
  settle_roles();
  config_result result;
  sort_errors();
  result.errors = std::move(errors_);
  if (result.errors.empty()) {
    collect_warnings();
    result.warnings = std::move(warnings_);
  }
  if (result.errors.empty()) result.value = std::move(cfg_);
  return result;
}

void loader::collect_warnings() {
  const auto& p = cfg_.performance;
  if (cfg_.redis && !p.enable_dedup && !p.enable_caching) {
    origin o = set_at("redis.url") ? *set_at("redis.url") : origin{file_, 0, 0, "redis"};
    if (redis_table_ != nullptr) {
      o.line = redis_table_->source().begin.line;
      o.column = redis_table_->source().begin.column;
      o.key = "redis";
    }
    warn_at(o,
            "[redis] is configured, but neither [performance] enable_dedup nor enable_caching is "
            "on: the node would connect to Redis and use it for nothing");
  }
  if (const origin* o = set_at("performance.cache_capacity")) {
    if (!p.enable_caching)
      warn_at(*o, "has no effect while [performance] enable_caching is false");
    else if (cfg_.redis)
      warn_at(*o,
              "has no effect with [redis]: the result cache lives in Redis (its entries expire "
              "after cache_ttl_secs)");
  }
  if (const origin* o = set_at("performance.concurrent_timeout_ms"); o && !p.enable_concurrent)
    warn_at(*o,
            "has no effect while enable_concurrent is false (each action's own timeout_ms "
            "bounds its attempts)");
  transport_warnings();
  concurrency_warnings();
  audit_warnings();
  if (const origin* o = set_at("control.journal_size"); o && !cfg_.control.enabled)
    warn_at(*o,
            "has no effect while [control] enabled is false (the journal only serves "
            "observerctl debug-event)");
  // A variable and its alias both set: the alias is ignored.
  for (const auto& info : config_schema::list_options()) {
    const auto& o = *info.spec;
    if (o.env != nullptr && o.env_alias != nullptr && env(o.env) && env(o.env_alias))
      warn_at(env_origin(o.env_alias),
              string("is ignored: ") + o.env + " is also set and takes precedence");
  }
}

// --- sections ---------------------------------------------------------------------

void loader::walk_root(const toml::table& root) {
  static const key_list top = {"database",
                               "transport",
                               "listener",
                               "checkpoint",
                               "performance",
                               "circuit_breaker",
                               "adaptive_concurrency",
                               "redis",
                               "nats",
                               "shutdown",
                               "failover",
                               "logging",
                               "metrics",
                               "control",
                               "cluster",
                               "change_log",
                               "audit",
                               "job_queue",
                               "observers"};
  for (auto&& [k, v] : root) {
    const string_view name = k.str();
    if (contains(top, name)) continue;
    string msg = "unknown top-level key or table";
    if (auto s = suggest(name, top)) msg += "; did you mean '" + *s + "'?";
    msg += " (valid: " + list(top) + ")";
    report_key(k, v, quote_key(name), std::move(msg));
  }
  const config_schema::tables& d = config_schema::options();
  // Table by table; [database], [redis] and [control] have rules beyond their scalar keys.
  auto section = [&](const char* name, const auto& options, auto& model) {
    if (const auto* t = read_table(root, name, "")) read_section(*t, name, options, model);
  };
  if (const auto* t = read_table(root, "database", "")) walk_database(*t);
  section("transport", d.transport, cfg_.transport);
  section("listener", d.listener, cfg_.listener);
  section("checkpoint", d.checkpoint, cfg_.checkpoint);
  section("performance", d.performance, cfg_.performance);
  section("circuit_breaker", d.circuit_breaker, cfg_.circuit_breaker);
  section("adaptive_concurrency", d.adaptive_concurrency, cfg_.adaptive_concurrency);
  if (const auto* t = read_table(root, "redis", "")) walk_redis(*t);
  if (const auto* t = read_table(root, "nats", "")) walk_nats(*t);
  section("shutdown", d.shutdown, cfg_.shutdown);
  section("failover", d.failover, cfg_.failover);
  section("logging", d.logging, cfg_.logging);
  section("metrics", d.metrics, cfg_.metrics);
  if (const auto* t = read_table(root, "control", "")) walk_control(*t);
  if (const auto* t = read_table(root, "cluster", "")) walk_cluster(*t);
  section("change_log", d.change_log, cfg_.change_log);
  section("audit", d.audit, cfg_.audit);
  section("job_queue", d.job_queue, cfg_.job_queue);
  if (const toml::node* n = root.get("observers")) walk_observers(*n);
}

void loader::walk_database(const toml::table& t) {
  database_table_ = &t;
  // url: the descriptor checks it; given at all (even mistyped) means the
  // "is required" error does not apply.
  if (read_section(t, "database", config_schema::options().database, cfg_.database)["url"] ==
      got::ok)
    database_origin_ = origin_at("database.url");
  if (t.get("url") != nullptr) url_given_ = true;
  string url_env;
  if (read_string(t, "url_env", "database", url_env) == got::ok) {
    const toml::node& n = *t.get("url_env");
    if (t.get("url") != nullptr) {
      error_at(n, "database.url_env", "set either url or url_env, not both");
    } else if (!is_identifier(url_env)) {
      error_at(
          n, "database.url_env",
          "'" + url_env + "' is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
    } else {
      url_env_ = url_env;
      url_env_origin_ = origin_of(n, "database.url_env");
    }
  }
  if (t.get("url_env") != nullptr) url_given_ = true;
}

void loader::walk_redis(const toml::table& t) {
  redis_table_ = &t;
  cfg_.redis.emplace();
  if (read_section(t, "redis", config_schema::options().redis, *cfg_.redis)["url"] == got::absent)
    redis_url_missing_ = true;
}

void loader::walk_nats(const toml::table& t) {
  const string p = "nats";
  nats_table_ = &t;
  auto& n = cfg_.nats.emplace();
  read_section(t, p, config_schema::options().nats, n);
  read_nats_auth(t, n);
  // Files the client reads at connect time: refuse now what it could not read.
  for (const char* k : {"credentials_file", "tls_ca_file", "tls_cert_file", "tls_key_file"}) {
    const toml::node* v = t.get(k);
    if (v == nullptr || !v->is_string()) continue;
    const string path = v->value_or(string{});
    if (path.empty())
      error_at(*v, p + "." + k, "must not be empty (remove the key instead)");
    else if (::access(path.c_str(), R_OK) != 0)
      error_at(*v, p + "." + k, "cannot read '" + path + "': " + std::strerror(errno));
  }
  const toml::node* cert = t.get("tls_cert_file");
  const toml::node* key = t.get("tls_key_file");
  if ((cert == nullptr) != (key == nullptr)) {
    const bool has_cert = cert != nullptr;
    error_at(has_cert ? *cert : *key, p + (has_cert ? ".tls_cert_file" : ".tls_key_file"),
             has_cert ? "a client certificate needs its key: set tls_key_file as well"
                      : "a client key needs its certificate: set tls_cert_file as well");
  }
  // A partition hand-off waits out the old owner's ack wait (its
  // unacknowledged messages come back after ack_wait_ms): the lease that
  // hands the partition over must not outlast it.
  if (n.partition_lease_ms > n.ack_wait_ms) {
    const toml::node* at = t.get("partition_lease_ms");
    if (at == nullptr) at = t.get("ack_wait_ms");
    error_at(at != nullptr ? at->source() : t.source(), p + ".partition_lease_ms",
             "must be at most ack_wait_ms (" + std::to_string(n.ack_wait_ms) + "), got " +
                 std::to_string(n.partition_lease_ms) +
                 ": a partition hand-off waits out the old owner's ack wait, so the lease must "
                 "not outlast it");
  }
}

void loader::read_nats_auth(const toml::table& t, nats_config& n) {
  const string p = "nats";
  struct ref {
    const char* key;
    string& name;
    string& value;
  };
  for (const ref& r :
       {ref{"user_env", n.user_env, n.user}, ref{"password_env", n.password_env, n.password},
        ref{"token_env", n.token_env, n.token}}) {
    if (read_env_ref(t, r.key, p, r.name, r.value) != got::absent)
      origins_[p + "." + r.key] = origin_of(*t.get(r.key), p + "." + r.key);
  }
  const toml::node* user = t.get("user_env");
  const toml::node* password = t.get("password_env");
  const toml::node* token = t.get("token_env");
  const toml::node* creds = t.get("credentials_file");
  if (user != nullptr && password == nullptr)
    error_at(*user, p + ".user_env", "a user needs a password: set password_env as well");
  if (password != nullptr && user == nullptr)
    error_at(*password, p + ".password_env", "a password needs a user: set user_env as well");
  const int ways =
      (user != nullptr || password != nullptr) + (token != nullptr) + (creds != nullptr);
  if (ways > 1) {
    const toml::node* at = token != nullptr ? token : creds;
    error_at(*at, p + (at == token ? ".token_env" : ".credentials_file"),
             "set one way to authenticate: user_env with password_env, token_env, or "
             "credentials_file");
  }
}

void loader::walk_control(const toml::table& t) {
  const string p = "control";
  auto& c = cfg_.control;
  read_section(t, p, config_schema::options().control, c);
  c.port_configured = t.get("port") != nullptr;
  read_auth(t, p, {c.token_env, c.token_file, c.token, c.tls_certificate, c.tls_key, c.tls_ca});
  if (c.enabled && !is_loopback_address(c.bind) && (!c.tls() || c.token.empty())) {
    const toml::node* n = t.get("bind");
    error_at(n != nullptr ? n->source() : t.source(), p + ".bind",
             "'" + c.bind +
                 "' is not a loopback address: a control plane reachable from other "
                 "hosts requires TLS (tls_certificate, tls_key, tls_ca) and a token (token_env or "
                 "token_file)");
  }
}

void loader::walk_cluster(const toml::table& t) {
  const string p = "cluster";
  auto& c = cfg_.cluster;
  read_section(t, p, config_schema::options().cluster, c);
  read_auth(t, p, {c.token_env, c.token_file, c.token, c.tls_certificate, c.tls_key, c.tls_ca});
  if (!c.enabled) {
    for (auto&& [k, v] : t)
      if (k.str() != "enabled")
        warn_at(origin_of(v, p + "." + string(k.str())),
                "has no effect while [cluster] enabled is false");
    return;
  }
  if (c.tls() && c.token.empty())
    error_at(t, p, "TLS without a token: set token_env or token_file as well");
  if (!c.tls() || c.token.empty()) {
    // Loopback only without both: name the first address that leaves the host.
    if (!is_loopback_address(c.bind)) {
      const toml::node* n = t.get("bind");
      error_at(n != nullptr ? n->source() : t.source(), p + ".bind",
               "'" + c.bind +
                   "' is not a loopback address: a cluster reachable from other hosts requires "
                   "TLS (tls_certificate, tls_key, tls_ca) and a token (token_env or token_file)");
    }
    for (size_t i = 0; i < c.seeds.size(); ++i) {
      const auto hp = parse_host_port(c.seeds[i]);  // checked by the descriptor
      if (!hp || is_loopback_address(hp->host)) continue;
      const toml::node* n = t.get("seeds")->as_array()->get(i);
      error_at(*n, p + ".seeds[" + std::to_string(i) + "]",
               "'" + c.seeds[i] +
                   "' is not a loopback address: joining nodes on other hosts requires TLS "
                   "(tls_certificate, tls_key, tls_ca) and a token (token_env or token_file)");
    }
  }
  if (c.connection_timeout_ms != 0 && c.connection_timeout_ms < 2 * c.heartbeat_interval_ms) {
    const toml::node* n = t.get("connection_timeout_ms");
    error_at(n != nullptr ? n->source() : t.source(), p + ".connection_timeout_ms",
             std::to_string(c.connection_timeout_ms) +
                 " is less than twice heartbeat_interval_ms (" +
                 std::to_string(c.heartbeat_interval_ms) +
                 "): one late heartbeat would make a peer unreachable");
  }
}

void loader::read_auth(const toml::table& t, const string& p, auth_fields c) {
  if (read_string(t, "token_env", p, c.token_env) == got::ok) {
    const toml::node& n = *t.get("token_env");
    if (t.get("token_file") != nullptr) {
      error_at(n, p + ".token_env", "set either token_env or token_file, not both");
    } else if (!is_identifier(c.token_env)) {
      error_at(n, p + ".token_env",
               "'" + c.token_env +
                   "' is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
    } else if (auto v = env(c.token_env.c_str())) {
      c.token = *v;
    } else {
      error_at(n, p + ".token_env",
               "environment variable " + c.token_env + " (named by token_env) is not set or empty");
    }
  }
  if (read_string(t, "token_file", p, c.token_file) == got::ok) {
    if (auto why = read_token_file(c.token_file, c.token))
      error_at(*t.get("token_file"), p + ".token_file", *why);
  }
  const int tls_set = !c.cert.empty() + !c.key.empty() + !c.ca.empty();
  if (tls_set != 0 && tls_set != 3)
    error_at(t, p, "TLS needs all of tls_certificate, tls_key and tls_ca (the CA verifies peers)");
  for (const char* k : {"tls_certificate", "tls_key", "tls_ca"}) {
    if (const toml::node* n = t.get(k); n != nullptr && n->is_string()) {
      const string v = n->value_or(string{});
      if (!v.empty() && ::access(v.c_str(), R_OK) != 0)
        error_at(*n, p + "." + k, "cannot read '" + v + "': " + std::strerror(errno));
    }
  }
}

// --- environment ------------------------------------------------------------------

void loader::apply_env() {
  const config_schema::tables& d = config_schema::options();
  apply_database_env();
  apply_env_section(d.transport, &cfg_.transport);
  apply_env_section(d.performance, &cfg_.performance);
  apply_env_section(d.listener, &cfg_.listener);
  apply_env_section(d.shutdown, &cfg_.shutdown);
  apply_env_section(d.control, &cfg_.control);
  apply_log_env();
  apply_redis_env();
  apply_nats_env();
}

/// FRAISEQL_NATS_URL sets [nats] url, creating the section when absent.
void loader::apply_nats_env() {
  const auto var = env_of(config_schema::options().nats["url"]);
  if (!var) return;
  if (!cfg_.nats) cfg_.nats.emplace();
  if (auto why = check_nats_urls(var->second)) {
    error_env(var->first, *why);
    return;
  }
  cfg_.nats->url = var->second;
  origins_["nats.url"] = env_origin(var->first);
}

/// FRAISEQL_DATABASE_URL, then DATABASE_URL, then the variable named by url_env.
void loader::apply_database_env() {
  if (const auto var = env_of(config_schema::options().database["url"])) {
    const auto& [name, url] = *var;
    if (auto why = check_db_url(url))
      error_env(name, *why);
    else
      cfg_.database.url = url;
    database_origin_ = env_origin(name);
    url_given_ = true;
  } else if (!url_env_.empty()) {
    const auto v = env(url_env_.c_str());
    if (!v) {
      error_at(url_env_origin_,
               "environment variable " + url_env_ + " (named by url_env) is not set or empty");
    } else if (auto why = check_db_url(*v)) {
      error_at(url_env_origin_, "value of environment variable " + url_env_ + " " + *why);
    } else {
      cfg_.database.url = *v;
      cfg_.database.url_env = url_env_;
    }
    database_origin_ = url_env_origin_;
  }
}

/// FRAISEQL_LOG, else RUST_LOG: env_logger directives (select_log_level).
void loader::apply_log_env() {
  const auto var = env_of(config_schema::options().logging["level"]);
  if (!var) return;
  const auto& [name, spec] = *var;
  if (const auto level = select_log_level(spec)) {
    if (contains(log_levels, *level))
      cfg_.logging.level = *level;
    else
      error_env(name, "unknown log level '" + *level + "' in '" + spec +
                          "' (expected one of: " + list(log_levels) + ")");
  }
}

/// FRAISEQL_REDIS_URL turns Redis on; the other FRAISEQL_REDIS_* need it.
void loader::apply_redis_env() {
  const config_schema::tables& d = config_schema::options();
  if (const auto var = env_of(d.redis["url"])) {
    if (!cfg_.redis) cfg_.redis.emplace();
    if (auto why = check_redis_url(var->second)) {
      error_env(var->first, *why);
    } else {
      cfg_.redis->url = var->second;
      redis_url_missing_ = false;
    }
  }
  apply_env_section(d.redis, cfg_.redis ? &*cfg_.redis : nullptr, redis_absent);
}

// --- checks on the effective configuration -----------------------------------------

void loader::audit_checks() {
  const auto& a = cfg_.audit;
  if (!a.enabled || a.backend != "elasticsearch") return;
  const origin& at =
      set_at("audit.backend") ? *set_at("audit.backend") : origin_at("audit.backend");
  if (a.elasticsearch_url.empty()) {
    error_at(at,
             "backend \"elasticsearch\" needs elasticsearch_url (e.g. \"http://127.0.0.1:9200\")");
  } else if (a.elasticsearch_url.rfind("http://", 0) != 0 &&
             a.elasticsearch_url.rfind("https://", 0) != 0) {
    error_at(origin_at("audit.elasticsearch_url"),
             "'" + a.elasticsearch_url + "' is not an http:// or https:// URL");
  }
  if (!a.elasticsearch_auth_env.empty() && !is_identifier(a.elasticsearch_auth_env))
    error_at(origin_at("audit.elasticsearch_auth_env"),
             "'" + a.elasticsearch_auth_env +
                 "' is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)");
  const string& idx = a.elasticsearch_index;
  const bool idx_ok =
      !idx.empty() && idx.size() <= 200 && idx[0] != '_' && idx[0] != '-' &&
      std::all_of(idx.begin(), idx.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_' || c == '.';
      });
  if (!idx_ok)
    error_at(origin_at("audit.elasticsearch_index"),
             "'" + idx +
                 "' is not a valid index prefix (lower case a-z 0-9 - _ ., not starting "
                 "with - or _)");
}

void loader::audit_warnings() {
  const auto& a = cfg_.audit;
  for (const auto& o : config_schema::options().audit.options) {
    const string key(o.key);
    const origin* at = set_at("audit." + key);
    if (at == nullptr || key == "enabled") continue;
    const bool es_key = key.rfind("elasticsearch_", 0) == 0;
    if (!a.enabled)
      warn_at(*at, "has no effect while [audit] enabled is false");
    else if (es_key && a.backend != "elasticsearch")
      warn_at(*at, "has no effect with backend \"" + a.backend + "\"");
    else if ((key == "retention_days" || key == "retention_interval_secs") &&
             a.backend == "elasticsearch")
      warn_at(*at,
              "has no effect with backend \"elasticsearch\": indices are per day "
              "(<index>-YYYY.MM.DD); expire them with an index lifecycle policy");
  }
  if (a.enabled && !cfg_.roles.pipeline && !cfg_.roles.workers) {
    if (const origin* at = set_at("audit.enabled"))
      warn_at(*at,
              "has no effect in this role: events are audited where actions run (role all or "
              "worker)");
  }
}

void loader::final_checks() {
  // Database actions without url_env use the engine's own database.
  for (auto& o : cfg_.observers)
    for (auto& a : o.actions)
      if (a.database && a.database->url.empty()) a.database->url = cfg_.database.url;
  settle_nats_urls();  // nats actions without url: [nats] url
  settle_concurrency();
  settle_async();  // job queue
  if (!url_given_) {
    origin o = database_origin_;
    if (database_table_ != nullptr) {
      o.line = database_table_->source().begin.line;
      o.column = database_table_->source().begin.column;
    }
    error_at(o,
             "is required: set url (or url_env) in [database], or the FRAISEQL_DATABASE_URL or "
             "DATABASE_URL "
             "environment variable");
  }
  audit_checks();
  const auto& fo = cfg_.failover;
  if (fo.failover_threshold_ms < 2 * fo.health_check_interval_ms) {
    error_at(origin_at("failover.failover_threshold_ms"),
             "must be at least twice health_check_interval_ms (" +
                 std::to_string(fo.health_check_interval_ms) +
                 "): a lease must survive one late renewal");
  }
  const string& tr = cfg_.transport.transport;
  if (tr == "in_memory") {
    error_at(origin_at("transport.transport"),
             "transport \"in_memory\" is a FraiseQL spec name for tests that this build does not "
             "implement (use \"postgres\" or \"nats\")");
  } else if (tr == "nats" && !cfg_.nats) {
    error_at(origin_at("transport.transport"),
             "transport \"nats\" needs the NATS servers: add a [nats] table (url = "
             "\"nats://host:4222\") or set FRAISEQL_NATS_URL");
  }
  if (cfg_.redis && redis_url_missing_)
    missing(*redis_table_, "redis.url",
            "required key is missing (redis://host:port[/db]; or set FRAISEQL_REDIS_URL)");
  // Dedup claims must be visible to every node that may be handed the same
  // event (a second listener, a failover): process memory is not enough.
  if (cfg_.performance.enable_dedup && !cfg_.redis)
    error_at(origin_at("performance.enable_dedup"),
             "enable_dedup requires [redis] (PostgreSQL + Redis topology): add a [redis] table "
             "with url, "
             "or set FRAISEQL_REDIS_URL");
}

void loader::settle_concurrency() {
  const auto& a = cfg_.adaptive_concurrency;
  auto& p = cfg_.performance;
  p.worker_window = set_at("performance.max_concurrent_actions") != nullptr || !a.enabled
                        ? p.max_concurrent_actions
                        : performance_config::fixed_concurrency_default;
  if (!a.enabled) return;
  // Per-endpoint limits do the limiting; the global cap only bounds memory
  // and sockets, so its default is far above a fixed limit's.
  if (set_at("performance.max_concurrent_actions") == nullptr)
    p.max_concurrent_actions = performance_config::adaptive_concurrency_default;
  // Blames the first of `keys` that was set (one of them was: the defaults agree).
  auto blame = [this](std::initializer_list<const char*> keys) -> origin {
    for (const char* k : keys)
      if (const origin* o = set_at(string("adaptive_concurrency.") + k)) return *o;
    return origin_at(string("adaptive_concurrency.") + *keys.begin());
  };
  if (a.min_limit > a.max_limit)
    error_at(blame({"min_limit", "max_limit"}), "min_limit (" + std::to_string(a.min_limit) +
                                                    ") must be at most max_limit (" +
                                                    std::to_string(a.max_limit) + ")");
  else if (a.initial_limit < a.min_limit || a.initial_limit > a.max_limit)
    error_at(blame({"initial_limit", "max_limit", "min_limit"}),
             "initial_limit (" + std::to_string(a.initial_limit) +
                 ") must be within min_limit and max_limit (" + std::to_string(a.min_limit) +
                 " - " + std::to_string(a.max_limit) + ")");
}

void loader::concurrency_warnings() {
  const auto& a = cfg_.adaptive_concurrency;
  const auto& p = cfg_.performance;
  if (!a.enabled) {
    for (const auto& info : config_schema::list_options()) {
      if (info.section != "adaptive_concurrency" || info.spec->key == "enabled") continue;
      if (const origin* o = set_at("adaptive_concurrency." + string(info.spec->key)))
        warn_at(*o, "has no effect while [adaptive_concurrency] enabled is false");
    }
    return;
  }
  if (const origin* o = set_at("adaptive_concurrency.max_limit");
      o && a.max_limit > p.max_concurrent_actions)
    warn_at(*o, "is above [performance] max_concurrent_actions (" +
                    std::to_string(p.max_concurrent_actions) +
                    "): no endpoint's limit goes beyond that global cap");
  if (const origin* o = set_at("performance.max_concurrent_actions");
      o && p.max_concurrent_actions < a.initial_limit)
    warn_at(*o, "(" + std::to_string(p.max_concurrent_actions) +
                    ") caps adaptive concurrency below its initial_limit (" +
                    std::to_string(a.initial_limit) +
                    "): remove it to let each endpoint's limit be learnt up to " +
                    std::to_string(performance_config::adaptive_concurrency_default) +
                    " in all, or turn [adaptive_concurrency] off for a fixed limit");
}

void loader::settle_roles() {
  if (cfg_.transport.transport == "in_memory") return;  // refused above
  auto where = [this](std::string_view key) -> std::optional<config_location> {
    const origin* o = set_at(string(key));
    if (o == nullptr) return std::nullopt;
    return config_location{o->file, o->line, o->column, o->key};
  };
  for (auto& e : resolve_roles(cfg_, role_, &warnings_, where)) errors_.push_back(std::move(e));
}

void loader::transport_warnings() {
  if (cfg_.transport.transport != "postgres") return;
  if (cfg_.nats) {
    origin o = set_at("nats.url") ? *set_at("nats.url") : origin{file_, 0, 0, "nats"};
    if (nats_table_ != nullptr) {
      o = origin{file_, nats_table_->source().begin.line, nats_table_->source().begin.column,
                 "nats"};
    }
    warn_at(o,
            "has no effect: [transport] transport is \"postgres\" (set transport = \"nats\" to "
            "use NATS)");
  }
  if (const origin* o = set_at("transport.run_bridge"); o && cfg_.transport.run_bridge)
    warn_at(*o, "has no effect with transport \"postgres\" (the bridge needs transport \"nats\")");
  if (const origin* o = set_at("transport.run_executors"); o && !cfg_.transport.run_executors)
    warn_at(*o,
            "has no effect with transport \"postgres\": the node runs the listener and the "
            "executors in one process");
}

}  // namespace config_detail

config_result load_config_string(const std::string& text, const std::string& source, env_lookup env,
                                 std::string_view role) {
  try {
    const toml::table root = toml::parse(text, source);
    return config_detail::loader(source, env, role).run(root);
  } catch (const toml::parse_error& e) {
    config_result r;
    r.errors.push_back(config_error{source, e.source().begin.line, e.source().begin.column, "",
                                    "TOML syntax error: " + std::string(e.description())});
    return r;
  }
}

config_result load_config_file(const std::string& path, env_lookup env, std::string_view role) {
  auto fail = [&](std::string message) {
    config_result r;
    r.errors.push_back(config_error{path, 0, 0, "", std::move(message)});
    return r;
  };
  const auto ext = std::filesystem::path(path).extension().string();
  if (ext == ".yaml" || ext == ".yml")
    return fail(
        "YAML configuration is not supported: this node reads TOML (start from "
        "config/examples/01-postgresql-only.toml; every key is in docs/configuration.md)");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    return fail("cannot read configuration file: is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(std::string("cannot open configuration file: ") + std::strerror(errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return fail(std::string("cannot read configuration file: ") + std::strerror(errno));
  return load_config_string(buf.str(), path, env, role);
}

}  // namespace fraiseql
