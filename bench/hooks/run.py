"""Partner webhook benchmark: fan-out of ``job_complete`` events to subscribed endpoints.

Organisation A has 50 plugins installed, each with its own endpoint on a local receiver (a separate
asyncio process); organisation B has only ``--few`` of them. Events are emitted at a steady rate,
each in its own transaction (as the jobs runtime does), from ``--emitters`` threads; ``--workers``
``levqor worker`` processes (outbox dispatcher + webhook deliverer each; 2 by default) fan them out
and deliver them, signed. The receiver records event-to-delivery delay (body ``timestamp`` to
arrival) per organisation. Each database (SQLite, PostgreSQL) runs these scenarios:

- ``fanout``: ``--events`` events at ``--rate``/s from A to 50 endpoints (500 deliveries/s: the
  p99 aim, under 100 ms);
- ``sustain``: ``--sustain-rate`` deliveries/s (2,000: the throughput aim) offered by A for
  ``--sustain-s`` seconds: all delivered, none shed, at the offered pace;
- ``overload``: the issue's overload, 1,000 events/s from A to 50 endpoints (50,000 deliveries/s)
  for ``--sat-s`` seconds, far beyond two cores, while B emits ``--b-rate`` events/s to its
  ``--few`` endpoint(s). Admission control sheds what it cannot deliver in time: reported are the
  p99 of the admitted deliveries of A and of B, the deliveries per second while saturated (the
  maximum sustained rate), the shed deliveries recorded (``webhook_deferrals``) and the check that
  nothing accepted was lost (delivered + recorded as shed = fanned out), and the incident opened.

Baseline, same run, same receiver, for ``fanout``: a naive fan-out with no outbox (the emitter
itself signs and POSTs each request through ``ssrf.request``, a new connection per request, from a
thread pool of the same size as one worker's senders): no durability, no retries. Ratios are ours /
baseline. Machine load (``os.getloadavg``) is printed before and after each database's run. The last
line is ``hooks: key=value ...`` with each aim's figure and ``pass``/``FAIL``.
``--profile DIR`` records each worker with py-spy (collapsed stacks, ``DIR/<db>-worker-N.txt``).
Usage: python bench/hooks/run.py [--events 200] [--rate 10] [--sat-s 5] [--few 2] [--workers 2] [--pg URL]
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
B_JOB_IDS = 1_000_000  # the receiver counts events with job ids from here as organisation B's
AIM_P99_MS = 100.0  # at 500 deliveries/s
AIM_PER_S = 2000.0  # sustained, 2 worker processes
AIM_OVERLOAD_P99_MS = 2000.0  # admitted deliveries under overload: bounded (the admission lag is 1 s)


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


def group(stats: dict[str, Any], name: str) -> dict[str, list[float]]:
    return dict(stats["groups"].get(name) or {"latencies": [], "arrivals": []})


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
            # Reviews are for Levqor staff: the platform principal approves.
            registry.invoke("plugins.review", sys_ctx, {"plugin": slug, "version": "1.0.0", "decision": "approve"})
            registry.invoke("plugins.install", cctx[0], {"plugin": slug})
            if i < few:
                registry.invoke("plugins.install", cctx[1], {"plugin": slug})
        return int(orgs[0].id), int(orgs[1].id)  # type: ignore[attr-defined]


def paced(events: int, rate: float, threads: int, fn: Any, start: float | None = None, part: int = 0,
          parts: int = 1) -> float:
    """Call ``fn(i)`` for i in range(events) at ``rate``/s overall, from ``threads`` threads; seconds taken.

    ``part`` of ``parts``: only every ``parts``-th event from ``part`` (the others are another process's)."""
    start = start if start is not None else time.perf_counter() + 0.05

    def run(k: int) -> None:
        for i in range(part + k * parts, events, threads * parts):
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


def emitter(org_id: int, first_job_id: int = 0) -> Any:
    from memory.db import session_scope
    from tools.events.service import emit

    def one(i: int) -> None:
        with session_scope() as s:
            emit(s, "job_complete", {"job_id": first_job_id + i, "pipeline_id": 1, "state": "succeeded",
                                     "attempts": 1, "trigger": "bench"}, org_id=org_id)

    return one


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


def summary(g: dict[str, list[float]], t0: float, expected: int, emit_s: float, events: int,
            shed: int = 0) -> dict[str, Any]:
    total = len(g["latencies"])
    span = max(g["arrivals"]) - t0 if g["arrivals"] else float("nan")
    arriving = max(g["arrivals"]) - min(g["arrivals"]) if total > 1 else float("nan")
    return {"deliveries": total, "expected": expected, "shed": shed, "per_s": total / span,
            "arrival_per_s": (total - 1) / arriving if arriving else float("nan"),
            "p50_ms": pct(g["latencies"], 0.5) * 1000, "p99_ms": pct(g["latencies"], 0.99) * 1000,
            "max_ms": max(g["latencies"], default=float("nan")) * 1000,
            "emitted_per_s": events / emit_s if emit_s else float("nan"), "events": events, "span_s": span}


def cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes and their children (py-spy's worker)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            p = psutil.Process(pid)
            for q in [p, *p.children(recursive=True)]:
                t = q.cpu_times()
                total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def shed_by_org() -> dict[int, int]:
    """Deliveries the fan-out shed, recorded per organisation (none before the table existed)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from memory.db import session_scope

    try:
        with session_scope() as s:
            return {int(o): int(n) for o, n in s.execute(text(
                "SELECT org_id, COALESCE(SUM(shed), 0) FROM webhook_deferrals GROUP BY org_id"))}
    except DBAPIError:
        return {}


def shedding_incidents() -> list[str]:
    """Run the monitor's tick once (as the scheduler leader does every few seconds): the causes of the
    ``webhook_shedding`` incidents open then."""
    from sqlalchemy import text

    from memory.db import session_scope
    from tools.auto_intel.monitor import monitor_tick

    monitor_tick()

    with session_scope() as s:
        return [str(c) for (c,) in s.execute(text("SELECT cause FROM ops_incidents WHERE diagnosis = "
                                                  "'webhook_shedding' ORDER BY id"))]


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
    db = "pg" if url.startswith("postgresql") else "sqlite"
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
    workers: list[subprocess.Popen[bytes]] = []
    out: dict[str, Any] = {"load_before": os.getloadavg()}
    n = ENDPOINTS

    def ours(org: int, events: int, rate: float, drain_s: float) -> dict[str, Any]:
        get(receiver + "/reset")
        shed0 = shed_by_org().get(org, 0)
        cpu0 = cpu_s([w.pid for w in workers])
        t0 = time.time()
        emit_s = paced(events, rate, args.emitters, emitter(org))
        expected = events * n
        deadline = time.monotonic() + drain_s
        while True:
            got, shed = get(receiver + "/stats")["count"], shed_by_org().get(org, 0) - shed0
            if got + shed >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        stats = get(receiver + "/stats")
        res = summary(group(stats, "a"), t0, expected, emit_s, events, shed)
        res["duplicates"] = stats["duplicates"]
        res["worker_cpu_ms"] = (cpu_s([w.pid for w in workers]) - cpu0) * 1000 / max(1, res["deliveries"])
        return res

    def overload(org_a: int, org_b: int) -> dict[str, Any]:
        get(receiver + "/reset")
        shed0 = shed_by_org()
        a_events, b_events = int(1000 * args.sat_s), max(1, int(args.b_rate * args.sat_s))
        took: dict[str, float] = {}
        cpu0 = cpu_s([w.pid for w in workers])
        lead = 4.0  # the emitting processes import Levqor first
        start = time.perf_counter() + lead
        t0 = time.time() + lead

        def b() -> None:
            took["b"] = paced(b_events, args.b_rate, 1, emitter(org_b, B_JOB_IDS), start)

        tb = threading.Thread(target=b)
        tb.start()
        # Organisation A's flood comes from --emit-procs processes (one process's threads share one GIL).
        procs = [subprocess.Popen([sys.executable, __file__, "--emit-child", json.dumps(
            [org_a, a_events, 1000, t0, k, args.emit_procs, args.emitters])], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, text=True) for k in range(args.emit_procs)]
        took["a"] = max(float(p.communicate()[0].strip().splitlines()[-1]) for p in procs)
        tb.join()
        exp_a, exp_b = a_events * n, b_events * args.few
        deadline = time.monotonic() + 300
        while True:
            stats = get(receiver + "/stats")
            shed = shed_by_org()
            sa, sb = shed.get(org_a, 0) - shed0.get(org_a, 0), shed.get(org_b, 0) - shed0.get(org_b, 0)
            ga, gb = group(stats, "a"), group(stats, "b")
            if (len(ga["latencies"]) + sa >= exp_a and len(gb["latencies"]) + sb >= exp_b) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        res_a = summary(ga, t0, exp_a, took["a"], a_events, sa)
        res_b = summary(gb, t0, exp_b, took["b"], b_events, sb)
        delivered = len(ga["latencies"]) + len(gb["latencies"])
        last = max(ga["arrivals"] + gb["arrivals"], default=t0 + 1)
        return {"a": res_a, "b": res_b, "per_s": delivered / (last - t0), "duplicates": stats["duplicates"],
                "worker_cpu_ms": (cpu_s([w.pid for w in workers]) - cpu0) * 1000 / max(1, delivered),
                "lost": (exp_a - len(ga["latencies"]) - sa) + (exp_b - len(gb["latencies"]) - sb),
                "incidents": shedding_incidents()}

    try:
        org_a, org_b = setup(n, args.few, receiver)
        for i in range(args.workers):
            cmd = [sys.executable, "-m", "api.cli", "worker"]
            if args.profile:
                cmd = [str(Path(sys.executable).with_name("py-spy")), "record", "--format", "raw", "--threads",
                       "--nonblocking", "-r", "200", "-o", f"{args.profile}/{db}-worker-{i}.txt", "--", *cmd]
            workers.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL))
        paced(3, 10, 1, emitter(org_a))  # warm-up
        deadline = time.monotonic() + 60
        while get(receiver + "/stats")["count"] < 3 * n and time.monotonic() < deadline:
            time.sleep(0.2)
        out["fanout"] = ours(org_a, args.events, args.rate, 150)
        if not args.quick:
            rate = args.sustain_rate / n
            out["sustain"] = ours(org_a, max(1, int(rate * args.sustain_s)), rate, 120)
            # The most it sustains: offered twice the aim, the admission sheds the rest; the rate deliveries arrive.
            rate = 2 * AIM_PER_S / n
            out["max"] = ours(org_a, max(1, int(rate * args.sustain_s)), rate, 120)
            out["overload"] = overload(org_a, org_b)
        for w in workers:
            w.send_signal(signal.SIGTERM if not args.profile else signal.SIGINT)
        for w in workers:
            w.wait(timeout=60)
        workers = []
        get(receiver + "/reset")
        t0 = time.time()
        emit_s = baseline(args.events, args.rate, n, receiver, args.emitters)
        stats = get(receiver + "/stats")
        out["fanout_direct"] = summary(group(stats, "a"), t0, args.events * n, emit_s, args.events)
        out["load_after"] = os.getloadavg()
        return out
    finally:
        for w in workers:
            w.kill()
            w.wait()
        rx.terminate()
        rx.wait()


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200)
    ap.add_argument("--rate", type=float, default=10, help="fanout scenario: events per second (x 50 deliveries)")
    ap.add_argument("--sustain-rate", type=float, default=AIM_PER_S, help="sustain scenario: deliveries per second")
    ap.add_argument("--sustain-s", type=float, default=8.0, help="sustain scenario: seconds")
    ap.add_argument("--sat-s", type=float, default=5.0, help="seconds of 1,000 events/s to 50 endpoints")
    ap.add_argument("--few", type=int, default=2, help="endpoints organisation B subscribes to")
    ap.add_argument("--b-rate", type=float, default=20, help="organisation B's events per second under overload")
    ap.add_argument("--per-endpoint", type=int, default=4, help="LEVQOR_HOOKS_PER_ENDPOINT for the workers")
    ap.add_argument("--workers", type=int, default=2, help="levqor worker processes")
    ap.add_argument("--emitters", type=int, default=4, help="emitting threads (each event its own transaction)")
    ap.add_argument("--pg", default=os.environ.get("LEVQOR_BENCH_PG", DEFAULT_PG))
    ap.add_argument("--only", choices=("sqlite", "pg"), default=None)
    ap.add_argument("--quick", action="store_true", help="only the fanout scenario and its baseline")
    ap.add_argument("--profile", metavar="DIR", help="record each worker with py-spy into DIR (collapsed stacks)")
    ap.add_argument("--emit-procs", type=int, default=2, help="processes emitting organisation A's overload")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--emit-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.emit_child is not None:  # [org, events, rate, start (unix time), part, parts, threads]
        sys.path.insert(0, str(ROOT))
        org, events, rate, start_at, part, parts, threads = json.loads(args.emit_child)
        start = time.perf_counter() + (start_at - time.time())
        print(paced(events, rate, threads, emitter(org), start, part, parts))
        return
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        args.profile = str(Path(args.profile).resolve())
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
    passthrough = [a for a in sys.argv[1:] if a != "--profile" and a != args.profile]
    if args.profile:
        passthrough += ["--profile", args.profile]
    for name, url in dbs:
        out = subprocess.run([sys.executable, __file__, "--child", url, *passthrough], cwd=ROOT,
                             capture_output=True, text=True, timeout=1200)
        if out.returncode != 0:
            print(out.stderr[-8000:], file=sys.stderr)
            raise SystemExit(f"{name} run failed")
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{args.workers} worker process(es) ({CONCURRENCY} sender threads each, at most {args.per_endpoint} per "
          f"endpoint), {args.emitters} emitter threads, {os.cpu_count()} cores")
    print(f"{'scenario':44} {'offered ev/s':>12} {'delivered':>13} {'shed':>7} {'deliv/s':>8} {'p50 ms':>9} "
          f"{'p99 ms':>9} {'cpu ms/d':>9}")
    print("(deliv/s: the rate deliveries arrived at; cpu ms/d: worker processes' CPU per delivery)")

    def row(label: str, o: dict[str, Any]) -> None:
        cpu = f"{o['worker_cpu_ms']:>9.2f}" if "worker_cpu_ms" in o else f"{'':>9}"
        print(f"  {label:42} {o['emitted_per_s']:>12.0f} {str(o['deliveries']) + '/' + str(o['expected']):>13} "
              f"{o['shed']:>7} {o['arrival_per_s']:>8.0f} {o['p50_ms']:>9.1f} {o['p99_ms']:>9.1f} {cpu}")

    for name, r in results.items():
        la, lb = r["load_before"], r["load_after"]
        print(f"{name}: load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} before, "
              f"{lb[0]:.2f} {lb[1]:.2f} {lb[2]:.2f} after")
        row(f"{args.rate:g}/s to {ENDPOINTS} endpoints", r["fanout"])
        row("  naive direct, same load", r["fanout_direct"])
        if "sustain" in r:
            row(f"{args.sustain_rate:g} deliveries/s offered", r["sustain"])
            row(f"{2 * AIM_PER_S:g} deliveries/s offered (the most sustained)", r["max"])
            o = r["overload"]
            row(f"overload A: 1000/s to {ENDPOINTS} endpoints", o["a"])
            row(f"  meanwhile B: {args.b_rate:g}/s to {args.few} endpoint(s)", o["b"])
            print(f"  overload: {o['per_s']:.0f} deliveries/s while saturated (emitting too), "
                  f"{o['worker_cpu_ms']:.2f} worker CPU ms per delivery, lost {o['lost']}, "
                  f"duplicates {o['duplicates']}, incidents {o['incidents']}")
    parts = []
    for name, r in results.items():
        o, b = r["fanout"], r["fanout_direct"]
        parts.append(
            f"{name}_per_s={o['per_s']:.0f} {name}_p50_ms={o['p50_ms']:.1f} {name}_p99_ms={o['p99_ms']:.1f} "
            f"{name}_p99_aim={verdict(o['p99_ms'] < AIM_P99_MS and o['deliveries'] == o['expected'])} "
            f"{name}_delivered={o['deliveries']}/{o['expected']} {name}_dupes={o['duplicates']} "
            f"{name}_vs_direct_p99={o['p99_ms'] / b['p99_ms']:.2f}x")
        if "sustain" in r:
            su, mx, ov = r["sustain"], r["max"], r["overload"]
            # Sustained: everything offered delivered (none shed), arriving at the offered pace, p99 bounded.
            sustained = (su["deliveries"] == su["expected"] and su["arrival_per_s"] >= 0.97 * args.sustain_rate
                         and su["p99_ms"] < 1000)
            bounded = max(ov["a"]["p99_ms"], ov["b"]["p99_ms"]) < AIM_OVERLOAD_P99_MS
            overload_ok = bounded and ov["lost"] == 0 and ov["duplicates"] == 0 and bool(ov["incidents"])
            parts.append(
                f"{name}_sustain_{args.sustain_rate:.0f}_per_s={su['arrival_per_s']:.0f} "
                f"{name}_sustain_p99_ms={su['p99_ms']:.0f} {name}_sustain_shed={su['shed']} "
                f"{name}_max_per_s={mx['arrival_per_s']:.0f} {name}_max_vs_aim={mx['arrival_per_s'] / AIM_PER_S:.2f}x "
                f"{name}_cpu_ms_per_delivery={mx['worker_cpu_ms']:.2f} "
                f"{name}_throughput_aim={verdict(sustained and mx['arrival_per_s'] >= AIM_PER_S)} "
                f"{name}_overload_per_s={ov['per_s']:.0f} "
                f"{name}_overload_offered_ev_s={ov['a']['emitted_per_s']:.0f} "
                f"{name}_overload_a_p99_ms={ov['a']['p99_ms']:.0f} {name}_overload_b_p99_ms={ov['b']['p99_ms']:.0f} "
                f"{name}_overload_a_shed={ov['a']['shed']} {name}_overload_b_shed={ov['b']['shed']} "
                f"{name}_overload_lost={ov['lost']} {name}_overload_dupes={ov['duplicates']} "
                f"{name}_overload_incident={'yes' if ov['incidents'] else 'no'} "
                f"{name}_overload_aim={verdict(overload_ok)}")
        parts.append(f"{name}_load1={r['load_before'][0]:.2f}->{r['load_after'][0]:.2f}")
    print("hooks: " + " ".join(parts))


if __name__ == "__main__":
    main()
