// Action executors without servers: HMAC signatures, outcome classification,
// Slack payloads, email formatting and database params rendering.

#include "runtime/config/loader.hpp"
#include "runtime/config/model.hpp"
#include "runtime/core/envelope.hpp"
#include "runtime/core/observers.hpp"
#include "runtime/exec/executor.hpp"
#include "runtime/io/nats/publisher.hpp"
#include "runtime/io/net/http_client.hpp"
#include "runtime/io/net/smtp_client.hpp"
#include "runtime/io/pg/call_pool.hpp"

#include <doctest/doctest.h>
#include <nats/nats.h>
#include <boost/json.hpp>

#include <string>

using namespace fraiseql;

namespace {

std::optional<std::string> no_env(const char*) {
  return std::nullopt;
}

std::shared_ptr<const observer_registry> registry_of(const std::string& actions) {
  const std::string text =
      "[database]\nurl = \"postgresql://localhost/app\"\n"
      "[[observers]]\nname = \"o\"\nevent_type = \"*\"\nentity = \"*\"\n" +
      actions;
  auto r = load_config_string(text, "t.toml", no_env);
  std::string errs;
  for (const auto& e : r.errors) errs += e.to_string() + "\n";
  INFO(errs);
  REQUIRE(r);
  std::vector<std::string> errors;
  auto reg = observer_registry::build(r.value->observers, errors);
  REQUIRE(errors.empty());
  return reg;
}

event_ptr order_event() {
  return make_event(1, position{1, 1}, "e-1", "INSERT", "Order", "17",
                    R"({"id": 17, "customer": "Zoë", "total": 9.5})", "", "2026-01-01T00:00:00Z",
                    std::nullopt, std::nullopt, std::nullopt);
}

}  // namespace

TEST_SUITE("actions") {
  TEST_CASE("HMAC-SHA256 matches RFC 4231 test case 2") {
    CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  }

  TEST_CASE("webhook signature signs timestamp.body") {
    CHECK(webhook_signature("s3cret", "1700000000", "{\"a\":1}") ==
          "sha256=" + hmac_sha256_hex("s3cret", "1700000000.{\"a\":1}"));
    CHECK(webhook_signature("k", "1", "") != webhook_signature("k", "2", ""));
  }

  TEST_CASE("HTTP classification: default and configured retry statuses") {
    http_response r;
    r.status = 503;
    r.retry_after = std::chrono::seconds(7);
    auto o = classify_http(r);
    CHECK_FALSE(o.ok);
    CHECK(o.retryable);
    CHECK(o.retry_after == std::chrono::milliseconds(7000));
    for (long s : {408L, 429L, 500L, 599L}) {
      r.status = s;
      CHECK(classify_http(r).retryable);
    }
    for (long s : {400L, 401L, 404L, 422L, 301L}) {
      r.status = s;
      CHECK_FALSE(classify_http(r).retryable);
    }
    r.status = 204;
    CHECK(classify_http(r).ok);
    http_retry_config only_409;
    only_409.retry_on_status = std::vector<uint16_t>{409};
    r.status = 409;
    CHECK(classify_http(r, only_409).retryable);
    r.status = 503;
    CHECK_FALSE(classify_http(r, only_409).retryable);
    http_response t;
    t.error = "Connection refused";
    CHECK(classify_http(t, only_409).retryable);  // transport errors always retry
    t.timed_out = true;
    CHECK(classify_http(t).error.rfind("timeout: ", 0) == 0);
  }

  TEST_CASE("NATS classification: stored succeeds and transient statuses retry") {
    publish_result r;
    r.outcome = publish_result::status::ok;
    CHECK(classify_nats(r).ok);
    r.outcome = publish_result::status::duplicate;  // stored by an earlier attempt
    CHECK(classify_nats(r).ok);
    r.outcome = publish_result::status::error;
    r.error = "no acknowledgment within 5000 ms";
    for (int s :
         {NATS_TIMEOUT, NATS_NO_RESPONDERS, NATS_CONNECTION_CLOSED, NATS_NOT_YET_CONNECTED}) {
      r.nats_status = s;
      CHECK_FALSE(classify_nats(r).ok);
      CHECK(classify_nats(r).retryable);
      CHECK(classify_nats(r).error.find("no acknowledgment") != std::string::npos);
    }
    r.nats_status = NATS_ERR;  // the server refused it (e.g. wrong expected stream)
    r.js_code = 10060;
    r.error = "expected stream does not match [JetStream error 10060]";
    CHECK_FALSE(classify_nats(r).retryable);
    CHECK(classify_nats(r).error.rfind("NATS publish refused: ", 0) == 0);
  }

  TEST_CASE("nats executor: registered only when an observer uses it") {
    auto without = make_executors(registry_of("[[observers.actions]]\ntype = \"log\"\n"), nullptr);
    CHECK(without.count("nats") == 0);
    auto reg = registry_of(
        "[[observers.actions]]\ntype = \"nats\"\nurl = \"nats://u:pw@127.0.0.1:1, "
        "nats://h2\"\nsubject = \"orders.{{ entity_id }}.{{ data.customer }}\"\n");
    auto with = make_executors(reg, nullptr);
    REQUIRE(with.count("nats") == 1);
    auto ev = order_event();
    attempt_request req;
    req.ev = ev.get();
    req.observer_cfg = &reg->config(0);
    req.action_cfg = &reg->config(0).actions[0];
    req.idempotency_key = "e-1:o:0";
    CHECK(with["nats"]->endpoint(req) == "nats://127.0.0.1:1");  // no credentials
    std::string subject, payload;
    REQUIRE_FALSE(reg->render_nats(0, 0, *ev, subject, payload));
    CHECK(subject == "orders.17.Zoë");
    CHECK(payload == ev->envelope_json);
  }

  TEST_CASE("SMTP classification: 4xx transient, 5xx permanent, transport transient") {
    smtp_result r;
    CHECK(classify_smtp(r).ok);
    r.error = "RCPT failed";
    r.reply = 451;
    CHECK(classify_smtp(r).retryable);
    CHECK(classify_smtp(r).error.find("SMTP 451") != std::string::npos);
    r.reply = 550;
    CHECK_FALSE(classify_smtp(r).retryable);
    CHECK(classify_smtp(r).error.find("SMTP 550 (permanent)") != std::string::npos);
    r.reply = 0;
    CHECK(classify_smtp(r).retryable);
    r.reply = 250;  // the server accepted a command, then the connection broke
    CHECK(classify_smtp(r).retryable);
    r.reply = 550;
    r.timed_out = true;
    CHECK(classify_smtp(r).retryable);
  }

  TEST_CASE("database classification by SQLSTATE") {
    pg_call_result r;
    r.ok = true;
    CHECK(classify_pg(r).ok);
    r.ok = false;
    r.error = "could not connect";
    r.connection_lost = true;
    CHECK(classify_pg(r).retryable);
    r.connection_lost = false;
    for (const char* s : {"40001", "40P01", "57014", "57P01", "08006", "53300", "55P03"}) {
      r.sqlstate = s;
      CHECK(classify_pg(r).retryable);
    }
    r.sqlstate = "23505";
    r.error = "duplicate key value violates unique constraint";
    auto o = classify_pg(r);
    CHECK_FALSE(o.retryable);
    CHECK(o.error == "SQLSTATE 23505: duplicate key value violates unique constraint");
    r.sqlstate = "P0001";
    CHECK_FALSE(classify_pg(r).retryable);
  }

  TEST_CASE("quoted-printable keeps text readable and lines short") {
    CHECK(quoted_printable("plain text") == "plain text");
    CHECK(quoted_printable("a=b") == "a=3Db");
    CHECK(quoted_printable("trailing \nnext") == "trailing=20\r\nnext");
    CHECK(quoted_printable("line1\r\nline2") == "line1\r\nline2");
    CHECK(quoted_printable("Zo\xc3\xab") == "Zo=C3=AB");
    CHECK(quoted_printable(".\n.x") == "=2E\r\n=2Ex");
    const std::string long_line(200, 'x');
    const std::string qp = quoted_printable(long_line);
    size_t start = 0;
    std::string joined;
    while (start < qp.size()) {
      size_t end = qp.find("\r\n", start);
      if (end == std::string::npos) end = qp.size();
      const std::string line = qp.substr(start, end - start);
      CHECK(line.size() <= 76);
      joined += line.back() == '=' ? line.substr(0, line.size() - 1) : line;
      start = end + 2;
    }
    CHECK(joined == long_line);
  }

  TEST_CASE("email message format") {
    email_parts p;
    p.from = "observer@example.com";
    p.to = {"a@example.com", "b@example.com"};
    p.subject = "Order 17\r\nBcc: evil@example.com";
    p.body = "Hello\nWorld";
    p.message_id = "abc@fraiseql-observer";
    p.date = "Mon, 23 Nov 2026 01:02:03 +0000";
    p.headers = {"X-Fraiseql-Event-Id: e-1"};
    const std::string m = format_email(p);
    CHECK(m.find("From: observer@example.com\r\n") == 0);
    CHECK(m.find("\r\nTo: a@example.com, b@example.com\r\n") != std::string::npos);
    // Header injection through a template is neutralised.
    CHECK(m.find("\r\nSubject: Order 17  Bcc: evil@example.com\r\n") != std::string::npos);
    CHECK(m.find("\r\nBcc:") == std::string::npos);
    CHECK(m.find("\r\nMessage-ID: <abc@fraiseql-observer>\r\n") != std::string::npos);
    CHECK(m.find("\r\nX-Fraiseql-Event-Id: e-1\r\n") != std::string::npos);
    CHECK(m.find("\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nHello\r\nWorld\r\n") !=
          std::string::npos);
    p.subject = "Commande n\xc2\xb0 17";
    CHECK(format_email(p).find("Subject: =?UTF-8?B?Q29tbWFuZGUgbsKwIDE3?=\r\n") !=
          std::string::npos);
    CHECK(rfc5322_date_now().find(" +0000") != std::string::npos);
  }

  TEST_CASE("slack payload from the message template") {
    auto reg = registry_of(
        "[[observers.actions]]\ntype = \"slack\"\nwebhook_url = \"http://h/x\"\n"
        "channel = \"#orders\"\nusername = \"bot\"\nicon_emoji = \":package:\"\n"
        "message = \"New order {{ data.id }} for {{ data.customer }}\"\n");
    auto ev = order_event();
    std::string payload;
    REQUIRE_FALSE(reg->render_slack(0, 0, *ev, payload));
    auto v = boost::json::parse(payload);
    CHECK(v.at("text") == "New order 17 for Zoë");
    CHECK(v.at("channel") == "#orders");
    CHECK(v.at("username") == "bot");
    CHECK(v.at("icon_emoji") == ":package:");

    auto plain = registry_of(
        "[[observers.actions]]\ntype = \"slack\"\nwebhook_url = \"http://h/x\"\n"
        "message = \"\\\"quoted\\\" text\"\n");
    REQUIRE_FALSE(plain->render_slack(0, 0, *ev, payload));
    CHECK(boost::json::parse(payload) == boost::json::parse(R"({"text": "\"quoted\" text"})"));
  }

  TEST_CASE("email subject and body templates") {
    auto reg = registry_of(
        "[[observers.actions]]\ntype = \"email\"\nhost = \"127.0.0.1\"\nsecurity = \"none\"\n"
        "from = \"o@example.com\"\nto = \"a@example.com\"\n"
        "subject = \"Order {{ data.id }}\"\nbody = \"Total: {{ data.total }}\"\n");
    auto ev = order_event();
    std::string subject, body;
    REQUIRE_FALSE(reg->render_email(0, 0, *ev, subject, body));
    CHECK(subject == "Order 17");
    CHECK(body == "Total: 9.5");
    auto no_body = registry_of(
        "[[observers.actions]]\ntype = \"email\"\nhost = \"mail\"\n"
        "from = \"o@example.com\"\nto = [\"a@example.com\"]\nsubject = \"s\"\n");
    REQUIRE_FALSE(no_body->render_email(0, 0, *ev, subject, body));
    CHECK(body == ev->envelope_json);
    CHECK(no_body->config(0).actions[0].email->url() == "smtp://mail:587");
  }

  TEST_CASE("database params: literals and templates, nested") {
    auto reg = registry_of(
        "[[observers.actions]]\ntype = \"database\"\nfunction = \"app.on_order\"\n"
        "[observers.actions.params]\nsource = \"observer\"\nlimit = 3\n"
        "id = \"{{ data.id }}\"\nlabel = \"order {{ data.id }}\"\n"
        "nested = { tags = [\"a\", \"{{ entity_type }}\"], \"we/ird~\" = \"{{ data.total }}\" }\n");
    auto ev = order_event();
    std::string params;
    REQUIRE_FALSE(reg->render_database_params(0, 0, *ev, params));
    CHECK(boost::json::parse(params) ==
          boost::json::parse(R"({"source": "observer", "limit": 3, "id": 17, "label": "order 17",
                                 "nested": {"tags": ["a", "Order"], "we/ird~": 9.5}})"));
    const auto& d = *reg->config(0).actions[0].database;
    CHECK(d.quoted_function() == "\"app\".\"on_order\"");
    CHECK(pg_call_sql(d.quoted_function()) == "SELECT \"app\".\"on_order\"($1::jsonb, $2::jsonb)");
    CHECK(d.url == "postgresql://localhost/app");  // [database] url by default
  }

  TEST_CASE("template errors are reported at build, naming observer, action and key") {
    auto r = load_config_string(
        "[database]\nurl = \"postgresql://localhost/app\"\n"
        "[[observers]]\nname = \"o\"\nevent_type = \"*\"\nentity = \"*\"\n"
        "[[observers.actions]]\ntype = \"email\"\nhost = \"mail\"\n"
        "from = \"o@example.com\"\nto = \"a@example.com\"\nsubject = \"{{ data.( }}\"\n"
        "[[observers.actions]]\ntype = \"database\"\nfunction = \"f\"\n"
        "params = { x = \"{{ ]] }}\" }\n"
        "[[observers.actions]]\ntype = \"slack\"\nwebhook_url = \"http://h/\"\n"
        "message = \"{{ }}\"\n",
        "t.toml", no_env);
    REQUIRE(r);
    std::vector<std::string> errors;
    observer_registry::build(r.value->observers, errors);
    REQUIRE(errors.size() == 3);
    CHECK(errors[0].find("observer 'o' action 0 (email): subject: ") == 0);
    CHECK(errors[1].find("observer 'o' action 1 (database): params/x: ") == 0);
    CHECK(errors[2].find("observer 'o' action 2 (slack): message: ") == 0);
  }
}
