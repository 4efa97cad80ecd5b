"""Every action type against its real peer on loopback: signed webhooks (the
test recomputes the HMAC), retry classification, Slack payloads (HTTP sink),
email through aiosmtpd (plain, STARTTLS, implicit TLS, AUTH; 5xx to the DLQ,
4xx retried) and PostgreSQL functions (a row written, SQL errors to the DLQ
with their SQLSTATE, statement timeouts)."""
import asyncio
import email
import email.policy
import hashlib
import hmac
import json
import os
import socket
import ssl
import subprocess
import time
import unittest

from harness import IntegrationTest, main, wait_until

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult
except ImportError:  # pragma: no cover - scripts/install-deps.sh installs python3-aiosmtpd
    Controller = None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MailHandler:
    """Records delivered messages; `fail_codes` answers the next DATA commands."""

    def __init__(self):
        self.messages = []
        self.fail_codes = []
        self.data_commands = 0
        self.stall_s = 0.0  # answer DATA this late

    async def handle_DATA(self, server, session, envelope):
        self.data_commands += 1
        if self.stall_s:
            await asyncio.sleep(self.stall_s)
        if self.fail_codes:
            code = self.fail_codes.pop(0)
            return f"{code} {'try again later' if code < 500 else 'message refused'}"
        self.messages.append({
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "content": envelope.original_content or envelope.content,
            # STARTTLS sets session.ssl; implicit TLS shows on the transport.
            "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
            "login": getattr(session, "login_data", None),
        })
        return "250 OK"


def psutil_like_connections(port):
    """Established TCP connections to 127.0.0.1:port (from /proc/net/tcp)."""
    out = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            local, remote, state = parts[1], parts[2], parts[3]
            if state == "01" and int(remote.split(":")[1], 16) == port:
                out.append((local, remote))
    return out


def observer(name, action, max_attempts=3, entity="Order"):
    return f"""
[[observers]]
name = "{name}"
event_type = "INSERT"
entity = "{entity}"

[[observers.actions]]
{action}

[observers.retry]
max_attempts = {max_attempts}
initial_delay_ms = 20
max_delay_ms = 100
"""


class ActionsTest(IntegrationTest):
    def dlq_rows(self):
        return self.sql("SELECT observer_name, action_type, attempts, last_error FROM observer_dlq ORDER BY id")

    def insert_order(self, customer="ada", total=12.5):
        self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', %s)", (customer, total))

    def setenv(self, **kw):
        for k, v in kw.items():
            old = os.environ.get(k)
            os.environ[k] = v
            self.cleanups.append(lambda k=k, old=old: os.environ.pop(k) if old is None else os.environ.update({k: old}))

    # --- webhook ------------------------------------------------------------------

    def test_webhook_signature_verifies(self):
        secret = "it-s3cret-" + os.urandom(4).hex()
        self.setenv(IT_HOOK_SECRET=secret)
        sink = self.sink()
        node = self.node(observer("signed", f'type = "webhook"\nurl = "{sink.url}/signed"\n'
                                            'signing_secret_env = "IT_HOOK_SECRET"'))
        self.setup_orders(node)
        node.start()
        self.insert_order()
        rec = wait_until(lambda: sink.delivered(), what="a signed delivery")[0]
        headers = {k.lower(): v for k, v in rec["headers"].items()}
        ts = headers["x-fraiseql-timestamp"]
        self.assertLess(abs(int(ts) - time.time()), 60)
        expected = hmac.new(secret.encode(), (ts + "." + rec["body"]).encode(), hashlib.sha256).hexdigest()
        self.assertEqual(headers["x-fraiseql-signature"], "sha256=" + expected)
        self.assertEqual(json.loads(rec["body"])["data"]["customer"], "ada")
        self.assertEqual(node.stop(), 0)

    def test_webhook_retry_on_status_is_configurable(self):
        conflict = self.sink(status=409)
        unavailable = self.sink(status=503)
        obs = observer("conflict-retries", f'type = "webhook"\nurl = "{conflict.url}/c"\nretry_on_status = [409]',
                       max_attempts=3)
        obs += observer("503-is-final", f'type = "webhook"\nurl = "{unavailable.url}/u"\nretry_on_status = [409]',
                        max_attempts=3)
        node = self.node(obs)
        self.setup_orders(node)
        node.start()
        self.insert_order()
        rows = wait_until(lambda: len(self.dlq_rows()) == 2 and self.dlq_rows(), what="two DLQ rows")
        by_name = {r[0]: r for r in rows}
        self.assertEqual(by_name["conflict-retries"][2], 3)
        self.assertIn("HTTP 409", by_name["conflict-retries"][3])
        self.assertEqual(by_name["503-is-final"][2], 1)
        self.assertIn("HTTP 503", by_name["503-is-final"][3])
        self.assertEqual(len(conflict.records()), 3)
        self.assertEqual(len(unavailable.records()), 1)

    # --- slack --------------------------------------------------------------------

    def test_slack_payload(self):
        sink = self.sink()
        self.setenv(IT_SLACK_URL=sink.url + "/services/T000/B000/XXXX")
        node = self.node(observer("slack", 'type = "slack"\nwebhook_url_env = "IT_SLACK_URL"\n'
                                           'channel = "#orders"\nusername = "observer"\nicon_emoji = ":package:"\n'
                                           'message = "New order from *{{ data.customer }}*: {{ data.total }}"'))
        self.setup_orders(node)
        node.start()
        self.insert_order("grace", 7)
        rec = wait_until(lambda: sink.delivered(), what="a Slack delivery")[0]
        self.assertEqual(rec["path"], "/services/T000/B000/XXXX")
        self.assertEqual(rec["method"], "POST")
        self.assertTrue(rec["headers"]["Content-Type"].startswith("application/json"))
        self.assertEqual(json.loads(rec["body"]), {"text": "New order from *grace*: 7", "channel": "#orders",
                                                   "username": "observer", "icon_emoji": ":package:"})
        self.assertEqual(node.stop(), 0)

    def test_slack_server_error_is_retried(self):
        sink = self.sink()
        sink.control(fail_next=1, fail_status=500)
        node = self.node(observer("slack", f'type = "slack"\nwebhook_url = "{sink.url}/hook"\nmessage = "hi"'))
        self.setup_orders(node)
        node.start()
        self.insert_order()
        wait_until(lambda: sink.delivered(), what="a Slack delivery after a retry")
        self.assertEqual(len(sink.records()), 2)
        self.assertEqual(self.dlq_rows(), [])

    # --- email --------------------------------------------------------------------

    def smtp(self, **kw):
        if Controller is None:
            self.fail("python3-aiosmtpd is missing (scripts/install-deps.sh installs it)")
        handler = MailHandler()
        port = free_port()
        ctl = Controller(handler, hostname="127.0.0.1", port=port, **kw)
        ctl.start()
        self.cleanups.append(ctl.stop)
        return handler, port

    def cert(self):
        cert = os.path.join(self.workdir, "smtp-cert.pem")
        key = os.path.join(self.workdir, "smtp-key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=localhost", "-addext",
                        "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        return cert, ctx

    def email_action(self, port, security, extra=""):
        return (f'type = "email"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "{security}"\n'
                'from = "observer@example.com"\nto = ["ops@example.com", "audit@example.com"]\n'
                'subject = "Order {{ data.id }} by {{ data.customer }}"\n'
                'body = "Customer {{ data.customer }} ordered for {{ data.total }}.\\nEvent {{ id }}"\n'
                'timeout_ms = 5000\n' + extra)

    def check_mail(self, msg, tls):
        self.assertEqual(msg["mail_from"], "observer@example.com")
        self.assertEqual(msg["rcpt_tos"], ["ops@example.com", "audit@example.com"])
        self.assertEqual(msg["tls"], tls)
        m = email.message_from_bytes(msg["content"], policy=email.policy.default)
        self.assertEqual(m["From"], "observer@example.com")
        self.assertEqual(m["To"], "ops@example.com, audit@example.com")
        self.assertEqual(m["Subject"], "Order 1 by Zoë")
        self.assertTrue(m["Message-ID"].endswith("@fraiseql-observer>"))
        event_id = self.change_log_ids()[0]
        self.assertEqual(m["X-Fraiseql-Event-Id"], event_id)
        self.assertEqual(m.get_content().replace("\r\n", "\n"),
                         f"Customer Zoë ordered for 12.5.\nEvent {event_id}\n")

    def run_email(self, action, handler):
        node = self.node(observer("mail", action))
        self.setup_orders(node)
        node.start()
        self.insert_order("Zoë")
        wait_until(lambda: handler.messages, what="a mail")
        self.assertEqual(node.stop(), 0)
        self.assertEqual(self.dlq_rows(), [])
        return handler.messages[0]

    def test_email_plain(self):
        handler, port = self.smtp()
        self.check_mail(self.run_email(self.email_action(port, "none"), handler), tls=False)

    def test_email_starttls_with_auth(self):
        cert, ctx = self.cert()
        seen = []

        def authenticator(server, session, envelope, mechanism, auth_data):
            seen.append((mechanism, auth_data.login, auth_data.password))
            ok = auth_data.login == b"mailer" and auth_data.password == b"pw-123"
            return AuthResult(success=ok)

        handler, port = self.smtp(tls_context=ctx, require_starttls=True, authenticator=authenticator,
                                  auth_required=True)
        self.setenv(IT_SMTP_USER="mailer", IT_SMTP_PASS="pw-123")
        msg = self.run_email(self.email_action(port, "starttls",
                                               f'ca_file = "{cert}"\nusername_env = "IT_SMTP_USER"\n'
                                               'password_env = "IT_SMTP_PASS"\n'), handler)
        self.check_mail(msg, tls=True)
        self.assertEqual(seen[0][1:], (b"mailer", b"pw-123"))

    def test_email_implicit_tls(self):
        cert, ctx = self.cert()
        handler, port = self.smtp(ssl_context=ctx)
        self.check_mail(self.run_email(self.email_action(port, "tls", f'ca_file = "{cert}"\n'), handler), tls=True)

    def test_email_starttls_rejects_untrusted_certificate(self):
        _, ctx = self.cert()
        handler, port = self.smtp(tls_context=ctx, require_starttls=True)
        node = self.node(observer("mail", self.email_action(port, "starttls"), max_attempts=2))
        self.setup_orders(node)
        node.start()
        self.insert_order("Zoë")
        rows = wait_until(self.dlq_rows, what="a DLQ row")
        self.assertEqual(rows[0][2], 2)  # transport errors are retried
        self.assertIn("transport error", rows[0][3])
        self.assertEqual(handler.messages, [])

    def test_email_5xx_goes_to_dlq_and_4xx_is_retried(self):
        handler, port = self.smtp()
        handler.fail_codes = [554]
        node = self.node(observer("mail", self.email_action(port, "none"), max_attempts=5))
        self.setup_orders(node)
        node.start()
        self.insert_order("Zoë")
        rows = wait_until(self.dlq_rows, what="a DLQ row")
        self.assertEqual(rows[0][:3], ("mail", "email", 1))
        self.assertIn("SMTP 554", rows[0][3])
        self.assertEqual(handler.data_commands, 1)

        handler.fail_codes = [451, 452]
        self.insert_order("Zoë")
        wait_until(lambda: handler.messages, what="a mail after two transient failures")
        self.assertEqual(handler.data_commands, 4)
        self.assertEqual(len(self.dlq_rows()), 1)
        self.assertEqual(node.stop(), 0)

    def test_email_timeout_aborts_the_session_and_retries(self):
        handler, port = self.smtp()
        handler.stall_s = 3
        action = self.email_action(port, "none").replace("timeout_ms = 5000", "timeout_ms = 400")
        node = self.node(observer("mail", action, max_attempts=2))
        self.setup_orders(node)
        node.start()
        self.insert_order("Zoë")
        rows = wait_until(self.dlq_rows, what="a DLQ row")
        self.assertEqual(rows[0][2], 2)
        self.assertIn("timeout", rows[0][3])
        # Both attempts reached DATA and gave up waiting for its reply.
        self.assertEqual(handler.data_commands, 2)
        # The node closed both sessions: no connection of ours is left open.
        wait_until(lambda: not [c for c in psutil_like_connections(port)], timeout=10,
                   what="SMTP connections closed")

    # --- database -----------------------------------------------------------------

    def setup_functions(self):
        self.sql("CREATE SCHEMA app")
        self.sql("CREATE TABLE app.audit (id serial PRIMARY KEY, event jsonb, params jsonb)")
        self.sql("CREATE FUNCTION app.on_order(ev jsonb, p jsonb) RETURNS void LANGUAGE sql AS"
                 " $$ INSERT INTO app.audit (event, params) VALUES (ev, p) $$")
        self.sql("CREATE FUNCTION app.refuse(ev jsonb, p jsonb) RETURNS void LANGUAGE plpgsql AS"
                 " $$ BEGIN RAISE EXCEPTION 'order % refused', ev->>'entity_id' USING ERRCODE = '22023'; END $$")
        self.sql("CREATE FUNCTION app.slow(ev jsonb, p jsonb) RETURNS void LANGUAGE sql AS"
                 " $$ SELECT pg_sleep(30) $$")

    def test_database_function_writes_a_row(self):
        node = self.node(observer("db", 'type = "database"\nfunction = "app.on_order"\n'
                                        'params = { source = "observer", id = "{{ data.id }}", '
                                        'who = "customer {{ data.customer }}" }'))
        self.setup_orders(node)
        self.setup_functions()
        node.start()
        self.insert_order("ada")
        rows = wait_until(lambda: self.sql("SELECT event, params FROM app.audit"), what="an audit row")
        ev, params = rows[0]
        self.assertEqual(ev["entity_type"], "Order")
        self.assertEqual(ev["event_type"], "INSERT")
        self.assertEqual(ev["id"], self.change_log_ids()[0])
        self.assertEqual(ev["data"]["customer"], "ada")
        self.assertEqual(params, {"source": "observer", "id": 1, "who": "customer ada"})
        self.assertEqual(node.stop(), 0)
        self.assertEqual(self.dlq_rows(), [])

    def test_database_reconnects_after_connection_loss(self):
        node = self.node(observer("db", 'type = "database"\nfunction = "app.on_order"', max_attempts=10))
        self.setup_orders(node)
        self.setup_functions()
        node.start()
        self.insert_order("first")
        wait_until(lambda: self.sql("SELECT count(*) FROM app.audit")[0][0] == 1, what="the first row")
        # Kill every other session of the database: the action's connections
        # (and the node's own, which reconnect by themselves).
        self.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                 " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        self.insert_order("second")
        wait_until(lambda: self.sql("SELECT count(*) FROM app.audit")[0][0] == 2, timeout=30,
                   what="the second row after reconnecting")
        self.assertEqual(self.dlq_rows(), [])
        self.assertEqual(node.stop(), 0)

    def test_database_sql_error_goes_to_dlq_with_sqlstate(self):
        node = self.node(observer("db", 'type = "database"\nfunction = "app.refuse"', max_attempts=5))
        self.setup_orders(node)
        self.setup_functions()
        node.start()
        self.insert_order()
        rows = wait_until(self.dlq_rows, what="a DLQ row")
        self.assertEqual(rows[0][:3], ("db", "database", 1))
        self.assertIn("SQLSTATE 22023", rows[0][3])
        self.assertIn("order 1 refused", rows[0][3])

    def test_database_timeout_cancels_and_retries(self):
        node = self.node(observer("db", 'type = "database"\nfunction = "app.slow"\ntimeout_ms = 300',
                                  max_attempts=2))
        self.setup_orders(node)
        self.setup_functions()
        node.start()
        t0 = time.time()
        self.insert_order()
        rows = wait_until(self.dlq_rows, what="a DLQ row")
        self.assertLess(time.time() - t0, 10)
        self.assertEqual(rows[0][2], 2)
        self.assertIn("SQLSTATE 57014", rows[0][3])
        # The query was cancelled on the server, not left running.
        running = self.sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT \"app\".\"slow\"%%'"
                           " AND state = 'active'")
        self.assertEqual(running[0][0], 0)

    def test_database_connection_failure_is_retried(self):
        self.setenv(IT_DEAD_DB="postgresql://postgres@127.0.0.1:9/none?connect_timeout=2")
        node = self.node(observer("db", 'type = "database"\nfunction = "app.on_order"\nurl_env = "IT_DEAD_DB"',
                                  max_attempts=3))
        self.setup_orders(node)
        node.start()
        self.insert_order()
        rows = wait_until(self.dlq_rows, what="a DLQ row")
        self.assertEqual(rows[0][2], 3)
        self.assertIn("database: connection to postgresql://postgres@127.0.0.1:9/none", rows[0][3])

    # --- log ----------------------------------------------------------------------

    def test_log_action_renders_message(self):
        node = self.node(observer("logger", 'type = "log"\nlevel = "warn"\nmessage = "order {{ data.id }} for {{ data.customer }}"'))
        self.setup_orders(node)
        node.start()
        self.insert_order("ada")
        wait_until(lambda: "order 1 for ada" in node.output(), what="the log line")
        self.assertEqual(node.stop(), 0)


if __name__ == "__main__":
    main()
