"""Partner webhook benchmark: fan-out of ``job_complete`` events to 50 subscribed endpoints.

One customer org has 50 plugins installed, each with its own endpoint on a local receiver
(a separate process). Events are emitted at a steady rate, each in its own transaction (as the
jobs runtime does); one ``levqor worker`` process (outbox dispatcher + webhook deliverer) fans
them out and delivers them, signed. The receiver records event-to-delivery delay (body
``timestamp`` to arrival). Measured on SQLite and PostgreSQL.

Baseline, same run, same receiver: a naive synchronous fan-out with no outbox (the emitter itself
signs and POSTs the 50 requests from a thread pool of the same size): no durability, no retries.
Ratios are ours / baseline. The last line is ``hooks: key=value ...``.
Usage: python bench/hooks/run.py [--events 10] [--rate 0.5] [--endpoints 50] [--pg URL]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/levqor_bench_hooks"
CONCURRENCY = 32


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> dict[str, Any]:
    import httpx

    return dict(httpx.get(url, timeout=30).json())


def wait_count(base: str, n: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    stats = get(base + "/stats")
    while stats["count"] < n and time.monotonic() < deadline:
        time.sleep(0.2)
        stats = get(base + "/stats")
    return stats


def setup(n_endpoints: int, receiver: str) -> int:
    """Partner with ``n_endpoints`` listed plugins, all installed by one customer org; its id."""
    from memory.db import session_scope
    from tools.context import SYSTEM, Principal, ToolContext
    from tools.registry import registry

    with session_scope() as s:
        sys_ctx = ToolContext(s, SYSTEM)
        partner = registry.invoke("org.create", sys_ctx, {"name": "Bench partner", "slug": "bench-partner"})
        customer = registry.invoke("org.create", sys_ctx, {"name": "Bench customer", "slug": "bench-customer"})
        pctx = ToolContext(s, Principal(kind="system", id="bench", org_id=partner.id, role="admin"))  # type: ignore[attr-defined]
        cctx = ToolContext(s, Principal(kind="system", id="bench", org_id=customer.id, role="admin"))  # type: ignore[attr-defined]
        registry.invoke("partners.register", pctx, {"display_name": "Bench", "contact_email": "b@bench.example"})
        for i in range(n_endpoints):
            slug = f"bench.p{i}"
            m = {"id": slug, "name": f"Bench {i}", "author": "Bench", "version": "1.0.0", "scopes": ["jobs:read"],
                 "events": ["job_complete"], "endpoints": {"webhook_url": f"{receiver}/e{i}"}, "revenue_share": 0.7,
                 "support_url": "https://bench.example/s", "privacy_url": "https://bench.example/p"}
            registry.invoke("plugins.create", pctx, {"manifest": m})
            registry.invoke("plugins.submit", pctx, {"plugin": slug, "version": "1.0.0"})
            registry.invoke("plugins.review", pctx, {"plugin": slug, "version": "1.0.0", "decision": "approve"})
            registry.invoke("plugins.install", cctx, {"plugin": slug})
        return int(customer.id)  # type: ignore[attr-defined]


def emit_at_rate(org_id: int, events: int, rate: float) -> float:
    from memory.db import session_scope
    from tools.events.service import emit

    start = time.perf_counter()
    for i in range(events):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        with session_scope() as s:
            emit(s, "job_complete", {"job_id": i, "pipeline_id": 1, "state": "succeeded", "attempts": 1,
                                     "trigger": "bench"}, org_id=org_id)
    return time.perf_counter() - start


def baseline(org_id: int, events: int, rate: float, endpoints: int, receiver: str) -> float:
    """Naive fan-out: sign and POST from the emitter, no outbox (thread pool of CONCURRENCY)."""
    import datetime as dt
    from concurrent.futures import ThreadPoolExecutor

    from tools.jobs import ssrf
    from tools.partner_api.hooks import sign
    from tools.partner_api.registry import new_secret

    secret = new_secret()
    pool = ThreadPoolExecutor(CONCURRENCY)

    def post(i: int, e: int, emitted: str) -> None:
        body = json.dumps({"type": "job_complete", "timestamp": emitted, "data": {"job_id": i}}).encode()
        ts = int(time.time())
        ssrf.request("POST", f"{receiver}/e{e}", content=body, timeout=10, headers={
            "content-type": "application/json", "webhook-id": f"msg_{i}_{e}", "webhook-timestamp": str(ts),
            "webhook-signature": sign(secret, f"msg_{i}_{e}", ts, body)})

    start = time.perf_counter()
    futures = []
    for i in range(events):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        emitted = dt.datetime.now(dt.UTC).isoformat()  # latency counts from the event, as for ours
        futures += [pool.submit(post, i, e, emitted) for e in range(endpoints)]
    for f in futures:
        f.result()
    pool.shutdown()
    return time.perf_counter() - start


def child(url: str, events: int, rate: float, endpoints: int) -> dict[str, Any]:
    var = Path(tempfile.mkdtemp(prefix="levqor-bench-hooks-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVQOR_")}
    env.update({"LEVQOR_DATABASE_URL": url or f"sqlite:///{var / 'levqor.db'}", "LEVQOR_VAR_DIR": str(var),
                "LEVQOR_ALLOW_LOOPBACK_URLS": "true", "LEVQOR_LOG_LEVEL": "WARNING", "LEVQOR_EVENTS_POLL_S": "0.02",
                "LEVQOR_HOOKS_CONCURRENCY": str(CONCURRENCY), "LEVQOR_HOOKS_PER_ENDPOINT": "4",
                "LEVQOR_AGENT_EVENT_TRIGGERS": "{}", "LEVQOR_AGENT_SCHEDULES": "{}"})
    os.environ.update(env)
    if url.startswith("postgresql"):
        from sqlalchemy import create_engine, text

        eng = create_engine(url)
        with eng.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        eng.dispose()
    from memory.migrate import upgrade

    upgrade()
    port = free_port()
    rx = subprocess.Popen([sys.executable, str(ROOT / "bench/hooks/receiver.py"), str(port)],
                          stdout=subprocess.PIPE, env=env)
    assert rx.stdout is not None and rx.stdout.readline().strip() == b"ready"
    receiver = f"http://127.0.0.1:{port}"
    worker = None
    try:
        org_id = setup(endpoints, receiver)
        worker = subprocess.Popen([sys.executable, "-m", "api.cli", "worker"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        emit_at_rate(org_id, 3, 10)  # warm-up
        wait_count(receiver, 3 * endpoints, 60)
        get(receiver + "/reset")
        t0 = time.time()
        emit_s = emit_at_rate(org_id, events, rate)
        stats = wait_count(receiver, events * endpoints, 150)
        total = stats["count"]
        span = max(stats["arrivals"]) - t0 if stats["arrivals"] else float("nan")
        ours = {"deliveries": total, "expected": events * endpoints, "duplicates": stats["duplicates"],
                "per_s": total / span, "p50_ms": pct(stats["latencies"], 0.5) * 1000,
                "p99_ms": pct(stats["latencies"], 0.99) * 1000, "emit_s": emit_s}
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        worker = None
        get(receiver + "/reset")
        t0 = time.time()
        baseline(org_id, events, rate, endpoints, receiver)
        stats = wait_count(receiver, events * endpoints, 60)
        span = max(stats["arrivals"]) - t0
        base = {"deliveries": stats["count"], "per_s": stats["count"] / span,
                "p50_ms": pct(stats["latencies"], 0.5) * 1000, "p99_ms": pct(stats["latencies"], 0.99) * 1000}
        return {"ours": ours, "baseline": base}
    finally:
        if worker is not None:
            worker.kill()
            worker.wait()
        rx.terminate()
        rx.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10)
    ap.add_argument("--rate", type=float, default=0.5, help="events per second (x endpoints deliveries/s)")
    ap.add_argument("--endpoints", type=int, default=50)
    ap.add_argument("--pg", default=os.environ.get("LEVQOR_BENCH_PG", DEFAULT_PG))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(child(args.child, args.events, args.rate, args.endpoints)))
        return
    results: dict[str, Any] = {}
    sys.path.insert(0, str(ROOT))
    from bench.pg import ensure_pg_database

    ensure_pg_database(args.pg)
    for name, url in (("sqlite", ""), ("pg", args.pg)):
        out = subprocess.run([sys.executable, __file__, "--child", url, "--events", str(args.events), "--rate",
                              str(args.rate), "--endpoints", str(args.endpoints)], cwd=ROOT, capture_output=True,
                             text=True, timeout=600)
        if out.returncode != 0:
            print(out.stderr[-8000:], file=sys.stderr)
            raise SystemExit(f"{name} run failed")
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{args.events} job_complete events at {args.rate:g}/s to {args.endpoints} endpoints "
          f"({args.events * args.endpoints} deliveries), one worker, {CONCURRENCY} sender threads")
    print(f"{'system':28} {'delivered':>10} {'deliv/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
    for name, r in results.items():
        o, b = r["ours"], r["baseline"]
        print(f"{'levqor outbox ' + name:28} {o['deliveries']:>10} {o['per_s']:>9.0f} {o['p50_ms']:>9.1f} "
              f"{o['p99_ms']:>9.1f}")
        print(f"{'naive direct (' + name + ' run)':28} {b['deliveries']:>10} {b['per_s']:>9.0f} {b['p50_ms']:>9.1f} "
              f"{b['p99_ms']:>9.1f}")
    parts = []
    for name, r in results.items():
        o, b = r["ours"], r["baseline"]
        parts.append(f"{name}_per_s={o['per_s']:.0f} {name}_p50_ms={o['p50_ms']:.1f} {name}_p99_ms={o['p99_ms']:.1f} "
                     f"{name}_delivered={o['deliveries']}/{o['expected']} {name}_dupes={o['duplicates']} "
                     f"{name}_vs_direct_per_s={o['per_s'] / b['per_s']:.2f}x "
                     f"{name}_vs_direct_p99={o['p99_ms'] / b['p99_ms']:.2f}x")
    print("hooks: " + " ".join(parts))


if __name__ == "__main__":
    main()
