"""Community API: early-access applications (public apply and confirm, staff review), announcements
(public list, staff write and publish), the launch checklist."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, status
from pydantic import BaseModel, Field

from api.deps import SessionDep, public, require
from tools.community import announcements as ann
from tools.community import early_access as ea
from tools.community.announcements import AnnouncementCreate, AnnouncementList, AnnouncementRead, AnnouncementRef
from tools.community.early_access import ApplicationCreate, ApplicationList, ApplicationQuery, ApplicationRead, Applied
from tools.community.network import Checklist, NetworkFacts, launch_checklist, network_facts
from tools.context import ToolContext
from tools.identity.service import NoInput

router = APIRouter(tags=["community"])
AppId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class FormToken(BaseModel):
    form_token: str = Field(description="Send back as form_token; a submit sooner than the minimum fill time "
                                        "is refused")


class ConfirmIn(BaseModel):
    token: str = Field(min_length=10, max_length=300)


class DecisionIn(BaseModel):
    decision: Literal["approve", "reject", "waitlist"]
    note: str = Field("", max_length=2000)


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/v1/early-access/form", response_model=FormToken, dependencies=[public()])
def early_access_form() -> FormToken:
    """A signed stamp for the early-access form (spam protection without a third-party captcha)."""
    return FormToken(form_token=ea.form_token())


@router.post("/v1/early-access", response_model=Applied, status_code=status.HTTP_202_ACCEPTED,
             dependencies=[public()])
def early_access_apply(request: Request, session: SessionDep, body: ApplicationCreate) -> Applied:
    """Apply for Partner Network early access; a link to confirm the address is emailed."""
    return ea.apply(session, body, ip=_ip(request))


@router.post("/v1/early-access/confirm", response_model=ApplicationRead, dependencies=[public()])
def early_access_confirm(session: SessionDep, body: ConfirmIn) -> ApplicationRead:
    """Confirm an application with the emailed token (double opt-in)."""
    return ea.confirm(session, body.token)


@router.get("/v1/early-access/applications", response_model=ApplicationList)
def applications(ctx: Annotated[ToolContext, require("community:read")],
                 status_: Annotated[ea.Status | None, Query(alias="status")] = None) -> ApplicationList:
    """The early-access review queue (Levqor staff)."""
    return ea.list_applications(ctx, ApplicationQuery(status=status_))


@router.post("/v1/early-access/applications/{application_id}/decision", response_model=ApplicationRead)
def decide(application_id: AppId, body: DecisionIn,
           ctx: Annotated[ToolContext, require("community:write")]) -> ApplicationRead:
    """Approve (creates the partner account), reject or waitlist an application (Levqor staff)."""
    return ea.decide_application(ctx, ea.Decision(application_id=application_id, decision=body.decision,
                                                  note=body.note))


@router.get("/v1/announcements", response_model=AnnouncementList, dependencies=[public()])
def published(session: SessionDep) -> AnnouncementList:
    """Published announcements, newest first (also at /news and /news.atom)."""
    return AnnouncementList(items=ann.published(session))


@router.get("/v1/announcements/all", response_model=AnnouncementList)
def all_announcements(ctx: Annotated[ToolContext, require("community:read")]) -> AnnouncementList:
    """Every announcement, drafts too, with delivery progress (Levqor staff)."""
    return ann.list_announcements(ctx, NoInput())


@router.post("/v1/announcements", response_model=AnnouncementRead, status_code=status.HTTP_201_CREATED)
def create(body: AnnouncementCreate, ctx: Annotated[ToolContext, require("community:write")]) -> AnnouncementRead:
    """Write an announcement as a draft (Levqor staff)."""
    return ann.create_announcement(ctx, body)


@router.post("/v1/announcements/{announcement_id}/publish", response_model=AnnouncementRead)
def publish(announcement_id: AppId, ctx: Annotated[ToolContext, require("community:write")]) -> AnnouncementRead:
    """Publish to /news and the feed, and queue the email segment and chat posts (Levqor staff)."""
    return ann.publish_announcement(ctx, AnnouncementRef(announcement_id=announcement_id))


@router.get("/v1/partner-network", response_model=NetworkFacts, dependencies=[public()])
def partner_network(session: SessionDep) -> NetworkFacts:
    """The Partner Network's benefits, revenue-share terms, listed partners and certified experts."""
    return network_facts(session)


@router.get("/v1/community/launch-checklist", response_model=Checklist)
def checklist(ctx: Annotated[ToolContext, require("community:read")]) -> Checklist:
    """Roadmap step 9's launch items, done or not, from the data (Levqor staff)."""
    return launch_checklist(ctx, NoInput())
