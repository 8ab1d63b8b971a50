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
    """An event set by SIGTERM or SIGINT (the handlers are installed for this process). Under ``levqor up``
    it is also set when the supervisor goes away (:func:`watch_supervisor`)."""
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"fields": {"signal": signum}})
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    watch_supervisor(stop)
    return stop


SUPERVISOR_ENV = "LEVQOR_SUPERVISOR_PID"  # set by ``levqor up`` for its children: the pid to watch
PARENT_POLL_S = 0.5


def parent_gone(parent_pid: int) -> bool:
    """Whether this process's parent is no longer ``parent_pid`` (it died: the child was re-parented)."""
    return os.getppid() != parent_pid


def watch_supervisor(stop: threading.Event | None = None, *, poll_s: float = PARENT_POLL_S) -> bool:
    """The parent watch, beside the parent-death signal (which a platform may lack, or a process may
    reset): when ``LEVQOR_SUPERVISOR_PID`` is set and this process's parent changes, stop it as SIGTERM
    would (``stop`` set, or SIGTERM sent to itself). Whether a watch was started: only in a direct child
    of the supervisor (one the child started, like uvicorn's API processes, has the parent-death signal)."""
    raw = os.environ.get(SUPERVISOR_ENV, "")
    if not raw.isdigit() or parent_gone(int(raw)):
        return False  # not a direct child of ``levqor up`` (e.g. a process the API itself started)
    parent = int(raw)
    waiter = stop if stop is not None else threading.Event()

    def watch() -> None:
        while not parent_gone(parent):
            if waiter.wait(poll_s):
                return
        log.warning("supervisor gone; stopping", extra={"fields": {"supervisor_pid": parent}})
        if stop is not None:
            stop.set()
        else:
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()
    return True


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
