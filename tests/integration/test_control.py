"""observerctl against live nodes over the CAF control plane: every command in
text and JSON, standby status, token rejection, the protocol version check, the
TLS requirement (refused without, reached with the right CA), DLQ redrive."""
import json
import os
import re
import stat
import subprocess
import time

from harness import (CTL, NODE, IntegrationTest, control_port, ctl, main, make_pki, wait_until,
                     webhook_observer)

TOKEN = "s3cret-token-for-tests"


class ControlTest(IntegrationTest):
    def control_node(self, observers, token=True, extra_control="", **kw):
        token_file = os.path.join(self.workdir, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        extra = kw.pop("extra", "")
        extra += f"""
[control]
enabled = true
port = 0
{f'token_file = "{token_file}"' if token else ''}
{extra_control}
"""
        return self.node(observers, extra=extra, **kw)

    def control_port(self, node):
        m = wait_until(lambda: re.search(r"control: listening on [^:]+:(\d+)", node.output()),
                       what="control plane port in the node log")
        return int(m.group(1))

    def ctl(self, port, *args, token=TOKEN, fmt=None, extra=(), env=None, timeout=20):
        cmd = [CTL, "--node", f"127.0.0.1:{port}", "--timeout", str(timeout)] + list(extra)
        if fmt:
            cmd += ["--format", fmt]
        e = dict(os.environ)
        e.pop("FRAISEQL_CONTROL_TOKEN", None)
        if token is not None:
            e["FRAISEQL_CONTROL_TOKEN"] = token
        e.update(env or {})
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=90,
                              stdin=subprocess.DEVNULL, env=e)

    def ctl_json(self, port, *args, rc=0):
        r = self.ctl(port, *args, fmt="json")
        self.assertEqual(r.returncode, rc, r.stdout + r.stderr)
        return json.loads(r.stdout)

    def dlq(self):
        return self.sql("SELECT id, status, attempts, retry_count, last_error FROM observer_dlq ORDER BY id")

    # --- status, standby, metrics ---------------------------------------------

    def test_status_leader_standby_and_metrics(self):
        sink = self.sink()
        obs = webhook_observer("hook", "INSERT", "Order", sink.url + "/x")
        a = self.control_node(obs)
        self.setup_orders(a)
        a.start()
        pa = self.control_port(a)
        wait_until(lambda: "node: started" in a.output(), what="leader start")
        b = self.control_node(obs)
        b.start()
        pb = self.control_port(b)
        wait_until(lambda: "standing by" in b.output(), what="standby")
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 1)")
        wait_until(lambda: sink.delivered(), what="delivery")
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == 1, what="checkpoint")

        r = self.ctl(pa, "status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("role:         leader", r.stdout)
        self.assertIn("listener:     healthy", r.stdout)
        self.assertIn("dlq:          0 pending", r.stdout)
        s = self.ctl_json(pa, "status", "--detailed")
        self.assertTrue(s["ok"])
        res = s["result"]
        self.assertEqual(res["role"], "leader")
        self.assertEqual(res["protocol"], 1)
        self.assertTrue(res["listener"]["healthy"])
        self.assertEqual(res["checkpoint"]["events_total"], 1)
        self.assertIsInstance(res["checkpoint"]["pending_txids"], str)  # "txid:pk,..." or ""
        self.assertGreaterEqual(res["checkpoint"]["age_seconds"], 0)
        self.assertEqual(res["events"]["finished"], 1)
        in_flight = dict(res["in_flight"])
        # The debug journal keeps the delivered event: its bytes stay charged
        # to the byte budget (listener.max_bytes_in_flight).
        self.assertGreater(in_flight.pop("bytes"), 0)
        self.assertEqual(in_flight, {"events": 0, "attempts": 0})
        self.assertEqual(res["backlog"], 0)
        self.assertEqual(res["dlq"]["pending"], 0)
        self.assertEqual(res["observers"][0]["name"], "hook")
        # The sink's endpoint has a (closed) breaker once it was called.
        self.assertEqual([(b["endpoint"], b["state"]) for b in res["breakers"]],
                         [(f"http://127.0.0.1:{sink.port}", "closed")])
        self.assertIn("breakers:     1 endpoints, 0 not closed", r.stdout)

        rb = self.ctl(pb, "status", "--detailed")
        self.assertEqual(rb.returncode, 0, rb.stderr)
        self.assertIn("role:         standby", rb.stdout)
        self.assertIn("listener:     not running on this node", rb.stdout)
        sb = self.ctl_json(pb, "status")["result"]
        self.assertEqual(sb["role"], "standby")
        self.assertEqual(sb["lease"]["holder"], res["lease"]["holder"])
        self.assertIsNone(sb["in_flight"])

        m = self.ctl(pa, "metrics")
        self.assertEqual(m.returncode, 0, m.stderr)
        self.assertIn('observer_events_processed_total{listener_id="test"} 1', m.stdout)
        m = self.ctl(pa, "metrics", "--metric", "observer_actions_executed_total")
        self.assertEqual(m.returncode, 0, m.stderr)
        self.assertIn("observer_actions_executed_total{", m.stdout)
        self.assertNotIn("observer_events_processed_total", m.stdout)
        mj = self.ctl_json(pa, "metrics", "--metric", "observer_event_processing_duration_seconds")
        self.assertIn("observer_event_processing_duration_seconds_count 1", mj["result"])
        bad = self.ctl(pa, "metrics", "--metric", "no_such_metric")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("no metric named 'no_such_metric'", bad.stderr)
        sm = self.ctl(pb, "metrics")
        self.assertEqual(sm.returncode, 1)
        self.assertIn("standby", sm.stderr)
        # Global options also work after the subcommand.
        r = subprocess.run([CTL, "status", "--node", f"127.0.0.1:{pa}", "--token", TOKEN],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(b.stop(), 0)
        self.assertEqual(a.stop(), 0)

    # --- authentication and protocol ----------------------------------------

    def test_token_rejection_and_protocol_version(self):
        a = self.control_node("")
        self.setup_orders(a)
        a.start()
        p = self.control_port(a)
        wait_until(lambda: "node: started" in a.output(), what="node start")
        r = self.ctl(p, "status", token="wrong")
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn("authentication failed", r.stderr)
        r = self.ctl(p, "dlq", "list", token=None)
        self.assertEqual(r.returncode, 4)
        r = self.ctl(p, "status", token="wrong", fmt="json")
        self.assertEqual(json.loads(r.stdout)["code"], "auth")
        wait_until(lambda: "rejected 'status' request" in a.output() and "wrong token" in a.output()
                   and "rejected 'dlq.list' request" in a.output() and "missing token" in a.output(),
                   what="rejections logged by the node")
        r = self.ctl(p, "status", extra=["--protocol-version", "99"])
        self.assertEqual(r.returncode, 3)
        self.assertIn("protocol version mismatch: node 127.0.0.1:%d speaks control protocol 1, "
                      "this observerctl speaks 99" % p, r.stderr)
        # Nobody listening: exit 3.
        r = self.ctl(1, "status")
        self.assertEqual(r.returncode, 3)
        self.assertIn("cannot connect", r.stderr)
        # Usage errors: exit 2.
        r = self.ctl(p, "dlq", "show")
        self.assertEqual(r.returncode, 2)
        r = subprocess.run([CTL, "--node", "nohostport", "status"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("HOST:PORT", r.stderr)
        self.assertEqual(a.stop(), 0)

    # --- DLQ workflows ------------------------------------------------------

    def test_dlq_list_show_stats_retry_remove(self):
        sink = self.sink()
        sink.control(status=500)
        node = self.control_node(webhook_observer("flaky", "INSERT", "Order", sink.url + "/x",
                                                  max_attempts=2, initial_delay_ms=20))
        self.setup_orders(node)
        node.start()
        p = self.control_port(node)
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 1), ('bob', 'new', 2)")
        wait_until(lambda: len(self.dlq()) == 2, what="two DLQ rows")
        # Different entities run in parallel: order the rows by customer (ada, bob).
        ids = [r[0] for r in self.sql("SELECT id FROM observer_dlq ORDER BY event->'data'->>'customer'")]
        row_of = lambda i: [r for r in self.dlq() if r[0] == i][0]

        r = self.ctl(p, "dlq", "list", "--limit", "10")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("flaky", r.stdout)
        self.assertIn("HTTP 500", r.stdout)
        lst = self.ctl_json(p, "dlq", "list", "--observer", "flaky", "--limit", "1", "--offset", "1")["result"]
        self.assertEqual([x["id"] for x in lst], [max(ids)])
        self.assertEqual(self.ctl_json(p, "dlq", "list", "--observer", "other")["result"], [])
        self.assertEqual(len(self.ctl_json(p, "dlq", "list", "--after", "2000-01-01T00:00:00Z")["result"]), 2)
        self.assertEqual(self.ctl_json(p, "dlq", "list", "--after", "2999-01-01")["result"], [])
        bad = self.ctl(p, "dlq", "list", "--after", "not a time")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("invalid input syntax", bad.stderr)

        show = self.ctl(p, "dlq", "show", str(ids[0]))
        self.assertEqual(show.returncode, 0, show.stderr)
        self.assertIn("observer_name:    flaky", show.stdout)
        self.assertIn('"customer": "ada"', show.stdout)
        self.assertIn('"total": 1,', show.stdout)
        sj = self.ctl_json(p, "dlq", "show", str(ids[0]))["result"]
        self.assertEqual(sj["event"]["data"]["customer"], "ada")
        self.assertEqual(self.ctl(p, "dlq", "show", "999999").returncode, 1)

        st = self.ctl(p, "dlq", "stats", "--by-observer", "--by-error")
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertIn("pending:  2", st.stdout)
        stj = self.ctl_json(p, "dlq", "stats", "--by-observer", "--by-error")["result"]
        self.assertEqual(stj["by_observer"], [{"observer": "flaky", "pending": 2, "total": 2}])
        self.assertEqual(stj["by_error"][0]["pending"], 2)

        # A redrive that fails again: attempts and error recorded, still pending.
        r = self.ctl(p, "dlq", "retry", str(ids[0]))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("failed after 2 attempt(s)", r.stderr)
        row = row_of(ids[0])
        self.assertEqual(row[1:4], ("pending", 4, 1))
        # The endpoint recovers: the redrive delivers through the pipeline.
        sink.control(status=200)
        before = len(sink.delivered())
        r = self.ctl(p, "dlq", "retry", str(ids[0]))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("resolved after 1 attempt(s)", r.stdout)
        row = row_of(ids[0])
        self.assertEqual(row[1:4], ("resolved", 5, 2))
        delivered = sink.delivered()
        self.assertEqual(len(delivered), before + 1)
        self.assertEqual(delivered[-1]["idempotency_key"], self.sql(
            "SELECT idempotency_key FROM observer_dlq WHERE id = %s", (ids[0],))[0][0])
        again = self.ctl(p, "dlq", "retry", str(ids[0]))
        self.assertEqual(again.returncode, 1)
        self.assertIn("is resolved; only pending entries can be retried", again.stderr)

        dry = self.ctl(p, "dlq", "retry-all", "--dry-run")
        self.assertEqual(dry.returncode, 0, dry.stderr)
        self.assertIn(f"would retry 1 pending DLQ entry dlq-{ids[1]:03d}", dry.stdout)
        self.assertEqual(self.ctl_json(p, "dlq", "retry-all", "--observer", "flaky", "--dry-run")["result"]
                         ["would_retry"], [ids[1]])
        ra = self.ctl_json(p, "dlq", "retry-all", "--observer", "flaky")["result"]
        self.assertEqual((ra["retried"], ra["resolved"], ra["failed"]), (1, 1, 0))
        self.assertEqual(row_of(ids[1])[1], "resolved")

        rm = self.ctl(p, "dlq", "remove", str(ids[1]))
        self.assertEqual(rm.returncode, 0, rm.stderr)
        self.assertIn(f"DLQ entry dlq-{ids[1]:03d} removed", rm.stdout)
        self.assertEqual(self.ctl_json(p, "dlq", "remove", str(ids[0]))["result"]["status"], "removed")
        self.assertEqual([r[1] for r in self.dlq()], ["removed", "removed"])
        self.assertEqual(self.ctl(p, "dlq", "remove", "999999").returncode, 1)
        self.assertEqual(len(self.ctl_json(p, "dlq", "list", "--status", "all")["result"]), 2)
        self.assertEqual(node.stop(), 0)

    # --- debug-event ----------------------------------------------------------

    def test_debug_event_journal_history_and_change_log(self):
        sink = self.sink()
        obs = webhook_observer("big", "INSERT", "Order", sink.url + "/x",
                               extra="") .replace('entity = "Order"', 'entity = "Order"\ncondition = "data.total > `10`"')
        obs += webhook_observer("all-orders", "*", "Order", sink.url + "/y")
        obs += webhook_observer("customers", "INSERT", "Customer", sink.url + "/z")
        node = self.control_node(obs)
        self.setup_orders(node)
        node.start()
        p = self.control_port(node)
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 5)")
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('bob', 'new', 50)")
        wait_until(lambda: len(sink.delivered()) == 3, what="three deliveries")
        small, large = self.change_log_ids()
        wait_until(lambda: self.ctl_json(p, "debug-event", "--event-id", large)["result"]["observers"][0]
                   .get("actions"), what="journal attempts")
        r = self.ctl(p, "debug-event", "--event-id", small)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("source: journal", r.stdout)
        self.assertIn("big: condition false (condition data.total > `10` -> false)", r.stdout)
        self.assertIn("all-orders: fires", r.stdout)
        self.assertIn("action 0 (webhook): succeeded after 1 attempt(s)", r.stdout)
        self.assertNotIn("customers", r.stdout)
        d = self.ctl_json(p, "debug-event", "--event-id", large, "--detailed")["result"]
        verdicts = {o["observer"]: o["verdict"] for o in d["observers"]}
        self.assertEqual(verdicts, {"big": "fires", "all-orders": "fires",
                                    "customers": "filter does not match"})
        self.assertEqual(d["envelope"]["data"]["customer"], "bob")
        self.assertEqual(d["observers"][0]["actions"][0]["state"], "succeeded")
        h = self.ctl(p, "debug-event", "--history", "5")
        self.assertEqual(h.returncode, 0, h.stderr)
        lines = h.stdout.strip().splitlines()
        self.assertEqual(len(lines), 2)
        self.assertIn(large, lines[0])  # newest first
        self.assertIn("matched: big all-orders", lines[0])
        hj = self.ctl_json(p, "debug-event", "--history", "1")["result"]
        self.assertEqual([e["event_id"] for e in hj], [large])
        self.assertEqual(node.stop(), 0)
        # After a restart the journal is empty: the event comes from the change log.
        node.start()
        p = self.control_port_after_restart(node)
        r = self.ctl(p, "debug-event", "--event-id", large)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("source: change log", r.stdout)
        self.assertIn("big: fires", r.stdout)
        missing = self.ctl(p, "debug-event", "--event-id", "00000000-0000-0000-0000-000000000000")
        self.assertEqual(missing.returncode, 1)
        self.assertIn("neither in this node's journal nor in core.tb_entity_change_log", missing.stderr)
        self.assertEqual(self.ctl(p, "debug-event").returncode, 2)
        self.assertEqual(node.stop(), 0)

    def control_port_after_restart(self, node):
        m = wait_until(lambda: (re.findall(r"control: listening on [^:]+:(\d+)", node.output()) + [None])[1],
                       what="second control plane port")
        return int(m)

    # --- TLS --------------------------------------------------------------------

    def make_pki(self, name):
        return make_pki(self.workdir, name)

    def test_tls_required_off_loopback_and_tls_node_reached_with_the_right_ca(self):
        # Without TLS: refused at load time, exit 2, nothing started.
        plain = self.control_node("", extra_control='bind = "0.0.0.0"')
        r = subprocess.run([NODE, "--config", plain.config], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=30)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("control.bind: '0.0.0.0' is not a loopback address", r.stderr)
        self.assertIn("requires TLS", r.stderr)
        # TLS without a token is refused too.
        pki = self.make_pki("good")
        tls = (f'tls_certificate = "{pki["node.pem"]}"\ntls_key = "{pki["node.key"]}"\n'
               f'tls_ca = "{pki["ca.pem"]}"\n')
        notoken = self.control_node("", token=False, extra_control='bind = "0.0.0.0"\n' + tls)
        r = subprocess.run([CTL, "validate-config", notoken.config], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("is not a loopback address", r.stderr)

        node = self.control_node("", extra_control='bind = "0.0.0.0"\n' + tls)
        self.setup_orders(node)
        node.start()
        p = self.control_port(node)
        wait_until(lambda: "node: started" in node.output(), what="node start")
        self.assertIn("TLS, peers verified", node.output())
        good = ["--tls-cert", pki["client.pem"], "--tls-key", pki["client.key"], "--tls-ca", pki["ca.pem"]]
        r = self.ctl(p, "status", extra=good)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("role:         leader", r.stdout)
        self.assertEqual(self.ctl(p, "status", extra=good, token="bad").returncode, 4)
        # A client whose certificate another CA signed is not let in.
        other = self.make_pki("evil")
        r = self.ctl(p, "status", timeout=3, extra=["--tls-cert", other["client.pem"], "--tls-key",
                                         other["client.key"], "--tls-ca", other["ca.pem"]])
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        # Plain connection to the TLS node: no answer, exit 3.
        r = self.ctl(p, "status", timeout=3)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        r = self.ctl(p, "status", extra=good[:2])
        self.assertEqual(r.returncode, 2)
        self.assertEqual(node.stop(), 0)

    def test_on_by_default_with_a_generated_token_observerctl_finds(self):
        # No [control] table at all: the control plane is up on loopback,
        # with a token nobody typed, published owner-only for observerctl.
        a = self.node("", listener_id="one")
        self.setup_orders(a)
        a.start()
        pa = control_port(a)
        wait_until(lambda: "node: started" in a.output(), what="node start")
        token_file = os.path.join(self.runtime_dir, f"control-{pa}.token")
        self.assertIn(f"plain, loopback, token in {token_file}", a.output())
        self.assertEqual(stat.S_IMODE(os.stat(self.runtime_dir).st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(os.stat(token_file).st_mode), 0o600)
        token = open(token_file).read().strip()
        self.assertRegex(token, r"^[0-9a-f]{64}$")
        # Typed as the spec shows it, under the spec's name: no token given.
        alias = os.path.join(os.path.dirname(CTL), "fraiseql-observers")
        for args in (["status"], ["dlq", "stats"]):
            r = ctl(pa, *args, prog=alias)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("role:         leader", ctl(pa, "status").stdout)
        # A wrong token is still refused; no token and no file: refused, with a hint.
        r = ctl(pa, "status", env={"FRAISEQL_CONTROL_TOKEN": "wrong"})
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        elsewhere = os.path.join(self.workdir, "elsewhere")
        r = ctl(pa, "status", env={"FRAISEQL_RUNTIME_DIR": elsewhere})
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn(f"no token given, and no token file found: {elsewhere}/control-{pa}.token",
                      r.stderr)
        # A second node on this host: its own port (the default one is taken
        # by `a` or another node) and its own token file.
        b = self.node("", listener_id="two")
        b.start()
        pb = control_port(b)
        wait_until(lambda: "node: started" in b.output(), what="second node start")
        self.assertNotEqual(pa, pb)
        other = os.path.join(self.runtime_dir, f"control-{pb}.token")
        self.assertNotEqual(open(other).read().strip(), token)
        self.assertIn("listener id:  two", ctl(pb, "status").stdout)
        self.assertIn("listener id:  one", ctl(pa, "status").stdout)
        # A graceful stop removes the file.
        self.assertEqual(b.stop(), 0)
        self.assertFalse(os.path.exists(other))
        self.assertEqual(a.stop(), 0)
        self.assertFalse(os.path.exists(token_file))
        # Explicitly off: nothing listens, nothing is written.
        off = self.node("", listener_id="off", extra="[control]\nenabled = false\n")
        off.start()
        wait_until(lambda: "node: started" in off.output(), what="node start")
        self.assertNotIn("control: listening", off.output())
        self.assertEqual(os.listdir(self.runtime_dir), [])
        self.assertEqual(off.stop(), 0)

    def test_config_errors(self):
        n = self.control_node("", token=False, extra_control='token_env = "FRAISEQL_TEST_UNSET_TOKEN"')
        r = subprocess.run([CTL, "validate-config", n.config], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("control.token_env: environment variable FRAISEQL_TEST_UNSET_TOKEN (named by "
                      "token_env) is not set or empty", r.stderr)
        tf = os.path.join(self.workdir, "open-token")
        with open(tf, "w") as f:
            f.write("x\n")
        os.chmod(tf, 0o644)
        n = self.control_node("", token=False, extra_control=f'token_file = "{tf}"')
        r = subprocess.run([CTL, "validate-config", n.config], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("is readable by group or others (chmod 600 it)", r.stderr)
        n = self.control_node("", token=False, extra_control='tls_key = "/nonexistent.key"')
        r = subprocess.run([CTL, "validate-config", n.config], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("TLS needs all of tls_certificate, tls_key and tls_ca", r.stderr)
        self.assertIn("cannot read '/nonexistent.key'", r.stderr)
        env = dict(os.environ, FRAISEQL_TEST_TOKEN="abc")
        n = self.control_node("", token=False, extra_control='token_env = "FRAISEQL_TEST_TOKEN"')
        r = subprocess.run([CTL, "validate-config", n.config], capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    main()
