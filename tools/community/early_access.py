"""Early access to the Partner Network: apply (honeypot, signed fill-time stamp, per-IP limit), confirm the
address by a signed link (double opt-in), staff review (approve, reject, waitlist) with templated emails,
unsubscribe. Approval creates the partner account through the existing code: a new organisation
(``org.create``) registered as a partner (``partners.register``) whose admin is invited by email
(``users.invite``); an applicant who already has a developer account gets that organisation registered."""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, EmailStr, Field
from sqlalchemy.orm import Session

from levqor.settings import get_settings
from memory.community.models import CommunityUnsubscribe, EarlyAccessApplication
from memory.community.repository import CommunityRepository
from memory.db import session_scope, utcnow
from memory.identity.repository import IdentityRepository
from memory.partner.repository import PartnerRepository
from tools.community import mailer, tokens
from tools.context import Principal, ToolContext
from tools.dev_portal.accounts import InviteCreate, invite
from tools.enterprise import audit_log
from tools.enterprise.rbac import require_staff
from tools.errors import BadRequest, Conflict, NotFound, RateLimited, Unprocessable
from tools.identity.service import OrgCreate, create_org
from tools.partner_api.partners import PartnerRegister, register_partner
from tools.registry import tool
from tools.shared.ratelimit import per_seconds, rate_limiter

log = logging.getLogger(__name__)
FORM = "early-access-form"
CONFIRM = "early-access-confirm"
NAMESPACE = "LEVQOR_EARLY_ACCESS"
Status = Literal["unconfirmed", "pending", "approved", "rejected", "waitlisted"]


class ApplicationCreate(BaseModel):
    email: EmailStr
    name: str = Field(min_length=1, max_length=200)
    company: str = Field(min_length=1, max_length=200)
    website: str = Field("", max_length=500, pattern=r"^(https?://\S+)?$")
    use_case: str = Field(min_length=20, max_length=4000,
                          description="What you want to build on Levqor (20 characters or more)")
    form_token: str = Field(min_length=10, max_length=200,
                            description="The signed stamp from GET /v1/early-access/form")
    homepage: str = Field("", max_length=500, description="Leave empty (a field only bots fill in)")


class ApplicationRead(BaseModel):
    id: int
    email: str
    name: str
    company: str
    website: str
    use_case: str
    status: str
    created_at: dt.datetime
    confirmed_at: dt.datetime | None
    decided_at: dt.datetime | None
    decided_by: str
    decision_note: str
    org_id: int | None
    partner_id: int | None

    @classmethod
    def of(cls, a: EarlyAccessApplication) -> ApplicationRead:
        return cls(id=a.id, email=a.email, name=a.name, company=a.company, website=a.website, use_case=a.use_case,
                   status=a.status, created_at=a.created_at, confirmed_at=a.confirmed_at, decided_at=a.decided_at,
                   decided_by=a.decided_by, decision_note=a.decision_note, org_id=a.org_id, partner_id=a.partner_id)


class Applied(BaseModel):
    """What the applicant is told: the same whatever happened (no telling who applied before)."""

    status: Literal["check_email"] = "check_email"
    detail: str = "Check your email: open the link we sent to confirm your application."


def form_token(now: float | None = None) -> str:
    """A signed stamp of when the form was shown (a submit sooner than ``LEVQOR_EARLY_ACCESS_MIN_FILL_S`` is
    refused)."""
    return tokens.sign(FORM, "v1", now=now)


def _check_form(token: str, now: float) -> None:
    got = tokens.unsign(FORM, token)
    if got is None:
        raise Unprocessable("the form expired or was tampered with; reload the page and try again", field="form_token")
    age = now - got[1]
    if age < get_settings().early_access_min_fill_s:
        raise Unprocessable("that was faster than a person can fill the form; wait a few seconds and submit again",
                            field="form_token")
    if age > 86400:
        raise Unprocessable("the form expired; reload the page and try again", field="form_token")


def _check_rate(ip: str, clock: Any = time.time) -> None:
    """Count the attempt in its own transaction: refused and invalid attempts count too (bots send those)."""
    s = get_settings()
    item = per_seconds(s.early_access_max_per_ip, s.early_access_window_s, NAMESPACE)
    with session_scope() as counting:
        limiter = rate_limiter(counting, clock)
        allowed = limiter.hit(item, "ip", ip)
        reset = limiter.get_window_stats(item, "ip", ip).reset_time
    if not allowed:
        wait = max(1, int(reset - clock() + 0.999))
        raise RateLimited(f"too many applications from this address; try again in {wait} s", field="email",
                          extra={"retry_after": wait}, headers={"Retry-After": str(wait)})


def _base() -> str:
    return get_settings().base_url.rstrip("/")


def apply(session: Session, params: ApplicationCreate, *, ip: str, now: float | None = None) -> Applied:
    """Record an application and email the confirmation link (double opt-in); bots get the same answer."""
    at = time.time() if now is None else now
    _check_rate(ip)
    if params.homepage.strip():  # the honeypot: answered like a success, nothing stored or sent
        audit_log.append(session, actor=f"ip:{ip}", action="community.early_access_spam", target="early-access",
                         detail={"reason": "honeypot"})
        return Applied()
    _check_form(params.form_token, at)
    email = str(params.email).lower()
    repo = CommunityRepository(session)
    row = repo.application_by_email(email)
    if row is None:
        row = EarlyAccessApplication(email=email, name=params.name, company=params.company, website=params.website,
                                     use_case=params.use_case, ip=ip[:64])
        repo.add(row)
        audit_log.append(session, actor=f"ip:{ip}", action="community.early_access_applied",
                         target=f"application:{row.id}", detail={"email": email, "company": params.company})
    elif row.status != "unconfirmed":  # applied and confirmed before: say so to the address, not the form
        mailer.send(session, kind="early_access_duplicate", to=email, application_id=row.id,
                    subject="Your Levqor early-access application",
                    body=f"Hello {row.name},\n\nWe already have your application to the Levqor Partner Network "
                         f"(status: {row.status}). There is nothing more to do; we will write when it changes.\n",
                    uid=f"ea-dup-{row.id}-{secrets.token_hex(4)}")
        return Applied()
    link = f"{_base()}/early-access/confirm?token={tokens.sign(CONFIRM, f'{row.id}:{email}')}"
    mailer.send(session, kind="early_access_confirm", to=email, application_id=row.id,
                subject="Confirm your Levqor early-access application",
                body=f"Hello {params.name},\n\nThanks for applying to the Levqor Partner Network early access.\n"
                     f"Confirm this address to send your application to our team:\n\n{link}\n\n"
                     f"The link works for {get_settings().early_access_confirm_ttl_h} hours. "
                     "If you did not apply, ignore this message.\n",
                uid=f"ea-confirm-{row.id}-{secrets.token_hex(4)}")
    return Applied()


def confirm(session: Session, token: str, *, now: float | None = None) -> ApplicationRead:
    """Open the double opt-in link: the application goes to the review queue (a second click changes nothing)."""
    got = tokens.unsign(CONFIRM, token)
    if got is None:
        raise BadRequest("this confirmation link is not valid", field="token")
    value, stamp = got
    if (time.time() if now is None else now) - stamp > get_settings().early_access_confirm_ttl_h * 3600:
        raise BadRequest("this confirmation link has expired; apply again to get a new one", field="token")
    app_id, _, email = value.partition(":")
    row = CommunityRepository(session).application(int(app_id)) if app_id.isdigit() else None
    if row is None or row.email != email:
        raise BadRequest("this confirmation link is not valid", field="token")
    if row.status == "unconfirmed":
        row.status, row.confirmed_at = "pending", utcnow()
        session.flush()
        audit_log.append(session, actor=f"email:{email}", action="community.early_access_confirmed",
                         target=f"application:{row.id}", detail={"email": email})
    return ApplicationRead.of(row)


# ---- staff review ---------------------------------------------------------------------------------

class ApplicationQuery(BaseModel):
    status: Status | None = None


class ApplicationList(BaseModel):
    items: list[ApplicationRead]
    counts: dict[str, int]


@tool("community.applications", risk="read")
def list_applications(ctx: ToolContext, params: ApplicationQuery) -> ApplicationList:
    """List early-access applications (the staff review queue), by status."""
    require_staff(ctx, "review early-access applications", read=True)
    repo = CommunityRepository(ctx.session)
    return ApplicationList(items=[ApplicationRead.of(a) for a in repo.applications(params.status)],
                           counts=repo.application_counts())


class Decision(BaseModel):
    application_id: int = Field(ge=1, le=2**31 - 1)
    decision: Literal["approve", "reject", "waitlist"]
    note: str = Field("", max_length=2000)


def _slug(company: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", company.lower()).strip("-")[:40] or "partner"
    if not base[0].isalnum():
        base = "p-" + base
    return f"{base}-{secrets.token_hex(3)}"


def _partner_account(ctx: ToolContext, row: EarlyAccessApplication) -> tuple[int, int, bool]:
    """The applicant's partner account: (org id, partner id, invited). Existing developer: their organisation."""
    session = ctx.session
    user = IdentityRepository(session).user_by_email(row.email)
    if user is not None:
        org_id, invited = user.org_id, False
    else:
        org = create_org.run(ctx, OrgCreate(name=row.company, slug=_slug(row.company)))
        org_id, invited = org.id, True
    in_org = ToolContext(session, Principal(kind="system", id=f"early-access-{row.id}", org_id=org_id, role="admin",
                                            name=f"early access ({ctx.principal.actor})"), request_id=ctx.request_id)
    partner = PartnerRepository(session).partner_for_org(org_id)
    if partner is None:
        pid = register_partner.run(in_org, PartnerRegister(
            display_name=row.company, contact_email=row.email, website=row.website,
            bio=row.use_case[:2000])).id
    else:
        pid = partner.id
    if invited:
        invite.run(in_org, InviteCreate(email=row.email, role="admin"))
    return org_id, pid, invited


TEMPLATES: dict[str, tuple[str, str]] = {
    "approve": ("Welcome to the Levqor Partner Network",
                "Hello {name},\n\nWelcome to the Levqor Partner Network: your early-access application for {company} "
                "is approved.\n\n{account}\n\nNext steps:\n- Read the partner guide: {base}/developer/docs\n"
                "- Publish your first plugin and list it in the marketplace: {base}/marketplace\n"
                "- See the programme and revenue-share terms: {base}/partner-network\n{note}"),
    "reject": ("Your Levqor early-access application",
               "Hello {name},\n\nThank you for applying to the Levqor Partner Network early access. We cannot offer "
               "{company} a place in this round.\n{note}\nYou can still build on Levqor with a developer account: "
               "{base}/developer\n"),
    "waitlist": ("You are on the Levqor Partner Network waitlist",
                 "Hello {name},\n\nThanks for applying to the Levqor Partner Network. Early access for {company} is "
                 "waitlisted: we open places in rounds and will write to you as soon as one is free.\n{note}"),
}
STATUS = {"approve": "approved", "reject": "rejected", "waitlist": "waitlisted"}


@tool("community.decide_application", risk="write")
def decide_application(ctx: ToolContext, params: Decision) -> ApplicationRead:
    """Approve (creates the partner account), reject or waitlist a confirmed early-access application (staff)."""
    require_staff(ctx, "review early-access applications")
    row = CommunityRepository(ctx.session).application(params.application_id)
    if row is None:
        raise NotFound(f"application {params.application_id} not found", field="application_id")
    if row.status == "unconfirmed":
        raise Conflict("the applicant has not confirmed the email address yet", field="application_id")
    if row.status in ("approved", "rejected"):
        raise Conflict(f"the application is already {row.status}", field="application_id")
    account = ""
    if params.decision == "approve":
        org_id, pid, invited = _partner_account(ctx, row)
        row.org_id, row.partner_id = org_id, pid
        account = ("Your partner organisation is ready. A separate email holds the link to choose your password "
                   "and sign in." if invited else
                   "Your existing developer organisation is now a partner: sign in at "
                   f"{_base()}/developer/login.")
    before = row.status
    row.status, row.decided_at, row.decided_by = STATUS[params.decision], utcnow(), ctx.principal.actor
    row.decision_note = params.note
    ctx.session.flush()
    audit_log.record_platform(ctx, f"community.early_access_{STATUS[params.decision]}", f"application:{row.id}",
                              affected_orgs=[row.org_id] if row.org_id else [],
                              detail={"email": row.email, "before": before, "note": params.note})
    subject, body = TEMPLATES[params.decision]
    note = f"\nA note from the team: {params.note}\n" if params.note else ""
    mailer.send(ctx.session, kind=f"early_access_{STATUS[params.decision]}", to=row.email, application_id=row.id,
                subject=subject, body=body.format(name=row.name, company=row.company, account=account,
                                                  base=_base(), note=note),
                uid=f"ea-{params.decision}-{row.id}-{secrets.token_hex(4)}")
    return ApplicationRead.of(row)


# ---- unsubscribe ----------------------------------------------------------------------------------

def unsubscribe(session: Session, token: str, *, source: str) -> str:
    """Stop community email to the address the signed link names (idempotent); return the address."""
    email = mailer.email_of_unsubscribe_token(token)
    if email is None:
        raise BadRequest("this unsubscribe link is not valid", field="token")
    repo = CommunityRepository(session)
    if not repo.unsubscribed(email):
        repo.add(CommunityUnsubscribe(email=email, source=source))
        audit_log.append(session, actor=f"email:{email}", action="community.unsubscribed", target=f"email:{email}",
                         detail={"source": source})
    return email
