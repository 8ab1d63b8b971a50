"""The SLA (``tools/enterprise/sla.md``): the commitment per plan, measured monthly uptime from the
scheduler's ``/readyz`` probes and the monitor's ``api_down`` incidents less announced maintenance, the
service-credit table, and the credit notes owed when a month missed its commitment.

Everything here is computed from records: probes (``readiness_probes``), outage incidents
(``ops_incidents``), maintenance windows (``sla_maintenance_windows``) and the revenue ledger (the fee
the month was billed). A report can be made at any time; credits are issued only for finished months,
once per organisation and month (the credit note's unique key decides, under concurrent runs too).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.billing.models import CreditNote
from memory.billing.repository import BillingRepository
from memory.db import aware, session_scope, utcnow
from memory.identity.models import Organization
from memory.identity.repository import IdentityRepository
from memory.sla.models import MaintenanceWindow
from memory.sla.repository import OutageRow, SlaRepository
from tools.context import Principal, ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import is_staff, require_staff
from tools.errors import BadRequest, NotFound
from tools.registry import tool
from tools.schedules import Schedule

log = logging.getLogger("levqor.sla")

# The monitor's outage rules (``api_down``: consecutive failed /readyz probes; ``db_outage``: the database
# unavailable, recorded once it is back, when no probe could be stored) open these; a person may open one
# too. Pulse's uptime KPI counts the same diagnoses.
OUTAGE_DIAGNOSES: tuple[str, ...] = ("api_down", "db_outage")
MonthStr = str
MONTH_PATTERN = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"
SUPPORT_EMAIL = "support@levqor.ai"


# ---- the commitments and the credit table ---------------------------------------------------------

@dataclass(frozen=True)
class CreditTier:
    """A month whose uptime is below ``below`` % earns ``percent`` % of that month's fee."""

    below: float
    percent: int


@dataclass(frozen=True)
class Commitment:
    plan: str
    uptime_pct: float
    tiers: tuple[CreditTier, ...]

    def credit_percent(self, uptime: float | None) -> int:
        """The credit (% of the month's fee) for a measured uptime: the highest tier it falls below."""
        if uptime is None:
            return 0
        return max((t.percent for t in self.tiers if uptime < t.below), default=0)


def enterprise_target() -> float:
    """Enterprise's monthly commitment: Pulse's own uptime target (``LEVQOR_PULSE_TARGETS`` uptime)."""
    spec = get_settings().pulse_targets.get("uptime") or {}
    try:
        return float(spec.get("value", 99.98))
    except (TypeError, ValueError):
        return 99.98


def commitments() -> dict[str, Commitment]:
    """Monthly uptime commitment and credit tiers per plan; the free plan has none."""
    ent = enterprise_target()
    return {
        "enterprise": Commitment("enterprise", ent, (CreditTier(ent, 10), CreditTier(99.9, 25),
                                                     CreditTier(99.0, 50), CreditTier(95.0, 100))),
        "business": Commitment("business", 99.9, (CreditTier(99.9, 10), CreditTier(99.0, 25),
                                                   CreditTier(95.0, 50))),
        "pro": Commitment("pro", 99.5, (CreditTier(99.5, 10), CreditTier(99.0, 25))),
    }


SEVERITIES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("Sev 1", "Production down or unusable for all users (e.g. the API answers 5xx)",
     {"enterprise": "15 minutes, 24/7", "business": "1 hour, 24/7", "pro": "4 business hours"}),
    ("Sev 2", "A major feature degraded, no workaround (jobs stuck, webhooks not delivered)",
     {"enterprise": "1 hour, 24/7", "business": "4 business hours", "pro": "1 business day"}),
    ("Sev 3", "A feature impaired with a workaround, or a question about behaviour",
     {"enterprise": "4 business hours", "business": "1 business day", "pro": "2 business days"}),
    ("Sev 4", "How-to questions, feature requests, documentation",
     {"enterprise": "1 business day", "business": "2 business days", "pro": "3 business days"}),
)
CHANNELS: dict[str, str] = {
    "enterprise": "Phone hotline and shared Slack channel (Sev 1-2), email support@levqor.ai, named "
                  "technical account manager",
    "business": "Email support@levqor.ai and the in-app form; phone for Sev 1",
    "pro": "Email support@levqor.ai",
    "free": "Community forum and documentation",
}


# ---- interval arithmetic (seconds since the epoch) -----------------------------------------------

Span = tuple[float, float]


def merge(spans: list[Span]) -> list[Span]:
    """Sorted, non-overlapping union of ``spans`` (empty ones dropped)."""
    out: list[Span] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def length(spans: list[Span]) -> float:
    return sum(b - a for a, b in merge(spans))


def intersect(a: list[Span], b: list[Span]) -> list[Span]:
    out: list[Span] = []
    for x0, x1 in merge(a):
        for y0, y1 in merge(b):
            lo, hi = max(x0, y0), min(x1, y1)
            if hi > lo:
                out.append((lo, hi))
    return merge(out)


def subtract(a: list[Span], b: list[Span]) -> list[Span]:
    out: list[Span] = []
    cut = merge(b)
    for x0, x1 in merge(a):
        cur = x0
        for y0, y1 in cut:
            if y1 <= cur or y0 >= x1:
                continue
            if y0 > cur:
                out.append((cur, y0))
            cur = max(cur, y1)
        if cur < x1:
            out.append((cur, x1))
    return out


def _ts(d: dt.datetime) -> float:
    return aware(d).timestamp()


def _dt(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, dt.UTC)


# ---- measuring a period --------------------------------------------------------------------------

@dataclass(frozen=True)
class Outage:
    """An outage incident as evidence: first evidence, resolution (or None) and when it was last seen."""

    ref: str
    title: str
    detected_at: dt.datetime
    resolved_at: dt.datetime | None
    last_seen_at: dt.datetime
    demo: bool = False


@dataclass(frozen=True)
class EventSpan:
    kind: Literal["incident", "probe_failures"]
    ref: str
    title: str
    start: float
    end: float
    counted_s: float
    excluded_s: float


@dataclass(frozen=True)
class Measurement:
    eligible_s: float
    maintenance_s: float
    observed_s: float
    downtime_s: float
    excluded_downtime_s: float
    uptime_pct: float | None
    probes: int
    failed_probes: int
    events: list[EventSpan]
    gaps: list[Span]


@dataclass(frozen=True)
class ProbeEvidence:
    """What the /readyz probes say about a period: the same for every organisation, so computed once."""

    observed: list[Span]
    failed: list[Span]
    probes: int
    failed_probes: int


def probe_evidence(start: dt.datetime, end: dt.datetime, probes: list[tuple[dt.datetime, bool]],
                   interval_s: float) -> ProbeEvidence:
    """Observed and failed spans of ``[start, end)`` from ``probes`` (time, ok), oldest first: a probe stands
    for the time until the next one, at most two probe intervals; probes just before the period still speak
    for its first moments."""
    t0, t1 = _ts(start), _ts(end)
    observed: list[Span] = []
    failed: list[Span] = []
    stamps = [(_ts(ts), ok) for ts, ok in probes]
    for i, (ts, ok) in enumerate(stamps):
        nxt = stamps[i + 1][0] if i + 1 < len(stamps) else ts + interval_s
        span = max(ts, t0), min(nxt, ts + 2 * interval_s, t1)
        if span[1] > span[0]:
            observed.append(span)
            if not ok:
                failed.append(span)
    in_period = [ok for ts, ok in stamps if t0 <= ts < t1]
    return ProbeEvidence(merge(observed), merge(failed), len(in_period), sum(1 for ok in in_period if not ok))


def measure(start: dt.datetime, end: dt.datetime, probes: list[tuple[dt.datetime, bool]] | ProbeEvidence,
            outages: list[Outage], maintenance: list[tuple[dt.datetime, dt.datetime]],
            interval_s: float) -> Measurement:
    """Measure ``[start, end)``: downtime is the union of failed-probe spans and outage incidents, less
    announced maintenance; uptime is ``1 - downtime / (period - maintenance)``.

    A probe stands for the time until the next one, at most two probe intervals (the same rule as
    Pulse's uptime KPI); longer silences are unobserved gaps, reported, and not downtime unless an outage
    incident covers them (the monitor opens ``api_down`` from failed probes; a person can open one for
    time the prober itself could not see). An outage lasts from its first evidence until one probe
    interval after it was last seen, or its resolution if sooner. With nothing observed at all the
    uptime is None (not measured), never 100 %."""
    t0, t1 = _ts(start), _ts(end)
    if t1 <= t0:
        return Measurement(0, 0, 0, 0, 0, None, 0, 0, [], [])

    def clip(a: float, b: float) -> Span:
        return max(a, t0), min(b, t1)

    maint = merge([clip(_ts(a), _ts(b)) for a, b in maintenance])
    eligible = (t1 - t0) - length(maint)
    evidence = probes if isinstance(probes, ProbeEvidence) else probe_evidence(start, end, probes, interval_s)
    observed, failed = evidence.observed, evidence.failed
    events: list[EventSpan] = []
    outage_spans: list[Span] = []
    for o in outages:
        until = _ts(o.last_seen_at) + interval_s
        if o.resolved_at is not None:
            until = min(until, _ts(o.resolved_at))
        span = clip(_ts(o.detected_at), until)
        if span[1] <= span[0]:
            continue
        outage_spans.append(span)
        events.append(EventSpan("incident", o.ref, o.title, span[0], span[1], length(subtract([span], maint)),
                                length(intersect([span], maint))))
    for a, b in subtract(merge(failed), outage_spans):
        events.append(EventSpan("probe_failures", f"probes:{int(a)}", "Failed /readyz probes (no incident opened)",
                                a, b, length(subtract([(a, b)], maint)), length(intersect([(a, b)], maint))))
    down = merge(failed + outage_spans)
    counted = subtract(down, maint)
    seen = subtract(merge(observed + outage_spans), maint)
    observed_s = length(seen)
    downtime = length(counted)
    uptime = None if observed_s <= 0 or eligible <= 0 else round(100.0 * (1 - downtime / eligible), 4)
    gaps = [g for g in subtract(subtract([(t0, t1)], maint), seen) if g[1] - g[0] > 2 * interval_s]
    return Measurement(eligible_s=eligible, maintenance_s=length(maint), observed_s=observed_s,
                       downtime_s=downtime, excluded_downtime_s=length(intersect(down, maint)), uptime_pct=uptime,
                       probes=evidence.probes, failed_probes=evidence.failed_probes,
                       events=sorted(events, key=lambda e: e.start), gaps=gaps)


# ---- the report ----------------------------------------------------------------------------------

def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime]:
    y, m = int(month[:4]), int(month[5:7])
    start = dt.datetime(y, m, 1, tzinfo=dt.UTC)
    end = dt.datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=dt.UTC)
    return start, end


def previous_month(now: dt.datetime) -> str:
    return (now.date().replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")


class SlaReportIn(BaseModel):
    month: str | None = Field(None, pattern=MONTH_PATTERN, description="YYYY-MM (UTC); default: this month")
    org: str | None = Field(None, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]{0,63}$",
                            description="Organisation slug (Levqor staff only; default: the caller's)")


class CreditTierRead(BaseModel):
    below_pct: float
    percent: int


class SlaEvent(BaseModel):
    kind: Literal["incident", "probe_failures"]
    ref: str
    title: str
    start: dt.datetime
    end: dt.datetime
    counted_s: float = Field(description="Seconds of this event that count as downtime")
    excluded_s: float = Field(description="Seconds inside announced maintenance (excluded)")
    status: Literal["counted", "excluded", "partly excluded"]


class WindowRead(BaseModel):
    id: int
    org_id: int | None
    starts_at: dt.datetime
    ends_at: dt.datetime
    title: str
    description: str
    announced_at: dt.datetime
    announced_by: str
    cancelled: bool
    demo: bool

    @classmethod
    def of(cls, w: MaintenanceWindow) -> WindowRead:
        return cls(id=w.id, org_id=w.org_id, starts_at=aware(w.starts_at), ends_at=aware(w.ends_at), title=w.title,
                   description=w.description, announced_at=aware(w.announced_at), announced_by=w.announced_by,
                   cancelled=w.cancelled_at is not None, demo=w.demo)


class CreditNoteRead(BaseModel):
    id: int
    org_id: int
    period: str
    source: str
    amount_minor: int
    currency: str
    percent: int
    fee_minor: int
    plan: str
    reason: str
    status: str
    demo: bool
    created_at: dt.datetime

    @classmethod
    def of(cls, n: CreditNote) -> CreditNoteRead:
        return cls(id=n.id, org_id=n.org_id, period=n.period, source=n.source, amount_minor=n.amount_minor,
                   currency=n.currency, percent=n.percent, fee_minor=n.fee_minor, plan=n.plan, reason=n.reason,
                   status=n.status, demo=n.demo, created_at=aware(n.created_at))


class SlaReport(BaseModel):
    org_id: int
    org_slug: str
    org_name: str
    month: str
    period_start: dt.datetime
    period_end: dt.datetime = Field(description="End of the measured period (now, for a month in progress)")
    in_progress: bool = Field(description="The month has not ended: figures are month to date, no credit yet")
    generated_at: dt.datetime
    plan: str
    commitment_pct: float | None = Field(description="Monthly uptime commitment; None: the plan has no SLA")
    uptime_pct: float | None = Field(description="Measured uptime; None when nothing was observed")
    met: bool | None
    eligible_s: float = Field(description="Seconds in the period less announced maintenance")
    downtime_s: float
    allowed_downtime_s: float = Field(description="Downtime the commitment allows over the eligible time")
    maintenance_s: float
    excluded_downtime_s: float = Field(description="Downtime inside announced maintenance (not counted)")
    coverage_pct: float = Field(description="Share of the eligible time observed by probes or incidents")
    probes: int
    failed_probes: int
    events: list[SlaEvent]
    maintenance: list[WindowRead]
    unobserved_gaps: list[tuple[dt.datetime, dt.datetime]]
    credit_table: list[CreditTierRead]
    credit_percent: int
    fee_minor: int = Field(description="The month's fee from the revenue ledger (subscription invoices)")
    credit_minor: int = Field(description="Credit owed for the month (0 when met, in progress or no fee)")
    currency: str
    credit_note: CreditNoteRead | None
    credit_status: Literal["none", "owed", "issued", "pending", "not_measured", "no_sla"]
    notes: list[str]
    demo: bool = Field(description="Some evidence is demo data (seeded, labelled)")


def _org_for(ctx: ToolContext, slug: str | None) -> Organization:
    repo = IdentityRepository(ctx.session)
    if slug is None:
        org = repo.org(ctx.org_id)
    else:
        own = repo.org(ctx.principal.org_id) if ctx.principal.org_id is not None else None
        if own is None or own.slug != slug:
            require_staff(ctx, "read another organisation's SLA report", read=True)
        org = repo.org_by_slug(slug)
    if org is None:
        raise NotFound("organisation not found", field="org")
    return org


def _fee(session: Session, org: Organization, start: dt.datetime, end: dt.datetime) -> tuple[int, str, str, bool]:
    """(fee in minor units, plan, currency, demo) of the month from the revenue ledger: the subscription
    invoice covering the month's last moment (else its first), a yearly one as a twelfth."""
    repo = BillingRepository(session)
    for at in (end - dt.timedelta(microseconds=1), start):
        rows = [r for r in repo.subscriptions_covering(at, org_id=org.id) if r.kind == "subscription"]
        if rows:
            r = rows[-1]
            return (r.amount_minor // (12 if r.interval == "year" else 1), r.plan or org.plan, r.currency, r.demo)
    return 0, org.plan, "usd", False


@dataclass(frozen=True)
class MonthProbes:
    """The evidence of the platform's /readyz probes for a month (up to a moment) and whether any is demo."""

    evidence: ProbeEvidence
    demo: bool


def month_probes(session: Session, month: str, now: dt.datetime | None = None) -> MonthProbes:
    """What the platform's /readyz probes say about ``month`` (up to ``now``): the same for every organisation,
    so a run over many organisations reads and measures them once."""
    now = now or utcnow()
    start, month_end = month_bounds(month)
    end = min(month_end, now)
    interval = float(get_settings().pulse_probe_interval_s)
    # Probes of the last two intervals before the month speak for its first moments.
    rows = SlaRepository(session).probes(start - dt.timedelta(seconds=2 * interval), end)
    return MonthProbes(probe_evidence(start, end, [(ts, ok) for ts, ok, _ in rows], interval),
                       any(d for _, _, d in rows))


def build_report(session: Session, org: Organization, month: str, now: dt.datetime | None = None,
                 probes: MonthProbes | None = None) -> SlaReport:
    """The SLA report of ``org`` for ``month`` (month to date when it has not ended); ``probes`` from
    ``month_probes`` for the same month and ``now`` when the caller already has them."""
    now = now or utcnow()
    start, month_end = month_bounds(month)
    if start > now:
        raise BadRequest("that month has not started yet", field="month")
    end = min(month_end, now)
    in_progress = month_end > now
    interval = float(get_settings().pulse_probe_interval_s)
    repo = SlaRepository(session)
    fee, plan, currency, fee_demo = _fee(session, org, start, month_end)
    commitment = commitments().get(plan)
    if probes is None:
        probes = month_probes(session, month, now)
    outages = repo.outages(org_id=org.id, start=start, end=end, diagnoses=OUTAGE_DIAGNOSES)
    windows = repo.windows(org_id=org.id, start=start, end=month_end)
    m = measure(start, end, probes.evidence,
                [_outage(o) for o in outages], [(w.starts_at, w.ends_at) for w in windows], interval)
    notes: list[str] = []
    met: bool | None = None
    percent = 0
    credit = 0
    note_row = BillingRepository(session).credit_note(org.id, month)
    status: Literal["none", "owed", "issued", "pending", "not_measured", "no_sla"]
    if commitment is None:
        status = "no_sla"
        notes.append(f"The {plan} plan carries no uptime commitment; figures are shown for information.")
    elif m.uptime_pct is None:
        status = "not_measured"
        notes.append("No /readyz probe or outage incident was recorded in this period: uptime is not measured "
                     "(is the scheduler running?). Open a support ticket to claim for unobserved time.")
    else:
        met = m.uptime_pct >= commitment.uptime_pct
        percent = commitment.credit_percent(m.uptime_pct)
        credit = fee * percent // 100
        if in_progress:
            status = "pending"
            notes.append(f"Month in progress: measured until {end:%Y-%m-%d %H:%M} UTC. Credits are determined "
                         "after the month ends.")
        elif note_row is not None:
            status = "issued"
        elif credit > 0:
            status = "owed"
        else:
            status = "none"
        if percent and not fee:
            notes.append("No subscription invoice covers this month in the revenue ledger: the credit is a "
                         "percentage of nothing.")
    if m.gaps:
        notes.append(f"{len(m.gaps)} unobserved gap(s) longer than two probe intervals (the prober was not "
                     "running); they are not counted as downtime unless an outage incident covers them.")
    allowed = m.eligible_s * (1 - commitment.uptime_pct / 100) if commitment else 0.0

    def ev_status(e: EventSpan) -> Literal["counted", "excluded", "partly excluded"]:
        if e.excluded_s <= 0:
            return "counted"
        return "excluded" if e.counted_s <= 0 else "partly excluded"

    demo = (fee_demo or probes.demo or any(o.demo for o in outages) or any(w.demo for w in windows)
            or (note_row is not None and note_row.demo))
    return SlaReport(
        org_id=org.id, org_slug=org.slug, org_name=org.name, month=month, period_start=start, period_end=end,
        in_progress=in_progress, generated_at=now, plan=plan,
        commitment_pct=commitment.uptime_pct if commitment else None, uptime_pct=m.uptime_pct, met=met,
        eligible_s=m.eligible_s, downtime_s=round(m.downtime_s, 3), allowed_downtime_s=round(allowed, 3),
        maintenance_s=m.maintenance_s, excluded_downtime_s=round(m.excluded_downtime_s, 3),
        coverage_pct=round(100.0 * m.observed_s / m.eligible_s, 2) if m.eligible_s > 0 else 0.0,
        probes=m.probes, failed_probes=m.failed_probes,
        events=[SlaEvent(kind=e.kind, ref=e.ref, title=e.title, start=_dt(e.start), end=_dt(e.end),
                         counted_s=round(e.counted_s, 3), excluded_s=round(e.excluded_s, 3), status=ev_status(e))
                for e in m.events],
        maintenance=[WindowRead.of(w) for w in windows],
        unobserved_gaps=[(_dt(a), _dt(b)) for a, b in m.gaps[:20]],
        credit_table=[CreditTierRead(below_pct=t.below, percent=t.percent) for t in commitment.tiers]
        if commitment else [],
        credit_percent=percent, fee_minor=fee, credit_minor=0 if in_progress else credit, currency=currency,
        credit_note=CreditNoteRead.of(note_row) if note_row is not None else None, credit_status=status,
        notes=notes, demo=demo)


def _outage(o: OutageRow) -> Outage:
    return Outage(f"incident:{o.id}", o.title, o.detected_at, o.resolved_at, o.last_seen_at, o.demo)


@tool("sla.report", risk="read")
def sla_report(ctx: ToolContext, params: SlaReportIn) -> SlaReport:
    """Report an organisation's monthly SLA: measured uptime, incidents counted and excluded, credit owed."""
    org = _org_for(ctx, params.org)
    return build_report(ctx.session, org, params.month or utcnow().strftime("%Y-%m"))


# ---- credit notes --------------------------------------------------------------------------------

class CreditRunIn(BaseModel):
    month: str = Field(pattern=MONTH_PATTERN, description="A finished month, YYYY-MM (UTC)")
    org: str | None = Field(None, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]{0,63}$",
                            description="One organisation's slug; default: every organisation with an SLA")


class CreditRunOut(BaseModel):
    month: str
    evaluated: int
    issued: list[CreditNoteRead]
    already_issued: int


def issue_credit(ctx: ToolContext, org: Organization, month: str, *, now: dt.datetime | None = None,
                 demo: bool = False, probes: MonthProbes | None = None) -> tuple[CreditNote | None, bool]:
    """Write the credit note ``org`` is owed for finished ``month`` (and its audit entries) when the
    commitment was missed: (note or None, whether this call wrote it). Safe to repeat."""
    report = build_report(ctx.session, org, month, now, probes)
    if report.in_progress:
        raise BadRequest("credits are issued only for finished months", field="month")
    repo = BillingRepository(ctx.session)
    existing = repo.credit_note(org.id, month)
    if existing is not None or report.credit_minor <= 0:
        return existing, False
    note = CreditNote(org_id=org.id, period=month, source="sla", amount_minor=report.credit_minor,
                      currency=report.currency, percent=report.credit_percent, fee_minor=report.fee_minor,
                      plan=report.plan, demo=demo or report.demo, created_by=ctx.principal.actor,
                      reason=f"SLA {month}: measured uptime {report.uptime_pct:.3f} % against "
                             f"{report.commitment_pct:g} % committed; {report.credit_percent} % service credit")
    if not repo.add_credit_note(note):
        return repo.credit_note(org.id, month), False
    detail = {"month": month, "uptime_pct": report.uptime_pct, "commitment_pct": report.commitment_pct,
              "percent": report.credit_percent, "fee_minor": report.fee_minor, "amount_minor": report.credit_minor,
              "downtime_s": report.downtime_s, "events": [e.ref for e in report.events if e.counted_s > 0]}
    audit_log.record_platform(ctx, "billing.credit_note_issued", f"credit_note:{note.id}", affected_orgs=[org.id],
                              detail=detail)
    return note, True


@tool("sla.issue_credits", risk="financial")
def issue_credits(ctx: ToolContext, params: CreditRunIn) -> CreditRunOut:
    """Issue the service-credit notes owed for a finished month (Levqor staff; once per organisation)."""
    require_staff(ctx, "issue SLA service credits")
    if month_bounds(params.month)[1] > utcnow():
        raise BadRequest("credits are issued only for finished months", field="month")
    repo = SlaRepository(ctx.session)
    if params.org is not None:
        one = IdentityRepository(ctx.session).org_by_slug(params.org)
        if one is None:
            raise NotFound("organisation not found", field="org")
        orgs = [one]
    else:
        ids = [i for i, _, _ in repo.orgs_on_plans(tuple(commitments()))]
        orgs = [o for o in (IdentityRepository(ctx.session).org(i) for i in ids) if o is not None]
    out = CreditRunOut(month=params.month, evaluated=0, issued=[], already_issued=0)
    now = utcnow()
    probes = month_probes(ctx.session, params.month, now)
    for org in orgs:
        out.evaluated += 1
        note, wrote = issue_credit(ctx, org, params.month, now=now, probes=probes)
        if wrote and note is not None:
            out.issued.append(CreditNoteRead.of(note))
        elif note is not None:
            out.already_issued += 1
    return out


def run_monthly(now: dt.datetime | None = None) -> None:
    """Scheduler job (leader only, hourly, idempotent): during a month's first three days, issue the
    credits owed for the month before (the days cover a scheduler that was down on the 1st)."""
    now = now or utcnow()
    if now.day > 3:
        return
    month = previous_month(now)
    with session_scope() as s:
        ids = [i for i, _, _ in SlaRepository(s).orgs_on_plans(tuple(commitments()))]
        probes = month_probes(s, month, now) if ids else None
    system = Principal(kind="system", id="sla", org_id=None, role="admin", name="SLA monthly run")
    for org_id in ids:
        try:
            with session_scope() as s:
                org = IdentityRepository(s).org(org_id)
                if org is not None:
                    issue_credit(ToolContext(s, system), org, month, now=now, probes=probes)
        except Exception:
            log.exception("SLA credit run failed", extra={"fields": {"org_id": org_id, "month": month}})


SCHEDULES: tuple[Schedule, ...] = (Schedule("sla.credits", 3600.0, run_monthly),)


# ---- maintenance windows -------------------------------------------------------------------------

class MaintenanceIn(BaseModel):
    starts_at: dt.datetime = Field(description="Start (UTC, with offset)")
    ends_at: dt.datetime = Field(description="End (UTC, with offset); at most 12 hours after the start")
    title: str = Field(min_length=3, max_length=200)
    description: str = Field("", max_length=4000)
    org: str | None = Field(None, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]{0,63}$",
                            description="Only this organisation (slug); default: every organisation")

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, v: dt.datetime) -> dt.datetime:
        if v.tzinfo is None:
            raise ValueError("needs a UTC offset")
        if not 2000 <= v.year <= 2100:
            raise ValueError("must be between the years 2000 and 2100")
        return v.astimezone(dt.UTC)

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, v: dt.datetime, info: ValidationInfo) -> dt.datetime:
        start = info.data.get("starts_at")
        if isinstance(start, dt.datetime) and start.tzinfo is not None:
            if v <= start:
                raise ValueError("must be after starts_at")
            if v - start > dt.timedelta(hours=12):
                raise ValueError("a maintenance window lasts at most 12 hours")
        return v


NOTICE = dt.timedelta(hours=72)


def announce(ctx: ToolContext, params: MaintenanceIn, *, demo: bool = False,
             now: dt.datetime | None = None) -> MaintenanceWindow:
    """Record a window announced ``NOTICE`` ahead (``now`` lets the demo seed date its history)."""
    now = now or utcnow()
    if params.starts_at - now < NOTICE:
        raise BadRequest("maintenance must be announced at least 72 hours ahead to be excluded", field="starts_at")
    org_id = None
    if params.org is not None:
        org = IdentityRepository(ctx.session).org_by_slug(params.org)
        if org is None:
            raise NotFound("organisation not found", field="org")
        org_id = org.id
    w = SlaRepository(ctx.session).add_window(MaintenanceWindow(
        org_id=org_id, starts_at=params.starts_at, ends_at=params.ends_at, title=params.title,
        description=params.description, announced_at=now, announced_by=ctx.principal.actor, demo=demo))
    affected = [org_id] if org_id is not None else []
    audit_log.record_platform(ctx, "sla.maintenance_announced", f"maintenance:{w.id}", affected_orgs=affected,
                              detail={"starts_at": w.starts_at.isoformat(), "ends_at": w.ends_at.isoformat(),
                                      "title": w.title, "org_id": org_id})
    return w


@tool("sla.maintenance.announce", risk="write")
def announce_maintenance(ctx: ToolContext, params: MaintenanceIn) -> WindowRead:
    """Announce a maintenance window (Levqor staff; at least 72 h ahead); it is excluded from downtime."""
    require_staff(ctx, "announce maintenance")
    return WindowRead.of(announce(ctx, params))


class WindowId(BaseModel):
    id: int = Field(ge=1, le=2**31 - 1)


@tool("sla.maintenance.cancel", risk="write")
def cancel_maintenance(ctx: ToolContext, params: WindowId) -> WindowRead:
    """Cancel an announced maintenance window that has not started (Levqor staff)."""
    require_staff(ctx, "cancel maintenance")
    w = SlaRepository(ctx.session).window(params.id)
    if w is None:
        raise NotFound("maintenance window not found", field="id")
    if aware(w.starts_at) <= utcnow():
        raise BadRequest("a window that has started cannot be cancelled", field="id")
    if w.cancelled_at is None:
        w.cancelled_at = utcnow()
        audit_log.record_platform(ctx, "sla.maintenance_cancelled", f"maintenance:{w.id}",
                                  affected_orgs=[w.org_id] if w.org_id is not None else [])
    return WindowRead.of(w)


class MaintenanceQuery(BaseModel):
    days: int = Field(90, ge=1, le=800, description="Windows from this many days back, and all upcoming")


class MaintenanceList(BaseModel):
    windows: list[WindowRead]


@tool("sla.maintenance.list", risk="read")
def list_maintenance(ctx: ToolContext, params: MaintenanceQuery) -> MaintenanceList:
    """List maintenance windows that apply to the organisation (every window for Levqor staff)."""
    now = utcnow()
    staff = is_staff(ctx, read=True)
    rows = SlaRepository(ctx.session).windows(
        org_id=None if staff else ctx.org_id, start=now - dt.timedelta(days=params.days),
        end=now + dt.timedelta(days=3660), include_cancelled=True, every_org=staff)
    return MaintenanceList(windows=[WindowRead.of(w) for w in rows])


def sla_orgs(ctx: ToolContext) -> list[tuple[str, str]]:
    """(slug, plan) of every organisation on a plan with an SLA (Levqor staff: the report picker)."""
    require_staff(ctx, "list organisations' SLA reports", read=True)
    return [(slug, plan) for _, slug, plan in SlaRepository(ctx.session).orgs_on_plans(tuple(commitments()))]
