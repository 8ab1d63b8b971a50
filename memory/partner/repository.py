"""Partner storage: plugins, installs, the webhook outbox and delivery log, revenue and payouts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, cast

import orjson
from sqlalchemy import Row, Table, bindparam, case, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from memory.events.models import Event
from memory.jobs.models import Pipeline
from memory.partner.models import (
    CLAIMABLE,
    Partner,
    PartnerEmail,
    Payout,
    Plugin,
    PluginInstall,
    PluginRating,
    PluginVersion,
    RevenueEntry,
    StripeEventSeen,
    WebhookAttempt,
    WebhookDeferral,
    WebhookDelivery,
)

_DELIVERIES = cast(Table, WebhookDelivery.__table__)
_ATTEMPTS = cast(Table, WebhookAttempt.__table__)
# Hot-path statements on PostgreSQL take their rows as one JSON document (``json_to_recordset``):
# fixed text, parsed and planned once whatever the batch size, and one parameter serialised by
# orjson instead of an array per column (psycopg escapes every element of a text array in Python).
_DELIVERY_COLUMNS = (
    ("uid", "text"), ("event_id", "integer"), ("event_name", "text"), ("event_at", "timestamptz"),
    ("install_id", "integer"), ("plugin_id", "integer"), ("org_id", "integer"), ("url", "text"), ("body", "text"),
    ("status", "text"), ("attempts", "integer"), ("next_attempt_at", "timestamptz"), ("lease_until", "timestamptz"),
    ("replays", "integer"), ("created_at", "timestamptz"), ("last_error", "text"))


def _insert_recordset(table: str, columns: tuple[tuple[str, str], ...], alias: str = "") -> str:
    """``INSERT INTO table (columns) SELECT columns FROM json_to_recordset(:rows)``, typed per column."""
    names = ", ".join(c for c, _ in columns)
    return (f"INSERT INTO {table}{f' AS {alias}' if alias else ''} ({names}) SELECT {names} "
            f"FROM json_to_recordset(CAST(:rows AS json)) AS x({', '.join(f'{c} {t}' for c, t in columns)}) ")


# A pair that already has a delivery (a replay of shed work racing the fan-out) is skipped, not an error.
_DELIVERY_INSERT = (_insert_recordset("webhook_deliveries", _DELIVERY_COLUMNS)
                    + "ON CONFLICT (event_id, install_id) DO NOTHING")
# Successes: the deliveries' new state and their attempt rows, one statement.
_SUCCESS_RECORD = (
    "WITH v AS (SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS x(id bigint, at timestamptz, "
    "code integer, ms double precision, attempt integer, started timestamptz, headers json, excerpt text)), "
    "u AS (UPDATE webhook_deliveries AS d SET status = 'succeeded', delivered_at = v.at, "
    "attempts = d.attempts + 1, last_status_code = v.code, last_error = NULL, last_latency_ms = v.ms, "
    "lease_until = NULL FROM v WHERE d.id = v.id) "
    "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, request_headers, status_code, latency_ms, "
    "error, response_excerpt) SELECT id, attempt, started, headers, code, ms, NULL, excerpt FROM v")


_DEFERRAL_COLUMNS = (
    ("install_id", "integer"), ("plugin_id", "integer"), ("org_id", "integer"), ("bucket", "timestamptz"),
    ("reason", "text"), ("first_event_id", "bigint"), ("last_event_id", "bigint"), ("first_event_at", "timestamptz"),
    ("last_event_at", "timestamptz"), ("shed", "integer"), ("status", "text"), ("replayed", "integer"),
    ("created_at", "timestamptz"), ("updated_at", "timestamptz"))
# More shed work in a replayed range sets it back to deferred, to be replayed from its start (replays
# skip the deliveries that exist).
_DEFERRAL_UPSERT = (
    _insert_recordset("webhook_deferrals", _DEFERRAL_COLUMNS, alias="w")
    + "ON CONFLICT (install_id, bucket) DO UPDATE SET "
    "first_event_id = least(w.first_event_id, excluded.first_event_id), "
    "last_event_id = greatest(w.last_event_id, excluded.last_event_id), "
    "first_event_at = least(w.first_event_at, excluded.first_event_at), "
    "last_event_at = greatest(w.last_event_at, excluded.last_event_at), "
    "shed = w.shed + excluded.shed, reason = excluded.reason, updated_at = excluded.updated_at, "
    "status = 'deferred', replayed_through = NULL")


def _json_rows(rows: list[dict[str, Any]]) -> str:
    return orjson.dumps(rows).decode()


_DEFERRALS = cast(Table, WebhookDeferral.__table__)


class PartnerRepository:
    def __init__(self, session: Session):
        self.session = session

    def add(self, obj: Any) -> None:
        self.session.add(obj)
        self.session.flush()

    # ---- partners and plugins ---------------------------------------------------------------
    def partner(self, partner_id: int) -> Partner | None:
        return self.session.get(Partner, partner_id)

    def partner_for_org(self, org_id: int) -> Partner | None:
        return self.session.scalar(select(Partner).where(Partner.org_id == org_id))

    def partner_by_account(self, account_id: str) -> Partner | None:
        return self.session.scalar(select(Partner).where(Partner.stripe_account_id == account_id))

    def partners(self) -> list[Partner]:
        return list(self.session.scalars(select(Partner).order_by(Partner.id)))

    def plugin(self, plugin_id: int) -> Plugin | None:
        return self.session.get(Plugin, plugin_id)

    def plugin_by_slug(self, slug: str) -> Plugin | None:
        return self.session.scalar(select(Plugin).where(Plugin.slug == slug))

    def plugins(self, *, states: Sequence[str] | None = None, partner_id: int | None = None) -> list[Plugin]:
        stmt = select(Plugin).order_by(Plugin.name, Plugin.id)
        if states is not None:
            stmt = stmt.where(Plugin.state.in_(states))
        if partner_id is not None:
            stmt = stmt.where(Plugin.partner_id == partner_id)
        return list(self.session.scalars(stmt))

    def version(self, version_id: int) -> PluginVersion | None:
        return self.session.get(PluginVersion, version_id)

    def versions(self, plugin_id: int) -> list[PluginVersion]:
        return list(self.session.scalars(
            select(PluginVersion).where(PluginVersion.plugin_id == plugin_id).order_by(PluginVersion.id)))

    def listed_versions(self, plugin_ids: Sequence[int]) -> dict[int, PluginVersion]:
        if not plugin_ids:
            return {}
        rows = self.session.scalars(select(PluginVersion).join(
            Plugin, Plugin.listed_version_id == PluginVersion.id).where(Plugin.id.in_(plugin_ids)))
        return {v.plugin_id: v for v in rows}

    def install_counts(self) -> dict[int, int]:
        rows = self.session.execute(select(PluginInstall.plugin_id, func.count()).where(
            PluginInstall.status == "active", PluginInstall.mode == "live").group_by(PluginInstall.plugin_id))
        return {int(p): int(n) for p, n in rows}

    # ---- installs -----------------------------------------------------------------------------
    def install(self, install_id: int) -> PluginInstall | None:
        return self.session.get(PluginInstall, install_id)

    def install_for(self, plugin_id: int, org_id: int, mode: str = "live") -> PluginInstall | None:
        return self.session.scalar(select(PluginInstall).where(
            PluginInstall.plugin_id == plugin_id, PluginInstall.org_id == org_id, PluginInstall.mode == mode))

    def installs_for_org(self, org_id: int, active_only: bool = True, *,
                         mode: str | None = "live") -> list[PluginInstall]:
        stmt = select(PluginInstall).where(PluginInstall.org_id == org_id).order_by(PluginInstall.id)
        if mode is not None:
            stmt = stmt.where(PluginInstall.mode == mode)
        if active_only:
            stmt = stmt.where(PluginInstall.status == "active")
        return list(self.session.scalars(stmt))

    def delete_installs_mode(self, org_id: int, mode: str) -> int:
        """Delete the org's installs of ``mode`` (their deliveries, attempts and deferrals go with them)."""
        res = self.session.execute(delete(PluginInstall).where(PluginInstall.org_id == org_id,
                                                               PluginInstall.mode == mode)
                                   .execution_options(synchronize_session=False))
        return int(getattr(res, "rowcount", 0) or 0)

    def active_installs(self, plugin_id: int | None = None) -> list[PluginInstall]:
        stmt = select(PluginInstall).where(PluginInstall.status == "active").order_by(PluginInstall.id)
        if plugin_id is not None:
            stmt = stmt.where(PluginInstall.plugin_id == plugin_id)
        return list(self.session.scalars(stmt))

    def subscribed_installs(self, org_id: int, mode: str = "live") -> list[tuple[PluginInstall, Plugin, PluginVersion]]:
        """Active installs of ``mode`` in ``org_id`` of listed plugins, with the version each install runs."""
        rows = self.session.execute(
            select(PluginInstall, Plugin, PluginVersion)
            .join(Plugin, Plugin.id == PluginInstall.plugin_id)
            .join(PluginVersion, PluginVersion.id == PluginInstall.version_id)
            .where(PluginInstall.org_id == org_id, PluginInstall.mode == mode, PluginInstall.status == "active",
                   Plugin.state == "listed"))
        return [(i, p, v) for i, p, v in rows]

    def orgs_with_installs(self, org_ids: set[int]) -> set[int]:
        """The organisations among ``org_ids`` that have any plugin install, in any state (a superset of
        those the fan-out would deliver to: it decides which job events are outbox work)."""
        if not org_ids:
            return set()
        return set(self.session.scalars(select(PluginInstall.org_id).where(
            PluginInstall.org_id.in_(sorted(org_ids))).distinct()))

    def subscriptions(self, org_id: int) -> list[Row[Any]]:
        """:meth:`subscribed_installs` as plain rows (install id, org, scopes, created_at, plugin id,
        manifest, signing secrets, endpoint_disabled_at): the fan-out reads these for every event,
        without building ORM objects."""
        return list(self.session.execute(
            select(PluginInstall.id, PluginInstall.org_id, PluginInstall.scopes, PluginInstall.created_at,
                   Plugin.id.label("plugin_id"), PluginVersion.manifest, PluginInstall.secret,
                   PluginInstall.previous_secret, PluginInstall.previous_expires_at,
                   PluginInstall.endpoint_disabled_at, PluginInstall.mode)
            .join(Plugin, Plugin.id == PluginInstall.plugin_id)
            .join(PluginVersion, PluginVersion.id == PluginInstall.version_id)
            .where(PluginInstall.org_id == org_id, PluginInstall.status == "active", Plugin.state == "listed")))

    def rate(self, plugin: Plugin, org_id: int, stars: int) -> None:
        existing = self.session.scalar(select(PluginRating).where(
            PluginRating.plugin_id == plugin.id, PluginRating.org_id == org_id))
        if existing is None:
            self.session.add(PluginRating(plugin_id=plugin.id, org_id=org_id, stars=stars))
            plugin.rating_sum += stars
            plugin.rating_count += 1
        else:
            plugin.rating_sum += stars - existing.stars
            existing.stars = stars
        self.session.flush()

    # ---- webhook outbox -------------------------------------------------------------------------
    def delivered_pairs(self, event_ids: Sequence[int]) -> set[tuple[int, int]]:
        """``(event_id, install_id)`` pairs that already have a delivery (a batch fan-out re-run)."""
        if not event_ids:
            return set()
        rows = self.session.execute(select(WebhookDelivery.event_id, WebhookDelivery.install_id).where(
            WebhookDelivery.event_id.in_(list(event_ids))))
        return {(int(e), int(i)) for e, i in rows}

    def add_deliveries(self, rows: list[dict[str, Any]], *, returning: bool = False) -> list[tuple[str, int]]:
        """Insert fan-out rows in one multi-row statement (no ORM objects), skipping (event, install)
        pairs that already have a delivery; ``returning``: the (uid, id) of the rows inserted."""
        if not rows:
            return []
        if self.session.get_bind().dialect.name == "postgresql":
            sql = _DELIVERY_INSERT + (" RETURNING uid, id" if returning else "")
            result = self.session.execute(text(sql), {"rows": _json_rows(rows)})
            return [(u, int(i)) for u, i in result] if returning else []
        stmt = sqlite.insert(_DELIVERIES).on_conflict_do_nothing(index_elements=["event_id", "install_id"])
        if not returning:
            self.session.execute(stmt, rows)
            return []
        t = _DELIVERIES.c
        return [(r.uid, int(r.id)) for r in self.session.execute(stmt.returning(t.uid, t.id), rows)]

    def backlog(self, org_ids: Sequence[int], now: dt.datetime) -> dict[int, tuple[int, dict[int, dt.datetime]]]:
        """Each organisation's unfinished due deliveries to enabled endpoints, for the fan-out's admission:
        ``org -> (how many, {install: next_attempt_at of its oldest one no worker has claimed})``.

        Rows in flight or leased to a deliverer count; rows backed off until later and rows held for a
        disabled endpoint do not. The partial index over claimable rows keeps this to the backlog itself.
        """
        if not org_ids:
            return {}
        t = _DELIVERIES.c
        held = select(PluginInstall.id).where(
            or_(PluginInstall.endpoint_disabled_at.is_not(None), PluginInstall.status != "active"))
        rows = self.session.execute(
            select(t.org_id, t.install_id, func.count(),
                   func.min(case((t.status != "delivering", t.next_attempt_at))))
            .where(text(f"webhook_deliveries.{CLAIMABLE}"), t.org_id.in_(list(org_ids)), t.next_attempt_at <= now,
                   t.install_id.not_in(held))
            .group_by(t.org_id, t.install_id))
        out: dict[int, tuple[int, dict[int, dt.datetime]]] = {}
        for org_id, install_id, n, oldest in rows:
            count, lag = out.get(int(org_id), (0, {}))
            if oldest is not None:
                if isinstance(oldest, str):  # SQLite returns an aggregate over a CASE as stored text
                    oldest = dt.datetime.fromisoformat(oldest)
                lag[int(install_id)] = oldest if oldest.tzinfo else oldest.replace(tzinfo=dt.UTC)
            out[int(org_id)] = (count + int(n), lag)
        return out

    def add_deferrals(self, rows: list[dict[str, Any]]) -> None:
        """Record shed deliveries: an upsert per (install, minute) widening its event range and count
        (on PostgreSQL one statement for all of them)."""
        if not rows:
            return
        rows = sorted(rows, key=lambda r: (r["install_id"], r["bucket"]))  # one lock order: no deadlocks
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(text(_DEFERRAL_UPSERT), {"rows": _json_rows(rows)})
            return
        ins = sqlite.insert(_DEFERRALS)
        ex, t = ins.excluded, _DEFERRALS.c
        stmt = ins.on_conflict_do_update(index_elements=["install_id", "bucket"], set_={
            "first_event_id": func.min(t.first_event_id, ex.first_event_id),
            "last_event_id": func.max(t.last_event_id, ex.last_event_id),
            "first_event_at": func.min(t.first_event_at, ex.first_event_at),
            "last_event_at": func.max(t.last_event_at, ex.last_event_at),
            "shed": t.shed + ex.shed, "reason": ex.reason, "updated_at": ex.updated_at,
            # More shed work in a replayed range: replay it again from its start (replays skip what exists).
            "status": "deferred", "replayed_through": None})
        self.session.execute(stmt, rows)

    def deferrals(self, org_id: int, *, install_id: int | None, status: str | None, cursor: int | None,
                  limit: int) -> list[WebhookDeferral]:
        """Shed work of the org's installs, or to the org's own plugins when it is a partner, newest first."""
        partner = self.partner_for_org(org_id)
        cond = WebhookDeferral.org_id == org_id
        if partner is not None:
            cond = or_(cond, WebhookDeferral.plugin_id.in_(select(Plugin.id).where(Plugin.partner_id == partner.id)))
        stmt = select(WebhookDeferral).where(cond).order_by(WebhookDeferral.id.desc()).limit(limit)
        if install_id is not None:
            stmt = stmt.where(WebhookDeferral.install_id == install_id)
        if status is not None:
            stmt = stmt.where(WebhookDeferral.status == status)
        if cursor is not None:
            stmt = stmt.where(WebhookDeferral.id < cursor)
        return list(self.session.scalars(stmt))

    def deferred(self, install_id: int) -> list[WebhookDeferral]:
        """An install's shed work not yet replayed, oldest first, locked for the replay."""
        stmt = (select(WebhookDeferral).where(WebhookDeferral.install_id == install_id,
                                              WebhookDeferral.status == "deferred")
                .order_by(WebhookDeferral.bucket, WebhookDeferral.id))
        if self.session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        return list(self.session.scalars(stmt))

    def shedding_since(self, since: dt.datetime) -> list[tuple[int, int, dt.datetime, str]]:
        """Organisations whose fan-out shed deliveries since ``since``: (org, shed in the rows touched
        since then, when the first of those rows was created, the latest reason)."""
        d = WebhookDeferral
        rows = self.session.execute(
            select(d.org_id, func.sum(d.shed), func.min(d.created_at), func.max(d.reason))
            .where(d.updated_at >= since).group_by(d.org_id).order_by(d.org_id))
        out = []
        for org_id, shed, first, reason in rows:
            if isinstance(first, str):  # SQLite returns an aggregate over a datetime as stored text
                first = dt.datetime.fromisoformat(first)
            out.append((int(org_id), int(shed or 0), first if first.tzinfo else first.replace(tzinfo=dt.UTC),
                        str(reason)))
        return out

    def org_events(self, org_id: int, first_id: int, last_id: int, limit: int) -> list[Event]:
        """The organisation's events with ids in ``[first_id, last_id]``, oldest first."""
        return list(self.session.scalars(select(Event).where(
            Event.org_id == org_id, Event.id >= first_id, Event.id <= last_id).order_by(Event.id).limit(limit)))

    def claim_batch(self, now: dt.datetime, limit: int, exclude_installs: Sequence[int],
                    lease_until: dt.datetime, *, exclude_orgs: Sequence[int] = ()) -> list[Row[Any]]:
        """Lease up to ``limit`` due deliveries of enabled endpoints in one ``UPDATE ... RETURNING``.

        Due means pending or failing with ``next_attempt_at`` passed, or delivering with an expired
        lease (its worker died). PostgreSQL skips rows another worker is claiming.
        """
        t = _DELIVERIES.c
        # Held endpoints as a NOT IN filter rather than a join: the plan stays one ordered scan of
        # the partial index, stopping at ``limit``, whatever the statistics say (a join let a fresh
        # table's planner visit every due row of every endpoint and sort them).
        held = select(PluginInstall.id).where(
            or_(PluginInstall.endpoint_disabled_at.is_not(None), PluginInstall.status != "active"))
        due = (
            select(t.id)
            .where(
                text(f"webhook_deliveries.{CLAIMABLE}"),  # the partial index's predicate, literally (SQLite
                # uses the index only then; PostgreSQL also with a generic plan)
                or_(t.status.in_(("pending", "failing")), (t.status == "delivering") & (t.lease_until < now)),
                t.next_attempt_at <= now,
                t.install_id.not_in(held),
            )
            .order_by(t.next_attempt_at, t.id)
            .limit(limit)
        )
        if exclude_installs:
            due = due.where(t.install_id.not_in(list(exclude_installs)))
        if exclude_orgs:
            due = due.where(t.org_id.not_in(list(exclude_orgs)))
        if self.session.get_bind().dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True, of=_DELIVERIES)
        stmt = (update(_DELIVERIES).where(t.id.in_(due.scalar_subquery()))
                .values(status="delivering", lease_until=lease_until)
                .returning(t.id, t.uid, t.url, t.body, t.attempts, t.event_at, t.install_id, t.org_id))
        return sorted(self.session.execute(stmt).all(), key=lambda r: int(r.id))

    def install_secrets(self, install_ids: Sequence[int], now: dt.datetime) -> dict[int, tuple[str, ...]]:
        """The signing secrets valid now for each install (two during a rotation, as ``hooks.valid_secrets``)."""
        if not install_ids:
            return {}
        rows = self.session.execute(select(
            PluginInstall.id, PluginInstall.secret, PluginInstall.previous_secret, PluginInstall.previous_expires_at)
            .where(PluginInstall.id.in_(list(install_ids))))
        return {int(i): (cur,) + ((prev,) if prev and until and until > now else ())
                for i, cur, prev, until in rows}

    def record_successes(self, deliveries: list[dict[str, Any]], attempts: list[dict[str, Any]]) -> None:
        """Mark deliveries succeeded and log their attempts, one or two statements per batch.

        ``deliveries``: ``b_id, b_at, b_code, b_ms``; ``attempts``: WebhookAttempt columns, in the same
        order. On PostgreSQL one statement over a JSON document of the rows (update and insert
        together); elsewhere two executemany statements (SQLite runs in-process: no round trips to save).
        """
        if not deliveries:
            return
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(text(_SUCCESS_RECORD), {"rows": _json_rows([
                {"id": d["b_id"], "at": d["b_at"], "code": d["b_code"], "ms": d["b_ms"], "attempt": a["attempt"],
                 "started": a["started_at"], "headers": a["request_headers"], "excerpt": a["response_excerpt"]}
                for d, a in zip(deliveries, attempts, strict=True)])})
            return
        t = _DELIVERIES.c
        self.session.execute(
            update(_DELIVERIES).where(t.id == bindparam("b_id")).values(
                status="succeeded", delivered_at=bindparam("b_at"), attempts=t.attempts + 1,
                last_status_code=bindparam("b_code"), last_error=None, last_latency_ms=bindparam("b_ms"),
                lease_until=None),
            deliveries)
        self.session.execute(insert(_ATTEMPTS), attempts)

    def clear_failing(self, install_ids: Sequence[int]) -> None:
        """A success ends an endpoint's failure streak."""
        if install_ids:
            self.session.execute(update(PluginInstall).where(
                PluginInstall.id.in_(list(install_ids)), PluginInstall.failing_since.is_not(None))
                .values(failing_since=None).execution_options(synchronize_session=False))

    def delivery(self, delivery_id: int) -> WebhookDelivery | None:
        return self.session.get(WebhookDelivery, delivery_id)

    def add_attempt(self, attempt: WebhookAttempt) -> None:
        self.session.add(attempt)

    def attempts(self, delivery_id: int) -> list[WebhookAttempt]:
        return list(self.session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id).order_by(WebhookAttempt.id)))

    def deliveries_visible(self, org_id: int, *, install_id: int | None, status: str | None,
                           cursor: int | None, limit: int, mode: str = "live") -> list[WebhookDelivery]:
        """Deliveries of the org's installs of ``mode``, or to the org's own plugins when it is a partner."""
        partner = self.partner_for_org(org_id)
        mine = select(PluginInstall.id).where(PluginInstall.org_id == org_id, PluginInstall.mode == mode)
        cond: Any = (WebhookDelivery.org_id == org_id) & WebhookDelivery.install_id.in_(mine)
        if partner is not None:
            own = select(Plugin.id).where(Plugin.partner_id == partner.id)
            cond = or_(cond, WebhookDelivery.plugin_id.in_(own))
        stmt = select(WebhookDelivery).where(cond).order_by(WebhookDelivery.id.desc()).limit(limit)
        if install_id is not None:
            stmt = stmt.where(WebhookDelivery.install_id == install_id)
        if status is not None:
            stmt = stmt.where(WebhookDelivery.status == status)
        if cursor is not None:
            stmt = stmt.where(WebhookDelivery.id < cursor)
        return list(self.session.scalars(stmt))

    def failed_since(self, install_ids: Sequence[int], since: dt.datetime) -> list[WebhookDelivery]:
        if not install_ids:
            return []
        return list(self.session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.install_id.in_(list(install_ids)),
            WebhookDelivery.status.in_(("failed", "failing")),
            WebhookDelivery.created_at >= since).order_by(WebhookDelivery.id)))

    def count_deliveries(self, install_id: int, status: str) -> int:
        return int(self.session.scalar(select(func.count()).select_from(WebhookDelivery).where(
            WebhookDelivery.install_id == install_id, WebhookDelivery.status == status)) or 0)

    def add_email(self, email: PartnerEmail) -> None:
        self.session.add(email)
        self.session.flush()

    def unsent_emails(self, limit: int = 100) -> list[PartnerEmail]:
        return list(self.session.scalars(select(PartnerEmail).where(PartnerEmail.sent_at.is_(None))
                                         .order_by(PartnerEmail.id).limit(limit)))

    def emails(self, partner_id: int) -> list[PartnerEmail]:
        return list(self.session.scalars(select(PartnerEmail).where(PartnerEmail.partner_id == partner_id)
                                         .order_by(PartnerEmail.id)))

    # ---- revenue and payouts ------------------------------------------------------------------
    def revenue_exists(self, source_ref: str) -> bool:
        return self.session.scalar(select(RevenueEntry.id).where(RevenueEntry.source_ref == source_ref)) is not None

    def unpaid_revenue(self, partner_id: int, up_to_period: str) -> list[RevenueEntry]:
        return list(self.session.scalars(select(RevenueEntry).where(
            RevenueEntry.partner_id == partner_id, RevenueEntry.payout_id.is_(None),
            RevenueEntry.period <= up_to_period).order_by(RevenueEntry.id)))

    def revenue(self, *, partner_id: int | None = None, period: str | None = None,
                payout_id: int | None = None) -> list[RevenueEntry]:
        stmt = select(RevenueEntry).order_by(RevenueEntry.id)
        if partner_id is not None:
            stmt = stmt.where(RevenueEntry.partner_id == partner_id)
        if period is not None:
            stmt = stmt.where(RevenueEntry.period == period)
        if payout_id is not None:
            stmt = stmt.where(RevenueEntry.payout_id == payout_id)
        return list(self.session.scalars(stmt))

    def attach_revenue(self, entry_ids: Sequence[int], payout_id: int) -> None:
        self.session.execute(update(RevenueEntry).where(RevenueEntry.id.in_(list(entry_ids)),
                                                        RevenueEntry.payout_id.is_(None))
                             .values(payout_id=payout_id))

    def payout(self, payout_id: int) -> Payout | None:
        return self.session.get(Payout, payout_id)

    def payout_for(self, partner_id: int, period: str, currency: str) -> Payout | None:
        return self.session.scalar(select(Payout).where(
            Payout.partner_id == partner_id, Payout.period == period, Payout.currency == currency))

    def payout_by_transfer(self, transfer_id: str) -> Payout | None:
        return self.session.scalar(select(Payout).where(Payout.stripe_transfer_id == transfer_id))

    def payouts(self, *, partner_id: int | None = None, statuses: Sequence[str] | None = None) -> list[Payout]:
        stmt = select(Payout).order_by(Payout.id)
        if partner_id is not None:
            stmt = stmt.where(Payout.partner_id == partner_id)
        if statuses is not None:
            stmt = stmt.where(Payout.status.in_(statuses))
        return list(self.session.scalars(stmt))

    def stripe_event_seen(self, event_id: str, type_: str) -> bool:
        """Record a Stripe event id; True if it was already there (a redelivery)."""
        if self.session.get(StripeEventSeen, event_id) is not None:
            return True
        self.session.add(StripeEventSeen(id=event_id, type=type_))
        self.session.flush()
        return False

    def revenue_totals(self) -> tuple[int, int]:
        """(all plugin revenue, partner share) in minor units."""
        rows = self.session.execute(select(RevenueEntry.amount_minor, RevenueEntry.share_bps))
        gross = share = 0
        for amount, bps in rows:
            gross += int(amount)
            share += int(amount) * int(bps) // 10000
        return gross, share

    def pipeline_steps(self, pipeline_id: int) -> list[dict[str, Any]]:
        """A pipeline's steps (to find the plugin actions a job used)."""
        steps = self.session.scalar(select(Pipeline.steps).where(Pipeline.id == pipeline_id))
        return [st for st in steps or [] if isinstance(st, dict)]
