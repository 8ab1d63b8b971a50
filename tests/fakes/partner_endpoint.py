"""A partner's webhook endpoint: a real HTTP server on 127.0.0.1 that records every request and answers
with a status and delay set per path."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    raw_headers: list[tuple[str, str]] = field(default_factory=list)  # as sent, repeats included


@dataclass
class Behaviour:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """A real HTTP server on 127.0.0.1 recording every request; behaviour per path."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.behaviour: dict[str, Behaviour] = {}
        self.lock = threading.Lock()
        self.release = threading.Event()  # set to let hanging requests finish
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with rec.lock:
                    rec.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                                 time.time(), list(self.headers.items())))
                    b = rec.behaviour.get(self.path, Behaviour())
                if b.delay:
                    rec.release.wait(b.delay)
                self.send_response(b.status)
                for k, v in b.headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", "2")
                self.end_headers()
                try:
                    self.wfile.write(b"ok")
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.base + path

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_a: Any) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
