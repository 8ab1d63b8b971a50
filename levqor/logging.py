"""Structured logging: JSON lines carrying the request id of the current request."""

from __future__ import annotations

import contextvars
import errno
import json
import logging
import sys
import time
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    """Format records as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            data["request_id"] = rid
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            data.update(extra)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class QuietStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that survives a full disk: a record that cannot be written (``ENOSPC``) is dropped
    and counted, with no traceback per record (logging's default, which would itself fail to write); the
    first record written after space is back says how many were dropped."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            if self.dropped:
                msg = f"{self._dropped_line()}{self.terminator}{msg}"
            self.stream.write(msg + self.terminator)
            self.flush()
            self.dropped = 0
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                self.handleError(record)
                return
            self.dropped += 1
            from levqor.diskspace import note_enospc  # kept lazy: diskspace reads the settings

            note_enospc("logs")
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _dropped_line(self) -> str:
        return json.dumps({"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": "warning",
                           "logger": "levqor.logging", "msg": f"{self.dropped} log records dropped: no space left "
                           "on device"})


def configure_logging(level: str = "INFO", json_logs: bool = True) -> None:
    """Install one stderr handler on the root logger (one that survives a full disk)."""
    handler = QuietStreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "alembic", "httpx", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
