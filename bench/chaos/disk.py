"""The ``disk_full`` chaos scenario: the var directory runs out of space, on a real size-limited file system.

:func:`size_limited_var` mounts a tmpfs of ``DISK_MB`` megabytes (this needs root, or a user and mount
namespace) and makes it the var directory of the suite and of the platform's processes; on SQLite the
database is copied onto it (so the database fills up with the rest), on PostgreSQL only the files are
there. The scenario then fills it to the last byte (:func:`disk_full`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.chaos.harness import Platform, restore_env, until
from bench.chaos.measure import Result, finish, states, submit
from levqor import diskspace
from levqor.logging import JsonFormatter, QuietStreamHandler
from levqor.settings import get_settings
from memory.audit.models import AuditEntry
from memory.db import dispose_engines, session_scope, utcnow
from memory.ops.models import Incident

DISK_MB = 64
# The limits of the scenario, scaled to its 64 MB file system (production: 100 MB and 8 MB).
DISK_ENV = {"LEVQOR_OPS_DISK_FREE_MIN_BYTES": "12000000", "LEVQOR_OPS_DISK_RESERVE_BYTES": "4000000",
            "LEVQOR_OPS_EXPORT_RETENTION_S": "3600"}
CHUNK = b"x" * 1_000_000
HOLD_S = 3.0


class NoSmallFileSystem(RuntimeError):
    """No size-limited file system could be mounted here."""


def _mount(size_mb: int) -> Path:
    mnt = Path(tempfile.mkdtemp(prefix="levqor-chaos-var-"))
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True, check=False)
    if p.returncode != 0:
        mnt.rmdir()
        raise NoSmallFileSystem(f"mount -t tmpfs failed: {(p.stderr or p.stdout).strip()[:200]}")
    return mnt


@contextlib.contextmanager
def size_limited_var() -> Iterator[dict[str, str]]:
    """Make a fresh ``DISK_MB`` MB tmpfs the var directory (this process's settings too); yield the
    platform's environment overrides. The keys and, on SQLite, the database are copied onto it."""
    old = get_settings()
    mnt = _mount(DISK_MB)
    saved = {k: os.environ.get(k) for k in ("LEVQOR_VAR_DIR", "LEVQOR_DATABASE_URL", *DISK_ENV)}
    try:
        for f in old.var_dir.iterdir():  # keys, secret: the same platform on the new disk
            if f.is_file() and f.suffix in (".pem", "") and not f.name.startswith("."):
                shutil.copy2(f, mnt / f.name)
        url = old.resolved_database_url
        if old.is_sqlite:
            src_path = url.removeprefix("sqlite:///")
            dispose_engines()
            src, dst = sqlite3.connect(src_path), sqlite3.connect(mnt / "levqor.db")
            with dst:
                src.backup(dst)
            src.close()
            dst.close()
            url = f"sqlite:///{mnt / 'levqor.db'}"
        (mnt / "prometheus").mkdir()
        env = {"LEVQOR_VAR_DIR": str(mnt), "LEVQOR_DATABASE_URL": url, **DISK_ENV,
               "PROMETHEUS_MULTIPROC_DIR": str(mnt / "prometheus")}
        os.environ.update({k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"})
        get_settings.cache_clear()
        dispose_engines()
        yield env
    finally:
        dispose_engines()
        restore_env(saved)
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            mnt.rmdir()


def _fill(root: Path) -> dict[str, int]:
    """A runaway writer: a fresh export (never freed), then rotated logs and exports past their retention
    (the healer may free them), written until the file system refuses (ENOSPC)."""
    (root / "logs").mkdir(exist_ok=True)
    (root / "exports").mkdir(exist_ok=True)
    old = time.time() - 2 * 86400
    made = {"fresh_export": 0, "rotated_logs": 0, "expired_exports": 0}
    try:
        (root / "exports" / "fresh.csv").write_bytes(CHUNK * 4)
        made["fresh_export"] = 1
        i = 0
        while True:
            i += 1
            log = root / "logs" / f"worker.log.{i}"
            made["rotated_logs"] += 1
            with log.open("wb") as fh:
                for _ in range(3):
                    fh.write(CHUNK)
            exp = root / "exports" / f"report-{i}.csv"
            made["expired_exports"] += 1
            with exp.open("wb") as fh:
                for _ in range(2):
                    fh.write(CHUNK)
            os.utime(exp, (old, old))
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    for p in (root / "exports").glob("report-*.csv"):  # the one cut short by ENOSPC is old too
        os.utime(p, (old, old))
    # the last bytes: small writes until not even a page is left
    with contextlib.suppress(OSError), (root / "logs" / "worker.log.0").open("wb") as fh:
        while True:
            fh.write(b"y" * 4096)
            fh.flush()
    return made


def _submit_while_full(org_id: int, pipeline_id: int) -> str:
    """A job submitted on the full disk: accepted (PostgreSQL), or refused whole (SQLite's "database or disk
    is full": the API answers 507) with nothing half-written."""
    from sqlalchemy import func

    from memory.jobs.models import Job

    def count() -> int:
        with session_scope() as s:
            return int(s.scalar(select(func.count()).select_from(Job).where(Job.org_id == org_id)) or 0)

    before = count()
    try:
        submit(org_id, pipeline_id, 1)
    except Exception as exc:
        if not diskspace.is_enospc(exc):
            raise
        after = count()
        return f"a job submitted while full: refused ({type(exc).__name__}), {after - before} rows written"
    return "a job submitted while full: accepted"


def _writers_while_full(root: Path) -> list[str]:
    """The platform's own writers on the full disk (in this process): what each did."""
    from tools.shared import mail

    out = []
    msg = mail.compose("ops@chaos.example", "disk full", "body", uid="chaos-disk-full")
    try:
        mail.deliver(msg, "chaos-disk-full")
        out.append("mail sink: written (space left?)")
    except OSError as exc:
        partial = list((root / "mail").glob("chaos-disk-full*")) if (root / "mail").exists() else []
        out.append(f"mail sink: {errno.errorcode.get(exc.errno or 0, exc.errno)}, "
                   f"{'partial file left' if partial else 'no partial file'}")
    stream = (root / "logs" / "live.log").open("a", encoding="utf-8")
    handler = QuietStreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    lg = logging.getLogger("levqor.chaos.disk")
    lg.propagate = False
    lg.addHandler(handler)
    try:
        for i in range(200):
            lg.warning("a log line on a full disk %d %s", i, "z" * 200)
        out.append(f"logging: {handler.dropped} of 200 records dropped quietly, no exception")
    finally:
        lg.removeHandler(handler)
        with contextlib.suppress(OSError):
            stream.close()
    return out


def _integrity() -> str:
    s = get_settings()
    if not s.is_sqlite:
        return "PostgreSQL: database not on the var disk"
    con = sqlite3.connect(s.resolved_database_url.removeprefix("sqlite:///"))
    try:
        return "integrity_check " + str(con.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        con.close()


def disk_full(platform: Platform, org_id: int, pipeline_id: int) -> Result:
    """The var directory (a 64 MB tmpfs; on SQLite the database is on it) is filled to the last byte by
    rotated logs and exports past their retention (and one fresh export) while jobs run and more are
    submitted. *Recovered*: the monitor released the reserve, opened ``disk:var``; the healer's
    ``ops.free_disk_space`` (policy-allowed, audited) freed rotated logs and expired exports only (the
    database, the fresh export and live files are there), space went back over the limit and the incident
    resolved; every job accepted succeeded, the mail sink and logging failed gracefully, SQLite's
    ``integrity_check`` is ok."""
    res = Result("disk_full")
    root = get_settings().var_dir
    if not until(platform, lambda: diskspace.reserve_path().exists(), 20):
        res.note = "the monitor never set the disk reserve aside"
        return res
    jobs = submit(org_id, pipeline_id, 12)
    if not until(platform, lambda: states(jobs).get("running", 0) > 0, 60):
        res.note = "no worker picked up a job"
        return res
    t0 = utcnow()
    made = _fill(root)
    free_at_fill = diskspace.free_bytes()
    writers = _writers_while_full(root)
    submitted = _submit_while_full(org_id, pipeline_id)
    if submitted.endswith("accepted"):
        with session_scope() as s:  # PostgreSQL: it is one of the jobs that must succeed
            from memory.jobs.models import Job

            jobs.append(int(s.scalar(select(Job.id).where(Job.org_id == org_id).order_by(Job.id.desc()).limit(1))))
    writers.append(submitted)
    # The workers run their jobs on the full disk until the monitor's next sample (every few seconds on a
    # real platform): HOLD_S with no tick, part of the time to detect.
    hold = time.monotonic() + HOLD_S
    while time.monotonic() < hold:
        platform.supervise()
        time.sleep(0.25)
    writers.append(f"workers ran {HOLD_S:g}s on the full disk before the monitor sampled "
                   f"(jobs then: {states(jobs)})")
    refused: list[str] = []

    def keep_submitting() -> None:  # work keeps arriving; on a full SQLite disk some is refused (a 507)
        if len(jobs) + len(refused) < 30 and states(jobs).get("queued", 0) < 3:
            try:
                jobs.extend(submit(org_id, pipeline_id, 2))
            except Exception as exc:
                if not diskspace.is_enospc(exc):
                    raise
                refused.append(type(exc).__name__)

    finish(platform, res, "disk:var", t0, jobs, timeout=90, during=keep_submitting)
    problems = []
    with session_scope() as s:
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "ops.free_disk_space",
                                                   AuditEntry.ts >= t0).order_by(AuditEntry.seq)).all()
        freed = sum(int((a.detail or {}).get("freed_bytes", 0)) for a in audit)
        deleted = [f for a in audit for f in (a.detail or {}).get("deleted", [])]
        actors = {a.actor for a in audit}
    kinds = {k: sum(1 for f in deleted if k in f) for k in ("rotated log", "expired export")}
    if not (root / "exports" / "fresh.csv").exists():
        problems.append("the fresh export was deleted")
    if get_settings().is_sqlite and not (root / "levqor.db").exists():
        problems.append("the database was deleted")
    if any("rotated log" not in f and "expired export" not in f for f in deleted):
        problems.append(f"deleted something else: {deleted[:3]}")
    if audit and actors != {"agent:healer"}:
        problems.append(f"free_disk_space called by {actors}")
    with session_scope() as s:  # what else the full disk set off (e.g. heartbeats that could not be written)
        others = Counter(f"{i.diagnosis} ({'healed' if i.state == 'resolved' and not i.manual else i.state})"
                         for i in s.scalars(select(Incident).where(Incident.opened_at >= t0,
                                                                   Incident.cause != "disk:var")))
    if others:
        writers.append("other incidents: " + ", ".join(f"{k} x{n}" for k, n in others.items()))
    integrity = _integrity()
    started = len(list(platform.logdir.glob("worker-*.err")))
    writers.append(f"{started - platform.base} worker restart(s)")
    if "rows written" in submitted and not submitted.endswith(" 0 rows written"):
        problems.append("a refused submission left rows behind")
    if get_settings().is_sqlite and not integrity.endswith(" ok"):
        problems.append(integrity)
    if any("partial file left" in w for w in writers):
        problems.append("the mail sink left a partial file")
    what = (f"filled to {free_at_fill / 1e6:.2f} MB free ({made['rotated_logs']} rotated logs, "
            f"{made['expired_exports']} expired exports); freed {freed / 1e6:.0f} MB "
            f"({kinds['rotated log']} rotated logs, {kinds['expired export']} expired exports), fresh export "
            f"kept; {'; '.join(writers)}; {len(refused)} submissions refused while full; {integrity}")
    res.note = f"{res.note}; {what}" if res.note else what
    if problems:
        res.recovered = False
        res.note = (res.note + "; " + "; ".join(problems)).lstrip("; ")
    return res


def context(name: str) -> Any:
    """The var directory of scenario ``name``: a size-limited one for ``disk_full``, else unchanged."""
    if name == "disk_full":
        return size_limited_var()
    return contextlib.nullcontext({})
