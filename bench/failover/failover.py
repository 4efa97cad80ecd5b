"""Takeover time of a standby: the leader is killed (SIGKILL) or frozen
(SIGSTOP) while events flow; prints, per trial, when the standby leads and
when its first delivery arrives, then the distribution per mode. Figures,
never assertions. Run through bench/failover/run.sh (private PostgreSQL)."""
import json
import os
import signal
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "integration"))
from harness import IntegrationTest, webhook_observer  # noqa: E402


class Trial(IntegrationTest):
    def runTest(self):
        pass


def one(mode, extra):
    t = Trial()
    t.setUpClass()
    t.setUp()
    try:
        sink = t.sink()
        a = t.node(webhook_observer("o", "INSERT", "Order", sink.url + "/a"), extra=extra)
        t.setup_orders(a)
        a.start()
        while "leading listener" not in a.output():
            time.sleep(0.01)
        b = t.node(webhook_observer("o", "INSERT", "Order", sink.url + "/b"), extra=extra)
        b.start()
        while "standing by" not in b.output():
            time.sleep(0.01)
        stop = threading.Event()

        def write():
            i = 0
            while not stop.is_set():
                t.sql("INSERT INTO orders (customer, status, total) VALUES (%s, 'new', 1)", (f"c{i}",))
                i += 1
                time.sleep(0.01)

        w = threading.Thread(target=write)
        w.start()
        time.sleep(1.5)  # a renews at least once and delivers
        at = time.time()
        os.kill(a.proc.pid, signal.SIGKILL if mode == "kill" else signal.SIGSTOP)
        led = None
        while time.time() - at < 60:
            if led is None and "leading listener" in b.output():
                led = time.time() - at
            first = [r["t"] for r in sink.delivered() if r["path"] == "/b"]
            if first:
                break
            time.sleep(0.005)
        stop.set()
        w.join()
        delivered = (min(first) - at) if first else None
        if mode == "freeze":
            os.kill(a.proc.pid, signal.SIGCONT)
        return {"mode": mode, "leads_after_s": led, "first_delivery_after_s": delivered}
    finally:
        t._cleanup()


def main():
    trials = int(os.environ.get("BENCH_FAILOVER_TRIALS", "20"))
    extra = os.environ.get("BENCH_FAILOVER_CONFIG", "")
    results = {}
    for mode in ("kill", "freeze"):
        for _ in range(trials):
            r = one(mode, extra)
            print(json.dumps(r), flush=True)
            results.setdefault(mode, []).append(r)
    print("\nmode    trials  leads after (s): min / median / p90 / max   first delivery: median / max")
    for mode, rs in results.items():
        led = sorted(r["leads_after_s"] for r in rs if r["leads_after_s"] is not None)
        fd = sorted(r["first_delivery_after_s"] for r in rs if r["first_delivery_after_s"] is not None)
        if not led or not fd:
            print(f"{mode:7} {len(rs):6}  no takeover")
            continue
        p90 = led[min(len(led) - 1, int(0.9 * len(led)))]
        print(f"{mode:7} {len(rs):6}  {led[0]:.2f} / {statistics.median(led):.2f} / {p90:.2f} / "
              f"{led[-1]:.2f}            {statistics.median(fd):.2f} / {fd[-1]:.2f}")


if __name__ == "__main__":
    main()
