"""Jobs runtime benchmark: no-op jobs with 2 workers on SQLite and PostgreSQL vs Celery 5 on Redis.

Two figures per system, measured the same way for all three:
  throughput  N jobs queued up front, then released to 2 workers: N / (last finish - first start)
  latency     M jobs submitted one at a time at a steady rate to idle workers: start - enqueue, p50/p99

Ours: 2 ``levqor worker`` processes (default concurrency, threads). Celery: ``celery worker -c 2`` (2 prefork
processes), Redis broker on 127.0.0.1:6379 db 13. The last line is ``jobs: key=value ...``.
Usage: python bench/jobs/run.py [--jobs 10000] [--latency-jobs 300] [--rate 50] [--pg URL]
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
sys.path.insert(0, str(ROOT))
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/levqor_bench"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q / 100 * (len(s) - 1)))))]


# ---- ours (run in a child process so settings come from its environment) ---------------------

def ours(n: int, m: int, rate: float) -> dict[str, Any]:
    from sqlalchemy import func, select

    from bench.seed import bench_org
    from levqor.settings import get_settings
    from memory.db import session_scope
    from memory.jobs.models import Job, Pipeline, Worker
    from memory.migrate import upgrade
    from tools.context import Principal, ToolContext
    from tools.jobs.queue import QueueSwitch, pause, resume, submit_job

    s = get_settings()
    if not s.is_sqlite:
        from sqlalchemy import create_engine, text

        eng = create_engine(s.resolved_database_url)
        with eng.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        eng.dispose()
    upgrade()
    with session_scope() as ses:
        ctx, pid = bench_org(ses, n + m + 10)
        pause(ctx, QueueSwitch())
    org_id = ctx.org_id

    t = time.perf_counter()
    for start in range(0, n, 250):
        with session_scope() as ses:
            p = ses.get(Pipeline, pid)
            assert p is not None
            for i in range(start, min(n, start + 250)):
                submit_job(ses, org_id=org_id, pipeline=p, input={"i": i}, trigger="manual", actor="bench")
    fill_s = time.perf_counter() - t
    env = {**os.environ, "LEVQOR_LOG_LEVEL": "WARNING"}
    profile = os.environ.get("LEVQOR_BENCH_PROFILE_DIR")

    def argv(i: int) -> list[str]:
        cmd = [sys.executable, "-m", "api.cli", "worker"]
        if profile:  # py-spy's collapsed stacks of each worker (--profile DIR; py-spy must be installed)
            cmd = [str(Path(sys.executable).with_name("py-spy")), "record", "--format", "raw", "--threads",
                   "--nonblocking", "-r", "250", "-o", f"{profile}/worker-{i}.txt", "--", *cmd]
        return cmd

    workers = [subprocess.Popen(argv(i), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for i in range(2)]
    try:
        deadline = time.monotonic() + 60
        while True:
            with session_scope() as ses:
                if (ses.scalar(select(func.count()).select_from(Worker)) or 0) >= 2:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("workers did not register")
            time.sleep(0.1)
        with session_scope() as ses:
            resume(ToolContext(ses, Principal(kind="system", id="bench", org_id=org_id, role="admin")), QueueSwitch())

        def done(since_id: int) -> int:
            with session_scope() as ses:
                return int(ses.scalar(select(func.count()).select_from(Job).where(
                    Job.id > since_id, Job.state == "succeeded")) or 0)

        deadline = time.monotonic() + 600
        while done(0) < n:
            if time.monotonic() > deadline:
                raise SystemExit("throughput phase did not finish")
            time.sleep(0.1)
        with session_scope() as ses:
            first, last, last_id = ses.execute(select(func.min(Job.started_at), func.max(Job.finished_at),
                                                      func.max(Job.id))).one()
        tput = n / (last - first).total_seconds()
        time.sleep(1.0)  # let workers go idle
        interval = 1.0 / rate
        nxt = time.perf_counter()
        for i in range(m):
            with session_scope() as ses:
                p = ses.get(Pipeline, pid)
                assert p is not None
                submit_job(ses, org_id=org_id, pipeline=p, input={"lat": i}, trigger="manual", actor="bench")
            nxt += interval
            time.sleep(max(0.0, nxt - time.perf_counter()))
        deadline = time.monotonic() + 120
        while done(last_id) < m:
            if time.monotonic() > deadline:
                raise SystemExit("latency phase did not finish")
            time.sleep(0.1)
        with session_scope() as ses:
            rows = ses.execute(select(Job.enqueued_at, Job.started_at).where(Job.id > last_id)).all()
        lat = [(st - en).total_seconds() * 1000 for en, st in rows]
    finally:
        for w in workers:
            if profile:  # stop the worker under py-spy; py-spy writes its file when the worker exits
                import psutil

                for child in psutil.Process(w.pid).children():
                    child.send_signal(signal.SIGTERM)
            else:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                w.kill()
    return {"throughput": tput, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "fill_s": fill_s, "n": n, "m": m}


def run_ours(db: str, url: str, n: int, m: int, rate: float) -> dict[str, Any]:
    var = tempfile.mkdtemp(prefix=f"levqor-bench-{db}-")
    env = {**os.environ, "LEVQOR_VAR_DIR": var, "LEVQOR_DATABASE_URL": url, "LEVQOR_LOG_LEVEL": "WARNING",
           "LEVQOR_LOG_JSON": "true"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    out = subprocess.run([sys.executable, __file__, "--child", "--jobs", str(n), "--latency-jobs", str(m),
                          "--rate", str(rate)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{db} run failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# ---- Celery ---------------------------------------------------------------------------------

def run_celery(n: int, m: int, rate: float) -> dict[str, Any]:
    import redis

    sys.path.insert(0, str(ROOT))
    from bench.jobs.celery_app import QUEUE, REDIS_URL, app, noop

    r = redis.Redis.from_url(REDIS_URL)
    for key in (QUEUE, "levqor-bench:tput", "levqor-bench:lat"):
        r.delete(key)
    for _ in range(n):
        noop.delay(time.time(), "tput")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "bench.jobs.celery_app", "worker", "-c", "2",
                               "-P", "prefork", "-Q", QUEUE, "-l", "WARNING", "--without-gossip", "--without-mingle",
                               "--without-heartbeat"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while r.llen("levqor-bench:tput") < n:
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("celery throughput phase failed")
            time.sleep(0.1)
        rows = [tuple(map(float, x.decode().split(","))) for x in r.lrange("levqor-bench:tput", 0, -1)]
        tput = n / (max(x[2] for x in rows) - min(x[1] for x in rows))
        time.sleep(1.0)
        interval = 1.0 / rate
        nxt = time.perf_counter()
        for _ in range(m):
            noop.delay(time.time(), "lat")
            nxt += interval
            time.sleep(max(0.0, nxt - time.perf_counter()))
        deadline = time.monotonic() + 120
        while r.llen("levqor-bench:lat") < m:
            if time.monotonic() > deadline:
                raise SystemExit("celery latency phase failed")
            time.sleep(0.1)
        lat = [(float(x.decode().split(",")[1]) - float(x.decode().split(",")[0])) * 1000
               for x in r.lrange("levqor-bench:lat", 0, -1)]
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        for key in (QUEUE, "levqor-bench:tput", "levqor-bench:lat"):
            r.delete(key)
        app.close()
    return {"throughput": tput, "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "n": n, "m": m}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--latency-jobs", type=int, default=300)
    ap.add_argument("--rate", type=float, default=50.0, help="jobs/s in the latency phase")
    ap.add_argument("--pg", default=os.environ.get("LEVQOR_BENCH_PG_URL", DEFAULT_PG))
    ap.add_argument("--only", choices=("sqlite", "pg", "celery"), action="append",
                    help="run only these systems (repeatable; default all three)")
    ap.add_argument("--profile", metavar="DIR", help="record each worker with py-spy into DIR (collapsed stacks)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(ours(a.jobs, a.latency_jobs, a.rate)))
        return
    print(f"no-op jobs: {a.jobs} queued up front (throughput), {a.latency_jobs} at {a.rate:g}/s (latency); "
          "2 workers each", flush=True)
    only = set(a.only or ("sqlite", "pg", "celery"))
    if a.profile:
        Path(a.profile).mkdir(parents=True, exist_ok=True)
        os.environ["LEVQOR_BENCH_PROFILE_DIR"] = str(Path(a.profile).resolve())
    res: dict[str, dict[str, Any]] = {}
    if "sqlite" in only:
        sqlite_url = f"sqlite:///{tempfile.mkdtemp(prefix='levqor-bench-sqlite-')}/bench.db"
        res["sqlite"] = run_ours("sqlite", sqlite_url, a.jobs, a.latency_jobs, a.rate)
    if "pg" in only:
        from bench.pg import ensure_pg_database

        ensure_pg_database(a.pg)
        res["pg"] = run_ours("pg", a.pg, a.jobs, a.latency_jobs, a.rate)
    if "celery" in only:
        res["celery"] = run_celery(a.jobs, a.latency_jobs, a.rate)
    if only != {"sqlite", "pg", "celery"}:
        for name, r in res.items():
            print(f"{name}: {r['throughput']:.1f} jobs/s p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms")
        return
    c = res["celery"]
    print(f"{'system':<22}{'jobs/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'tput/celery':>13}{'p99/celery':>12}")
    for name, label in (("sqlite", "levqor SQLite"), ("pg", "levqor PostgreSQL"), ("celery", "Celery 5 + Redis")):
        r = res[name]
        print(f"{label:<22}{r['throughput']:>10.1f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}"
              f"{r['throughput'] / c['throughput']:>13.2f}{r['p99_ms'] / c['p99_ms']:>12.2f}")
    parts = []
    for name in ("sqlite", "pg", "celery"):
        r = res[name]
        parts += [f"{name}_jobs_s={r['throughput']:.1f}", f"{name}_p50_ms={r['p50_ms']:.1f}",
                  f"{name}_p99_ms={r['p99_ms']:.1f}"]
    for name in ("sqlite", "pg"):
        parts += [f"{name}_vs_celery_tput={res[name]['throughput'] / c['throughput']:.2f}",
                  f"{name}_vs_celery_p99={res[name]['p99_ms'] / c['p99_ms']:.2f}"]
    print("jobs: " + " ".join(parts))


if __name__ == "__main__":
    main()
