"""Partner webhook benchmark: fan-out of ``job_complete`` events to subscribed endpoints.

One customer org has 50 plugins installed, each with its own endpoint on a local receiver
(a separate asyncio process); a second org has only ``--few`` of them. Events are emitted at a
steady rate, each in its own transaction (as the jobs runtime does), from ``--emitters`` threads;
one ``levqor worker`` process (outbox dispatcher + webhook deliverer) fans them out and delivers
them, signed. The receiver records event-to-delivery delay (body ``timestamp`` to arrival).
Each database (SQLite, PostgreSQL) runs these scenarios:

- ``fanout``: ``--events`` events at ``--rate``/s to 50 endpoints (the headline figures);
- ``sat``: the issue's aim, 1,000 events/s offered to 50 endpoints (50,000 deliveries/s) for
  ``--sat-s`` seconds: far beyond two cores, so it measures the maximum sustained delivery rate
  (deliveries over the time to deliver them all) and the queueing p99 at that overload;
- ``at80``: 80% of that maximum, offered to 50 endpoints for a few seconds: p99 at a sustainable rate;
- ``few``: 1,000 events/s offered to ``--few`` endpoint(s) for ``--few-s`` seconds.

Baseline, same run, same receiver, for ``fanout`` and ``few``: a naive fan-out with no outbox
(the emitter itself signs and POSTs each request through ``ssrf.request``, a new connection per
request, from a thread pool of the same size as the worker's senders): no durability, no retries.
Ratios are ours / baseline. Machine load (``os.getloadavg``) is printed before and after each
database's run. The last line is ``hooks: key=value ...``.
Usage: python bench/hooks/run.py [--events 200] [--rate 10] [--sat-s 1] [--few 1] [--pg URL]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/levqor_bench_hooks"
CONCURRENCY = 32
ENDPOINTS = 50


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


def setup(n_endpoints: int, few: int, receiver: str) -> tuple[int, int]:
    """Partner with ``n_endpoints`` listed plugins; org A installs all, org B the first ``few``."""
    from memory.db import session_scope
    from tools.context import SYSTEM, Principal, ToolContext
    from tools.registry import registry

    with session_scope() as s:
        sys_ctx = ToolContext(s, SYSTEM)
        partner = registry.invoke("org.create", sys_ctx, {"name": "Bench partner", "slug": "bench-partner"})
        orgs = [registry.invoke("org.create", sys_ctx, {"name": f"Bench customer {c}", "slug": f"bench-{c}"})
                for c in ("a", "b")]
        pctx = ToolContext(s, Principal(kind="system", id="bench", org_id=partner.id, role="admin"))  # type: ignore[attr-defined]
        cctx = [ToolContext(s, Principal(kind="system", id="bench", org_id=o.id, role="admin"))  # type: ignore[attr-defined]
                for o in orgs]
        registry.invoke("partners.register", pctx, {"display_name": "Bench", "contact_email": "b@bench.example"})
        for i in range(n_endpoints):
            slug = f"bench.p{i}"
            m = {"id": slug, "name": f"Bench {i}", "author": "Bench", "version": "1.0.0", "scopes": ["jobs:read"],
                 "events": ["job_complete"], "endpoints": {"webhook_url": f"{receiver}/e{i}"}, "revenue_share": 0.7,
                 "support_url": "https://bench.example/s", "privacy_url": "https://bench.example/p"}
            registry.invoke("plugins.create", pctx, {"manifest": m})
            registry.invoke("plugins.submit", pctx, {"plugin": slug, "version": "1.0.0"})
            registry.invoke("plugins.review", pctx, {"plugin": slug, "version": "1.0.0", "decision": "approve"})
            registry.invoke("plugins.install", cctx[0], {"plugin": slug})
            if i < few:
                registry.invoke("plugins.install", cctx[1], {"plugin": slug})
        return int(orgs[0].id), int(orgs[1].id)  # type: ignore[attr-defined]


def paced(events: int, rate: float, threads: int, fn: Any) -> float:
    """Call ``fn(i)`` for i in range(events) at ``rate``/s overall, from ``threads`` threads; seconds taken."""
    start = time.perf_counter() + 0.05

    def run(k: int) -> None:
        for i in range(k, events, threads):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            fn(i)

    ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - start


def emit_at_rate(org_id: int, events: int, rate: float, threads: int) -> float:
    from memory.db import session_scope
    from tools.events.service import emit

    def one(i: int) -> None:
        with session_scope() as s:
            emit(s, "job_complete", {"job_id": i, "pipeline_id": 1, "state": "succeeded", "attempts": 1,
                                     "trigger": "bench"}, org_id=org_id)

    return paced(events, rate, threads, one)


def baseline(events: int, rate: float, endpoints: int, receiver: str, threads: int) -> float:
    """Naive fan-out: sign and POST from the emitter, no outbox (thread pool of CONCURRENCY)."""
    import datetime as dt
    from concurrent.futures import ThreadPoolExecutor

    from tools.partner_api.signing import new_secret, sign
    from tools.shared import ssrf

    secret = new_secret()
    pool = ThreadPoolExecutor(CONCURRENCY)

    def post(i: int, e: int, emitted: str) -> None:
        body = json.dumps({"type": "job_complete", "timestamp": emitted, "data": {"job_id": i}}).encode()
        ts = int(time.time())
        ssrf.request("POST", f"{receiver}/e{e}", content=body, timeout=10, headers={
            "content-type": "application/json", "webhook-id": f"msg_{i}_{e}", "webhook-timestamp": str(ts),
            "webhook-signature": sign(secret, f"msg_{i}_{e}", ts, body)})

    futures: list[Any] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        emitted = dt.datetime.now(dt.UTC).isoformat()  # latency counts from the event, as for ours
        fs = [pool.submit(post, i, e, emitted) for e in range(endpoints)]
        with lock:
            futures.extend(fs)

    took = paced(events, rate, threads, one)
    for f in futures:
        f.result()
    pool.shutdown()
    return took


def summary(stats: dict[str, Any], t0: float, expected: int, emit_s: float, events: int) -> dict[str, Any]:
    total = stats["count"]
    span = max(stats["arrivals"]) - t0 if stats["arrivals"] else float("nan")
    return {"deliveries": total, "expected": expected, "duplicates": stats["duplicates"], "per_s": total / span,
            "p50_ms": pct(stats["latencies"], 0.5) * 1000, "p99_ms": pct(stats["latencies"], 0.99) * 1000,
            "emitted_per_s": events / emit_s, "span_s": span}


def child(url: str, args: argparse.Namespace) -> dict[str, Any]:
    var = Path(tempfile.mkdtemp(prefix="levqor-bench-hooks-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVQOR_")}
    env.update({"LEVQOR_DATABASE_URL": url or f"sqlite:///{var / 'levqor.db'}", "LEVQOR_VAR_DIR": str(var),
                "LEVQOR_ALLOW_LOOPBACK_URLS": "true", "LEVQOR_LOG_LEVEL": "WARNING",
                # SQLite has no cross-process wake-up: the dispatcher polls; PostgreSQL's LISTEN wakes it.
                "LEVQOR_EVENTS_POLL_S": "0.5" if url.startswith("postgresql") else "0.02",
                "LEVQOR_HOOKS_CONCURRENCY": str(CONCURRENCY), "LEVQOR_HOOKS_PER_ENDPOINT": str(args.per_endpoint),
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
    out: dict[str, Any] = {"load_before": os.getloadavg()}
    n = ENDPOINTS

    def ours(org: int, events: int, rate: float, endpoints: int, drain_s: float) -> dict[str, Any]:
        get(receiver + "/reset")
        t0 = time.time()
        emit_s = emit_at_rate(org, events, rate, args.emitters)
        stats = wait_count(receiver, events * endpoints, drain_s)
        return summary(stats, t0, events * endpoints, emit_s, events)

    def direct(events: int, rate: float, endpoints: int) -> dict[str, Any]:
        get(receiver + "/reset")
        t0 = time.time()
        emit_s = baseline(events, rate, endpoints, receiver, args.emitters)
        stats = wait_count(receiver, events * endpoints, 60)
        return summary(stats, t0, events * endpoints, emit_s, events)

    try:
        org_all, org_few = setup(n, args.few, receiver)
        worker = subprocess.Popen([sys.executable, "-m", "api.cli", "worker"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        emit_at_rate(org_all, 3, 10, 1)  # warm-up
        wait_count(receiver, 3 * n, 60)
        out["fanout"] = ours(org_all, args.events, args.rate, n, 150)
        if not args.quick:
            out["few"] = ours(org_few, int(1000 * args.few_s), 1000, args.few, 60)
            out["sat"] = ours(org_all, int(1000 * args.sat_s), 1000, n, 300)
            rate80 = 0.8 * out["sat"]["per_s"] / n
            out["at80"] = ours(org_all, max(1, int(rate80 * args.at80_s)), rate80, n, 120)
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        worker = None
        out["fanout_direct"] = direct(args.events, args.rate, n)
        if not args.quick:
            out["few_direct"] = direct(int(1000 * args.few_s), 1000, args.few)
        out["load_after"] = os.getloadavg()
        return out
    finally:
        if worker is not None:
            worker.kill()
            worker.wait()
        rx.terminate()
        rx.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--rate", type=float, default=10, help="fanout scenario: events per second (x 50 deliveries)")
    ap.add_argument("--sat-s", type=float, default=1.0, help="seconds of 1,000 events/s to 50 endpoints")
    ap.add_argument("--at80-s", type=float, default=4.0, help="seconds at 80%% of the measured maximum")
    ap.add_argument("--few", type=int, default=1, help="endpoints subscribed in the 1,000 events/s scenario")
    ap.add_argument("--few-s", type=float, default=3.0, help="seconds of 1,000 events/s to --few endpoints")
    ap.add_argument("--per-endpoint", type=int, default=4, help="LEVQOR_HOOKS_PER_ENDPOINT for the worker")
    ap.add_argument("--emitters", type=int, default=4, help="emitting threads (each event its own transaction)")
    ap.add_argument("--pg", default=os.environ.get("LEVQOR_BENCH_PG", DEFAULT_PG))
    ap.add_argument("--only", choices=("sqlite", "pg"), default=None)
    ap.add_argument("--quick", action="store_true", help="only the fanout scenario and its baseline")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(child(args.child, args)))
        return
    results: dict[str, Any] = {}
    sys.path.insert(0, str(ROOT))
    from bench.pg import ensure_pg_database

    dbs = [("sqlite", ""), ("pg", args.pg)]
    if args.only:
        dbs = [d for d in dbs if d[0] == args.only]
    if any(name == "pg" for name, _ in dbs):
        ensure_pg_database(args.pg)
    passthrough = [a for a in sys.argv[1:]]
    for name, url in dbs:
        out = subprocess.run([sys.executable, __file__, "--child", url, *passthrough], cwd=ROOT,
                             capture_output=True, text=True, timeout=1200)
        if out.returncode != 0:
            print(out.stderr[-8000:], file=sys.stderr)
            raise SystemExit(f"{name} run failed")
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"one worker process ({CONCURRENCY} sender threads, at most {args.per_endpoint} per endpoint), "
          f"{args.emitters} emitter threads, "
          f"{os.cpu_count()} cores")
    print(f"{'scenario':40} {'offered ev/s':>12} {'delivered':>15} {'deliv/s':>8} {'p50 ms':>9} {'p99 ms':>9}")
    rows = (("fanout", f"{args.rate:g}/s to {ENDPOINTS} endpoints"), ("fanout_direct", "  naive direct, same load"),
            ("sat", f"1000/s to {ENDPOINTS} endpoints (overload)"), ("at80", f"80% of max to {ENDPOINTS} endpoints"),
            ("few", f"1000/s to {args.few} endpoint(s)"), ("few_direct", "  naive direct, same load"))
    for name, r in results.items():
        la, lb = r["load_before"], r["load_after"]
        print(f"{name}: load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} before, "
              f"{lb[0]:.2f} {lb[1]:.2f} {lb[2]:.2f} after")
        for key, label in rows:
            if key not in r:
                continue
            o = r[key]
            print(f"  {label:38} {o['emitted_per_s']:>12.0f} {str(o['deliveries']) + '/' + str(o['expected']):>15} "
                  f"{o['per_s']:>8.0f} {o['p50_ms']:>9.1f} {o['p99_ms']:>9.1f}")
    parts = []
    for name, r in results.items():
        o, b = r["fanout"], r["fanout_direct"]
        parts.append(
            f"{name}_per_s={o['per_s']:.0f} {name}_p50_ms={o['p50_ms']:.1f} {name}_p99_ms={o['p99_ms']:.1f} "
            f"{name}_delivered={o['deliveries']}/{o['expected']} {name}_dupes={o['duplicates']} "
            f"{name}_vs_direct_per_s={o['per_s'] / b['per_s']:.2f}x "
            f"{name}_vs_direct_p99={o['p99_ms'] / b['p99_ms']:.2f}x")
        if args.quick:
            parts.append(f"{name}_load1={r['load_before'][0]:.2f}->{r['load_after'][0]:.2f}")
            continue
        sat, at80, few, fd = (r[k] for k in ("sat", "at80", "few", "few_direct"))
        parts.append(
            f"{name}_max_per_s={sat['per_s']:.0f} {name}_sat_offered_ev_s={sat['emitted_per_s']:.0f} "
            f"{name}_sat_p99_ms={sat['p99_ms']:.0f} {name}_at80_per_s={at80['per_s']:.0f} "
            f"{name}_at80_p99_ms={at80['p99_ms']:.1f} {name}_1000eps_{args.few}ep_offered={few['emitted_per_s']:.0f} "
            f"{name}_1000eps_{args.few}ep_p50_ms={few['p50_ms']:.1f} "
            f"{name}_1000eps_{args.few}ep_p99_ms={few['p99_ms']:.1f} "
            f"{name}_1000eps_vs_direct_p99={few['p99_ms'] / fd['p99_ms']:.2f}x "
            f"{name}_load1={r['load_before'][0]:.2f}->{r['load_after'][0]:.2f}")
    print("hooks: " + " ".join(parts))


if __name__ == "__main__":
    main()
