"""``levqor worker``: the outbox dispatcher, the job loop and the webhook delivery loop in one process."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from levqor.metrics import start_process
from levqor.settings import get_settings
from tools.events.service import Reactions
from tools.registry import registry
from workers import wiring
from workers.dispatcher import run_dispatcher
from workers.hooks import run_hooks
from workers.jobs import run_jobs
from workers.process import stop_on_signals

log = logging.getLogger("levqor.process")

# The loops a worker runs beside the outbox dispatcher: (thread name, loop(stop, concurrency, reactions)).
# The job loop reads the reactions to tell which completion events are outbox work.
LOOPS: tuple[tuple[str, Callable[[threading.Event, int | None, Reactions], None]], ...] = (
    ("jobs", run_jobs),
    ("hooks", lambda stop, _concurrency, _reactions: run_hooks(stop)),
)


def run_worker(concurrency: int | None = None) -> None:
    """Run the outbox dispatcher and every worker loop until SIGTERM."""
    registry.load()
    reactions = wiring.reactions()  # read once: agents started by events follow LEVQOR_AGENT_EVENT_TRIGGERS
    stop = stop_on_signals()
    start_process("worker")
    s = get_settings()
    threads = [threading.Thread(target=run_dispatcher, args=(stop, s.events_poll_s, reactions), name="outbox",
                                daemon=True)]
    for name, loop in LOOPS:
        threads.append(threading.Thread(target=loop, args=(stop, concurrency, reactions), name=name, daemon=True))
    for t in threads:
        t.start()
    log.info("worker started", extra={"fields": {"pid": os.getpid()}})
    while not stop.is_set():
        stop.wait(1.0)
    for t in threads:
        t.join(timeout=30)
    log.info("worker stopped")
