"""A full var directory (issue 23, scenario ``disk_full``): what may be freed, the rule, the healer's action
through the policy engine (audited), the reserve, and the writers that must fail gracefully (SQLite, the
mail sink, the API, logging, the multiprocess metric files).

Free space is simulated here with a quota on the test's var directory (``free = quota - used``), so the tests
run anywhere; ``make bench-chaos`` fills a real size-limited file system (tmpfs) instead.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories.ops import clean_ops, incident
from tests.factories.orgs import OrgFixture
from tests.factories.settings import override_settings
from tests.support import ROOT

MB = 1_000_000


def _used(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture()
def small_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A var directory with a 10 MB quota (free space = 10 MB - what it holds); limit 3 MB, reserve 1 MB."""
    from levqor import diskspace

    quota = {"bytes": 10 * MB}
    monkeypatch.setattr(diskspace, "free_bytes", lambda path=None: quota["bytes"] - _used(tmp_path))
    (tmp_path / "logs").mkdir()
    (tmp_path / "exports").mkdir()
    (tmp_path / "mail").mkdir()
    (tmp_path / "levqor.db").write_bytes(b"d" * MB)  # stands for the database: never freed
    (tmp_path / "logs" / "api.log").write_bytes(b"l" * 100_000)  # the live log: never freed
    (tmp_path / "mail" / "old.eml").write_bytes(b"m" * 1000)
    with override_settings(var_dir=str(tmp_path), ops_disk_free_min_bytes=3 * MB, ops_disk_reserve_bytes=MB,
                           ops_export_retention_s=3600):
        yield {"root": tmp_path, "quota": quota}


def _fill(root: Path, rotated: int, expired: int, fresh: int = 0) -> None:
    old = time.time() - 7200
    for i in range(rotated):
        (root / "logs" / f"worker.log.{i + 1}").write_bytes(b"r" * MB)
    for i in range(expired):
        p = root / "exports" / f"report-{i}.csv"
        p.write_bytes(b"e" * MB)
        os.utime(p, (old, old))
    for i in range(fresh):
        (root / "exports" / f"fresh-{i}.csv").write_bytes(b"f" * MB)


def test_only_rotated_logs_and_expired_exports_may_be_freed(small_var: dict[str, Any]) -> None:
    from levqor import diskspace

    root = small_var["root"]
    _fill(root, rotated=1, expired=1, fresh=1)
    (root / "logs" / "api.log.2.gz").write_bytes(b"z" * 10)
    (root / "logs" / "api.log.2026-12-01").write_bytes(b"z" * 10)
    (root / "logs" / "link.log.3").symlink_to(root / "levqor.db")  # a link is never followed or deleted
    names = sorted(p.name for p, _, _ in diskspace.freeable())
    assert names == ["api.log.2.gz", "api.log.2026-12-01", "report-0.csv", "worker.log.1"]
    freed = diskspace.free_space(target_bytes=10**15)
    assert len(freed.files) == 4 and freed.bytes >= 2 * MB
    assert (root / "levqor.db").exists() and (root / "logs" / "api.log").exists()
    assert (root / "exports" / "fresh-0.csv").exists() and (root / "mail" / "old.eml").exists()
    assert (root / "logs" / "link.log.3").is_symlink()


def _tick_and_heal() -> tuple[list[Any], list[int]]:
    from memory.db import session_scope
    from tools.auto_intel.monitor import monitor_tick
    from tools.auto_intel.self_heal import heal, open_incident_ids

    res = monitor_tick()
    assert res.error is None, res.error
    steps = [heal(iid) for iid in open_incident_ids()]
    with session_scope():
        pass
    return steps, res.opened


def _disk_incident() -> Any:
    from sqlalchemy import select

    from memory.db import session_scope
    from memory.ops.models import Incident

    with session_scope() as s:
        iid = s.scalar(select(Incident.id).where(Incident.cause == "disk:var").order_by(Incident.id.desc()).limit(1))
    return incident(iid) if iid is not None else None


def test_disk_full_opens_an_incident_the_healer_frees_space_through_policy_audited_and_it_resolves(
        small_var: dict[str, Any], org: OrgFixture) -> None:
    from sqlalchemy import select

    from memory.audit.models import AuditEntry
    from memory.db import session_scope
    from memory.policy.models import PolicyDecision

    clean_ops()
    root = small_var["root"]
    _fill(root, rotated=3, expired=2, fresh=1)  # 1.1 MB live + 6 MB: 2.9 MB free, under the 3 MB limit
    steps, opened = _tick_and_heal()
    inc = _disk_incident()
    assert inc is not None and inc.id in opened and inc.diagnosis == "disk_full", steps
    assert "5.0 MB of rotated logs and expired exports may be freed" in inc.title, inc.title
    assert any(st.incident_id == inc.id and st.outcome == "acted" and st.action == "free_disk_space" for st in steps)
    with session_scope() as s:
        decisions = list(s.scalars(select(PolicyDecision.decision).where(
            PolicyDecision.actor == "agent:healer", PolicyDecision.tool == "ops.free_disk_space")))
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "ops.free_disk_space")
                          .order_by(AuditEntry.seq.desc()).limit(1)).first()
    assert decisions[-1] == "allow"
    assert audit is not None and audit.actor == "agent:healer" and audit.detail["freed_bytes"] >= MB
    assert audit.detail["free_bytes"] >= 4 * MB  # the limit plus the reserve
    # nothing but rotated logs and expired exports went; the database, live files and fresh exports stay
    assert (root / "levqor.db").exists() and (root / "logs" / "api.log").exists()
    assert (root / "exports" / "fresh-0.csv").exists() and (root / "mail" / "old.eml").exists()
    _tick_and_heal()
    inc = _disk_incident()
    assert inc.state == "resolved" and not inc.manual


def test_when_freeing_is_not_enough_the_incident_stays_open_and_goes_to_a_person(small_var: dict[str, Any],
                                                                                 org: OrgFixture) -> None:
    clean_ops()
    root = small_var["root"]
    _fill(root, rotated=1, expired=0, fresh=6)  # fresh exports are not expired: only 1 MB may go
    import datetime as dt

    from memory.db import utcnow
    from tools.auto_intel.self_heal import heal

    _, opened = _tick_and_heal()
    inc = _disk_incident()
    assert inc.id in opened
    t0 = utcnow()
    outcomes = [heal(inc.id, now=t0 + dt.timedelta(seconds=s)).outcome for s in (30, 60, 120)]
    inc = _disk_incident()
    assert outcomes[:2] == ["retry_later", "escalated"], outcomes
    assert inc is not None and inc.state != "resolved" and inc.manual, inc.__dict__
    assert not (root / "logs" / "worker.log.1").exists()  # what policy allows was freed even so
    assert len(list((root / "exports").glob("fresh-*"))) == 6


def test_the_reserve_is_released_under_the_limit_and_set_aside_again(small_var: dict[str, Any]) -> None:
    from levqor import diskspace

    root = small_var["root"]
    assert diskspace.guard_reserve() == 0 and (root / diskspace.RESERVE_NAME).stat().st_size == MB
    _fill(root, rotated=5, expired=0)  # 10 - 1.1 - 1 - 5 = 2.9 MB free: under the limit
    assert diskspace.guard_reserve() == MB and not (root / diskspace.RESERVE_NAME).exists()
    for p in (root / "logs").glob("worker.log.*"):
        p.unlink()
    diskspace.guard_reserve()
    assert (root / diskspace.RESERVE_NAME).exists()


def test_a_full_sqlite_database_rolls_back_whole_transactions_and_stays_intact(tmp_path: Path) -> None:
    """SQLite's own limit on its size gives the same error as a full disk ("database or disk is full")."""
    from sqlalchemy import create_engine, event, text
    from sqlalchemy.exc import OperationalError

    from levqor import diskspace

    eng = create_engine(f"sqlite:///{tmp_path / 'full.db'}")

    @event.listens_for(eng, "connect")
    def _limit(dbapi: Any, _rec: Any) -> None:
        dbapi.execute("PRAGMA max_page_count = 40")

    with eng.begin() as c:
        c.execute(text("CREATE TABLE t (batch INTEGER, body TEXT)"))
    batches = 0
    err: Exception | None = None
    for b in range(200):
        try:
            with eng.begin() as c:  # one transaction of 10 rows: all or nothing
                for _ in range(10):
                    c.execute(text("INSERT INTO t VALUES (:b, :body)"), {"b": b, "body": "x" * 400})
            batches += 1
        except OperationalError as exc:
            err = exc
            break
    assert err is not None and diskspace.is_enospc(err) and batches > 0
    with eng.connect() as c:
        per_batch = dict(c.execute(text("SELECT batch, count(*) FROM t GROUP BY batch")).all())
        assert c.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    assert per_batch == {b: 10 for b in range(batches)}  # no half-committed batch
    eng.dispose()


def test_the_api_answers_507_problem_details_on_a_full_disk(client: Any, org: OrgFixture,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy.exc

    from api.routers import sla

    def full(*_a: Any, **_k: Any) -> bytes:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sla, "render_pdf", full)
    r = client.get("/v1/sla/report.pdf", headers=org.headers())
    assert r.status_code == 507, r.text
    assert r.headers["content-type"].startswith("application/problem+json") and r.headers["Retry-After"] == "30"
    assert r.json()["type"].endswith("insufficient-storage")

    def db_full(*_a: Any, **_k: Any) -> bytes:
        raise sqlalchemy.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(sla, "render_pdf", db_full)
    assert client.get("/v1/sla/report.pdf", headers=org.headers()).status_code == 507

    def other(*_a: Any, **_k: Any) -> bytes:
        raise OSError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(sla, "render_pdf", other)
    assert client.get("/v1/sla/report.pdf", headers=org.headers()).status_code == 500  # only ENOSPC is 507


def test_a_full_mail_sink_leaves_no_partial_file_and_raises_for_the_outbox_to_retry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from levqor import diskspace
    from tools.shared import mail

    real = Path.write_bytes

    def half(self: Path, data: bytes) -> int:
        real(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    before = diskspace.enospc_counts().get("mail", 0)
    with override_settings(var_dir=str(tmp_path), smtp_url=""):
        msg = mail.compose("a@acme-test.io", "hello", "body", uid="u1")
        monkeypatch.setattr(Path, "write_bytes", half)
        with pytest.raises(OSError) as exc:
            mail.deliver(msg, "u1")
        monkeypatch.setattr(Path, "write_bytes", real)
        assert exc.value.errno == errno.ENOSPC
        assert list((tmp_path / "mail").iterdir()) == []
        assert diskspace.enospc_counts()["mail"] == before + 1
        mail.deliver(msg, "u1")  # space is back: the retry writes it
        assert [p.name for p in (tmp_path / "mail").iterdir()] == ["u1.eml"]


class _FullStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.full = True

    def write(self, s: str) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(s)


def test_logging_on_a_full_disk_neither_raises_nor_spams_and_says_what_it_dropped(
        capsys: pytest.CaptureFixture[str]) -> None:
    from levqor.logging import JsonFormatter, QuietStreamHandler

    stream = _FullStream()
    h = QuietStreamHandler(stream)
    h.setFormatter(JsonFormatter())
    lg = logging.getLogger("levqor.test.diskfull")
    lg.propagate = False
    lg.addHandler(h)
    try:
        for i in range(50):
            lg.warning("record %d", i)
        assert h.dropped == 50
        assert capsys.readouterr().err == ""  # no traceback per record
        stream.full = False
        lg.warning("back")
        lines = stream.getvalue().splitlines()
        assert "50 log records dropped" in lines[0] and '"back"' in lines[1] and h.dropped == 0
    finally:
        lg.removeHandler(h)


METRICS_SNIPPET = """
import errno, os
def full(fd, offset, length):
    raise OSError(errno.ENOSPC, "No space left on device")
os.posix_fallocate = full
from levqor import diskspace, metrics
metrics.REQUESTS.labels(method="GET", route="/x", status="200").inc()
metrics.TOOL_CALLS.labels(tool="t").inc()
print(diskspace.enospc_counts().get("metrics", 0), sorted(os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])))
"""


def test_metric_files_on_a_full_disk_fall_back_to_process_values_instead_of_sigbus(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEVQOR_")}
    env.update({"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "LEVQOR_VAR_DIR": str(tmp_path)})
    p = subprocess.run([sys.executable, "-c", METRICS_SNIPPET], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    count, files = p.stdout.split(" ", 1)
    assert int(count) >= 2 and files.strip() == "[]"  # no sparse file left behind
