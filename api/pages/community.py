"""Community pages: the Partner Network, the early-access form and its confirmation, news and the Atom
feed, unsubscribe (link and RFC 8058 one-click POST), and the staff pages (review queue, announcements,
launch checklist)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from api.deps import SessionDep, public, require, writes
from api.pages.marketplace import _viewer
from api.pages.router import form_csrf, render
from tools.community import announcements as ann
from tools.community import early_access as ea
from tools.community.announcements import AnnouncementCreate, AnnouncementRef
from tools.community.early_access import ApplicationCreate, ApplicationQuery, Decision
from tools.community.network import launch_checklist, network_facts
from tools.context import ToolContext
from tools.errors import AppError, BadRequest, NotFound, RateLimited
from tools.identity.service import NoInput

router = APIRouter(tags=["pages"], include_in_schema=False)
Slug = Annotated[str, Path(min_length=3, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")]
Token = Annotated[str, Query(max_length=400)]


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/partner-network", dependencies=[public()])
def partner_network_page(request: Request, session: SessionDep) -> HTMLResponse:
    """The Levqor Partner Network: benefits, revenue share, partners, certified experts, how to apply."""
    return render(request, "partner_network.html", principal=_viewer(request, session), facts=network_facts(session))


def _form(request: Request, session: Any, *, status_code: int = 200, error: str | None = None,
          field: str | None = None, form: dict[str, str] | None = None) -> HTMLResponse:
    resp = render(request, "early_access.html", principal=_viewer(request, session), form=form or {},
                  form_token=ea.form_token(), error=error, field=field)
    resp.status_code = status_code
    return resp


@router.get("/early-access", dependencies=[public()])
def early_access_page(request: Request, session: SessionDep) -> HTMLResponse:
    """The early-access application form."""
    return _form(request, session)


_FRIENDLY = {"email": "Enter a valid email address.", "name": "Tell us your name.",
             "company": "Tell us your company or project name.",
             "website": "The website must start with http:// or https://.",
             "use_case": "Tell us in a sentence or two (20 characters or more) what you want to build."}


@router.post("/early-access", dependencies=[public()])
def early_access_submit(
    request: Request, session: SessionDep,
    email: Annotated[str, Form(max_length=320)] = "", name: Annotated[str, Form(max_length=200)] = "",
    company: Annotated[str, Form(max_length=200)] = "", website: Annotated[str, Form(max_length=500)] = "",
    use_case: Annotated[str, Form(max_length=4000)] = "", form_token: Annotated[str, Form(max_length=200)] = "",
    homepage: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Apply from the page: friendly errors on the form, or 'check your email'."""
    form = {"email": email, "name": name, "company": company, "website": website, "use_case": use_case}
    try:
        params = ApplicationCreate(email=email, name=name, company=company, website=website, use_case=use_case,
                                   form_token=form_token or "x" * 10, homepage=homepage)
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0])
        return _form(request, session, status_code=422, error=_FRIENDLY.get(field, exc.errors()[0]["msg"]),
                     field=field, form=form)
    try:
        ea.apply(session, params, ip=_ip(request))
    except RateLimited as exc:
        resp = _form(request, session, status_code=429, error=exc.detail, field="email", form=form)
        resp.headers.update(exc.headers)
        return resp
    except AppError as exc:
        return _form(request, session, status_code=exc.status_code, error=exc.detail, field=exc.field, form=form)
    return render(request, "community_message.html", title="Check your email",
                  message=f"We sent a link to {params.email}. Open it to confirm your application.")


@router.get("/early-access/confirm", dependencies=[public(), writes()])
def early_access_confirm(request: Request, session: SessionDep, token: Token = "") -> HTMLResponse:
    """Open the emailed link: the application goes to the Levqor team."""
    try:
        row = ea.confirm(session, token)
    except BadRequest as exc:
        resp = render(request, "community_message.html", title="Application not confirmed", message=exc.detail)
        resp.status_code = 400
        return resp
    return render(request, "community_message.html", title="Application confirmed",
                  message=f"Thanks, {row.name}: your application for {row.company} is with the Levqor team. "
                          "We will email you when it is reviewed.")


@router.get("/unsubscribe", dependencies=[public()])
def unsubscribe_page(request: Request, token: Token = "") -> HTMLResponse:
    """Ask to confirm unsubscribing (a GET changes nothing: mail scanners open links)."""
    return render(request, "unsubscribe.html", token=token, done=None)


@router.post("/unsubscribe", dependencies=[public()])
def unsubscribe_post(request: Request, session: SessionDep, token: Token = "") -> HTMLResponse:
    """Unsubscribe (the page's button, or an RFC 8058 one-click POST from the mail client)."""
    try:
        email = ea.unsubscribe(session, token, source="one-click")
    except BadRequest as exc:
        resp = render(request, "community_message.html", title="Not unsubscribed", message=exc.detail)
        resp.status_code = 400
        return resp
    return render(request, "unsubscribe.html", token=token, done=email)


@router.get("/news", dependencies=[public()])
def news_page(request: Request, session: SessionDep) -> HTMLResponse:
    """Levqor news: every published announcement."""
    return render(request, "news.html", principal=_viewer(request, session), items=ann.published(session))


@router.get("/news.atom", dependencies=[public()])
def news_feed(session: SessionDep) -> Response:
    """The news as an Atom feed."""
    return Response(ann.atom_feed(session), media_type="application/atom+xml; charset=utf-8")


@router.get("/news/{slug}", dependencies=[public()])
def news_item(request: Request, session: SessionDep, slug: Slug) -> HTMLResponse:
    """One announcement."""
    item = ann.published_one(session, slug)
    if item is None:
        raise NotFound(f"announcement {slug!r} not found", field="slug")
    return render(request, "news_item.html", principal=_viewer(request, session), item=item)


# ---- staff ----------------------------------------------------------------------------------------

@router.get("/staff/early-access")
def review_page(request: Request, ctx: Annotated[ToolContext, require("community:read")],
                status: Annotated[str, Query(pattern="^(|unconfirmed|pending|approved|rejected|waitlisted)$")]
                = "pending", notice: Annotated[str | None, Query(max_length=300)] = None) -> HTMLResponse:
    """The early-access review queue (Levqor staff)."""
    got = ea.list_applications(ctx, ApplicationQuery(status=status or None))  # type: ignore[arg-type]
    return render(request, "staff_early_access.html", ctx, apps=got.items, counts=got.counts, status=status,
                  notice=notice)


@router.post("/staff/early-access/{application_id}", dependencies=[Depends(form_csrf)])
def review_decide(request: Request, application_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
                  ctx: Annotated[ToolContext, require("community:write")],
                  decision: Annotated[str, Form(pattern="^(approve|reject|waitlist)$")],
                  note: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Decide an application from the queue."""
    row = ea.decide_application(ctx, Decision(application_id=application_id, decision=decision,  # type: ignore[arg-type]
                                              note=note))
    return RedirectResponse(f"/staff/early-access?notice={quote(f'{row.email}: {row.status}')}", status_code=303)


@router.get("/staff/announcements")
def announcements_page(request: Request, ctx: Annotated[ToolContext, require("community:read")],
                       error: Annotated[str | None, Query(max_length=300)] = None) -> HTMLResponse:
    """Write, publish and follow announcements (Levqor staff)."""
    return render(request, "staff_announcements.html", ctx, items=ann.list_announcements(ctx, NoInput()).items,
                  error=error)


@router.post("/staff/announcements", dependencies=[Depends(form_csrf)])
def announcements_create(request: Request, ctx: Annotated[ToolContext, require("community:write")],
                         slug: Annotated[str, Form(max_length=100)], title: Annotated[str, Form(max_length=200)],
                         summary: Annotated[str, Form(max_length=500)], body: Annotated[str, Form(max_length=20000)],
                         link_path: Annotated[str, Form(max_length=500)] = "",
                         segments: Annotated[list[str] | None, Form()] = None) -> Response:
    """Save a draft announcement."""
    try:
        ann.create_announcement(ctx, AnnouncementCreate(slug=slug, title=title, summary=summary, body=body,
                                                        link_path=link_path, segments=segments or []))  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        message = f"{err['loc'][0]}: {err['msg']}"
        return RedirectResponse(f"/staff/announcements?error={quote(message)}", 303)
    except AppError as exc:
        return RedirectResponse(f"/staff/announcements?error={quote(exc.detail)}", 303)
    return RedirectResponse("/staff/announcements", status_code=303)


@router.post("/staff/announcements/{announcement_id}/publish", dependencies=[Depends(form_csrf)])
def announcements_publish(request: Request, announcement_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
                          ctx: Annotated[ToolContext, require("community:write")]) -> Response:
    """Publish a draft: news page, feed, and the queued email segment and chat posts."""
    ann.publish_announcement(ctx, AnnouncementRef(announcement_id=announcement_id))
    return RedirectResponse("/staff/announcements", status_code=303)


@router.get("/staff/launch-checklist")
def checklist_page(request: Request, ctx: Annotated[ToolContext, require("community:read")]) -> HTMLResponse:
    """Roadmap step 9's launch checklist, from the data (Levqor staff)."""
    return render(request, "launch_checklist.html", ctx, checklist=launch_checklist(ctx, NoInput()))
