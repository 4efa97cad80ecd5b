// [[observers]]: each observer, its actions (webhook, slack, email, database,
// log, nats) and its [observers.retry] policy. The retry table's scalar keys are
// described in descriptors.cpp; the actions keep their own rules (keys valid
// for other action types, secrets read from the environment, URL checks).

#include "runtime/config/loader_impl.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

namespace fraiseql::config_detail {

using std::string;
using std::string_view;

namespace {

/// Keys of each action type ("type" included).
const std::vector<std::pair<string_view, key_list>>& action_keys() {
  static const std::vector<std::pair<string_view, key_list>> k = {
      {"webhook",
       {"type", "url", "method", "headers", "body_template", "timeout_ms", "signing_secret_env",
        "retry_on_status", "cache", "cache_ttl_secs", "batch_size", "batch_max_wait_ms"}},
      {"slack",
       {"type", "webhook_url", "webhook_url_env", "channel", "message", "username", "icon_emoji",
        "timeout_ms", "retry_on_status"}},
      {"email",
       {"type", "host", "port", "security", "from", "to", "subject", "body", "username_env",
        "password_env", "ca_file", "verify_tls", "timeout_ms"}},
      {"database", {"type", "function", "params", "url_env", "timeout_ms"}},
      {"log", {"type", "level", "message"}},
      {"nats", {"type", "subject", "body_template", "url", "stream", "timeout_ms"}},
  };
  return k;
}

/// A bare mail address: local@domain, no spaces, brackets or control characters.
bool is_mail_address(const string& a) {
  const size_t at = a.rfind('@');
  if (at == string::npos || at == 0 || at + 1 >= a.size()) return false;
  return std::none_of(a.begin(), a.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f || c == '<' || c == '>' || c == ',' || c == '"' || c == '(' ||
           c == ')';
  });
}

/// "name" or "schema.name", each part an unquoted SQL identifier.
bool is_qualified_name(const string& s) {
  const size_t dot = s.find('.');
  auto part = [](string_view x) {
    if (x.empty() || x.size() > 63 || !(is_alpha(x[0]) || x[0] == '_')) return false;
    return std::all_of(x.begin(), x.end(),
                       [](char c) { return is_alpha(c) || is_digit(c) || c == '_' || c == '$'; });
  };
  if (dot == string::npos) return part(s);
  return part(string_view(s).substr(0, dot)) && part(string_view(s).substr(dot + 1));
}

}  // namespace

/// `async` of one action (any type); the effective value is settled in
/// final_checks, once [job_queue] enabled is known.
void loader::read_async(const toml::table& t, const string& p) {
  bool v = false;
  if (read_bool(t, "async", p, v) == got::ok)
    async_keys_[p] = {v, origin_of(*t.get("async"), p + ".async")};
}

/// Effective `async` of every action: the explicit key, else the type's
/// default; async without an enabled queue is an error at the key.
void loader::settle_async() {
  const bool enabled = cfg_.job_queue.enabled;
  for (auto& o : cfg_.observers) {
    for (auto& a : o.actions) {
      auto it = async_keys_.find(a.where);
      a.async = it != async_keys_.end() ? it->second.first : async_by_default(a.type, enabled);
      if (a.async && !enabled)
        error_at(it->second.second,
                 "async = true needs the job queue: set enabled = true in [job_queue] "
                 "(job_queue.enabled is false)");
      else if (a.async && a.webhook && a.webhook->batch_size > 1)
        error_at(it != async_keys_.end() ? it->second.second
                                         : origin{file_, 0, 0, a.where + ".batch_size"},
                 "batch_size > 1 cannot be combined with async = true (a job is one event)");
    }
  }
}

void loader::walk_observers(const toml::node& n) {
  const auto* arr = n.as_array();
  if (arr == nullptr) {
    type_error(n, "observers", "an array of tables ([[observers]])");
    return;
  }
  std::vector<const toml::node*> name_nodes;  // explicit name node per observer, or null
  std::vector<const toml::table*> tables;
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::node& el = *arr->get(i);
    const string p = index_path("observers", i);
    const auto* t = el.as_table();
    if (t == nullptr) {
      type_error(el, p, "a table ([[observers]])");
      continue;
    }
    observer_config obs;
    name_nodes.push_back(walk_observer(*t, i, obs));
    tables.push_back(t);
    cfg_.observers.push_back(std::move(obs));
  }
  // Names are unique (after defaulting), since they key idempotency and the DLQ.
  std::map<string, size_t> seen;
  for (size_t k = 0; k < cfg_.observers.size(); ++k) {
    const string& name = cfg_.observers[k].name;
    auto [it, inserted] = seen.emplace(name, k);
    if (inserted) continue;
    const string p = index_path("observers", observer_index_[k]) + ".name";
    string msg = "duplicate observer name '" + name + "' (also used by " +
                 index_path("observers", observer_index_[it->second]) + ")";
    if (name_nodes[k] != nullptr)
      error_at(*name_nodes[k], p, msg);
    else
      error_at(*tables[k], p, msg + "; give this observer an explicit name");
  }
}

/// Returns the node of an explicit name, or nullptr.
const toml::node* loader::walk_observer(const toml::table& t, size_t i, observer_config& obs) {
  const string p = index_path("observers", i);
  observer_index_.push_back(i);
  check_keys(t, p, {"name", "event_type", "entity", "condition", "actions", "retry"},
             "[[observers]]");

  const toml::node* name_node = nullptr;
  obs.name = "observer-" + std::to_string(i + 1);
  string name;
  if (read_string(t, "name", p, name) == got::ok) {
    if (trim(name).empty() || has_control_char(name)) {
      error_at(*t.get("name"), p + ".name", "must be a non-empty name without control characters");
    } else {
      obs.name = name;
      name_node = t.get("name");
    }
  }

  const got et =
      read_enum(t, "event_type", p, {"INSERT", "UPDATE", "DELETE", "CUSTOM", "READ", "*"}, true,
                obs.event_type);
  if (et == got::absent)
    missing(t, p + ".event_type",
            "required key is missing (one of INSERT, UPDATE, DELETE, CUSTOM, READ, *)");

  const got en = read_string(t, "entity", p, obs.entity);
  if (en == got::absent) {
    missing(t, p + ".entity",
            "required key is missing (an entity type such as \"Order\", or \"*\")");
  } else if (en == got::ok && trim(obs.entity).empty()) {
    error_at(*t.get("entity"), p + ".entity", "must not be empty (use \"*\" for any entity)");
  }

  read_string(t, "condition", p, obs.condition);

  if (const toml::node* an = t.get("actions")) {
    const auto* arr = an->as_array();
    if (arr == nullptr) {
      type_error(*an, p + ".actions", "an array of tables ([[observers.actions]])");
    } else if (arr->empty()) {
      error_at(*an, p + ".actions", "at least one action is required");
    } else {
      for (size_t j = 0; j < arr->size(); ++j) {
        const toml::node& el = *arr->get(j);
        const string ap = index_path(p + ".actions", j);
        const auto* at = el.as_table();
        if (at == nullptr) {
          type_error(el, ap, "a table ([[observers.actions]])");
          continue;
        }
        action_config a;
        a.where = ap;
        if (walk_action(*at, ap, a)) obs.actions.push_back(std::move(a));
      }
    }
  } else {
    missing(t, p + ".actions", "at least one [[observers.actions]] is required");
  }

  if (const auto* rt = read_table(t, "retry", p)) walk_retry(*rt, p + ".retry", obs.retry);
  return name_node;
}

/// Returns whether `a` is usable (errors were reported otherwise).
bool loader::walk_action(const toml::table& t, const string& p, action_config& a) {
  static const char* const types_text = "webhook, slack, email, database, log, nats";
  string type;
  const got g = read_string(t, "type", p, type);
  if (g == got::absent) {
    missing(t, p + ".type", string("required key is missing (one of: ") + types_text + ")");
    return false;
  }
  if (g == got::bad) return false;
  const toml::node& type_node = *t.get("type");
  const key_list* own = nullptr;
  for (const auto& [name, keys] : action_keys())
    if (name == type) own = &keys;
  if (own == nullptr) {
    error_at(type_node, p + ".type",
             "unknown action type '" + type + "' (valid types: " + types_text + ")");
    return false;
  }
  a.type = type;
  const size_t before = errors_.size();
  read_async(t, p);  // job queue: valid for every action type
  for (auto&& [k, v] : t) {
    if (k.str() == "async") continue;  // job queue: read above
    if (contains(*own, k.str())) continue;
    string owners;
    for (const auto& [name, keys] : action_keys()) {
      if (!contains(keys, k.str())) continue;
      if (!owners.empty()) owners += ", ";
      owners += name;
    }
    if (!owners.empty()) {
      report_key(k, v, join_path(p, k.str()),
                 "key is only valid for " + owners + " actions, not " + type + " actions");
      continue;
    }
    string msg = "unknown key";
    if (auto s = suggest(k.str(), *own)) msg += "; did you mean '" + *s + "'?";
    msg += " (valid keys for a " + type + " action: " + list(*own) + ")";
    report_key(k, v, join_path(p, k.str()), std::move(msg));
  }
  if (type == "webhook") {
    a.webhook = walk_webhook(t, p);
  } else if (type == "slack") {
    a.slack = walk_slack(t, p);
  } else if (type == "email") {
    a.email = walk_email(t, p);
  } else if (type == "database") {
    a.database = walk_database_action(t, p);
  } else if (type == "nats") {
    a.nats = walk_nats_action(t, p);
  } else {
    log_action_config l;
    read_enum(t, "level", p, log_levels, true, l.level);
    read_string(t, "message", p, l.message);
    a.log = std::move(l);
  }
  return errors_.size() == before;
}

/// `retry_on_status = [429, 503, "5xx"]`: statuses 300-599 or classes.
void loader::read_retry_statuses(const toml::table& t, const string& p, http_retry_config& out) {
  const toml::node* n = t.get("retry_on_status");
  if (n == nullptr) return;
  const string kp = p + ".retry_on_status";
  const auto* arr = n->as_array();
  if (arr == nullptr) {
    type_error(*n, kp, "an array of HTTP statuses (300-599) or classes (\"4xx\", \"5xx\")");
    return;
  }
  std::vector<uint16_t> statuses;
  bool ok = true;
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::node& el = *arr->get(i);
    const string ep = index_path(kp, i);
    std::vector<uint16_t> add;
    if (const auto* in = el.as_integer()) {
      if (in->get() < 300 || in->get() > 599) {
        error_at(el, ep,
                 "must be an HTTP error status between 300 and 599 (got " +
                     std::to_string(in->get()) + ")");
        ok = false;
        continue;
      }
      add.push_back(static_cast<uint16_t>(in->get()));
    } else if (const auto* sn = el.as_string()) {
      const string c = lower(sn->get());
      if (c != "3xx" && c != "4xx" && c != "5xx") {
        error_at(el, ep,
                 "invalid status class '" + sn->get() + "' (expected \"3xx\", \"4xx\" or \"5xx\")");
        ok = false;
        continue;
      }
      const uint16_t base = static_cast<uint16_t>((c[0] - '0') * 100);
      for (uint16_t s = base; s < base + 100; ++s) add.push_back(s);
    } else {
      type_error(el, ep, "an HTTP status (integer) or a status class (\"4xx\")");
      ok = false;
      continue;
    }
    for (uint16_t s : add) {
      if (std::find(statuses.begin(), statuses.end(), s) != statuses.end()) {
        error_at(el, ep, "status " + std::to_string(s) + " is listed twice");
        ok = false;
        break;
      }
      statuses.push_back(s);
    }
  }
  if (ok) {
    std::sort(statuses.begin(), statuses.end());
    out.retry_on_status = std::move(statuses);
  }
}

void loader::read_timeout(const toml::table& t, const string& p, uint32_t& out) {
  read_u32(t, "timeout_ms", p, 1, 600000, out);
}

webhook_action_config loader::walk_webhook(const toml::table& t, const string& p) {
  webhook_action_config w;
  string url;
  if (read_required(t, "url", p, "an http:// or https:// URL", url) == got::ok) {
    if (auto why = check_http_url(url))
      error_at(*t.get("url"), p + ".url", *why);
    else
      w.url = url;
  }
  read_enum(t, "method", p, {"POST", "PUT", "PATCH"}, true, w.method);
  if (const toml::node* hn = t.get("headers")) {
    const string hp = p + ".headers";
    if (const auto* ht = hn->as_table()) {
      std::map<string, string> lowered;  // lower-case name -> as written
      for (auto&& [k, v] : *ht) {
        const string name(k.str());
        const string kp = join_path(hp, name);
        const auto* s = v.as_string();
        if (s == nullptr) {
          type_error(v, kp, "a string");
          continue;
        }
        if (!is_token(name)) {
          report_key(k, v, kp, "'" + name + "' is not a valid HTTP header name");
          continue;
        }
        const string& value = s->get();
        if (std::any_of(value.begin(), value.end(),
                        [](char c) { return c == '\r' || c == '\n' || c == '\0'; })) {
          error_at(v, kp, "header value must not contain CR, LF or NUL");
          continue;
        }
        auto [it, inserted] = lowered.emplace(lower(name), name);
        if (!inserted) {
          report_key(
              k, v, kp,
              "duplicate header (header names are case-insensitive; see '" + it->second + "')");
          continue;
        }
        w.headers.emplace(name, value);
      }
    } else {
      type_error(*hn, hp,
                 "a table of header names to strings (e.g. headers = { \"X-Token\" = \"...\" })");
    }
  }
  read_string(t, "body_template", p, w.body_template);
  read_timeout(t, p, w.timeout_ms);
  read_env_ref(t, "signing_secret_env", p, w.signing_secret_env, w.signing_secret);
  read_retry_statuses(t, p, w.retry);
  read_bool(t, "cache", p, w.cache);
  uint32_t ttl = 0;
  if (read_u32(t, "cache_ttl_secs", p, 1, 30 * 86400, ttl) == got::ok) {
    if (!w.cache)
      error_at(*t.get("cache_ttl_secs"), p + ".cache_ttl_secs",
               "needs cache = true in the same action");
    else
      w.cache_ttl_secs = ttl;
  }
  read_u32(t, "batch_size", p, 1, 10000, w.batch_size);
  const got wait = read_u32(t, "batch_max_wait_ms", p, 0, 60000, w.batch_max_wait_ms);
  if (w.batch_size > 1) {
    // One request carries many events: what the request itself is made of
    // (URL, headers) cannot differ per event, and one cached answer cannot
    // stand for many.
    const toml::node& at = *t.get("batch_size");
    if (w.url.find("{{") != string::npos)
      error_at(at, p + ".batch_size",
               "a batch is one request: the url must not be a template (it is rendered per "
               "event)");
    for (const auto& [name, value] : w.headers)
      if (value.find("{{") != string::npos)
        error_at(at, p + ".batch_size",
                 "a batch is one request: header '" + name + "' must not be a template");
    if (w.cache) error_at(at, p + ".batch_size", "cannot be combined with cache = true");
  } else if (wait == got::ok) {
    warn_at(origin_of(*t.get("batch_max_wait_ms"), p + ".batch_max_wait_ms"),
            "has no effect without batch_size > 1");
  }
  return w;
}

slack_action_config loader::walk_slack(const toml::table& t, const string& p) {
  slack_action_config s;
  string url;
  const got gu = read_string(t, "webhook_url", p, url);
  string env_name, env_url;
  const got ge = read_env_ref(t, "webhook_url_env", p, env_name, env_url);
  if (gu == got::absent && ge == got::absent) {
    missing(t, p + ".webhook_url",
            "required key is missing (the incoming-webhook URL, or webhook_url_env naming a "
            "variable holding it)");
  } else if (gu != got::absent && ge != got::absent) {
    error_at(*t.get("webhook_url_env"), p + ".webhook_url_env",
             "set either webhook_url or webhook_url_env, not both");
  } else if (gu == got::ok) {
    if (auto why = check_http_url(url))
      error_at(*t.get("webhook_url"), p + ".webhook_url", *why);
    else
      s.webhook_url = url;
  } else if (ge == got::ok) {
    if (auto why = check_http_url(env_url))
      error_at(*t.get("webhook_url_env"), p + ".webhook_url_env",
               "value of environment variable " + env_name + " " + *why);
    else {
      s.webhook_url = env_url;
      s.webhook_url_env = env_name;
    }
  }
  read_string(t, "channel", p, s.channel);
  read_string(t, "username", p, s.username);
  read_string(t, "icon_emoji", p, s.icon_emoji);
  if (read_string(t, "message", p, s.message) == got::absent)
    missing(t, p + ".message", "required key is missing (the message text template)");
  read_timeout(t, p, s.timeout_ms);
  read_retry_statuses(t, p, s.retry);
  return s;
}

email_action_config loader::walk_email(const toml::table& t, const string& p) {
  email_action_config e;
  string host;
  if (read_required(t, "host", p, "the SMTP server's host name or address", host) == got::ok) {
    if (host.empty() || host.find_first_of(" /@?#") != string::npos || has_control_char(host))
      error_at(*t.get("host"), p + ".host", "'" + host + "' is not a host name or address");
    else
      e.host = host;
  }
  string security;
  if (read_enum(t, "security", p, {"none", "starttls", "tls"}, false, security) == got::ok)
    e.security = security == "none"  ? smtp_security::none
                 : security == "tls" ? smtp_security::tls
                                     : smtp_security::starttls;
  read_u32(t, "port", p, 1, 65535, e.port);
  if (e.port == 0)
    e.port = e.security == smtp_security::none ? 25 : e.security == smtp_security::tls ? 465 : 587;
  string from;
  if (read_required(t, "from", p, "the sender address", from) == got::ok) {
    if (is_mail_address(from))
      e.from = from;
    else
      error_at(*t.get("from"), p + ".from", "'" + from + "' is not a mail address (local@domain)");
  }
  if (const toml::node* tn = t.get("to")) {
    const string tp = p + ".to";
    auto add = [&](const toml::node& n, const string& where) {
      const auto* s = n.as_string();
      if (s == nullptr) {
        type_error(n, where, "a string");
      } else if (!is_mail_address(s->get())) {
        error_at(n, where, "'" + s->get() + "' is not a mail address (local@domain)");
      } else {
        e.to.push_back(s->get());
      }
    };
    if (tn->is_string()) {
      add(*tn, tp);
    } else if (const auto* arr = tn->as_array()) {
      if (arr->empty()) error_at(*tn, tp, "at least one recipient is required");
      for (size_t i = 0; i < arr->size(); ++i) add(*arr->get(i), index_path(tp, i));
    } else {
      type_error(*tn, tp, "a mail address or an array of them");
    }
  } else {
    missing(t, p + ".to", "required key is missing (a recipient address or an array of them)");
  }
  if (read_string(t, "subject", p, e.subject) == got::ok && has_control_char(e.subject))
    error_at(*t.get("subject"), p + ".subject", "must not contain control characters");
  else if (!t.get("subject"))
    missing(t, p + ".subject", "required key is missing (the subject template)");
  read_string(t, "body", p, e.body);
  const got gu = read_env_ref(t, "username_env", p, e.username_env, e.username);
  const got gp = read_env_ref(t, "password_env", p, e.password_env, e.password);
  if ((gu == got::absent) != (gp == got::absent)) {
    const char* have = gu == got::absent ? "password_env" : "username_env";
    error_at(*t.get(have), join_path(p, have),
             "username_env and password_env go together: set both or neither");
  }
  if (gp != got::absent && e.security == smtp_security::none)
    error_at(*t.get("password_env"), p + ".password_env",
             "refusing to send credentials without TLS: set security = \"starttls\" or \"tls\"");
  string ca;
  if (read_string(t, "ca_file", p, ca) == got::ok) {
    std::error_code ec;
    if (ca.empty() || !std::filesystem::is_regular_file(ca, ec))
      error_at(*t.get("ca_file"), p + ".ca_file", "'" + ca + "' is not a readable file");
    else
      e.ca_file = ca;
  }
  read_bool(t, "verify_tls", p, e.verify_tls);
  if (e.security == smtp_security::none) {
    for (const char* k : {"ca_file", "verify_tls"})
      if (const toml::node* n = t.get(k))
        error_at(*n, join_path(p, k), "has no effect with security = \"none\"");
  }
  read_timeout(t, p, e.timeout_ms);
  return e;
}

database_action_config loader::walk_database_action(const toml::table& t, const string& p) {
  database_action_config d;
  string fn;
  if (read_required(t, "function", p, "a function name such as \"app.on_order\"", fn) == got::ok) {
    if (is_qualified_name(fn))
      d.function = fn;
    else
      error_at(*t.get("function"), p + ".function",
               "'" + fn +
                   "' is not a function name (name or schema.name; letters, digits, _ and $, "
                   "not starting with a digit)");
  }
  if (const toml::node* pn = t.get("params")) {
    if (!pn->is_table()) {
      type_error(*pn, p + ".params", "a table (rendered as a JSON object)");
    } else if (boost::json::value v; to_json(*pn, p + ".params", v)) {
      d.params_json = boost::json::serialize(v);
    }
  }
  string url;
  if (read_env_ref(t, "url_env", p, d.url_env, url) == got::ok) {
    if (auto why = check_db_url(url))
      error_at(*t.get("url_env"), p + ".url_env",
               "value of environment variable " + d.url_env + " " + *why);
    else
      d.url = url;
  }
  read_timeout(t, p, d.timeout_ms);
  return d;
}

nats_action_config loader::walk_nats_action(const toml::table& t, const string& p) {
  nats_action_config n;
  string subject;
  if (read_required(t, "subject", p, "a NATS subject such as \"orders.{{ entity_id }}\"",
                    subject) == got::ok) {
    // Holes render per event (checked then); the text around them is
    // checked now, each hole standing for one plain token character.
    string literal;
    size_t i = 0;
    while (i < subject.size()) {
      const size_t open = subject.find("{{", i);
      if (open == string::npos) {
        literal += subject.substr(i);
        break;
      }
      literal += subject.substr(i, open - i);
      const size_t close = subject.find("}}", open + 2);
      if (close == string::npos) {
        literal += subject.substr(open);  // the template compiler reports it
        break;
      }
      literal += 'x';
      i = close + 2;
    }
    if (auto why = check_nats_subject(literal))
      error_at(*t.get("subject"), p + ".subject", "'" + subject + "' " + *why);
    else
      n.subject = subject;
  }
  read_string(t, "body_template", p, n.body_template);
  string url;
  if (read_string(t, "url", p, url) == got::ok) {
    n.url = url;
    const auto list = n.urls();
    if (list.empty())
      error_at(*t.get("url"), p + ".url",
               "must list at least one server (nats://host:port or tls://host:port, "
               "comma-separated)");
    for (const auto& u : list) {
      string why;
      if (!parse_nats_url(u, &why)) {
        const size_t at = u.rfind('@');
        const size_t sep = u.find("://");
        // Never echo credentials.
        const string shown = at != string::npos && sep != string::npos
                                 ? u.substr(0, sep + 3) + "***@" + u.substr(at + 1)
                                 : u;
        error_at(*t.get("url"), p + ".url", "'" + shown + "' " + why);
      }
    }
  } else if (!t.get("url")) {
    // Settled in final_checks: the [nats] url, or an error here.
    nats_url_pending_[p] = origin_of(t, p + ".url");
  }
  string stream;
  if (read_string(t, "stream", p, stream) == got::ok) {
    if (stream.empty() || stream.size() > 255 ||
        std::any_of(stream.begin(), stream.end(), [](char c) {
          const auto u = static_cast<unsigned char>(c);
          return u <= 0x20 || u == 0x7f || c == '.' || c == '*' || c == '>' || c == '/' ||
                 c == '\\';
        }))
      error_at(*t.get("stream"), p + ".stream",
               "'" + stream +
                   "' is not a stream name (1-255 characters; no spaces, '.', '*', '>', '/' "
                   "or '\\')");
    else
      n.stream = stream;
  }
  n.timeout_ms = 5000;
  read_timeout(t, p, n.timeout_ms);
  return n;
}

/// NATS actions without `url`: the [nats] url and its credentials, else an
/// error at the action.
void loader::settle_nats_urls() {
  for (auto& o : cfg_.observers) {
    for (auto& a : o.actions) {
      if (!a.nats || !a.nats->url.empty()) continue;
      auto it = nats_url_pending_.find(a.where);
      if (it == nats_url_pending_.end()) continue;
      if (cfg_.nats) {
        const nats_config& c = *cfg_.nats;
        auto& n = *a.nats;
        n.url = c.url;
        n.user = c.user;
        n.password = c.password;
        n.token = c.token;
        n.credentials_file = c.credentials_file;
        n.tls = c.tls;
        n.tls_ca_file = c.tls_ca_file;
        n.tls_cert_file = c.tls_cert_file;
        n.tls_key_file = c.tls_key_file;
      } else {
        error_at(it->second,
                 "required key is missing (the NATS server URL(s), nats://host:port, "
                 "comma-separated; or configure [nats] url, which nats actions default to)");
      }
    }
  }
}

/// TOML value -> JSON, reporting unsupported types (dates, non-finite floats).
bool loader::to_json(const toml::node& n, const string& where, boost::json::value& out) {
  namespace json = boost::json;
  if (const auto* s = n.as_string()) {
    out = s->get();
  } else if (const auto* i = n.as_integer()) {
    out = i->get();
  } else if (const auto* b = n.as_boolean()) {
    out = b->get();
  } else if (const auto* f = n.as_floating_point()) {
    if (!std::isfinite(f->get())) {
      error_at(n, where, "must be a finite number (JSON has no nan or inf)");
      return false;
    }
    out = f->get();
  } else if (const auto* a = n.as_array()) {
    json::array arr;
    bool ok = true;
    for (size_t i = 0; i < a->size(); ++i) {
      json::value v;
      if (to_json(*a->get(i), index_path(where, i), v))
        arr.push_back(std::move(v));
      else
        ok = false;
    }
    if (!ok) return false;
    out = std::move(arr);
  } else if (const auto* t = n.as_table()) {
    json::object obj;
    bool ok = true;
    for (auto&& [k, v] : *t) {
      json::value jv;
      if (to_json(v, join_path(where, k.str()), jv))
        obj[k.str()] = std::move(jv);
      else
        ok = false;
    }
    if (!ok) return false;
    out = std::move(obj);
  } else {
    type_error(n, where, "a string, number, boolean, array or table (JSON has no dates)");
    return false;
  }
  return true;
}

void loader::walk_retry(const toml::table& t, const string& p, retry_config& r) {
  const section_result read = read_section(t, p, config_schema::options().retry, r);
  const got gi = read["initial_delay_ms"];
  const got gm = read["max_delay_ms"];
  if (gi != got::bad && gm != got::bad && r.max_delay_ms < r.initial_delay_ms) {
    if (gm == got::ok) {
      error_at(*t.get("max_delay_ms"), p + ".max_delay_ms",
               "must be >= initial_delay_ms (" + std::to_string(r.initial_delay_ms) + ")");
    } else {
      error_at(*t.get("initial_delay_ms"), p + ".initial_delay_ms",
               "exceeds max_delay_ms (default " + std::to_string(r.max_delay_ms) +
                   "); set max_delay_ms too");
    }
  }
}

}  // namespace fraiseql::config_detail
