"""observerctl backfill: a captured table's existing rows become READ events,
in chunks, each row once; concurrent live updates keep per-entity order (a
row's READ never overtakes, nor is overtaken by, that row's changes); a node
killed mid-backfill resumes after its last committed chunk (no chunk written
twice, no row missing); bad requests get clear errors."""
import collections
import json
import random
import threading
import time

import psycopg2

from harness import IntegrationTest, control_port, ctl, main, wait_until, webhook_observer


class BackfillTest(IntegrationTest):
    def start(self, sink, rows, event_type="READ", **kw):
        node = self.node(webhook_observer("items", event_type, "Item", sink.url + "/items",
                                          max_attempts=50), **kw)
        node.migrate()
        self.sql("CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL DEFAULT 0, label text)")
        # Rows that existed before capture was attached: no event for them yet.
        self.sql("INSERT INTO items (id, label) SELECT g, 'row ' || g FROM generate_series(1, %s) g",
                 (rows,))
        self.sql("SELECT observer_attach('public.items', 'Item', 'id', true)")
        node.start()
        wait_until(lambda: "leading listener" in node.output(), what="leads")
        return node, control_port(node)

    def events(self, sink):
        return [json.loads(r["body"]) for r in sink.delivered()]

    def read_rows(self):
        return self.sql("SELECT object_id FROM core.tb_entity_change_log"
                        " WHERE modification_type = 'READ' ORDER BY pk_entity_change_log")

    def backfill_row(self, bid):
        return self.sql("SELECT status, rows_emitted, chunks_done, last_key, chunk_retries"
                        " FROM observer_backfills WHERE id = %s", (bid,))[0]

    def test_every_row_once_as_a_read_event(self):
        sink = self.sink()
        node, port = self.start(sink, 250)
        r = ctl(port, "backfill", "public.items", "--batch", "40")
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertIn("backfill 1 of items queued: entity Item, key id, chunks of 40 rows", r.stdout)
        wait_until(lambda: len(sink.delivered()) >= 250, what="250 READ events")
        wait_until(lambda: self.backfill_row(1)[0] == "done", what="backfill done")
        time.sleep(0.5)
        events = self.events(sink)
        self.assertEqual(len(events), 250)
        self.assertEqual(sorted(int(e["entity_id"]) for e in events), list(range(1, 251)))
        self.assertTrue(all(e["event_type"] == "READ" and e["entity_type"] == "Item"
                            for e in events))
        self.assertEqual(events[0]["data"]["label"], "row " + events[0]["entity_id"])
        status, emitted, chunks, last_key, _ = self.backfill_row(1)
        self.assertEqual((status, emitted, last_key), ("done", 250, "250"))
        # Chunks of at most --batch rows (the pacer may make them smaller).
        self.assertGreaterEqual(chunks, 7)
        st = ctl(port, "backfill", "--status")
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertRegex(st.stdout, rf"\n1\s+items\s+done\s+250\s+{chunks}\s+250\s")
        # --where: only the matching rows.
        r = ctl(port, "backfill", "items", "--where", "id % 10 = 0 AND label LIKE 'row %'")
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        wait_until(lambda: len(sink.delivered()) >= 275, what="25 more")
        wait_until(lambda: self.backfill_row(2)[0] == "done", what="second backfill done")
        time.sleep(0.5)
        more = self.events(sink)[250:]
        self.assertEqual(sorted(int(e["entity_id"]) for e in more), list(range(10, 251, 10)))
        self.assertEqual(node.stop(), 0)

    def test_clear_errors(self):
        sink = self.sink()
        node, port = self.start(sink, 10)
        self.sql("CREATE TABLE plain (id int PRIMARY KEY)")
        r = ctl(port, "backfill", "public.plain")
        self.assertEqual(r.returncode, 1)
        self.assertIn("table plain has no capture attached: run SELECT observer_attach('plain'",
                      r.stderr)
        r = ctl(port, "backfill", "public.nope")
        self.assertEqual(r.returncode, 1)
        self.assertIn("table 'public.nope' does not exist", r.stderr)
        r = ctl(port, "backfill", "items", "--where", "v = 1; DROP TABLE items")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--where: at character 6: ';' is not allowed", r.stderr)
        r = ctl(port, "backfill", "items", "--where", "v = 1) OR (true")
        self.assertEqual(r.returncode, 2)
        self.assertIn("at character 6: ')' without a matching '('", r.stderr)
        r = ctl(port, "backfill", "items", "--where", "v = 1 -- comment")
        self.assertEqual(r.returncode, 2)
        self.assertIn("comments (--) are not allowed", r.stderr)
        r = ctl(port, "backfill", "items", "--where", "nosuchcol = 1")
        self.assertEqual(r.returncode, 2)
        self.assertIn("PostgreSQL rejects the condition on items", r.stderr)
        self.assertIn('column "nosuchcol" does not exist', r.stderr)
        # EXPLAIN runs in a read-only transaction: nothing the condition calls can write.
        r = ctl(port, "backfill", "items", "--batch", "0")
        self.assertEqual(r.returncode, 2)
        self.sql("CREATE TABLE nokey (k int, v int)")
        self.sql("SELECT observer_attach('public.nokey', 'NoKey', 'k')")
        r = ctl(port, "backfill", "nokey")
        self.assertEqual(r.returncode, 1)
        self.assertIn("the key column 'k' has no unique index", r.stderr)
        self.assertEqual(self.sql("SELECT count(*) FROM observer_backfills")[0][0], 0)
        self.assertEqual(self.sql("SELECT count(*) FROM items")[0][0], 10)

    def test_concurrent_live_updates_keep_per_entity_order(self):
        sink = self.sink()
        rows = 2000
        # A small in-flight window kept full by a slow receiver: the listener
        # reads in bursts, so a backfill chunk and a live transaction that
        # conflicted with it often commit between two reads, and their order
        # rests on the txids alone (the case the chunk's checks are for).
        node, port = self.start(sink, rows, event_type="*", listener="max_in_flight = 20")
        sink.control(delay_ms=2)
        stop = threading.Event()
        errors = []

        def writer(seed):
            rnd = random.Random(seed)
            c = psycopg2.connect(self.dsn)
            try:
                while not stop.is_set():
                    cur = c.cursor()
                    # Most writes hit the rows just ahead of the backfill's
                    # progress (the chunk being written locks them); some
                    # transactions hold an xid before they touch those rows
                    # (an older txid waiting on the chunk's lock).
                    cur.execute("SELECT coalesce(max(last_key::int), 0) FROM observer_backfills")
                    hot = cur.fetchone()[0]
                    c.commit()

                    # Each writer has its own rows (id % 4): two live writers
                    # never queue on one row, so only the backfill's order
                    # against live changes is under test here (live writers
                    # queued on one row are delivered in txid order, which
                    # need not be their commit order: docs/history.md).
                    def pick():
                        if rnd.random() < 0.7:
                            i = min(rows, hot + rnd.randint(1, 150))
                        else:
                            i = rnd.randint(1, rows)
                        i -= (i - seed) % 4
                        return i if i >= 1 else i + 4
                    a, b = pick(), pick()
                    cur.execute("UPDATE items SET v = v + 1 WHERE id = %s", (a,))
                    if rnd.random() < 0.5:
                        time.sleep(rnd.random() * 0.003)
                        cur.execute("UPDATE items SET v = v + 1 WHERE id = %s", (b,))
                    c.commit()
                    time.sleep(0.05)
            except Exception as e:  # deadlocks between two writers are theirs
                if "deadlock" not in str(e):
                    errors.append(e)
            finally:
                c.close()

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.3)
            r = ctl(port, "backfill", "items", "--batch", "100")
            self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
            wait_until(lambda: self.backfill_row(1)[0] == "done", timeout=120,
                       what="backfill done")
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(errors, [])
        updates = self.sql("SELECT count(*) FROM core.tb_entity_change_log"
                           " WHERE modification_type = 'UPDATE'")[0][0]
        wait_until(lambda: len(sink.delivered()) >= rows + updates, timeout=120,
                   what="every event delivered")
        time.sleep(0.5)
        per = collections.defaultdict(list)
        for e in self.events(sink):
            per[int(e["entity_id"])].append((e["event_type"], e["data"]["v"]))
        self.assertEqual(sum(len(v) for v in per.values()), rows + updates)
        final = dict(self.sql("SELECT id, v FROM items"))
        overtaken = []
        for k in range(1, rows + 1):
            evs = per[k]
            self.assertEqual(sum(1 for t, _ in evs if t == "READ"), 1, (k, evs))
            self.assertEqual(sum(1 for t, _ in evs if t == "UPDATE"), final[k], (k, evs))
            values = [v for _, v in evs]
            # v only grows: a READ carrying an older v than a change delivered
            # before it (or a newer one than a change after it) is out of order.
            if values != sorted(values):
                overtaken.append((k, evs))
        self.assertEqual(overtaken, [])
        retries = self.backfill_row(1)[4]
        print(f"\n  {updates} live updates during a {rows}-row backfill; "
              f"{retries} chunk(s) rolled back for order", flush=True)

    def test_killed_node_resumes_after_the_last_committed_chunk(self):
        sink = self.sink()
        rows = 3000
        node, port = self.start(sink, rows)
        sink.control(delay_ms=15)
        r = ctl(port, "backfill", "items", "--batch", "100")
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        wait_until(lambda: self.backfill_row(1)[1] >= 600, timeout=60, what="600 rows")
        node.kill9()
        status, emitted, chunks, last_key, _ = self.backfill_row(1)
        self.assertEqual(status, "running")
        self.assertLess(emitted, rows)
        self.assertEqual(int(last_key), emitted)
        self.assertEqual(len(self.read_rows()), emitted, "rows and progress commit together")
        sink.control(delay_ms=0)
        node.start()
        wait_until(lambda: self.backfill_row(1)[0] == "done", timeout=180, what="done after restart")
        status, emitted, chunks_after, last_key, _ = self.backfill_row(1)
        self.assertEqual((emitted, last_key), (rows, str(rows)))
        self.assertGreater(chunks_after, chunks)
        ids = [int(r[0]) for r in self.read_rows()]
        # Every row once in the change log, in key order across the restart:
        # the new leader went on after the last committed chunk, not from zero.
        self.assertEqual(ids, list(range(1, rows + 1)))
        wait_until(lambda: len({e["entity_id"] for e in self.events(sink)}) == rows, timeout=120,
                   what="every row delivered")


if __name__ == "__main__":
    main()
