"""What every long-running process does alike: stop cleanly on SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("levqor.process")


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (the handlers are installed for this process)."""
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"fields": {"signal": signum}})
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop
