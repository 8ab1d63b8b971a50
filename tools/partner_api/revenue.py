"""Plugin revenue: the ledger of subscription charges and per-run usage, with the partner share frozen.

Revenue is a ledger in integer minor units (``plugin_revenue``): subscription charges (one per
install per month, ``sub:{plugin}:{org}:{period}``) and per-run usage (``run:{event}:{install}``,
``credits_per_run`` x ``CREDIT_MINOR``), each with the partner share in basis points frozen at
accrual.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from memory.db import utcnow
from memory.partner.models import Plugin, PluginInstall, PluginVersion, RevenueEntry
from memory.partner.repository import PartnerRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import require_staff
from tools.partner_api.actions import endpoint_matches
from tools.partner_api.manifest import share_bps
from tools.registry import tool

CREDIT_MINOR = 10  # one credit is USD 0.10 of plugin revenue
PERIOD = r"^\d{4}-(0[1-9]|1[0-2])$"


def period_of(when: dt.datetime) -> str:
    return f"{when.year:04d}-{when.month:02d}"


def partner_share(amount_minor: int, bps: int) -> int:
    return amount_minor * bps // 10000


def _accrue(session: Session, *, ref: str, plugin: Plugin, org_id: int, kind: str, amount: int, quantity: int,
            version: PluginVersion, when: dt.datetime) -> RevenueEntry | None:
    repo = PartnerRepository(session)
    if amount <= 0 or repo.revenue_exists(ref):
        return None
    entry = RevenueEntry(source_ref=ref, plugin_id=plugin.id, partner_id=plugin.partner_id, org_id=org_id, kind=kind,
                         period=period_of(when), amount_minor=amount, currency="usd",
                         share_bps=share_bps(version.manifest), quantity=quantity)
    repo.add(entry)
    return entry


def accrue_install(session: Session, inst: PluginInstall, plugin: Plugin, version: PluginVersion,
                   when: dt.datetime | None = None) -> RevenueEntry | None:
    """Charge a monthly plugin's subscription for ``when``'s month (once per plugin, org and month)."""
    pricing = version.manifest.get("pricing", {})
    if pricing.get("model") != "monthly" or inst.status != "active" or inst.mode == "test":
        return None  # test-mode installs never accrue partner revenue
    when = when or utcnow()
    return _accrue(session, ref=f"sub:{plugin.id}:{inst.org_id}:{period_of(when)}", plugin=plugin,
                   org_id=inst.org_id, kind="subscription", amount=int(pricing["monthly_minor"]), quantity=1,
                   version=version, when=when)


def accrue_runs(session: Session, ev: Any, installs: list[tuple[PluginInstall, Plugin, PluginVersion]]) -> int:
    """Record per-run usage of the plugins a completed job used.

    A job uses a plugin when the event names it (``plugins``) or when its pipeline has an ``http``
    step calling one of the plugin's actions, by name or by URL (the jobs runtime's step, signed to
    the partner: :mod:`tools.partner_api.actions`).
    """
    if ev.payload.get("livemode") is False:
        return 0  # a test job's run never accrues partner revenue
    repo = PartnerRepository(session)
    named = ev.payload.get("plugins")
    step_urls: list[str] = []
    if not isinstance(named, list):
        named = []
        pid = ev.payload.get("pipeline_id")
        if isinstance(pid, int):
            http_steps = [st for st in repo.pipeline_steps(pid) if st.get("kind") == "http"]
            named = [st["plugin"] for st in http_steps if st.get("plugin")]
            step_urls = [str(st["url"]) for st in http_steps if st.get("url")]
    n = 0
    for inst, plugin, version in installs:
        pricing = version.manifest.get("pricing", {})
        if pricing.get("model") != "per_run":
            continue
        actions = [a["url"] for a in (version.manifest.get("endpoints") or {}).get("actions", [])]
        if plugin.slug not in named and not any(endpoint_matches(u, a) for u in step_urls for a in actions):
            continue
        credits = int(pricing["credits_per_run"])
        if _accrue(session, ref=f"run:{ev.uid}:{inst.id}", plugin=plugin, org_id=inst.org_id, kind="per_run",
                   amount=credits * CREDIT_MINOR, quantity=1, version=version, when=ev.created_at):
            n += 1
    return n


class PeriodIn(BaseModel):
    period: str = Field(pattern=PERIOD, description="Month, YYYY-MM")


class AccrueResult(BaseModel):
    created: int


@tool("payouts.accrue_subscriptions", risk="financial")
def accrue_subscriptions(ctx: ToolContext, params: PeriodIn) -> AccrueResult:
    """Charge every active monthly-plugin install for a month (idempotent; Levqor staff)."""
    require_staff(ctx, "accrue subscriptions")
    repo = PartnerRepository(ctx.session)
    year, month = map(int, params.period.split("-"))
    when = dt.datetime(year, month, 1, tzinfo=dt.UTC)
    n = 0
    for inst in repo.active_installs():
        plugin, version = repo.plugin(inst.plugin_id), repo.version(inst.version_id)
        if plugin and version and plugin.state == "listed" and accrue_install(ctx.session, inst, plugin, version, when):
            n += 1
    audit_log.record(ctx, "payouts.subscriptions_accrued", f"period:{params.period}", detail={"created": n})
    return AccrueResult(created=n)
