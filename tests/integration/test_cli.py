"""observer-node and observerctl as users run them: validation, exit codes,
migrate idempotency, dry run, and startup against a database without schema."""
import json
import os
import subprocess
import time

from harness import CTL, NODE, REPO, IntegrationTest, main, wait_until, webhook_observer


def run(*args, env=None):
    e = dict(os.environ)
    e.pop("FRAISEQL_DATABASE_URL", None)
    e.pop("DATABASE_URL", None)
    if env:
        e.update(env)
    return subprocess.run(list(args), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env=e, timeout=60)


class CliTest(IntegrationTest):
    def write(self, name, text):
        p = os.path.join(self.workdir, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def test_shipped_configs_validate(self):
        for cfg in ("config/examples/01-postgresql-only.toml", "config/demo.toml"):
            path = os.path.join(REPO, cfg)
            r = run(NODE, "--config", path, "--validate")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("configuration is valid", r.stdout)
            r = run(CTL, "validate-config", path, "--detailed")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("observers:", r.stdout)

    def test_nats_examples_validate_and_print_their_roles(self):
        w = os.path.join(REPO, "config/examples/03-nats-distributed.toml")
        b = os.path.join(REPO, "config/examples/04-multi-database-bridge.toml")
        for path, role, roles in ((w, "all", "roles: workers"), (b, "all", "roles: bridge"),
                                  (b, "bridge", "roles: bridge"), (w, "worker", "roles: workers")):
            r = run(NODE, "--config", path, "--role", role, "--validate")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(roles, r.stdout)
        # A bridge runs no actions: the worker file's enable_dedup is an error for it.
        r = run(NODE, "--config", w, "--role", "bridge", "--validate")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("performance.enable_dedup", r.stderr)
        self.assertIn("--role bridge runs no actions", r.stderr)

    def test_bad_config_names_file_line_column_and_key_and_exits_2(self):
        path = self.write("bad.toml", '[database]\nurl = "postgresql://x@127.0.0.1/db"\n\n'
                          '[listener]\nbatch_size = "many"\npoll_intervall_ms = 5\n')
        for args in ([NODE, "--config", path, "--validate"], [NODE, "--config", path],
                     [CTL, "validate-config", path]):
            r = run(*args)
            self.assertEqual(r.returncode, 2, r)
            self.assertIn(f"{path}:5:", r.stderr)
            self.assertIn("listener.batch_size", r.stderr)
            self.assertIn(f"{path}:6:", r.stderr)
            self.assertIn("poll_intervall_ms", r.stderr)

    def test_bad_cli_arguments_exit_2(self):
        self.assertEqual(run(NODE, "--role", "bridge", "--config",
                             os.path.join(REPO, "config/demo.toml")).returncode, 2)
        self.assertEqual(run(NODE, "--config", "/nonexistent.toml").returncode, 2)
        self.assertEqual(run(NODE, "--no-such-flag").returncode, 2)
        self.assertEqual(run(CTL).returncode, 2)

    def test_observerctl_names_an_unknown_command_and_lists_the_known_ones(self):
        r = run(CTL, "cache-statz")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command 'cache-statz'", r.stderr)
        for known in ("validate-config", "eval", "status", "metrics", "dlq", "cache-stats",
                      "debug-event"):
            self.assertIn(known, r.stderr)
        r = run(CTL, "--node", "127.0.0.1:1", "dlq", "frob")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command 'frob' for 'dlq'", r.stderr)
        self.assertIn("retry-all", r.stderr)
        # Known commands with bad arguments keep CLI11's own message.
        r = run(CTL, "dlq", "show")
        self.assertEqual(r.returncode, 2)
        self.assertNotIn("unknown command", r.stderr)

    def test_keys_without_effect_warn_in_validate_and_at_start(self):
        cfg = self.write("w.toml", f"""
[database]
url = "{self.dsn}"

[performance]
enable_concurrent = false
concurrent_timeout_ms = 100
""")
        for cmd in ([NODE, "--validate", "--config", cfg], [CTL, "validate-config", cfg]):
            r = run(*cmd)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"warning: {cfg}:7:25: performance.concurrent_timeout_ms: has no effect "
                          "while enable_concurrent is false", r.stderr)
        node = self.node("", extra="[performance]\nenable_concurrent = false\n"
                                   "concurrent_timeout_ms = 100\n")
        node.migrate()
        node.start()
        wait_until(lambda: "node: started" in node.output(), what="node starts")
        self.assertIn("concurrent_timeout_ms: has no effect", node.output())
        self.assertEqual(node.stop(), 0)

    def test_migrate_is_idempotent_and_start_without_schema_fails_clearly(self):
        cfg = self.write("n.toml", f'[database]\nurl = "{self.dsn}"\n'
                         + webhook_observer("o", "INSERT", "Order", "http://127.0.0.1:9/x"))
        r = run(NODE, "--config", cfg)
        self.assertEqual(r.returncode, 1)
        self.assertIn("observer-node migrate", r.stderr)
        r1 = run(NODE, "migrate", "--config", cfg)
        self.assertEqual(r1.returncode, 0, r1.stderr)
        self.assertIn("applied 0001_init", r1.stdout)
        r2 = run(NODE, "migrate", "--config", cfg)
        self.assertEqual(r2.returncode, 0, r2.stderr)
        self.assertIn("already up to date", r2.stdout)

    def test_env_overrides_database_url(self):
        cfg = self.write("n.toml", '[database]\nurl = "postgresql://nobody@127.0.0.1:1/none"\n'
                         + webhook_observer("o", "INSERT", "Order", "http://127.0.0.1:9/x"))
        r = run(NODE, "migrate", "--config", cfg, env={"FRAISEQL_DATABASE_URL": self.dsn})
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_observerctl_eval(self):
        ev = self.write("ev.json", '{"id": "e1", "event_type": "UPDATE", "entity_type": "Order",'
                        ' "data": {"status": "shipped", "total": 100.00, "customer": "a\\"b"},'
                        ' "old": {"status": "new"}}')
        r = run(CTL, "eval", "--event", ev, "--condition", "event.data.status == 'shipped' && data.total == `100`")
        self.assertEqual((r.returncode, r.stdout), (0, "value: true\nfires: true\n"), r.stderr)
        r = run(CTL, "eval", "--event", ev, "--template", '{"c": "{{ data.customer }}"}')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), {"c": 'a"b'})
        r = run(CTL, "eval", "--event", ev, "--condition", "changed_from('status', 'new')")
        self.assertIn("fires: true", r.stdout)
        r = run(CTL, "eval", "--event", ev, "--condition", "data.[")
        self.assertEqual(r.returncode, 2)
        self.assertIn("column", r.stderr)
        r = run(CTL, "eval", "--event", ev, "--condition", "abs(data.status)")
        self.assertEqual(r.returncode, 1)
        self.assertIn("invalid-type", r.stderr)

    def test_json_logs_are_one_object_per_line(self):
        sink = self.sink()
        node = self.node(webhook_observer("o", "INSERT", "Order", sink.url + "/x"),
                         extra='[logging]\nformat = "json"\n')
        self.setup_orders(node)
        node.start()
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('a \"quoted\"', 'new', 1)")
        wait_until(lambda: sink.delivered(), what="a delivery")
        self.assertEqual(node.stop(), 0)
        lines = [l for l in node.output().splitlines() if l.strip()]
        self.assertGreater(len(lines), 2)
        for line in lines:
            rec = json.loads(line)
            self.assertEqual(set(rec), {"ts", "level", "msg"})

    def test_dry_run_executes_and_checkpoints_nothing(self):
        sink = self.sink()
        node = self.node(webhook_observer("o", "INSERT", "Order", sink.url + "/x"), args=["--dry-run"])
        self.setup_orders(node)
        node.start()
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 1)")
        wait_until(lambda: "dry-run: would run webhook" in node.output(), what="dry-run log line")
        self.assertEqual(node.stop(), 0)
        self.assertEqual(sink.records(), [])
        self.assertIsNone(self.checkpoint())


if __name__ == "__main__":
    main()
