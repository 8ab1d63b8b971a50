"""Admission control for the partner webhook fan-out: under overload, shed new deliveries, recorded.

Levqor accepts an event when it is committed to the outbox. Its fan-out then either creates a
delivery per subscribed install (sent, retried, or failed and replayable) or, when the platform
cannot send it in time, *sheds* it: the delivery is not created, but the shed work is recorded in
``webhook_deferrals`` (install, minute, event id range, count), counted in
``levqor_partner_webhook_shed_total{reason}``, raises a ``webhook_shedding`` incident for the
organisation (the monitor's rule, :mod:`tools.auto_intel.rules`), and is visible to the customer
and the partner and replayable (``webhooks.replay_deferred``). Nothing accepted is silently dropped.

A new delivery is shed when, at fan-out time (:func:`decide`):

- ``org_backlog``: its organisation already has ``LEVQOR_HOOKS_ORG_BACKLOG_MAX`` unfinished due
  deliveries (queued, leased or in flight) to enabled endpoints. This bounds the wait of what is
  admitted (the backlog drains at the platform's delivery rate) and keeps one organisation's burst
  from filling the queue every other organisation's deliveries wait in;
- ``endpoint_lag``: the endpoint's oldest delivery no worker has claimed yet has waited more than
  ``LEVQOR_HOOKS_ENDPOINT_MAX_LAG_S`` (a slow or hanging endpoint: its backlog stops growing).

Deliveries to disabled endpoints are held, as before, and never shed; replays are never shed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.partner.repository import PartnerRepository

log = logging.getLogger(__name__)
LOG_EVERY_S = 10.0
_logged: dict[int, float] = {}  # org -> when this process last logged its shedding


def decide(org_backlog: int, org_max: int, oldest_unclaimed: dt.datetime | None, now: dt.datetime,
           lag_max_s: float) -> str | None:
    """Why a new delivery must be shed (``org_backlog`` or ``endpoint_lag``), or None to admit it."""
    if org_max and org_backlog >= org_max:
        return "org_backlog"
    if lag_max_s and oldest_unclaimed is not None and (now - oldest_unclaimed).total_seconds() > lag_max_s:
        return "endpoint_lag"
    return None


def bucket(at: dt.datetime) -> dt.datetime:
    """The minute ``at`` falls in: shed work is recorded per install and minute of events."""
    return at.replace(second=0, microsecond=0)


@dataclass
class Admission:
    """The admission decisions of one fan-out batch, and the shed work it records at the end."""

    now: dt.datetime
    org_max: int
    lag_max_s: float
    backlog: dict[int, tuple[int, dict[int, dt.datetime]]]
    admitted: dict[int, int] = field(default_factory=dict)
    shed: dict[tuple[int, dt.datetime], dict[str, Any]] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    by_org: dict[int, dict[str, int]] = field(default_factory=dict)
    events_shed: dict[tuple[int, str, dt.datetime], dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, repo: PartnerRepository, org_ids: list[int], now: dt.datetime) -> Admission:
        """Read the backlog of the batch's organisations (one query; none when both limits are off)."""
        s = get_settings()
        org_max, lag_max = s.hooks_org_backlog_max, s.hooks_endpoint_max_lag_s
        backlog = repo.backlog(org_ids, now) if (org_max or lag_max) else {}
        return cls(now, org_max, lag_max, backlog)

    def org_full(self, org_id: int) -> bool:
        """Whether the organisation's backlog is at its limit (every new delivery of it is shed)."""
        return bool(self.org_max) and self.backlog.get(org_id, (0, {}))[0] + self.admitted.get(org_id, 0) \
            >= self.org_max

    def shed_event(self, org_id: int, event_id: int, event_name: str, event_at: dt.datetime,
                   targets: list[Any]) -> None:
        """Shed one event's deliveries to every one of ``targets`` (subscription rows) for ``org_backlog``:
        gathered per event name and minute, so a flood of events costs one update each, not one per endpoint."""
        key = (org_id, event_name, bucket(event_at))
        agg = self.events_shed.get(key)
        if agg is None:
            self.events_shed[key] = {"first": event_id, "last": event_id, "first_at": event_at, "last_at": event_at,
                                     "n": 1, "targets": targets}
        else:
            agg["first"], agg["last"] = min(agg["first"], event_id), max(agg["last"], event_id)
            agg["first_at"], agg["last_at"] = min(agg["first_at"], event_at), max(agg["last_at"], event_at)
            agg["n"] += 1
        self.by_reason["org_backlog"] = self.by_reason.get("org_backlog", 0) + len(targets)
        per_org = self.by_org.setdefault(org_id, {})
        per_org["org_backlog"] = per_org.get("org_backlog", 0) + len(targets)

    def admit(self, org_id: int, install_id: int) -> str | None:
        """Admit one new delivery (counting it in its organisation's backlog), or say why it is shed."""
        count, oldest = self.backlog.get(org_id, (0, {}))
        n = self.admitted.get(org_id, 0)
        why = decide(count + n, self.org_max, oldest.get(install_id), self.now, self.lag_max_s)
        if why is None:
            self.admitted[org_id] = n + 1
        return why

    def record(self, *, install_id: int, plugin_id: int, org_id: int, event_id: int, event_at: dt.datetime,
               reason: str) -> None:
        """Remember one shed delivery (written by :meth:`flush`)."""
        key = (install_id, bucket(event_at))
        row = self.shed.get(key)
        if row is None:
            self.shed[key] = {"install_id": install_id, "plugin_id": plugin_id, "org_id": org_id, "bucket": key[1],
                              "reason": reason, "first_event_id": event_id, "last_event_id": event_id,
                              "first_event_at": event_at, "last_event_at": event_at, "shed": 1,
                              "status": "deferred", "replayed": 0, "created_at": self.now, "updated_at": self.now}
        else:
            row["first_event_id"] = min(row["first_event_id"], event_id)
            row["last_event_id"] = max(row["last_event_id"], event_id)
            row["first_event_at"] = min(row["first_event_at"], event_at)
            row["last_event_at"] = max(row["last_event_at"], event_at)
            row["shed"] += 1
            row["reason"] = reason
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        per_org = self.by_org.setdefault(org_id, {})
        per_org[reason] = per_org.get(reason, 0) + 1

    def flush(self, session: Session) -> None:
        """Write the shed work (in the fan-out's transaction: recorded exactly when the events are
        dispatched) and count it."""
        for (_org, _name, minute), agg in self.events_shed.items():
            for sub in agg["targets"]:
                key = (sub.id, minute)
                row = self.shed.get(key)
                if row is None:
                    self.shed[key] = {"install_id": sub.id, "plugin_id": sub.plugin_id, "org_id": sub.org_id,
                                      "bucket": minute, "reason": "org_backlog", "first_event_id": agg["first"],
                                      "last_event_id": agg["last"], "first_event_at": agg["first_at"],
                                      "last_event_at": agg["last_at"], "shed": agg["n"], "status": "deferred",
                                      "replayed": 0, "created_at": self.now, "updated_at": self.now}
                else:
                    row["first_event_id"] = min(row["first_event_id"], agg["first"])
                    row["last_event_id"] = max(row["last_event_id"], agg["last"])
                    row["first_event_at"] = min(row["first_event_at"], agg["first_at"])
                    row["last_event_at"] = max(row["last_event_at"], agg["last_at"])
                    row["shed"] += agg["n"]
                    row["reason"] = "org_backlog"
        self.events_shed.clear()
        if not self.shed:
            return
        PartnerRepository(session).add_deferrals(list(self.shed.values()))
        counted = session.info.setdefault("webhook_shed", {})  # the metric, once committed (fanout._wake)
        for reason, n in self.by_reason.items():
            counted[reason] = counted.get(reason, 0) + n
        t = time.monotonic()
        for org_id, reasons in self.by_org.items():
            if t - _logged.get(org_id, -LOG_EVERY_S) >= LOG_EVERY_S:  # not a line per batch under overload
                _logged[org_id] = t
                log.warning("partner webhook fan-out shed deliveries", extra={"fields": {"org": org_id, **reasons}})
