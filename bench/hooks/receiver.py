"""Benchmark receiver: accepts Standard Webhooks POSTs on 127.0.0.1 and records, per request, the
delay from the event's ``timestamp`` (in the body) to its arrival. GET /stats returns them."""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

lock = threading.Lock()
latencies: list[float] = []
arrivals: list[float] = []
ids: set[str] = set()
dupes = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_a: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        now = time.time()
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            ts = dt.datetime.fromisoformat(json.loads(body)["timestamp"].replace("Z", "+00:00")).timestamp()
        except Exception:
            ts = now
        with lock:
            wid = self.headers.get("webhook-id", "")
            if wid in ids:
                dupes[0] += 1
            ids.add(wid)
            latencies.append(now - ts)
            arrivals.append(now)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        with lock:
            data = json.dumps({"count": len(latencies), "latencies": latencies, "arrivals": arrivals,
                               "duplicates": dupes[0]}).encode()
            if self.path == "/reset":
                latencies.clear()
                arrivals.clear()
                ids.clear()
                dupes[0] = 0
        self.send_response(200)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


if __name__ == "__main__":
    server = Server(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()
