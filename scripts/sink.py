#!/usr/bin/env python3
"""A local HTTP sink for webhooks: records every request, answers as told.

  sink.py --port-file F [--log F] [--status 200] [--ids-only]

Binds 127.0.0.1 on a free port (written to --port-file). HTTP/1.1 keep-alive.
Each request is appended to --log as one JSON line:
  {"t": receive time (unix s), "method", "path", "idempotency_key", "headers", "body"}
With --ids-only the logged body is {"id": <the body's leading "id">} (large
payloads: the log stays small, deliveries can still be counted per event id).
Control (JSON bodies):
  POST /_control {"status": 500}            answer every later request with 500
  POST /_control {"fail_next": 3, "fail_status": 503}  the next 3 requests fail
  POST /_control {"delay_ms": 100}          delay each answer
  POST /_control {"capacity": 8, "shed_status": 503}  a request arriving while 8 are
                                             in progress is answered 503 at once (shed)
  POST /_control {"reset_max": true}         restart max_in_flight from now
  GET  /_stats                               {"requests": N, "unique_keys": M, "duplicates": D,
                                              "in_flight", "max_in_flight", "shed"}
"""
import argparse
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
state = {"status": 200, "fail_next": 0, "fail_status": 503, "delay_ms": 0, "capacity": 0,
         "shed_status": 503}
stats = {"requests": 0, "keys": {}, "in_flight": 0, "max_in_flight": 0, "shed": 0}
log_file = None
ids_only = False
ID_RE = re.compile(rb'"id"\s*:\s*"([^"]*)"')


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle's algorithm the
    # body would wait for the client's delayed ACK (~40 ms per answer).
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # quiet
        pass

    def _reply(self, status, body=b"", ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/_stats":
            with lock:
                dup = sum(c - 1 for c in stats["keys"].values() if c > 1)
                out = {"requests": stats["requests"], "unique_keys": len(stats["keys"]),
                       "duplicates": dup, "in_flight": stats["in_flight"],
                       "max_in_flight": stats["max_in_flight"], "shed": stats["shed"]}
            self._reply(200, json.dumps(out).encode())
        else:
            self._reply(200, b"{}")

    def _handle(self):
        t = time.time()
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if len(body) < n:  # the client went away mid-request: nothing was delivered
            self.close_connection = True
            return
        if self.path == "/_control":
            with lock:
                ctl = json.loads(body or b"{}")
                if ctl.pop("reset_max", False):
                    stats["max_in_flight"] = stats["in_flight"]
                state.update(ctl)
            return self._reply(200, b"{}")
        key = self.headers.get("Idempotency-Key")
        with lock:
            if state["fail_next"] > 0:
                state["fail_next"] -= 1
                status = state["fail_status"]
            else:
                status = state["status"]
            delay = state["delay_ms"]
            cap = state["capacity"]
            accepted = not (cap and stats["in_flight"] >= cap)
            if accepted:
                stats["in_flight"] += 1
                stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
            else:
                status = state["shed_status"]
                delay = 0
                stats["shed"] += 1
            stats["requests"] += 1
            if 200 <= status < 300 and key:
                stats["keys"][key] = stats["keys"].get(key, 0) + 1
            if log_file:
                if ids_only:
                    m = ID_RE.search(body[:512])
                    logged = json.dumps({"id": m.group(1).decode() if m else None})
                else:
                    logged = body.decode("utf-8", "replace")
                rec = {"t": t, "method": self.command, "path": self.path, "status": status,
                       "idempotency_key": key, "headers": dict(self.headers.items()),
                       "body": logged}
                log_file.write(json.dumps(rec) + "\n")
                log_file.flush()
        try:
            if delay:
                time.sleep(delay / 1000.0)
        finally:
            # Before the answer: the client may send its next request on this
            # connection as soon as it has the answer.
            if accepted:
                with lock:
                    stats["in_flight"] -= 1
        self._reply(status, b'{"ok":true}' if status < 300 else b'{"error":"sink told to fail"}')

    do_POST = _handle
    do_PUT = _handle
    do_PATCH = _handle


def main():
    global log_file, ids_only
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log")
    ap.add_argument("--status", type=int, default=200)
    ap.add_argument("--ids-only", action="store_true")
    a = ap.parse_args()
    ids_only = a.ids_only
    state["status"] = a.status
    if a.log:
        log_file = open(a.log, "a", buffering=1)
    # Many clients connect at once under load: a listen backlog of 5 (the
    # default) would drop their SYNs and stall them for seconds.
    ThreadingHTTPServer.request_queue_size = 256
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
