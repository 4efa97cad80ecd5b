"""The wake-up mark (sql/0005_wakeup_lock.sql): an idle listener sleeps holding
an advisory lock and writers NOTIFY only while it is held; a running capture
transaction keeps the listener from sleeping; a listener that stops or dies
while asleep leaves writers nothing to notify."""
import select
import threading
import time

from harness import IntegrationTest, main, wait_until, webhook_observer

MARK = "l.locktype = 'advisory' AND l.classid = (-152985557)::int::oid AND l.objid = 0" \
       " AND l.objsubid = 2 AND l.granted"


class WakeupTest(IntegrationTest):
    def start_node(self, sink, poll_interval_ms=60000):
        # A one-minute fallback poll: a prompt delivery after idling can only
        # come from a NOTIFY.
        node = self.node(webhook_observer("orders", "INSERT", "Order", sink.url + "/hooks"),
                         poll_interval_ms=poll_interval_ms)
        self.setup_orders(node)
        return node.start()

    def mark_holders(self):
        """(pid, mode) of the sessions holding the mark in this database."""
        return self.sql("SELECT l.pid, l.mode FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                        " WHERE d.datname = current_database() AND " + MARK)

    def asleep(self):
        return any(mode == "ExclusiveLock" for _, mode in self.mark_holders())

    def listen(self):
        c = self.connect()
        c.cursor().execute("LISTEN fraiseql_observer")
        return c

    def notifications(self, conn, wait_s):
        """NOTIFYs received on `conn` within wait_s seconds."""
        deadline = time.time() + wait_s
        while time.time() < deadline:
            if select.select([conn], [], [], max(0.0, deadline - time.time())) != ([], [], []):
                conn.poll()
            if conn.notifies:
                break
        got = list(conn.notifies)
        conn.notifies.clear()
        return got

    def test_idle_listener_sleeps_on_the_mark_and_a_writer_wakes_it(self):
        sink = self.sink()
        node = self.start_node(sink)
        wait_until(self.asleep, what="the listener asleep on the mark")
        listener = self.listen()
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 1)")
        self.assertTrue(self.notifications(listener, 5), "a writer did not notify a sleeping listener")
        # Woken by that NOTIFY, well before the one-minute poll.
        wait_until(lambda: len(sink.delivered()) == 1, timeout=20, what="delivery after the NOTIFY")
        # Busy again, then asleep again once idle.
        wait_until(self.asleep, what="the listener asleep again")
        self.assertEqual(node.stop(), 0)

    def test_a_running_capture_transaction_keeps_the_listener_awake(self):
        sink = self.sink()
        node = self.start_node(sink)
        wait_until(self.asleep, what="the listener asleep")
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('ada', 'new', 1)")
        wait_until(lambda: len(sink.delivered()) == 1, what="first delivery")
        wait_until(self.asleep, what="asleep after the first event")
        # A writer transaction that inserts while the listener sleeps notifies
        # (at its commit) and holds nothing; one that inserts while the
        # listener is awake holds the mark shared until it ends, and the
        # listener cannot fall asleep meanwhile.
        #
        # The listener stays awake only ~50 ms after a delivery (idle linger),
        # too short to win against a slow machine. So a helper session asks
        # for the mark in shared mode (blocking) while the listener sleeps; the
        # next writer's NOTIFY wakes the listener, the helper gets the mark
        # the listener dropped, and from then on the listener cannot sleep:
        # the capture transaction below is granted the shared mark for sure.
        helper = self.connect(autocommit=False)
        helper_pid = helper.get_backend_pid()
        granted = threading.Event()

        def hold_mark_shared():
            cur = helper.cursor()
            cur.execute("SET LOCAL lock_timeout = '30s'")  # never blocks cleanup for long
            cur.execute("SELECT pg_advisory_xact_lock_shared(-152985557, 0)")
            granted.set()

        t = threading.Thread(target=hold_mark_shared, daemon=True)
        t.start()
        wait_until(lambda: self.sql("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted",
                                    (helper_pid,))[0][0] == 1, what="the helper waiting for the mark")
        self.assertTrue(self.asleep())
        self.sql("INSERT INTO orders (customer, status, total) VALUES ('bob', 'new', 2)")
        wait_until(lambda: len(sink.delivered()) == 2, what="second delivery")
        self.assertTrue(granted.wait(20), "the woken listener did not drop the mark")
        t.join(5)
        writer = self.connect(autocommit=False)
        cur = writer.cursor()
        cur.execute("INSERT INTO orders (customer, status, total) VALUES ('cy', 'open', 3)")
        self.assertIn((writer.get_backend_pid(), "ShareLock"), self.mark_holders(),
                      "a capture transaction was not granted the shared mark while the listener was awake")
        helper.rollback()  # from here on only the open capture transaction keeps the listener awake
        self.assertNotIn(helper_pid, [pid for pid, _ in self.mark_holders()])
        time.sleep(1.0)  # far longer than the idle linger
        self.assertFalse(self.asleep(), "the listener took the mark under a running capture transaction")
        writer.commit()  # commits without NOTIFY: the listener was awake, polling
        wait_until(lambda: len(sink.delivered()) == 3, what="the open transaction's row")
        wait_until(self.asleep, what="asleep once the writer ended")
        self.assertEqual(node.stop(), 0)

    def test_a_stopped_or_killed_listener_leaves_writers_nothing_to_notify(self):
        sink = self.sink()
        for how in ("stop", "kill -9"):
            node = self.start_node(sink) if how == "stop" else self.node(
                webhook_observer("orders", "INSERT", "Order", sink.url + "/hooks"),
                poll_interval_ms=60000).start()
            wait_until(self.asleep, what=f"the listener asleep ({how})")
            if how == "stop":
                self.assertEqual(node.stop(), 0)
            else:
                node.kill9()
            wait_until(lambda: not self.mark_holders(), what=f"the mark released after {how}")
            listener = self.listen()
            self.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 1)", (how,))
            self.assertEqual(self.notifications(listener, 1.0), [],
                             f"writers still notify after the listener's {how}")
            listener.close()
        # The rows written meanwhile are delivered by the next node.
        node = self.node(webhook_observer("orders", "INSERT", "Order", sink.url + "/hooks")).start()
        wait_until(lambda: len(sink.delivered()) == 2, what="both rows after a restart")
        self.assertEqual(node.stop(), 0)


if __name__ == "__main__":
    main()
