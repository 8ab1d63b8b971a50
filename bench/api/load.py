"""Load generator of the API benchmark, run as its own process so the client is not the server's bottleneck.

``CONNS`` kept-alive HTTP/1.1 connections (plain asyncio streams on uvloop: far less client CPU per
request than a full HTTP client library) each send GETs back to back, cycling through the routes, for
``--warmup`` then ``--seconds`` seconds. Requests completed in the measured window give requests/s and
latency percentiles; any non-200 answer, dropped connection or request slower than ``--timeout`` in
either window is an error. Prints one JSON object.
Usage: python bench/api/load.py BASE_URL KEY CONNS --routes /v1/me,/v1/jobs [--seconds 8] [--warmup 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import uvloop


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server keeps the connection) of one HTTP/1.1 response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" not in headers:
        raise ValueError(f"response without Content-Length: {lines[0]}")
    body = await reader.readexactly(int(headers["content-length"]))
    return status, body, headers.get("connection", "").lower() != "close"


async def run(base: str, key: str, conns: int, routes: list[str], seconds: float, warmup: float,
              timeout: float) -> dict[str, Any]:
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    requests = [f"GET {r} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
                f"Accept: application/json\r\n\r\n".encode() for r in routes]
    start = time.perf_counter()
    measure_from, end = start + warmup, start + warmup + seconds
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    samples: list[str] = []
    warm = [0]

    async def client(i: int) -> None:
        reader = writer = None
        k = i
        while time.perf_counter() < end:
            req = requests[k % len(requests)]
            k += 1
            try:
                if writer is None:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                assert reader is not None
                t0 = time.perf_counter()
                writer.write(req)
                status, body, keep = await asyncio.wait_for(read_response(reader), timeout)
                t1 = time.perf_counter()
            except TimeoutError:
                errors["timeout"] += 1
                keep = False
                status = 0
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                errors[type(exc).__name__] += 1
                if len(samples) < 5:
                    samples.append(repr(exc)[:200])
                keep = False
                status = 0
            else:
                if status != 200:
                    errors[f"http_{status}"] += 1
                    if len(samples) < 5:
                        samples.append(f"{status} {body[:200]!r}")
                elif measure_from <= t1 < end:
                    latencies.append(t1 - t0)
                else:
                    warm[0] += 1
            if not keep and writer is not None:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(client(i) for i in range(conns)))
    return {"conns": conns, "requests": len(latencies), "per_s": len(latencies) / seconds,
            "p50_ms": pct(latencies, 0.50) * 1000, "p99_ms": pct(latencies, 0.99) * 1000,
            "max_ms": max(latencies, default=float("nan")) * 1000, "warmup_requests": warm[0],
            "errors": sum(errors.values()), "error_kinds": dict(errors), "error_samples": samples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("key")
    ap.add_argument("conns", type=int)
    ap.add_argument("--routes", default="/v1/me,/v1/jobs")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds before a request counts as timed out")
    a = ap.parse_args()
    out = uvloop.run(run(a.base, a.key, a.conns, a.routes.split(","), a.seconds, a.warmup, a.timeout))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
