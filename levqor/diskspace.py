"""Space in the var directory: how much is free, what may be freed, the reserve, and ENOSPC.

The var directory holds the SQLite database, keys, the mail sink, the Prometheus multiprocess files and
generated files. When it fills up, every writer fails with ``ENOSPC`` (SQLite: "database or disk is
full"); each one fails gracefully (:func:`is_enospc` tells them apart, :func:`note_enospc` counts them)
and the monitor's ``disk_full`` rule opens an incident from :func:`free_bytes`.

What may be freed (:func:`freeable`) is narrow on purpose: rotated logs under ``VAR_DIR/logs`` (``*.log.1``,
``*.log.2.gz``, ``*.log.2026-12-01``: never the live ``*.log``) and generated files under ``VAR_DIR/exports``
older than ``ops_export_retention_s``. Never the database, keys, the mail sink or metrics files.

The reserve (``VAR_DIR/.disk-reserve``, ``ops_disk_reserve_bytes``) is space set aside while there is
plenty: when free space falls under the limit the monitor deletes it (:func:`release_reserve`), so the
incident, the healer's actions and the database's commits can still be written on a full disk; it is
set aside again once free space is back (:func:`ensure_reserve`).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from levqor.settings import get_settings

log = logging.getLogger("levqor.disk")

RESERVE_NAME = ".disk-reserve"
ROTATED_LOG = re.compile(r"\.log\.(\d+|\d{4}-\d{2}-\d{2}[\w.-]*)(\.gz)?$")
_lock = threading.Lock()
_enospc: dict[str, int] = {}


def var_dir() -> Path:
    return get_settings().var_dir


def free_bytes(path: Path | None = None) -> int:
    """Bytes free for this process in the file system of ``path`` (default: the var directory)."""
    p = path or var_dir()
    while not p.exists() and p != p.parent:
        p = p.parent
    return int(shutil.disk_usage(p).free)


def is_enospc(exc: BaseException | None) -> bool:
    """The error (or one it was raised from) is a full disk: ``ENOSPC``/``EDQUOT`` or SQLite's "disk is full"."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, sqlite3.Error) and "disk is full" in str(exc):
            return True
        orig = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
        if isinstance(orig, BaseException) and orig is not exc and is_enospc(orig):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def note_enospc(where: str) -> int:
    """Count one ENOSPC at ``where`` (mail, metrics, logs, sqlite, ...) in this process; the new count."""
    with _lock:
        _enospc[where] = _enospc.get(where, 0) + 1
        return _enospc[where]


def enospc_counts() -> dict[str, int]:
    with _lock:
        return dict(_enospc)


# ---- the reserve -----------------------------------------------------------------------------------

def reserve_path() -> Path:
    return var_dir() / RESERVE_NAME


def release_reserve() -> int:
    """Delete the reserve file; the bytes it held (0: there was none)."""
    path = reserve_path()
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    log.warning("disk reserve released", extra={"fields": {"path": str(path), "bytes": size}})
    return size


def ensure_reserve() -> bool:
    """Set the reserve aside when it is missing and free space stays above the limit with it; True when it exists."""
    s = get_settings()
    size = int(s.ops_disk_reserve_bytes)
    path = reserve_path()
    if size <= 0:
        return False
    if path.exists():
        return True
    if not path.parent.exists() or free_bytes() < s.ops_disk_free_min_bytes + 2 * size:
        return False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return True
    try:
        os.posix_fallocate(fd, 0, size)  # really allocated, not a sparse file
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        return False
    os.close(fd)
    return True


def guard_reserve() -> int:
    """The monitor's step before it writes: release the reserve under the limit, set it aside again above
    it. The bytes released (0 when none)."""
    if free_bytes() < get_settings().ops_disk_free_min_bytes:
        return release_reserve()
    ensure_reserve()
    return 0


# ---- what may be freed -----------------------------------------------------------------------------

@dataclass
class Freed:
    files: list[str] = field(default_factory=list)
    bytes: int = 0
    errors: list[str] = field(default_factory=list)


def freeable(now: float | None = None) -> list[tuple[Path, int, str]]:
    """Files policy allows deleting to free space, largest first: ``(path, size, why)``. Rotated logs under
    ``VAR_DIR/logs`` and exports older than their retention under ``VAR_DIR/exports``; regular files only
    (no symbolic links followed), nothing else."""
    now = time.time() if now is None else now
    root = var_dir()
    retention = float(get_settings().ops_export_retention_s)
    out: list[tuple[Path, int, str]] = []
    for sub, pick in (("logs", lambda p, st: ROTATED_LOG.search(p.name) is not None and "rotated log"),
                      ("exports", lambda p, st: now - st.st_mtime > retention and "expired export")):
        base = root / sub
        if not base.is_dir() or base.is_symlink():
            continue
        for dirpath, _dirs, filenames in os.walk(base):  # os.walk does not follow directory links
            for name in filenames:
                p = Path(dirpath) / name
                try:
                    st = p.lstat()
                except FileNotFoundError:
                    continue
                if not p.is_symlink() and p.is_file():
                    why = pick(p, st)
                    if why:
                        out.append((p, int(st.st_blocks) * 512 or int(st.st_size), str(why)))
    out.sort(key=lambda t: -t[1])
    return out


def free_space(target_bytes: int | None = None, *, dry_run: bool = False, max_files: int = 10_000) -> Freed:
    """Delete what :func:`freeable` lists, largest first, until free space reaches ``target_bytes`` (default:
    twice the limit plus the reserve, so that the platform's own growth does not bring the incident straight
    back) or nothing freeable is left."""
    s = get_settings()
    target = target_bytes if target_bytes is not None else \
        2 * s.ops_disk_free_min_bytes + max(0, s.ops_disk_reserve_bytes)
    out = Freed()
    for path, size, why in freeable()[:max_files]:
        if not dry_run and free_bytes() >= target:
            break
        if not dry_run:
            try:
                path.unlink()
            except OSError as exc:
                out.errors.append(f"{path.name}: {exc.strerror}")
                continue
        out.files.append(f"{path.relative_to(var_dir())} ({why})")
        out.bytes += size
    return out
