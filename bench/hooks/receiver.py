"""Benchmark receiver: accepts Standard Webhooks POSTs on 127.0.0.1 and records, per request, the
delay from the event's ``timestamp`` (in the body) to its arrival, by organisation (the bench gives
the second organisation's events ``job_id`` values from 1,000,000 up). GET /stats returns them,
GET /reset clears them.

A minimal HTTP/1.1 server on asyncio (uvloop when installed) with keep-alive: it costs a fraction
of a thread-per-connection ``http.server`` per request, so on a 2-core machine the figures
measure the sender more than the receiver.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import time
from typing import Any

SECOND_ORG_JOB_IDS = 1_000_000
groups: dict[str, dict[str, Any]] = {}
ids: set[str] = set()
dupes = [0]


def _group(name: str) -> dict[str, Any]:
    g = groups.get(name)
    if g is None:
        g = groups[name] = {"latencies": [], "arrivals": []}
    return g


def _stats(path: str) -> bytes:
    data = json.dumps({"count": sum(len(g["latencies"]) for g in groups.values()), "groups": groups,
                       "duplicates": dupes[0]}).encode()
    if path == "/reset":
        groups.clear()
        ids.clear()
        dupes[0] = 0
    return data


def _post(headers: dict[bytes, bytes], body: bytes) -> None:
    now = time.time()
    group = "a"
    try:
        doc = json.loads(body)
        ts = dt.datetime.fromisoformat(doc["timestamp"].replace("Z", "+00:00")).timestamp()
        if int(doc.get("data", {}).get("job_id", 0)) >= SECOND_ORG_JOB_IDS:
            group = "b"
    except Exception:
        ts = now
    wid = headers.get(b"webhook-id", b"").decode()
    if wid in ids:
        dupes[0] += 1
    ids.add(wid)
    g = _group(group)
    g["latencies"].append(now - ts)
    g["arrivals"].append(now)


class Http(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].split(b"\r\n")
            method, path = head[0].split(b" ")[:2]
            headers = {}
            for line in head[1:]:
                k, _, v = line.partition(b":")
                headers[k.strip().lower()] = v.strip()
            n = int(headers.get(b"content-length", b"0"))
            if len(self.buf) < end + 4 + n:
                return
            body = self.buf[end + 4:end + 4 + n]
            self.buf = self.buf[end + 4 + n:]
            if method == b"POST":
                _post(headers, body)
                out = b""
            else:
                out = _stats(path.decode())
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(out), out))


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1])))
