"""The API process killed (SIGKILL) during concurrent writes leaves no half-written change: every
acknowledged key is stored, every stored key has its audit entry (and the reverse), the chain verifies."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.factories.orgs import make_org
from tests.support import ROOT, wait_for
from tests.support.processes import levqor_env, start_api

pytestmark = pytest.mark.slow


def test_sigkill_during_concurrent_key_creation_leaves_no_half_written_change(tmp_path: Path) -> None:
    from memory.audit.models import AuditEntry
    from memory.db import session_scope
    from memory.identity.models import ApiKey

    org = make_org()
    api, base = start_api(tmp_path / "logs")
    acked: dict[str, str] = {}  # key name -> prefix, for every 2xx
    errors: list[str] = []
    cut: list[str] = []  # requests in flight when the process died (connection dropped mid-request)
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(10**6))

    def fire() -> None:
        with httpx.Client(base_url=base, headers=org.headers(), timeout=10) as c:
            while not stop.is_set():
                with lock:
                    name = f"crash-{next(counter)}"
                try:
                    r = c.post("/v1/keys", json={"name": name, "role": "viewer"})
                except httpx.ConnectError:  # after the kill: nothing listening
                    continue
                except httpx.HTTPError:
                    with lock:
                        cut.append(name)
                    continue
                if r.status_code >= 500:
                    with lock:
                        errors.append(r.text)
                if r.is_success:
                    with lock:
                        acked[name] = r.json()["prefix"]

    threads = [threading.Thread(target=fire, daemon=True) for _ in range(8)]
    try:
        for t in threads:
            t.start()
        wait_for(lambda: len(acked) >= 40, 120, "40 acknowledged key creations")
        api.popen.send_signal(signal.SIGKILL)  # mid-stream: 8 clients keep posting
        api.popen.wait(timeout=10)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
        api.stop()
    assert cut, "no request was in flight when the API was killed"
    assert not errors, errors[:3]
    assert api.popen.returncode == -signal.SIGKILL

    with session_scope() as s:
        all_prefixes = [k.prefix for k in s.scalars(select(ApiKey).where(ApiKey.org_id == org.org_id))]
        keys = {k.name: k.prefix for k in s.scalars(select(ApiKey).where(ApiKey.org_id == org.org_id))
                if k.name.startswith("crash-")}
        created = [e.target for e in s.scalars(select(AuditEntry).where(
            AuditEntry.org_id == org.org_id, AuditEntry.action == "keys.created"))]
    # Every acknowledged request is durable.
    missing = {n: p for n, p in acked.items() if keys.get(n) != p}
    assert not missing, f"acknowledged but not stored: {missing}"
    # Every stored key has exactly one keys.created entry, and no entry names a key that is not stored.
    assert Counter(created) == Counter(f"key:{p}" for p in all_prefixes), "key rows and audit entries disagree"
    assert len(all_prefixes) == len(keys) + len(org.keys)  # make_org() made one key per role
    print(f"\n{len(acked)} acknowledged, {len(keys)} stored, {len(cut)} in flight at SIGKILL")

    r = subprocess.run([sys.executable, "-m", "api.cli", "audit", "verify", "--json"], env=levqor_env(),
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr

    # The database is usable at once by a new process.
    api2, base2 = start_api(tmp_path / "logs2")
    try:
        assert httpx.get(f"{base2}/v1/keys", headers=org.headers(), timeout=10).status_code == 200
    finally:
        api2.stop()
