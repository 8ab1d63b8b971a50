"""Announcements: written once by staff, published to /news and the Atom feed, then delivered durably to an
email segment (partners, certified experts, early-access applicants; unsubscribed addresses skipped) and to
Discord (webhook) and Telegram (Bot API ``sendMessage``) when configured, through the SSRF-guarded client.

Every recipient is a row of ``announcement_deliveries``. A sender claims a batch (``sending`` with a lease,
committed before any send), sends each, and commits each outcome at once: a crash leaves the claimed rows to
return when their lease expires, and only a row whose send was accepted but whose outcome was not yet
committed can go out twice (the email keeps the same Message-ID, so receivers that de-duplicate drop it).
Failures are retried with backoff up to ``LEVQOR_ANNOUNCEMENT_MAX_ATTEMPTS``."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.community.models import Announcement, AnnouncementDelivery
from memory.community.repository import CommunityRepository
from memory.db import session_scope, utcnow
from memory.partner.repository import PartnerRepository
from tools.community import mailer
from tools.context import SYSTEM, ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import require_staff
from tools.errors import Conflict, NotFound
from tools.identity.service import NoInput
from tools.registry import registry, tool
from tools.schedules import Schedule
from tools.shared import ssrf

log = logging.getLogger(__name__)
Segment = Literal["partners", "certified_experts", "early_access"]
SEGMENTS: tuple[str, ...] = ("partners", "certified_experts", "early_access")
LEASE_S = 120


class AnnouncementCreate(BaseModel):
    slug: str = Field(min_length=3, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str = Field(min_length=3, max_length=200)
    summary: str = Field(min_length=3, max_length=500)
    body: str = Field(min_length=3, max_length=20000)
    link_path: str = Field("", max_length=500, pattern=r"^(/[^\s]*)?$",
                           description="A page of this site, e.g. /insights")
    segments: list[Segment] = Field(default_factory=list, max_length=3)


class AnnouncementRead(BaseModel):
    id: int
    slug: str
    title: str
    summary: str
    body: str
    link_path: str
    segments: list[str]
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime
    published_at: dt.datetime | None
    demo: bool
    deliveries: dict[str, dict[str, int]] = {}

    @classmethod
    def of(cls, a: Announcement, deliveries: dict[str, dict[str, int]] | None = None) -> AnnouncementRead:
        return cls(id=a.id, slug=a.slug, title=a.title, summary=a.summary, body=a.body, link_path=a.link_path,
                   segments=list(a.segments or []), status=a.status, created_at=a.created_at,
                   updated_at=a.updated_at, published_at=a.published_at, demo=a.demo, deliveries=deliveries or {})


class AnnouncementList(BaseModel):
    items: list[AnnouncementRead]


class AnnouncementRef(BaseModel):
    announcement_id: int = Field(ge=1, le=2**31 - 1)


@tool("announcements.create", risk="write")
def create_announcement(ctx: ToolContext, params: AnnouncementCreate) -> AnnouncementRead:
    """Write an announcement (a draft until published; staff)."""
    require_staff(ctx, "write announcements")
    repo = CommunityRepository(ctx.session)
    if repo.announcement_by_slug(params.slug) is not None:
        raise Conflict(f"announcement {params.slug!r} exists", field="slug")
    row = Announcement(slug=params.slug, title=params.title, summary=params.summary, body=params.body,
                       link_path=params.link_path, segments=list(params.segments), created_by=ctx.principal.actor,
                       demo=bool(ctx.extra.get("demo")))
    repo.add(row)
    audit_log.record_platform(ctx, "announcements.created", f"announcement:{row.id}", detail={"slug": row.slug})
    return AnnouncementRead.of(row)


@tool("announcements.list", risk="read")
def list_announcements(ctx: ToolContext, params: NoInput) -> AnnouncementList:
    """List every announcement, drafts too, with delivery progress (staff)."""
    require_staff(ctx, "list draft announcements", read=True)
    repo = CommunityRepository(ctx.session)
    return AnnouncementList(items=[AnnouncementRead.of(a, repo.delivery_counts(a.id))
                                   for a in repo.announcements(published_only=False)])


def certified_expert_emails(session: Session) -> list[str]:
    """Certified experts' emails: the certification area's ``certification.experts`` tool (opted-in holders of
    a valid certificate), asked as the platform, the one caller it gives emails to."""
    out = registry.invoke("certification.experts", ToolContext(session, SYSTEM), {"limit": 10_000}).model_dump()
    return [str(i["email"]).lower() for i in out.get("items", []) if i.get("email")]


def segment_emails(session: Session, segment: str) -> list[str]:
    """The addresses of a segment (before unsubscribes)."""
    if segment == "partners":
        return sorted({p.contact_email.lower() for p in PartnerRepository(session).partners()
                       if p.status == "active" and p.contact_email})
    if segment == "early_access":  # confirmed addresses only (double opt-in); rejected ones are not written to
        return sorted(set(CommunityRepository(session).applicant_emails(("pending", "approved", "waitlisted"))))
    if segment == "certified_experts":
        return sorted(set(certified_expert_emails(session)))
    return []


def channels() -> list[str]:
    s = get_settings()
    out = []
    if s.community_discord_webhook_url:
        out.append("discord")
    if s.community_telegram_bot_token and s.community_telegram_chat_id:
        out.append("telegram")
    return out


@tool("announcements.publish", risk="write")
def publish_announcement(ctx: ToolContext, params: AnnouncementRef) -> AnnouncementRead:
    """Publish an announcement to /news and the feed and queue its email segment and chat posts (staff)."""
    require_staff(ctx, "publish announcements")
    repo = CommunityRepository(ctx.session)
    row = repo.announcement(params.announcement_id)
    if row is None:
        raise NotFound(f"announcement {params.announcement_id} not found", field="announcement_id")
    if row.status == "published":
        raise Conflict("the announcement is already published", field="announcement_id")
    now = utcnow()
    row.status, row.published_at, row.updated_at = "published", now, now
    queued = enqueue(ctx.session, row)
    audit_log.record_platform(ctx, "announcements.published", f"announcement:{row.id}",
                              detail={"slug": row.slug, "queued": queued})
    return AnnouncementRead.of(row, repo.delivery_counts(row.id))


def enqueue(session: Session, row: Announcement) -> int:
    """Add one delivery row per new recipient of the announcement (idempotent); return how many were added.

    Demo announcements (``make run``'s seed) are web only: they email and post to nobody."""
    if row.demo:
        return 0
    repo = CommunityRepository(session)
    have = repo.delivery_keys(row.id)
    added = 0
    wanted: list[tuple[str, str, str]] = []
    for seg in row.segments or []:
        wanted += [("email", e, seg) for e in segment_emails(session, seg)]
    wanted += [(ch, ch, "") for ch in channels()]
    for channel, recipient, seg in wanted:
        if (channel, recipient) in have:
            continue
        have.add((channel, recipient))
        session.add(AnnouncementDelivery(announcement_id=row.id, channel=channel, recipient=recipient, segment=seg))
        added += 1
    session.flush()
    return added


# ---- sending --------------------------------------------------------------------------------------

def _url(row: Announcement) -> str:
    return f"{get_settings().base_url.rstrip('/')}/news/{row.slug}"


def _email(session: Session, row: Announcement, d: AnnouncementDelivery) -> None:
    more = f"\nRead more: {get_settings().base_url.rstrip('/')}{row.link_path}\n" if row.link_path else ""
    mailer.send(session, kind="announcement", to=d.recipient, announcement_id=row.id, subject=row.title,
                body=f"{row.summary}\n\n{row.body}\n{more}\nOn the web: {_url(row)}\n",
                uid=f"announcement-{row.id}-{d.id}", raise_errors=True)


def _post(url: str, payload: dict[str, Any]) -> None:
    s = get_settings()
    resp = ssrf.request("POST", url, headers={"Content-Type": "application/json"},
                        content=json.dumps(payload).encode(), timeout=s.hooks_timeout_s)
    if resp.status_code >= 300:
        raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")


def _discord(row: Announcement) -> None:
    _post(get_settings().community_discord_webhook_url,
          {"content": f"**{row.title}**\n{row.summary}\n{_url(row)}", "allowed_mentions": {"parse": []}})


def _telegram(row: Announcement) -> None:
    s = get_settings()
    url = f"{s.community_telegram_api_base.rstrip('/')}/bot{s.community_telegram_bot_token}/sendMessage"
    _post(url, {"chat_id": s.community_telegram_chat_id, "text": f"{row.title}\n\n{row.summary}\n{_url(row)}",
                "disable_web_page_preview": False})


def _backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(3600, 30 * 2 ** max(0, attempts - 1)))


def send_batch(ann_id: int | None = None, *, limit: int | None = None) -> tuple[int, int]:
    """Claim and send one batch of due deliveries; return (sent, failed this round). Each outcome commits alone."""
    s = get_settings()
    now = utcnow()
    with session_scope() as session:  # the claim commits before anything is sent
        claimed = [(d.id, d.announcement_id) for d in CommunityRepository(session).claim_due(
            now, now + dt.timedelta(seconds=LEASE_S), limit or s.announcement_batch_size, ann_id)]
    sent = failed = 0
    for delivery_id, a_id in claimed:
        with session_scope() as session:
            repo = CommunityRepository(session)
            d, row = repo.delivery(delivery_id), repo.announcement(a_id)
            if d is None or row is None or d.state != "sending":
                continue
            d.attempts += 1
            if d.channel == "email" and repo.unsubscribed(d.recipient):
                d.state, d.lease_until = "skipped", None
                continue
            try:
                if d.channel == "email":
                    _email(session, row, d)
                elif d.channel == "discord":
                    _discord(row)
                else:
                    _telegram(row)
            except Exception as exc:
                d.last_error = f"{type(exc).__name__}: {exc}"[:1000]
                d.lease_until = None
                if d.attempts >= s.announcement_max_attempts:
                    d.state = "failed"
                else:
                    d.state, d.next_attempt_at = "pending", utcnow() + _backoff(d.attempts)
                failed += 1
                log.warning("announcement delivery failed", extra={"fields": {"delivery": d.id, "error": d.last_error}})
                continue
            d.state, d.sent_at, d.lease_until, d.last_error = "sent", utcnow(), None, ""
            sent += 1
    return sent, failed


def progress(ann_id: int) -> dict[str, int]:
    """Delivery counts of an announcement across channels: total, sent, failed, skipped, pending."""
    with session_scope(read_only=True) as session:
        counts = CommunityRepository(session).delivery_counts(ann_id)
    out = {"total": 0, "sent": 0, "failed": 0, "skipped": 0, "pending": 0, "sending": 0}
    for by_state in counts.values():
        for st, n in by_state.items():
            out[st] = out.get(st, 0) + n
            out["total"] += n
    return out


def send_all(ann_id: int, *, on_batch: Callable[[dict[str, int]], None] | None = None,
             retry_now: bool = False) -> dict[str, int]:
    """Send batches until nothing of the announcement is due (``retry_now``: retries do not wait their backoff)."""
    while True:
        if retry_now:
            with session_scope() as session:
                session.query(AnnouncementDelivery).filter(
                    AnnouncementDelivery.announcement_id == ann_id, AnnouncementDelivery.state == "pending"
                ).update({"next_attempt_at": utcnow()})
        sent, failed = send_batch(ann_id)
        p = progress(ann_id)
        if on_batch:
            on_batch(p)
        if sent == 0 and failed == 0:
            return p


def deliver_due() -> None:
    """The scheduler's round: send what is due of every announcement, batch after batch."""
    while send_batch() != (0, 0):
        pass


def schedules() -> list[Schedule]:
    return [Schedule("announcements.deliver", get_settings().announcement_send_interval_s, deliver_due)]


# ---- the feed -------------------------------------------------------------------------------------

def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def atom_feed(session: Session) -> str:
    """The published announcements as an Atom 1.0 document (RFC 4287)."""
    from xml.sax.saxutils import escape, quoteattr

    base = get_settings().base_url.rstrip("/")
    items = CommunityRepository(session).announcements(published_only=True, limit=50)
    updated = max((a.updated_at for a in items), default=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    host = re.sub(r"^https?://", "", base).split("/")[0].split(":")[0] or "levqor.ai"
    out = ['<?xml version="1.0" encoding="utf-8"?>', '<feed xmlns="http://www.w3.org/2005/Atom">',
           "<title>Levqor news</title>", "<subtitle>Announcements from the Levqor Partner Network</subtitle>",
           f"<id>{escape(base)}/news</id>", f"<updated>{_iso(updated)}</updated>",
           f'<link rel="self" type="application/atom+xml" href={quoteattr(base + "/news.atom")}/>',
           f'<link rel="alternate" type="text/html" href={quoteattr(base + "/news")}/>',
           "<author><name>Levqor</name></author>"]
    for a in items:
        published = a.published_at or a.created_at
        out += ["<entry>", f"<title>{escape(a.title)}</title>",
                f"<id>tag:{escape(host)},{published.date().isoformat()}:announcement:{a.id}</id>",
                f'<link rel="alternate" type="text/html" href={quoteattr(base + "/news/" + a.slug)}/>',
                f"<published>{_iso(published)}</published>", f"<updated>{_iso(a.updated_at)}</updated>",
                f"<summary>{escape(a.summary)}</summary>",
                f'<content type="text">{escape(a.body)}</content>', "</entry>"]
    out.append("</feed>")
    return "\n".join(out) + "\n"


def published(session: Session) -> list[AnnouncementRead]:
    """Published announcements, newest first (public)."""
    return [AnnouncementRead.of(a) for a in CommunityRepository(session).announcements(published_only=True)]


def published_one(session: Session, slug: str) -> AnnouncementRead | None:
    """A published announcement by slug (public), or None."""
    row = CommunityRepository(session).announcement_by_slug(slug)
    return AnnouncementRead.of(row) if row is not None and row.status == "published" else None
