"""Memory bounded in bytes (issue 18): a backlog of large events drains within
the byte budget plus a fixed overhead, and an event over the per-event size
limit goes to the DLQ with its size and the limit while the events behind it
are delivered.

Peak memory is the node's VmHWM (/proc/PID/status), read after the drain.
OVERHEAD_MB is the node's fixed memory beside the budget: code, CAF's and
libpq's buffers, executor threads and their HTTP clients, the watermark, and
what a read holds in transit (a read transfers at most an eighth of the
budget), and what the allocator keeps. Measured while writing this test (2
cores, PostgreSQL 15): the 4,000 x 200 KB drain peaked at 56 MB with a 16 MB
budget and 120 MB with the default 64 MB one (1,197 MB with the budget
lifted, as before the byte budget existed); see docs/operations.md, "Memory".
OVERHEAD_MB = 64 is the issue's goal (<= 128 MB with a 64 MB budget) applied
to the smaller budget the test uses to stay fast."""
import json
import os
import re
import subprocess

from harness import CTL, IntegrationTest, main, metric, metrics_port, wait_until, webhook_observer

MB = 1 << 20
TOKEN = "memory-test-token"
OVERHEAD_MB = 64


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        m = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M)
    return int(m.group(1)) / 1024.0


class MemoryTest(IntegrationTest):
    def setup_docs(self, node):
        node.migrate()
        self.sql("CREATE TABLE docs (id bigserial PRIMARY KEY, body text)")
        self.sql("SELECT observer_attach('public.docs', 'Doc', 'id', false)")

    def insert_docs(self, count, size, chunk=500):
        """`count` rows of one `size`-byte text field each (md5 text, so the
        JSON is not one repeated byte), in transactions of `chunk` rows."""
        done = 0
        while done < count:
            n = min(chunk, count - done)
            self.sql("INSERT INTO docs (body) SELECT left(repeat(md5(g::text), %s), %s)"
                     " FROM generate_series(%s, %s) g", (size // 32 + 1, size, done + 1, done + n))
            done += n

    def drain(self, count, size, budget_mb, delay_ms, concurrency):
        sink = self.sink(ids_only=True)
        if delay_ms:
            sink.control(delay_ms=delay_ms)
        n = self.node(webhook_observer("hook", "INSERT", "Doc", sink.url + "/docs"),
                      listener=f"max_bytes_in_flight = {budget_mb * MB}",
                      extra=f"[performance]\nmax_concurrent_actions = {concurrency}\n")
        self.setup_docs(n)
        self.insert_docs(count, size)
        ids = set(self.change_log_ids())
        self.assertEqual(len(ids), count)
        n.start()
        wait_until(lambda: len(sink.delivered()) >= count, timeout=240, interval=0.5,
                   what=f"{count} deliveries")
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == count, timeout=30,
                   what="the checkpoint past every event")
        peak = peak_rss_mb(n.proc.pid)
        self.assertEqual(n.stop(), 0, n.output()[-3000:])
        per_id = {}
        for r in sink.delivered():
            i = json.loads(r["body"])["id"]
            per_id[i] = per_id.get(i, 0) + 1
        self.assertEqual(set(per_id), ids, "every event delivered")
        self.assertEqual(sorted(set(per_id.values())), [1], "each event delivered once")
        return peak

    def test_large_event_drain_stays_within_the_byte_budget(self):
        """4,000 x 200 KB through a webhook answering after 50 ms, 16 MB budget:
        all delivered once, peak RSS <= budget + OVERHEAD_MB."""
        budget_mb = 16
        peak = self.drain(4000, 200 * 1024, budget_mb, delay_ms=50, concurrency=32)
        print(f"\npeak RSS {peak:.1f} MB for 4,000 x 200 KB, budget {budget_mb} MB"
              f" (bound {budget_mb + OVERHEAD_MB} MB)")
        self.assertLessEqual(peak, budget_mb + OVERHEAD_MB)

    def test_one_megabyte_backlog_drains_within_the_byte_budget(self):
        """A backlog of 1 MB rows (300 of them: 300 MB of JSON, far above the
        budget) drains through a fast sink with peak RSS <= budget + overhead."""
        budget_mb = 16
        peak = self.drain(300, MB, budget_mb, delay_ms=0, concurrency=16)
        print(f"\npeak RSS {peak:.1f} MB for 300 x 1 MB, budget {budget_mb} MB"
              f" (bound {budget_mb + OVERHEAD_MB} MB)")
        self.assertLessEqual(peak, budget_mb + OVERHEAD_MB)

    def test_oversize_event_goes_to_the_dlq_and_those_behind_it_are_delivered(self):
        sink = self.sink(ids_only=True)
        limit = 64 * 1024
        token_file = os.path.join(self.workdir, "token")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(token_file, 0o600)
        n = self.node(webhook_observer("hook", "INSERT", "Doc", sink.url + "/docs"),
                      listener=f"max_event_bytes = {limit}",
                      extra="[metrics]\nenabled = true\nport = 0\n"
                            f"[control]\nenabled = true\nport = 0\ntoken_file = \"{token_file}\"\n")
        self.setup_docs(n)
        self.sql("INSERT INTO docs (body) VALUES ('small before')")
        self.insert_docs(1, 100 * 1024)  # ~100 KB: over the limit
        self.sql("INSERT INTO docs (body) SELECT 'behind ' || g FROM generate_series(1, 5) g")
        ids = self.change_log_ids()
        big = ids[1]
        n.start()
        wait_until(lambda: len(sink.delivered()) >= 6, what="the six small events")
        wait_until(lambda: (self.checkpoint() or (0, 0))[1] == 7, what="the checkpoint past all 7")
        delivered = {json.loads(r["body"])["id"] for r in sink.delivered()}
        self.assertEqual(delivered, set(ids) - {big})
        rows = self.sql("SELECT event_id::text, observer_name, action_type, attempts, last_error,"
                        " event->'oversize', event->'data' FROM observer_dlq")
        self.assertEqual(len(rows), 1)
        event_id, observer, action_type, attempts, error, oversize, data = rows[0]
        self.assertEqual((event_id, observer, action_type, attempts), (big, "(listener)", "oversize", 0))
        size = oversize["bytes"]
        self.assertGreater(size, limit)
        self.assertEqual(oversize["limit"], limit)
        self.assertIsNone(data)
        self.assertIn(f"event of {size} bytes exceeds the per-event limit of {limit} bytes", error)
        self.assertIn("listener.max_event_bytes", error)
        # The metrics count it and name the largest event seen.
        port = metrics_port(n)
        self.assertEqual(metric(port, 'observer_oversize_events_total{listener_id="test"}'), 1)
        self.assertEqual(metric(port, 'observer_largest_event_bytes{listener_id="test"}'), size)
        # `observerctl dlq show` says why; a redrive cannot deliver it and the
        # entry keeps its reason.
        cport = int(wait_until(lambda: re.search(r"control: listening on [^:]+:(\d+)", n.output()),
                               what="control plane port").group(1))
        dlq_id = str(self.sql("SELECT id FROM observer_dlq")[0][0])
        show = self.ctl(cport, "dlq", "show", dlq_id)
        self.assertEqual(show.returncode, 0, show.stderr)
        self.assertIn("observer_name:    (listener)", show.stdout)
        self.assertIn("action_type:      oversize", show.stdout)
        self.assertIn(f"event of {size} bytes exceeds the per-event limit of {limit} bytes", show.stdout)
        retry = self.ctl(cport, "dlq", "retry", dlq_id)
        self.assertEqual(retry.returncode, 1, retry.stdout + retry.stderr)
        self.assertIn("a redrive cannot deliver it", retry.stderr)
        status, error = self.sql("SELECT status, last_error FROM observer_dlq")[0]
        self.assertEqual(status, "pending")
        self.assertIn(f"event of {size} bytes exceeds the per-event limit of {limit} bytes", error)
        self.assertEqual(len(sink.delivered()), 6, "a failed redrive delivers nothing")
        self.assertEqual(n.stop(), 0, n.output()[-3000:])

    def ctl(self, port, *args):
        env = dict(os.environ, FRAISEQL_CONTROL_TOKEN=TOKEN)
        return subprocess.run([CTL, "--node", f"127.0.0.1:{port}", "--timeout", "20"] + list(args),
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                              env=env)


if __name__ == "__main__":
    main()
