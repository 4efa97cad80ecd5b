"""Audit trail ([audit], docs/history.md): every routed event and every ended
action attempt is indexed off the hot path; `observerctl search` answers the
spec's queries as written (and free text, OR, NOT, parentheses, phrases); a
malformed query is refused with a caret under the offending token; retention
drops whole expired day partitions, never one still holding an unfinished
event, never a DLQ row; the Elasticsearch/OpenSearch backend is exercised
against a stub `_bulk` server answering mixed per-item results."""
import json
import os
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import (IntegrationTest, control_port, ctl, main, metric, metrics_port, wait_until,
                     webhook_observer)

AUDIT_ON = """
[audit]
enabled = true
"""

METRICS = """
[metrics]
enabled = true
port = 0
"""


def search(port, query, *extra):
    r = ctl(port, "search", query, "--format", "json", *extra)
    if r.returncode != 0:
        raise AssertionError(f"search {query!r} failed ({r.returncode}): {r.stdout}{r.stderr}")
    return json.loads(r.stdout)["result"]


class AuditTest(IntegrationTest):
    def setup_products(self):
        self.sql("CREATE TABLE products (id bigserial PRIMARY KEY, name text, price numeric)")
        self.sql("SELECT observer_attach('public.products', 'Product', 'id', true)")

    def audit_counts(self):
        return self.sql("SELECT (SELECT count(*) FROM observer_audit_events),"
                        " (SELECT count(*) FROM observer_audit_attempts)")[0]

    def test_indexes_events_and_attempts_and_answers_every_spec_query(self):
        ok = self.sink()
        bad = self.sink(status=500)
        observers = (webhook_observer("orders", "INSERT", "Order", ok.url + "/o")
                     + webhook_observer("products", "UPDATE", "Product", bad.url + "/p",
                                        max_attempts=2, initial_delay_ms=10))
        node = self.node(observers, extra=AUDIT_ON + METRICS)
        self.setup_orders(node)
        self.setup_products()
        # customer_org is a column of orders here: it is a field of the event's data.
        self.sql("ALTER TABLE orders ADD COLUMN customer_org text")
        node.start()
        port = control_port(node)
        mport = metrics_port(node)
        for i in range(6):
            org = "acme-corp" if i % 2 == 0 else "globex"
            self.sql("INSERT INTO orders (customer, status, total, customer_org) VALUES"
                     " (%s, 'new', 10, %s)", (f"c{i}", org))
        self.sql("UPDATE orders SET status = 'payment declined' WHERE customer = 'c1'")
        self.sql("INSERT INTO products (name, price) VALUES ('lamp', 20), ('desk', 90)")
        self.sql("UPDATE products SET price = price + 1")
        # Every event is indexed (7 of orders, 4 of products), every attempt too:
        # 6 order deliveries, 2 product updates x 2 failed attempts.
        try:
            wait_until(lambda: self.audit_counts() == (11, 10), timeout=30,
                       what="11 events and 10 attempts indexed")
        except AssertionError:
            raise AssertionError(f"got {self.audit_counts()}: {node.output()[-3000:]}")
        self.assertEqual(metric(mport, "observer_audit_events_total"), 11)
        self.assertEqual(metric(mport, "observer_audit_dropped_total"), 0)

        # 1. All orders created in the last 24 hours.
        r = search(port, "entity_type:Order AND event_kind:created AND timestamp:[now-1d TO now]")
        self.assertEqual(r["mode"], "events")
        self.assertEqual(r["count"], 6)
        self.assertTrue(all(h["entity_type"] == "Order" and h["event_kind"] == "created"
                            for h in r["hits"]))
        self.assertEqual(r["query"],
                         "entity_type:Order AND event_kind:created AND timestamp:[now-1d TO now]")
        # Nothing an hour ahead.
        r = search(port, "entity_type:Order AND timestamp:[now+1h TO *]")
        self.assertEqual(r["count"], 0)

        # 2. Failed webhook actions for product updates: attempts, with their event.
        r = search(port, "entity_type:Product AND action_type:webhook AND status:failed")
        self.assertEqual(r["mode"], "attempts")
        self.assertEqual(r["count"], 2, r)
        for h in r["hits"]:
            self.assertEqual(h["entity_type"], "Product")
            self.assertEqual(h["event_kind"], "updated")
            self.assertEqual(h["status"], "failed")
            self.assertEqual(h["http_status"], 500)
            self.assertEqual(h["attempt"], 2)
            self.assertTrue(h["idempotency_key"].endswith(":products:0"), h)
            self.assertGreaterEqual(h["latency_ms"], 0)
        r = search(port, "entity_type:Product AND status:retrying")
        self.assertEqual(r["count"], 2)
        r = search(port, "status:succeeded AND observer:orders")
        self.assertEqual(r["count"], 6)

        # 3. Events for customer "acme-corp": a field of the event's data.
        r = search(port, "customer_org:acme-corp")
        self.assertEqual(r["count"], 3)
        self.assertTrue(all(h["data"]["customer_org"] == "acme-corp" for h in r["hits"]))

        # Free text (data values), phrases, OR, NOT, parentheses, --limit.
        self.assertEqual(search(port, "globex")["count"], 4)  # 3 inserts + the update of c1
        self.assertEqual(search(port, '"payment declined"')["count"], 1)
        self.assertEqual(search(port, "lamp OR desk")["count"], 4)
        self.assertEqual(search(port, "entity_type:Order AND NOT customer_org:acme-corp")["count"], 4)
        self.assertEqual(search(port, "(customer_org:acme-corp OR customer_org:globex) "
                                      "AND event_kind:updated")["count"], 1)
        self.assertEqual(search(port, "entity_type:Order", "--limit", "2")["count"], 2)

        # The table format prints the hits.
        t = ctl(port, "search", "entity_type:Product AND status:failed")
        self.assertEqual(t.returncode, 0, t.stderr)
        self.assertIn("2 attempt(s)", t.stdout)
        self.assertIn("HTTP 500", t.stdout)

        # A malformed query: exit 2, the column and a caret under the token.
        bad_q = ctl(port, "search", "entity_type:Order AND timestamp:[now-1d now]")
        self.assertEqual(bad_q.returncode, 2, bad_q.stdout + bad_q.stderr)
        self.assertIn("column 41: expected 'TO'", bad_q.stderr)
        lines = bad_q.stderr.splitlines()
        caret = next(l for l in lines if l.strip().startswith("^"))
        query_line = lines[lines.index(caret) - 1]
        self.assertEqual(caret.strip(), "^^^")
        self.assertEqual(query_line[caret.index("^"):caret.index("^") + 3], "now")
        bad_s = ctl(port, "search", "status:broken")
        self.assertEqual(bad_s.returncode, 2)
        self.assertIn("'broken' is not a valid status", bad_s.stderr)
        self.assertEqual(node.stop(), 0)

    def test_retention_drops_expired_days_keeps_unfinished_ones_and_the_dlq(self):
        node = self.node(webhook_observer("o", "INSERT", "Order", "http://127.0.0.1:9/x"),
                         extra="[audit]\nenabled = true\nretention_days = 30\n"
                         "retention_interval_secs = 10\n" + METRICS)
        self.setup_orders(node)
        # Three expired days: one finished (an event whose action succeeded),
        # one holding an unfinished event (an action without an outcome), one
        # whose event failed into the DLQ (finished: the DLQ row stays).
        self.sql("SELECT observer_audit_ensure_partitions(current_date - 40, current_date - 38)")
        done, pending, dead = "11111111-1111-1111-1111-111111111111", \
            "22222222-2222-2222-2222-222222222222", "33333333-3333-3333-3333-333333333333"
        for eid, days in ((done, 40), (pending, 39), (dead, 38)):
            self.sql("INSERT INTO observer_audit_events (event_id, ts, listener_id, event_type,"
                     " event_kind, entity_type, entity_id, observers, actions, data) VALUES"
                     " (%s, now() - make_interval(days => %s), 'test', 'INSERT', 'created',"
                     " 'Order', '1', '{o}', 1, '{}')", (eid, days))
        for eid, days, status in ((done, 40, "succeeded"), (dead, 38, "failed")):
            self.sql("INSERT INTO observer_audit_attempts (event_id, event_ts, ts, listener_id,"
                     " observer_name, action_index, action_type, attempt, status,"
                     " idempotency_key) SELECT event_id, ts, ts, 'test', 'o', 0, 'webhook', 1, %s,"
                     " event_id || ':o:0' FROM observer_audit_events WHERE event_id = %s",
                     (status, eid))
        self.sql("INSERT INTO observer_dlq (event_id, event, observer_name, action_index,"
                 " action_type, idempotency_key, last_error, attempts, first_attempt_at,"
                 " last_attempt_at) VALUES (%s, '{}', 'o', 0, 'webhook', %s, 'HTTP 500', 3,"
                 " now() - interval '38 days', now() - interval '38 days')", (dead, dead + ":o:0"))

        def parts():
            return {r[0] for r in self.sql(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'observer_audit_events'::regclass")}

        def day(n):
            return self.sql("SELECT 'observer_audit_events_' ||"
                            " to_char(current_date - %s, 'YYYYMMDD')", (n,))[0][0]

        node.start()
        mport = metrics_port(node)
        wait_until(lambda: day(40) not in parts() and day(38) not in parts(), timeout=30,
                   what="expired finished days dropped")
        self.assertIn(day(39), parts(), "a day with an unfinished event is kept")
        self.assertEqual(self.sql("SELECT count(*) FROM observer_dlq WHERE event_id = %s",
                                  (dead,))[0][0], 1, "the DLQ row stays")
        # The node made today's and the next days' partitions ahead.
        for n in (0, -1, -2):
            self.assertIn(day(n), parts())
        wait_until(lambda: metric(mport, "observer_audit_partitions_dropped_total") == 2,
                   what="2 days counted")
        wait_until(lambda: "are not finished" in node.output(), what="kept day reported")
        # The attempts' partitions went with their days.
        attempt_parts = {r[0] for r in self.sql(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'observer_audit_attempts'::regclass")}
        self.assertNotIn(day(40).replace("events", "attempts"), attempt_parts)
        self.assertIn(day(39).replace("events", "attempts"), attempt_parts)
        # Once its event has its outcome, the kept day goes too (next round).
        self.sql("INSERT INTO observer_audit_attempts (event_id, event_ts, ts, listener_id,"
                 " observer_name, action_index, action_type, attempt, status, idempotency_key)"
                 " SELECT event_id, ts, ts, 'test', 'o', 0, 'webhook', 1, 'succeeded', 'k'"
                 " FROM observer_audit_events WHERE event_id = %s", (pending,))
        wait_until(lambda: day(39) not in parts(), timeout=30, what="finished day dropped")
        self.assertEqual(node.stop(), 0)


class StubBulk:
    """A `_bulk` endpoint on loopback: the first request is answered 429 as a
    whole; after that each item's status follows `plan(doc_id, times_seen)`."""

    def __init__(self, plan):
        self.plan = plan
        self.requests = []  # [(status, [(action, meta, doc)])]
        self.indexed = {}   # _id -> doc
        self.seen = {}
        self.conflicts = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                lines = body.splitlines()
                items = [(json.loads(lines[i]), json.loads(lines[i + 1]))
                         for i in range(0, len(lines), 2)]
                with stub.lock:
                    first = not stub.requests
                    stub.requests.append((self.path, len(body), items))
                    if first:
                        return self.answer(429, {"error": "too many requests"})
                    out = []
                    for meta, doc in items:
                        (op, m), = meta.items()
                        n = stub.seen.get(m["_id"], 0)
                        stub.seen[m["_id"]] = n + 1
                        if m["_id"] in stub.indexed:
                            status, keep = 409, False
                        else:
                            status, keep = stub.plan(m["_id"], n)
                        if keep:
                            stub.indexed[m["_id"]] = doc
                        if status == 409:
                            stub.conflicts += 1
                        res = {"_index": m["_index"], "_id": m["_id"], "status": status}
                        if status >= 400 and status != 409:
                            res["error"] = {"type": "mapper_parsing_exception" if status == 400
                                            else "es_rejected_execution_exception",
                                            "reason": "stub says %d" % status}
                        out.append({op: res})
                    return self.answer(200, {"took": 1, "errors": True, "items": out})

            def answer(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class ElasticsearchBackendTest(IntegrationTest):
    def test_bulk_create_with_event_ids_retries_429_and_5xx_items_and_reports_refusals(self):
        sink = self.sink()
        refused = set()

        def plan(doc_id, n):
            # Per item: the first attempt document is refused for good (400);
            # a third of the others answer 429 once, a third 503 once although
            # the stub stored them (a lost answer: sent again, they get 409,
            # "already indexed"), the rest 201.
            if doc_id in refused or (not refused and ":" in doc_id):
                refused.add(doc_id)
                return 400, False
            h = sum(map(ord, doc_id))
            if n == 0 and h % 3 == 0:
                return 429, False
            if n == 0 and h % 3 == 1:
                return 503, True
            return 201, True

        stub = StubBulk(plan)
        self.cleanups.append(stub.stop)
        os.environ["TEST_ES_AUTH"] = "elastic:s3cret"
        extra = f"""
[audit]
enabled = true
backend = "elasticsearch"
elasticsearch_url = "http://127.0.0.1:{stub.port}"
elasticsearch_index = "fq-audit"
elasticsearch_auth_env = "TEST_ES_AUTH"
elasticsearch_bulk_max_docs = 5
elasticsearch_bulk_max_bytes = 4096
elasticsearch_max_backoff_ms = 400
{METRICS}"""
        node = self.node(webhook_observer("o", "INSERT", "Order", sink.url + "/x"), extra=extra)
        self.setup_orders(node)
        node.start()
        mport = metrics_port(node)
        for i in range(20):
            self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 1)",
                     (f"c{i}",))
        wait_until(lambda: len(sink.delivered()) >= 20, what="20 delivered")
        ids = set(self.change_log_ids())
        # 20 events and 20 attempts reach the index, less the refused ones.
        wait_until(lambda: len(stub.indexed) + len(refused) >= 40, timeout=30,
                   what=f"40 documents indexed or refused, got {len(stub.indexed)} + {len(refused)}")
        events = {k: v for k, v in stub.indexed.items() if v["doc_type"] == "event"}
        self.assertEqual(set(events), ids - refused, "events indexed under their event id")
        for eid, doc in events.items():
            self.assertEqual(doc["event_id"], eid)
            self.assertEqual(doc["entity_type"], "Order")
            self.assertEqual(doc["event_kind"], "created")
        attempts = [v for v in stub.indexed.values() if v["doc_type"] == "attempt"]
        self.assertTrue(all(a["status"] == "succeeded" for a in attempts))
        self.assertEqual(len(attempts) + len(events) + len(refused), 40)
        with stub.lock:
            reqs = list(stub.requests)
        self.assertTrue(all(p == "/_bulk" for p, _, _ in reqs))
        # Bounded requests: at most 5 documents, and 4096 bytes unless one document alone.
        self.assertTrue(all(len(items) <= 5 for _, _, items in reqs))
        self.assertTrue(all(size <= 4096 or len(items) == 1 for _, size, items in reqs))
        # Every item is a create with _id; the index is the event's day.
        for _, _, items in reqs:
            for meta, doc in items:
                self.assertEqual(list(meta), ["create"])
                self.assertTrue(meta["create"]["_index"].startswith("fq-audit-20"))
        # Items answered 429 / 503 were sent again; the whole-request 429 too.
        retried = [k for k, n in stub.seen.items() if n > 1]
        self.assertTrue(retried, "some items were retried")
        self.assertGreater(len(reqs), 8)
        # A document refused for good is reported and counted, not retried forever.
        wait_until(lambda: metric(mport, "observer_audit_failed_total") == len(refused),
                   what="refusals counted")
        self.assertTrue(refused, "the plan refuses some attempt documents")
        self.assertIn("mapper_parsing_exception", node.output())
        self.assertTrue(all(stub.seen[k] == 1 for k in refused))
        # A document sent again after a lost answer is a 409: already indexed, fine.
        self.assertGreater(stub.conflicts, 0)
        wait_until(lambda: metric(mport, "observer_audit_events_total")
                   + metric(mport, "observer_audit_attempts_total") == 40 - len(refused),
                   what="409s counted as indexed")
        self.assertNotIn("s3cret", node.output())
        self.assertEqual(node.stop(), 0)


if __name__ == "__main__":
    main()
