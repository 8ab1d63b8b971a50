"""The deliverer shares its room between organisations: one organisation's flood of handed-over or
claimed jobs leaves room for another's (no sending involved: jobs are only queued and counted)."""

from __future__ import annotations

import datetime as dt
from typing import Any


def _job(i: int, org_id: int, install_id: int) -> Any:
    from tools.partner_api.delivery import Job

    return Job(i, f"msg_{i}", "http://127.0.0.1:9/x", b"{}", 0, dt.datetime.now(dt.UTC), install_id, ("whsec_",),
               org_id=org_id)


def test_handoff_room_counts_per_org_and_per_endpoint() -> None:
    from tools.partner_api.delivery import HandoffRoom

    room = HandoffRoom(total=5, org_left={1: 2}, org_cap=3, full_installs={9})
    assert room.take(1, 10) and room.take(1, 11)
    assert not room.take(1, 12)  # organisation 1 used its share
    assert not room.take(2, 9)  # that endpoint holds its share already
    assert room.take(2, 20) and room.take(2, 21) and room.take(2, 22)
    assert not room.take(2, 23)  # a new organisation gets org_cap
    assert room.take(3, 30) is False  # 5 taken: nothing left in all


def test_one_org_holding_its_share_leaves_room_for_another() -> None:
    from workers.hooks import Deliverer

    d = Deliverer(concurrency=1, per_endpoint=1, timeout_s=1)
    d.pool.shutdown()  # nothing is sent here: jobs stay queued
    d._pump = lambda: None  # type: ignore[method-assign]
    try:
        flood = [_job(i, org_id=1, install_id=100 + i % 8) for i in range(d.org_cap)]
        d.accept(flood)
        room = d.handoff_room()
        assert room.total == d.max_held - d.org_cap > 0
        assert not room.take(1, 200)  # organisation 1 holds its share: its new rows stay pending
        assert room.take(2, 300)  # organisation 2's rows are handed over at once
        d.accept([_job(10_000, org_id=2, install_id=300)])
        assert d.held_org == {1: d.org_cap, 2: 1}
        with d.lock:  # finishing a job gives its organisation its room back
            job = d.queues[300].popleft()
            d.queued -= 1
            d._release(job)
        assert d.held_org == {1: d.org_cap}
    finally:
        d.client.close()
