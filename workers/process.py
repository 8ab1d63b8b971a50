"""What every long-running process does alike: stop cleanly on SIGTERM or Ctrl-C."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
from collections.abc import Callable

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


PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux); False elsewhere."""
    try:
        return int(ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)) == 0
    except (OSError, AttributeError):
        return False


def child_of(parent_pid: int) -> Callable[[], None]:
    """A ``preexec_fn`` for the supervisor's children: they get SIGTERM (and stop cleanly, handing back
    their jobs) when the supervisor dies, even by SIGKILL, instead of living on as orphans that keep the
    API's port. A supervisor that died before the child armed the signal is caught by the parent check."""

    def arm() -> None:
        die_with_parent(signal.SIGTERM)
        if os.getppid() != parent_pid:  # the supervisor is already gone
            os.kill(os.getpid(), signal.SIGTERM)

    return arm
