"""Every command of this product that the spec (../shared/spec/*.txt) shows in
a code block, run as typed against a live node, so the list cannot silently
rot: `fraiseql-observer ...` (observer-node), `fraiseql-observers ...`
(observerctl), and the same under the primary names. Lines that merely
mention the product (helm, systemctl, kill, cp, ...) and commands that need
another product (NATS topologies) are skipped with the reason printed.

Substitutions, the ones a reader of the spec makes: `examples/*.toml` are the
shipped config/examples (metrics port 0 instead of 9464, so parallel runs do
not collide; the database comes from FRAISEQL_DATABASE_URL, Redis from
FRAISEQL_REDIS_URL), `config.toml` is the first example, `evt-123` is a real
event id, and observerctl finds the node through FRAISEQL_CONTROL_NODE (the
node's port when another node holds the default one). `obs-webhook` and
`dlq-001` exist: the node's webhook observer is called obs-webhook and its
first event was dead-lettered before the commands run."""
import glob
import os
import re
import shlex
import shutil
import signal
import subprocess

from harness import (CTL, NODE, REPO, IntegrationTest, Redis, control_port, main, wait_until,
                     webhook_observer)

SPEC_DIR = os.environ.get("SPEC_DIR", os.path.join(REPO, "..", "shared", "spec"))
PRODUCT = {"fraiseql-observer", "fraiseql-observers", "observer-node", "observerctl"}
OPERATORS = {"|", "||", "&&", ";", "&"}


def spec_lines():
    """(file, line number, text) of every code-block line naming the product."""
    out = []
    for path in sorted(glob.glob(os.path.join(SPEC_DIR, "*.txt"))):
        in_block = False
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            if line.lstrip().startswith("```"):
                in_block = not in_block
                continue
            text = line.strip()
            if text.startswith("$ "):
                text = text[2:]
            if not in_block or text.startswith("#"):
                continue
            if any(re.search(rf"(^|[\s/'\"(]){p}\b", text) for p in PRODUCT):
                out.append((os.path.basename(path), n, text))
    return out


def tokens(text):
    text = text.rstrip("\\").rstrip()  # a continued line: its own words only
    lex = shlex.shlex(text, posix=True, punctuation_chars="|&;")
    lex.whitespace_split = True
    return list(lex)


def product_commands(text):
    """The product's commands in a shell line: each pipeline or list segment
    whose program is the product (after VAR=value prefixes), with its
    environment; `watch ... 'CMD'` is unwrapped."""
    toks = tokens(text)
    if toks and toks[0] == "watch":
        return product_commands(toks[-1])
    out, seg = [], []
    for t in toks + [";"]:
        if t in OPERATORS or set(t) <= set("|&;"):
            env = {}
            while seg and re.match(r"^[A-Z_][A-Z0-9_]*=", seg[0]):
                k, v = seg.pop(0).split("=", 1)
                env[k] = v
            if seg and os.path.basename(seg[0]) in PRODUCT:
                out.append((env, seg))
            seg = []
        else:
            seg.append(t)
    return out


def skip_reason(text):
    """Why a line that names the product runs none of its commands here."""
    first = tokens(text)[0]
    if first in ("helm", "kubectl"):
        return "needs Helm/Kubernetes"
    if first.startswith("docker"):
        return "needs Docker"
    if first in ("systemctl", "journalctl"):
        return "needs the systemd unit of a package install (not built here)"
    if first in ("cd", "cp", "mkdir", "chmod"):
        return "builds or copies the Rust product's binary (another product's build tree)"
    if first in ("kill", "top", "pgrep"):
        return "manages or watches a running process (no command of this product)"
    return None


NATS = re.compile(r"(03-nats|04-multi-database-bridge|bridge-db\d|worker\d)")


class SpecCommandsTest(IntegrationTest):
    def setUp(self):
        super().setUp()
        # The examples as shipped, in a working directory as the spec's reader has them.
        self.cwd = os.path.join(self.workdir, "cwd")
        os.makedirs(os.path.join(self.cwd, "examples"))
        for src in glob.glob(os.path.join(REPO, "config/examples/*.toml")):
            text = open(src).read().replace("port = 9464", "port = 0")
            open(os.path.join(self.cwd, "examples", os.path.basename(src)), "w").write(text)
        shutil.copy(os.path.join(self.cwd, "examples/01-postgresql-only.toml"),
                    os.path.join(self.cwd, "config.toml"))

    def program(self, name):
        node, ctl = os.path.abspath(NODE), os.path.abspath(CTL)  # commands run in self.cwd
        return {"fraiseql-observer": os.path.join(os.path.dirname(node), "fraiseql-observer"),
                "fraiseql-observers": os.path.join(os.path.dirname(ctl), "fraiseql-observers"),
                "observer-node": node, "observerctl": ctl}[os.path.basename(name)]

    def run_one(self, env, argv, base_env):
        """Runs one command; returns (ok, what happened)."""
        prog = os.path.basename(argv[0])
        args = argv[1:]
        e = dict(base_env)
        e.update(env)
        line = " ".join(argv)
        if "02-postgresql-redis" in line:
            e["FRAISEQL_REDIS_URL"] = self.redis.url
        cmd = [self.program(prog)] + [self.event_id if a == "evt-123" else a for a in args]
        node_prog = prog in ("fraiseql-observer", "observer-node")
        long_running = node_prog and not {"--validate", "--version", "--help", "migrate"} & set(args)
        if long_running:
            log = os.path.join(self.workdir, f"spec-node-{len(os.listdir(self.workdir))}.log")
            with open(log, "w") as out:
                p = subprocess.Popen(cmd, cwd=self.cwd, env=e, stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT)
                try:
                    wait_until(lambda: "node: started" in open(log).read() or p.poll() is not None,
                               timeout=30, what="the node to start")
                finally:
                    if p.poll() is None:
                        p.send_signal(signal.SIGTERM)
                    rc = p.wait(60)
            text = open(log).read()
            ok = rc == 0 and "node: started" in text
            if "02-postgresql-redis" in line:
                # The spec's migration guide greps the node's log for it.
                ok = ok and "Redis connected" in text
            return ok, f"started and stopped, exit {rc}" + ("" if ok else ":\n" + text)
        r = subprocess.run(cmd, cwd=self.cwd, env=e, capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        if not node_prog and args[:1] == ["start"]:
            ok = r.returncode == 2 and "does not start nodes: run `fraiseql-observer --config" in r.stderr
            return ok, f"one sentence, exit {r.returncode}: {r.stderr.strip()}"
        if any(a.endswith((".yaml", ".yml")) for a in args):
            ok = r.returncode == 2 and "YAML configuration is not supported: this node reads TOML" in r.stderr
            return ok, f"one sentence, exit {r.returncode}: {r.stderr.strip()}"
        if args[:1] == ["validate-config"] and len([a for a in args if not a.startswith("-")]) == 1:
            ok = r.returncode == 2 and "validate-config needs the configuration file" in r.stderr
            return ok, f"one sentence, exit {r.returncode}: {r.stderr.strip()}"
        return r.returncode == 0, f"exit {r.returncode}" + (
            "" if r.returncode == 0 else f":\n{r.stdout}{r.stderr}")

    def test_every_product_command_in_the_spec_runs_as_typed(self):
        lines = spec_lines()
        if not lines:
            self.skipTest(f"no spec text in {SPEC_DIR}")
        self.redis = Redis(private_dir=os.path.join(self.workdir, "redis"))
        self.cleanups.append(self.redis.stop)
        # The live node: a webhook observer named as in the spec, whose first
        # event is dead-lettered (dlq-001), then its endpoint recovers.
        sink = self.sink(status=500)
        obs = webhook_observer("obs-webhook", "INSERT", "Order", sink.url + "/hook", max_attempts=1)
        node = self.node(obs, listener_id="spec")
        self.setup_orders(node)
        node.start()
        port = control_port(node)
        wait_until(lambda: "node: started" in node.output(), what="node start")
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 1)")
        wait_until(lambda: self.sql("SELECT id FROM observer_dlq") == [(1,)], what="dlq-001")
        sink.control(status=200)
        self.event_id = self.change_log_ids()[0]
        base_env = dict(os.environ, FRAISEQL_DATABASE_URL=self.dsn,
                        FRAISEQL_CONTROL_NODE=f"127.0.0.1:{port}")
        base_env.pop("FRAISEQL_CONTROL_TOKEN", None)

        ran = skipped = 0
        report = []
        for f, n, text in lines:
            where = f"{f}:{n}: {text}"
            cmds = product_commands(text)
            if not cmds:
                why = skip_reason(text)
                with self.subTest(where):
                    self.assertIsNotNone(why, "names the product but runs none of its commands, "
                                              "and no reason to skip it is known")
                report.append(f"SKIP {where}\n     ({why})")
                skipped += 1
                continue
            for env, argv in cmds:
                if NATS.search(" ".join(argv)):
                    report.append(f"SKIP {where}\n     (needs NATS, another product: the NATS "
                                  "topologies are not in this build)")
                    skipped += 1
                    continue
                with self.subTest(where):
                    ok, what = self.run_one(env, argv, base_env)
                    report.append(f"{'OK  ' if ok else 'FAIL'} {where}\n     ({what.splitlines()[0] if ok else what})")
                    self.assertTrue(ok, f"{where}: {what}")
                    ran += 1
        print("\n".join(report))
        print(f"{ran} commands ran, {skipped} lines skipped")
        # The spec's guides hold dozens of this product's commands: an
        # extraction that finds few has broken, not the spec.
        self.assertGreaterEqual(ran, 40)
        self.assertEqual(node.stop(), 0)


if __name__ == "__main__":
    main()
