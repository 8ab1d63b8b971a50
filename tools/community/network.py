"""The Partner Network page's facts (benefits, revenue-share terms from policy.json, listed partners,
certified experts), the community channels from settings, the three launch announcements, and the staff
launch checklist of roadmap step 9 computed from the data."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.community.repository import CommunityRepository
from memory.insights.repository import InsightsRepository
from policies.engine import get_engine
from tools.context import ToolContext
from tools.enterprise.rbac import require_staff
from tools.identity.service import NoInput
from tools.partner_api import marketplace
from tools.registry import tool

BENEFITS: tuple[tuple[str, str], ...] = (
    ("Revenue share on every install", "Paid plugins earn you the larger part of their revenue, paid monthly "
                                       "through Stripe Connect."),
    ("A listing in the marketplace", "Reviewed plugins are listed in the Levqor marketplace and its machine-readable "
                                     "catalogue, with installs and ratings."),
    ("Sandbox and test mode", "Test keys, test credits and test webhook endpoints to build against without touching "
                              "live data."),
    ("Early access", "New APIs, the certification programme and the Insights reports before general release."),
    ("A direct line", "A partner channel with the Levqor team in the community, and review feedback on every version."),
)

LAUNCH_ANNOUNCEMENTS: tuple[dict[str, Any], ...] = (
    {"slug": "marketplace-opening", "title": "The Levqor marketplace is open",
     "summary": "Partners can now publish reviewed plugins, and every Levqor organisation can install them.",
     "body": "The Levqor plugin marketplace opens today. Partners publish plugins through the Partner API; each "
             "version is reviewed by the Levqor team before it is listed. Paid plugins share their revenue with "
             "their partner every month.",
     "link_path": "/marketplace", "segments": ["partners", "early_access"]},
    {"slug": "certification-beta", "title": "Levqor Certification Beta",
     "summary": "The Levqor certification for automation experts opens as a beta to partners and early-access "
                "developers.",
     "body": "Take the Levqor certification exam, get a verifiable credential and a listing as a certified expert "
             "on the Partner Network page.",
     "link_path": "/certification", "segments": ["partners", "early_access", "certified_experts"]},
    {"slug": "first-insights-report", "title": "The first Levqor Insights Report",
     "summary": "What automation on Levqor looks like: the first quarterly Insights Report is out.",
     "body": "Our first Insights Report covers pipelines, reliability and the partner ecosystem across the "
             "platform, in aggregate.",
     "link_path": "/insights", "segments": ["partners", "early_access", "certified_experts"]},
)


class Channel(BaseModel):
    name: str
    url: str


def community_channels() -> list[Channel]:
    """The community channels configured in settings (Discord invite, Telegram channel)."""
    s = get_settings()
    return [Channel(name=n, url=u) for n, u in (("Discord", s.community_discord_url),
                                                ("Telegram", s.community_telegram_url)) if u]


class RevenueTerms(BaseModel):
    min_partner_share_pct: float
    max_partner_share_pct: float
    platform_fee_floor_pct: float


class ListedPartner(BaseModel):
    id: int
    name: str
    plugins: int


class Benefit(BaseModel):
    title: str
    text: str


class NetworkFacts(BaseModel):
    benefits: list[Benefit]
    revenue: RevenueTerms
    partners: list[ListedPartner]
    certified_experts: int | None  # None: certification has not opened (no such tool registered)
    channels: list[Channel]


def certified_experts(session: Session) -> int | None:
    """People certified now across the platform; None while certification has not opened (no certificate
    was ever issued)."""
    from tools.certification.cert_issue import platform_certified_count

    count = platform_certified_count(session)
    return count if count or _any_certificate(session) else None


def _any_certificate(session: Session) -> bool:
    from memory.certification.models import Certificate

    return session.query(Certificate.id).first() is not None


def network_facts(session: Session) -> NetworkFacts:
    """What the Partner Network page shows."""
    rs = get_engine().doc.revenue_share
    doc = marketplace.public_catalogue(session)
    counts: dict[str, int] = {}
    for p in doc.plugins:
        counts[p.partner] = counts.get(p.partner, 0) + 1
    partners = []
    for name, n in sorted(counts.items()):
        pid = next((marketplace.publisher_id(session, p.id) for p in doc.plugins if p.partner == name), None)
        partners.append(ListedPartner(id=pid or 0, name=name, plugins=n))
    return NetworkFacts(benefits=[Benefit(title=t, text=x) for t, x in BENEFITS],
                        revenue=RevenueTerms(min_partner_share_pct=round(rs.min_partner_share * 100, 1),
                                             max_partner_share_pct=round(rs.max_partner_share * 100, 1),
                                             platform_fee_floor_pct=round(rs.platform_fee_floor * 100, 1)),
                        partners=partners, certified_experts=certified_experts(session), channels=community_channels())


class ChecklistItem(BaseModel):
    key: str
    title: str
    done: bool
    evidence: str


class Checklist(BaseModel):
    items: list[ChecklistItem]
    done: int
    total: int


def _announced(session: Session, slug: str) -> tuple[bool, str]:
    repo = CommunityRepository(session)
    a = repo.announcement_by_slug(slug)
    if a is None:
        return False, "not written"
    if a.status != "published":
        return False, "written, not published"
    counts = repo.delivery_counts(a.id)
    sent = sum(by.get("sent", 0) for by in counts.values())
    return True, f"published {a.published_at:%Y-%m-%d}; {sent} deliveries sent"


@tool("community.launch_checklist", risk="read")
def launch_checklist(ctx: ToolContext, params: NoInput) -> Checklist:
    """Roadmap step 9's launch items, each done or not, from the data (staff)."""
    require_staff(ctx, "read the launch checklist", read=True)
    s = ctx.session
    facts = network_facts(s)
    repo = CommunityRepository(s)
    apps = repo.application_counts()
    confirmed = sum(n for st, n in apps.items() if st != "unconfirmed")
    invites = repo.message_count("early_access_confirm")
    ch = community_channels()
    items = [
        ChecklistItem(key="partner_network", title="Partner Network page launched with listed partners",
                      done=bool(facts.partners), evidence=f"{len(facts.partners)} partners listed"),
        ChecklistItem(key="early_access", title="Developers applying for early access by email",
                      done=confirmed > 0, evidence=f"{invites} confirmation emails sent, {confirmed} confirmed, "
                                                   f"{apps.get('approved', 0)} approved"),
        ChecklistItem(key="community_channel", title="Community channel open (Discord / Telegram)", done=bool(ch),
                      evidence=", ".join(c.name for c in ch) or "no channel link in settings"),
    ]
    for key, slug, title in (("certification_beta", "certification-beta", "Certification Beta announced"),
                             ("marketplace_opening", "marketplace-opening", "Marketplace opening announced"),
                             ("insights_report", "first-insights-report", "First Insights Report published")):
        done, evidence = _announced(s, slug)
        if key == "insights_report":  # the announcement counts only with a real report to read
            first = InsightsRepository(s).first_report()
            done = done and first is not None
            evidence += (f"; report {first.period} (/insights/reports/{first.id}.pdf) in the archive" if first
                         else "; no Insights Report in the archive yet")
        items.append(ChecklistItem(key=key, title=title, done=done, evidence=evidence))
    return Checklist(items=items, done=sum(i.done for i in items), total=len(items))
