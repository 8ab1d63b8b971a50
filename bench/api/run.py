"""API benchmark: authenticated reads against one real ``levqor api`` process, beside a bare FastAPI baseline.

For SQLite (a scratch file) and PostgreSQL (a database of its own, ``bench_api``, created and dropped
here), one organisation with ``--jobs`` jobs and a viewer API key is seeded; one ``levqor api`` process
and the baseline app (``bench/api/baseline.py``: hashed-key lookup + one SQLAlchemy read in FastAPI's
threadpool, same database, same pool size, same uvicorn) run side by side on free ports. At each
concurrency (``--conns``, default 32 and 64) the load generator (``bench/api/load.py``, its own process:
kept-alive connections sending ``GET /v1/me`` and ``GET /v1/jobs`` alternately, back to back) runs
against ours, then against the baseline: ``--warmup`` seconds, then ``--seconds`` measured. Figures are
requests/s and latency p50/p99; ratios are ours / baseline. Any error (non-200, dropped connection,
request over ``--timeout`` s) makes the run exit 1. Then one line per aim of issue 13 (met or not, with
its figures); the last line is ``api: key=value ...`` (ratios, ``aim_...=met|not_met``, ``errors``).
Usage: python bench/api/run.py [--conns 32,64] [--seconds 8] [--warmup 2] [--jobs 200] [--pg URL]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.pg import drop_pg_database, ensure_pg_database  # noqa: E402

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_api"
SYSTEMS = (("levqor", "levqor api"), ("base", "bare FastAPI"))
# The bench org's plan (pro) with limits it never reaches: every request is counted, synced and metered
# as in production (usage tiers, tools/dev_portal/tiers.py), but none is refused, so the figures are the
# cost of enforcement, not of 429s.
BENCH_TIERS = json.dumps({"pro": {"key_per_second": 10**6, "org_per_second": 10**6, "key_per_day": 10**9,
                                  "org_per_day": 10**9, "org_per_month": 10**9}})


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(jobs: int) -> dict[str, Any]:
    """(In a child process, settings from its environment.) Migrate; an org, a pipeline, jobs, a viewer key."""
    from bench.seed import bench_org
    from memory.db import session_scope
    from memory.jobs.models import Pipeline
    from memory.migrate import upgrade
    from tools.identity.service import ApiKeyCreate, create_key
    from tools.jobs.queue import submit_job

    upgrade()
    with session_scope() as ses:
        ctx, pipeline_id = bench_org(ses, jobs + 10)
        p = ses.get(Pipeline, pipeline_id)
        assert p is not None
        for i in range(jobs):
            submit_job(ses, org_id=ctx.org_id, pipeline=p, input={"i": i}, trigger="manual", actor="bench")
        key = create_key(ctx, ApiKeyCreate(name="bench viewer", role="viewer")).key
    return {"key": key}


def child_env(url: str, var: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVQOR_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({"LEVQOR_DATABASE_URL": url, "LEVQOR_VAR_DIR": str(var), "LEVQOR_LOG_LEVEL": "WARNING",
                "LEVQOR_LOG_JSON": "true", "PYTHONUNBUFFERED": "1", "LEVQOR_API_TIERS": BENCH_TIERS})
    return env


def wait_ok(url: str, key: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not answer {url}")
        time.sleep(0.1)


@contextmanager
def servers(url: str, var: Path, key: str) -> Iterator[dict[str, str]]:
    """``levqor api`` and the baseline on free ports (stopped on exit); their base URLs by system."""
    env = child_env(url, var)
    ports = {"levqor": free_port(), "base": free_port()}
    logs = {name: (var / f"{name}.log").open("wb") for name in ports}
    procs = {
        "levqor": subprocess.Popen([sys.executable, "-m", "api.cli", "api", "--port", str(ports["levqor"]),
                                    "--processes", "1"],
                                   cwd=ROOT, env=env, stdout=logs["levqor"], stderr=subprocess.STDOUT),
        "base": subprocess.Popen([sys.executable, str(ROOT / "bench/api/baseline.py"), url, str(ports["base"])],
                                 cwd=ROOT, env=env, stdout=logs["base"], stderr=subprocess.STDOUT),
    }
    try:
        bases = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        for name, base in bases.items():
            wait_ok(base + "/v1/me", key, procs[name], name)
        yield bases
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in logs.values():
            f.close()


def load(base: str, key: str, conns: int, a: argparse.Namespace) -> dict[str, Any]:
    out = subprocess.run([sys.executable, str(ROOT / "bench/api/load.py"), base, key, str(conns),
                          "--seconds", str(a.seconds), "--warmup", str(a.warmup), "--timeout", str(a.timeout)],
                         cwd=ROOT, capture_output=True, text=True, timeout=a.seconds + a.warmup + a.timeout + 60)
    if out.returncode != 0:
        raise SystemExit(f"load generator failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", default="32,64", help="concurrent connections, comma-separated")
    ap.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=10.0, help="a request slower than this is an error")
    ap.add_argument("--jobs", type=int, default=200, help="jobs seeded (GET /v1/jobs returns a page of 50)")
    ap.add_argument("--pg", default=os.environ.get("LEVQOR_BENCH_API_PG", DEFAULT_PG))
    ap.add_argument("--only", choices=("sqlite", "pg"), default=None)
    ap.add_argument("--seed", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.seed:
        print(json.dumps(seed(a.jobs)))
        return
    conns = [int(c) for c in a.conns.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="levqor-bench-api-"))
    dbs = [("sqlite", f"sqlite:///{tmp / 'sqlite' / 'levqor.db'}"), ("pg", a.pg)]
    if a.only:
        dbs = [d for d in dbs if d[0] == a.only]
    results: dict[tuple[str, int, str], dict[str, Any]] = {}
    load_avg: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {}
    console = Console(stderr=True)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console,
                      transient=True) as progress:
            task = progress.add_task("api bench", total=len(dbs) * len(conns) * len(SYSTEMS))
            for db, url in dbs:
                var = tmp / db
                var.mkdir(parents=True, exist_ok=True)
                if db == "pg":
                    drop_pg_database(url)  # a run killed half-way leaves it behind
                    ensure_pg_database(url)
                progress.update(task, description=f"{db}: seeding")
                out = subprocess.run([sys.executable, __file__, "--seed", "--jobs", str(a.jobs)], cwd=ROOT,
                                     env=child_env(url, var), capture_output=True, text=True, timeout=600)
                if out.returncode != 0:
                    raise SystemExit(f"{db} seed failed:\n{out.stderr[-3000:]}")
                key = json.loads(out.stdout.strip().splitlines()[-1])["key"]
                before = os.getloadavg()
                with servers(url, var, key) as bases:
                    for c in conns:
                        for system, label in SYSTEMS:
                            progress.update(task, description=f"{db}: {label}, {c} connections")
                            results[db, c, system] = load(bases[system], key, c, a)
                            progress.advance(task)
                load_avg[db] = (before, os.getloadavg())
    finally:
        if any(db == "pg" for db, _ in dbs):
            drop_pg_database(a.pg)
        shutil.rmtree(tmp, ignore_errors=True)
    report(results, load_avg, dbs, conns, a)


AIM_RPS_RATIO = 0.5  # issue 13: at least half the baseline's requests/s ...
AIM_P99_MS = 25.0  # ... and p99 under 25 ms, at 32 connections, on both databases; no error at 64
AIM_CONNS, AIM_ERROR_CONNS = 32, 64


def aim_results(results: dict[tuple[str, int, str], dict[str, Any]], dbs: list[tuple[str, str]],
                conns: list[int]) -> list[tuple[str, bool, str]]:
    """(aim, met, figures) for the aims of issue 13 this run measured (per process: one server each)."""
    out: list[tuple[str, bool, str]] = []
    for db, _ in dbs:
        if AIM_CONNS in conns:
            ours, base = results[db, AIM_CONNS, "levqor"], results[db, AIM_CONNS, "base"]
            ratio = ours["per_s"] / base["per_s"]
            out.append((f"{db}_c{AIM_CONNS}_rps", ratio >= AIM_RPS_RATIO,
                        f"{ratio:.2f}x the baseline's req/s at {AIM_CONNS} connections, aim >= {AIM_RPS_RATIO}x"))
            out.append((f"{db}_c{AIM_CONNS}_p99", ours["p99_ms"] < AIM_P99_MS,
                        f"p99 {ours['p99_ms']:.1f} ms at {AIM_CONNS} connections, aim < {AIM_P99_MS:g} ms; "
                        f"the baseline's {base['p99_ms']:.1f} ms"))
        if AIM_ERROR_CONNS in conns:
            errs = results[db, AIM_ERROR_CONNS, "levqor"]["errors"]
            out.append((f"{db}_c{AIM_ERROR_CONNS}_errors", errs == 0,
                        f"{errs} errors at {AIM_ERROR_CONNS} connections, aim 0"))
    return out


def report(results: dict[tuple[str, int, str], dict[str, Any]],
           load_avg: dict[str, tuple[tuple[float, ...], tuple[float, ...]]],
           dbs: list[tuple[str, str]], conns: list[int], a: argparse.Namespace) -> None:
    print(f"GET /v1/me and GET /v1/jobs (page of 50) alternately, one viewer key; {a.warmup:g} s warm-up, "
          f"{a.seconds:g} s measured per run; one server process each; {os.cpu_count()} cores (shared)")
    print(f"{'database':<9}{'conns':>6}  {'system':<14}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'errors':>8}{'req/s / base':>14}{'p99 / base':>12}")
    parts: list[str] = []
    errors = 0
    for db, _ in dbs:
        for c in conns:
            ours, base = results[db, c, "levqor"], results[db, c, "base"]
            for system, label in SYSTEMS:
                r = results[db, c, system]
                errors += r["errors"]
                ratio = (f"{r['per_s'] / base['per_s']:>14.2f}{r['p99_ms'] / base['p99_ms']:>12.2f}"
                         if system == "levqor" else "")
                print(f"{db:<9}{c:>6}  {label:<14}{r['per_s']:>8.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
                      f"{r['max_ms']:>9.1f}{r['errors']:>8}{ratio}")
                if r["errors"]:
                    print(f"    errors: {r['error_kinds']} e.g. {r['error_samples'][:3]}")
            parts += [f"{db}_c{c}_rps={ours['per_s']:.0f}", f"{db}_c{c}_p99_ms={ours['p99_ms']:.1f}",
                      f"{db}_c{c}_base_rps={base['per_s']:.0f}", f"{db}_c{c}_base_p99_ms={base['p99_ms']:.1f}",
                      f"{db}_c{c}_vs_base_rps={ours['per_s'] / base['per_s']:.2f}x",
                      f"{db}_c{c}_vs_base_p99={ours['p99_ms'] / base['p99_ms']:.2f}x"]
        before, after = load_avg[db]
        print(f"{db}: load average {before[0]:.2f} before, {after[0]:.2f} after")
    aims = aim_results(results, dbs, conns)
    for name, ok, figures in aims:
        print(f"aim {name}: {'met' if ok else 'NOT met'} ({figures})")
    parts += [f"aim_{name}={'met' if ok else 'not_met'}" for name, ok, _ in aims]
    print("api: " + " ".join(parts) + f" errors={errors}")
    if errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
