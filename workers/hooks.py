"""The webhook delivery loop: record finished attempts, claim and send, wake on new deliveries."""

from __future__ import annotations

import logging
import threading
import time

from tools.partner_api import hooks
from tools.partner_api.hooks import RECORD_BATCH, RECORD_TICK_S, Deliverer, send_pending_emails
from workers.dispatcher import listen

log = logging.getLogger(__name__)


def run_hooks(stop: threading.Event, concurrency: int | None = None, poll_s: float = 0.5) -> None:
    """Worker loop: record finished attempts, claim and send; wake on new deliveries or finished sends.

    It claims when told of new rows (a local commit, or NOTIFY on PostgreSQL), when its last claim
    filled the room it had (more may be due), and otherwise every ``poll_s`` (retries falling due,
    rows from workers that died).
    """
    d = Deliverer(concurrency=concurrency)
    hooks.attach(d)
    listen(stop, {hooks.NOTIFY_CHANNEL: hooks.notified})
    last_mail = last_claim = last_record = 0.0
    more = True
    try:
        while not stop.is_set():
            try:
                with d.lock:
                    room = d.max_held - d.running - d.queued
                    held = d.running + d.queued
                now = time.monotonic()
                # Claims come first (they are on the latency path), in chunks worth a transaction
                # unless the poll is due anyway; results are recorded in batches.
                if room > 0 and (now - last_claim >= poll_s
                                 or ((hooks.new_work.is_set() or more) and room >= d.max_held // 8)):
                    hooks.new_work.clear()
                    last_claim = now
                    started = d.claim_and_send()
                    more = started > 0  # keep claiming each tick while claims find work
                pending = d.results.qsize()
                if pending and (pending >= RECORD_BATCH or held == 0 or now - last_record >= RECORD_TICK_S):
                    last_record = now
                    d.record_results()
                if now - last_mail > 5:
                    last_mail = now
                    send_pending_emails()
            except Exception:
                log.exception("webhook delivery loop failed")
                stop.wait(1.0)
            busy = d.busy() > 0 or not d.results.empty()
            hooks.wakeup.wait(RECORD_TICK_S if busy else poll_s)
            hooks.wakeup.clear()
    finally:
        hooks.detach(d)
        d.close()
