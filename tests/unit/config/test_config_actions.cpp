// Configuration of the slack, email and database actions and of the webhook
// additions (signing secret, retry statuses): every bad input is one error at
// file:line:col naming the key.

#include "runtime/config/loader.hpp"
#include "runtime/config/model.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <string>

using fraiseql::config_result;
using fraiseql::load_config_string;
using fraiseql::smtp_security;

namespace {

std::map<std::string, std::string>& vars() {
  static std::map<std::string, std::string> v;
  return v;
}

std::optional<std::string> env_of(const char* name) {
  auto it = vars().find(name);
  if (it == vars().end()) return std::nullopt;
  return it->second;
}

struct scoped_vars {
  explicit scoped_vars(std::map<std::string, std::string> v) { vars() = std::move(v); }
  ~scoped_vars() { vars().clear(); }
};

std::string errors_of(const config_result& r) {
  std::string out;
  for (const auto& e : r.errors) out += e.to_string() + "\n";
  return out;
}

#define ACTION "[[observers]]\nevent_type = \"INSERT\"\nentity = \"Order\"\n[[observers.actions]]\n"
#define SLACK ACTION "type = \"slack\"\nmessage = \"m\"\n"
#define EMAIL \
  ACTION "type = \"email\"\nfrom = \"o@example.com\"\nto = \"a@example.com\"\nsubject = \"s\"\n"
#define DB ACTION "type = \"database\"\n"
#define HOOK ACTION "type = \"webhook\"\nurl = \"http://h/\"\n"

struct bad_case {
  const char* toml;
  const char* key;
  uint32_t line;
  const char* message;
};

// Lines: ACTION is 4 lines, so an action's own keys start at line 5.
const bad_case bad_cases[] = {
    // webhook additions
    {HOOK "signing_secret_env = \"UNSET_VAR\"\n", "observers[0].actions[0].signing_secret_env", 7,
     "environment variable UNSET_VAR (named by signing_secret_env) is not set or empty"},
    {HOOK "signing_secret_env = \"bad-name\"\n", "observers[0].actions[0].signing_secret_env", 7,
     "not a valid environment variable name"},
    {HOOK "signing_secret_env = 5\n", "observers[0].actions[0].signing_secret_env", 7,
     "expected a string"},
    {HOOK "retry_on_status = 500\n", "observers[0].actions[0].retry_on_status", 7,
     "expected an array"},
    {HOOK "retry_on_status = [200]\n", "observers[0].actions[0].retry_on_status[0]", 7,
     "between 300 and 599 (got 200)"},
    {HOOK "retry_on_status = [\"6xx\"]\n", "observers[0].actions[0].retry_on_status[0]", 7,
     "invalid status class '6xx'"},
    {HOOK "retry_on_status = [503, \"5xx\"]\n", "observers[0].actions[0].retry_on_status[1]", 7,
     "status 503 is listed twice"},
    {HOOK "retry_on_status = [1.5]\n", "observers[0].actions[0].retry_on_status[0]", 7,
     "expected an HTTP status"},
    {HOOK "channel = \"#x\"\n", "observers[0].actions[0].channel", 7,
     "only valid for slack actions"},
    // slack
    {ACTION "type = \"slack\"\nmessage = \"m\"\n", "observers[0].actions[0].webhook_url", 4,
     "required key is missing"},
    {ACTION "type = \"slack\"\nwebhook_url = \"http://h/\"\n", "observers[0].actions[0].message", 4,
     "required key is missing"},
    {SLACK "webhook_url = \"hooks.slack.com/x\"\n", "observers[0].actions[0].webhook_url", 7,
     "not an http:// or https:// URL"},
    {SLACK "webhook_url = \"http://h/\"\nwebhook_url_env = \"SLACK_URL\"\n",
     "observers[0].actions[0].webhook_url_env", 8, "not both"},
    {SLACK "webhook_url_env = \"NOT_SET\"\n", "observers[0].actions[0].webhook_url_env", 7,
     "is not set"},
    {SLACK "webhook_url_env = \"BAD_URL\"\n", "observers[0].actions[0].webhook_url_env", 7,
     "value of environment variable BAD_URL 'ftp://x' is not an http:// or https:// URL"},
    {SLACK "webhook_url = \"http://h/\"\nchannel = 3\n", "observers[0].actions[0].channel", 8,
     "expected a string"},
    {SLACK "webhook_url = \"http://h/\"\ntimeout_ms = 0\n", "observers[0].actions[0].timeout_ms", 8,
     "between 1 and 600000"},
    {SLACK "webhook_url = \"http://h/\"\nurl = \"http://h/\"\n", "observers[0].actions[0].url", 8,
     "only valid for webhook, nats actions"},
    {SLACK "webhook_url = \"http://h/\"\nicon = \":x:\"\n", "observers[0].actions[0].icon", 8,
     "did you mean 'icon_emoji'"},
    // email
    {ACTION "type = \"email\"\nfrom = \"o@example.com\"\nto = \"a@example.com\"\nsubject = \"s\"\n",
     "observers[0].actions[0].host", 4, "required key is missing"},
    {EMAIL "host = \"mail/x\"\n", "observers[0].actions[0].host", 9, "not a host name"},
    {EMAIL "host = \"mail\"\nport = 0\n", "observers[0].actions[0].port", 10,
     "between 1 and 65535"},
    {EMAIL "host = \"mail\"\nsecurity = \"ssl\"\n", "observers[0].actions[0].security", 10,
     "expected one of: none, starttls, tls"},
    {ACTION "type = \"email\"\nhost = \"m\"\nto = \"a@example.com\"\nsubject = \"s\"\n",
     "observers[0].actions[0].from", 4, "required key is missing"},
    {ACTION "type = \"email\"\nhost = \"m\"\nfrom = \"o@example.com\"\nsubject = \"s\"\n",
     "observers[0].actions[0].to", 4, "required key is missing"},
    {ACTION "type = \"email\"\nhost = \"m\"\nfrom = \"o@example.com\"\nto = \"a@example.com\"\n",
     "observers[0].actions[0].subject", 4, "required key is missing"},
    {ACTION
     "type = \"email\"\nhost = \"m\"\nfrom = \"Observer <o@example.com>\"\nto = \"a@example.com\"\n"
     "subject = \"s\"\n",
     "observers[0].actions[0].from", 7, "not a mail address"},
    {ACTION "type = \"email\"\nhost = \"m\"\nfrom = \"o@example.com\"\nto = []\nsubject = \"s\"\n",
     "observers[0].actions[0].to", 8, "at least one recipient"},
    {ACTION "type = \"email\"\nhost = \"m\"\nfrom = \"o@example.com\"\nto = [\"a@example.com\", "
            "\"nobody\"]\n"
            "subject = \"s\"\n",
     "observers[0].actions[0].to[1]", 8, "'nobody' is not a mail address"},
    {ACTION "type = \"email\"\nhost = \"m\"\nfrom = \"o@example.com\"\nto = 5\nsubject = \"s\"\n",
     "observers[0].actions[0].to", 8, "expected a mail address or an array"},
    {EMAIL "host = \"m\"\nusername_env = \"SMTP_USER\"\n", "observers[0].actions[0].username_env",
     10, "set both or neither"},
    {EMAIL "host = \"m\"\nsecurity = \"none\"\nusername_env = \"SMTP_USER\"\npassword_env = "
           "\"SMTP_PASS\"\n",
     "observers[0].actions[0].password_env", 12, "refusing to send credentials without TLS"},
    {EMAIL "host = \"m\"\nusername_env = \"SMTP_USER\"\npassword_env = \"NOPE\"\n",
     "observers[0].actions[0].password_env", 11, "NOPE (named by password_env) is not set"},
    {EMAIL "host = \"m\"\nca_file = \"/nonexistent/ca.pem\"\n", "observers[0].actions[0].ca_file",
     10, "not a readable file"},
    {EMAIL "host = \"m\"\nsecurity = \"none\"\nverify_tls = false\n",
     "observers[0].actions[0].verify_tls", 11, "no effect with security = \"none\""},
    {EMAIL "host = \"m\"\nverify_tls = \"no\"\n", "observers[0].actions[0].verify_tls", 10,
     "expected a boolean"},
    {EMAIL "host = \"m\"\nsubject = \"s\"\n", "", 10, "TOML syntax error"},
    {EMAIL "host = \"m\"\nbody = 1\n", "observers[0].actions[0].body", 10, "expected a string"},
    {EMAIL "host = \"m\"\nmessage = \"x\"\n", "observers[0].actions[0].message", 10,
     "only valid for slack, log actions"},
    // database
    {DB "params = {}\n", "observers[0].actions[0].function", 4, "required key is missing"},
    {DB "function = \"app.on order\"\n", "observers[0].actions[0].function", 6,
     "is not a function name"},
    {DB "function = \"a.b.c\"\n", "observers[0].actions[0].function", 6, "is not a function name"},
    {DB "function = \"f(); drop table x\"\n", "observers[0].actions[0].function", 6,
     "is not a function name"},
    {DB "function = \"1f\"\n", "observers[0].actions[0].function", 6, "is not a function name"},
    {DB "function = \"f\"\nparams = 3\n", "observers[0].actions[0].params", 7, "expected a table"},
    {DB "function = \"f\"\nparams = { at = 1979-05-27 }\n", "observers[0].actions[0].params.at", 7,
     "JSON has no dates"},
    {DB "function = \"f\"\nparams = { x = inf }\n", "observers[0].actions[0].params.x", 7,
     "finite"},
    {DB "function = \"f\"\nurl_env = \"NO_DB\"\n", "observers[0].actions[0].url_env", 7,
     "NO_DB (named by url_env)"},
    {DB "function = \"f\"\nurl_env = \"BAD_URL\"\n", "observers[0].actions[0].url_env", 7,
     "value of environment variable BAD_URL"},
    {DB "function = \"f\"\ntimeout_ms = 600001\n", "observers[0].actions[0].timeout_ms", 7,
     "between 1 and 600000"},
    {DB "function = \"f\"\nurl = \"postgresql://h/db\"\n", "observers[0].actions[0].url", 7,
     "only valid for webhook, nats actions"},
    // log
    {ACTION "type = \"log\"\nmessage = 1\n", "observers[0].actions[0].message", 6,
     "expected a string"},
    {ACTION "type = \"log\"\nformat = \"x\"\n", "observers[0].actions[0].format", 6,
     "unknown key (valid keys for a log action: type, level, message)"},
    {ACTION "type = \"log\"\ntimeout_ms = 5\n", "observers[0].actions[0].timeout_ms", 6,
     "only valid for webhook, slack, email, database, nats actions"},
};

}  // namespace

TEST_SUITE("config") {
  TEST_CASE("action keys: bad inputs are reported with key, line and message") {
    scoped_vars env({{"FRAISEQL_DATABASE_URL", "postgresql://localhost/app"},
                     {"SLACK_URL", "http://h/"},
                     {"BAD_URL", "ftp://x"},
                     {"SMTP_USER", "u"},
                     {"SMTP_PASS", "p"}});
    for (const bad_case& c : bad_cases) {
      const std::string input = c.toml;
      CAPTURE(input);
      const config_result r = load_config_string(c.toml, "bad.toml", env_of);
      const std::string errors = errors_of(r);
      CAPTURE(errors);
      CHECK_FALSE(r);
      REQUIRE(r.errors.size() == 1);
      CHECK(r.errors[0].file == "bad.toml");
      CHECK(r.errors[0].key == c.key);
      CHECK(r.errors[0].line == c.line);
      CHECK(r.errors[0].column >= 1);
      CHECK(r.errors[0].message.find(c.message) != std::string::npos);
    }
  }

  TEST_CASE("action keys: every key read") {
    scoped_vars env({{"FRAISEQL_DATABASE_URL", "postgresql://localhost/app"},
                     {"HOOK_SECRET", "s3cret"},
                     {"SLACK_URL", "https://hooks.example.com/T/B/x"},
                     {"SMTP_USER", "mailer"},
                     {"SMTP_PASS", "pw"},
                     {"OTHER_DB", "postgresql://other/db"}});
    const config_result r = load_config_string(
        HOOK
        "signing_secret_env = \"HOOK_SECRET\"\nretry_on_status = [409, \"5xx\"]\n"
        "[[observers.actions]]\ntype = \"slack\"\nwebhook_url_env = \"SLACK_URL\"\nchannel = "
        "\"#ops\"\n"
        "username = \"observer\"\nicon_emoji = \":bell:\"\nmessage = \"{{ id }}\"\ntimeout_ms = "
        "2000\n"
        "retry_on_status = []\n"
        "[[observers.actions]]\ntype = \"email\"\nhost = \"mail.example.com\"\nsecurity = \"tls\"\n"
        "from = \"o@example.com\"\nto = [\"a@example.com\", \"b@example.com\"]\nsubject = \"s\"\n"
        "body = \"b\"\nusername_env = \"SMTP_USER\"\npassword_env = \"SMTP_PASS\"\nverify_tls = "
        "false\n"
        "timeout_ms = 5000\n"
        "[[observers.actions]]\ntype = \"database\"\nfunction = \"app.on_order\"\nurl_env = "
        "\"OTHER_DB\"\n"
        "timeout_ms = 3000\nparams = { kind = \"x\", n = [1, 2.5, true] }\n"
        "[[observers.actions]]\ntype = \"database\"\nfunction = \"_f$1\"\n",
        "ok.toml", env_of);
    INFO(errors_of(r));
    REQUIRE(r);
    const auto& acts = r.value->observers.at(0).actions;
    REQUIRE(acts.size() == 5);
    const auto& w = *acts[0].webhook;
    CHECK(w.signing_secret == "s3cret");
    CHECK(w.signing_secret_env == "HOOK_SECRET");
    REQUIRE(w.retry.retry_on_status);
    CHECK(w.retry.retry_on_status->size() == 101);
    CHECK(w.retry.retryable(409));
    CHECK(w.retry.retryable(503));
    CHECK_FALSE(w.retry.retryable(429));
    const auto& s = *acts[1].slack;
    CHECK(s.webhook_url == "https://hooks.example.com/T/B/x");
    CHECK(s.webhook_url_env == "SLACK_URL");
    CHECK(s.channel == "#ops");
    CHECK(s.username == "observer");
    CHECK(s.icon_emoji == ":bell:");
    CHECK(s.message == "{{ id }}");
    CHECK(s.timeout_ms == 2000);
    CHECK_FALSE(s.retry.retryable(503));  // empty list: only transport errors retry
    const auto& e = *acts[2].email;
    CHECK(e.host == "mail.example.com");
    CHECK(e.security == smtp_security::tls);
    CHECK(e.port == 465);
    CHECK(e.url() == "smtps://mail.example.com:465");
    CHECK(e.to == std::vector<std::string>{"a@example.com", "b@example.com"});
    CHECK(e.username == "mailer");
    CHECK(e.password == "pw");
    CHECK_FALSE(e.verify_tls);
    CHECK(e.timeout_ms == 5000);
    const auto& d = *acts[3].database;
    CHECK(d.function == "app.on_order");
    CHECK(d.url == "postgresql://other/db");
    CHECK(d.timeout_ms == 3000);
    CHECK(d.params_json == R"({"kind":"x","n":[1,2.5E0,true]})");
    const auto& d2 = *acts[4].database;
    CHECK(d2.url == "postgresql://localhost/app");
    CHECK(d2.params_json == "{}");
    CHECK(d2.quoted_function() == "\"_f$1\"");
    CHECK(d2.timeout_ms == 10000);
  }

  TEST_CASE("action keys: defaults") {
    scoped_vars env(std::map<std::string, std::string>{
        {"FRAISEQL_DATABASE_URL", "postgresql://localhost/app"}});
    const config_result r = load_config_string(
        HOOK
        "[[observers.actions]]\ntype = \"email\"\nhost = \"::1\"\nsecurity = \"none\"\n"
        "from = \"o@example.com\"\nto = \"a@example.com\"\nsubject = \"s\"\n",
        "ok.toml", env_of);
    INFO(errors_of(r));
    REQUIRE(r);
    const auto& w = *r.value->observers[0].actions[0].webhook;
    CHECK(w.signing_secret.empty());
    CHECK_FALSE(w.retry.retry_on_status);
    const auto& e = *r.value->observers[0].actions[1].email;
    CHECK(e.port == 25);
    CHECK(e.url() == "smtp://[::1]:25");
    CHECK(e.timeout_ms == 30000);
    CHECK(e.verify_tls);
  }
}
