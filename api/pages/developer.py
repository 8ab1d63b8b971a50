"""Developer portal pages under ``/developer``: sign up, verify the email, log in, API keys (create, see once,
rotate, revoke, last use), the team (invitations), usage (chart, CSV), webhook endpoints and test data, the docs
and the changelog."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import secrets
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from api.deps import SESSION_COOKIE, SessionDep, public, require, writes
from api.pages.router import LOGIN_CSRF_COOKIE, form_csrf, render
from levqor.settings import get_settings
from tools.context import ToolContext
from tools.data_insights.aggregator import INDUSTRIES, SIZE_BANDS
from tools.dev_portal import accounts, docs, sandbox
from tools.dev_portal import keys as portal_keys
from tools.dev_portal import usage as usage_tools
from tools.dev_portal.accounts import InviteAccept, InviteCreate, SignUp
from tools.errors import AppError, BadRequest, Forbidden, NotFound, RateLimited, Unauthorized
from tools.identity import service as identity
from tools.identity.service import ApiKeyCreate, ApiKeyRevoke, NoInput, login, open_session
from tools.jobs import credits as credit_tools
from tools.jobs import endpoints
from tools.jobs.endpoints import EndpointCreate, EndpointRef

router = APIRouter(prefix="/developer", tags=["pages"], include_in_schema=False)
KeyId = Annotated[int, Path(ge=1, le=2**31 - 1)]
EndpointId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Mode = Annotated[str, Query(pattern="^(live|test)$")]


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _public_form(request: Request, template: str, status_code: int = 200, **data: Any) -> HTMLResponse:
    """A public page with a form: a fresh double-submit CSRF token in a cookie and the form."""
    token = secrets.token_urlsafe(24)
    resp = render(request, template, csrf_token=token, industries=INDUSTRIES, size_bands=SIZE_BANDS, **data)
    resp.status_code = status_code
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                    secure=get_settings().secure_cookies, max_age=3600)
    return resp


def _csrf_ok(request: Request, sent: str) -> bool:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected, sent)


def _signed_in(token: str, to: str = "/developer/keys") -> Response:
    s = get_settings()
    done = RedirectResponse(to, status_code=303)
    done.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=s.secure_cookies,
                    max_age=s.session_ttl_hours * 3600)
    done.delete_cookie(LOGIN_CSRF_COOKIE)
    return done


def _first_error(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or "form"
    return field, f"{field}: {err.get('msg', 'invalid')}"


# ---- sign up, verify, log in ------------------------------------------------------------------

@router.get("", dependencies=[public()])
def portal_home(request: Request) -> HTMLResponse:
    """The developer portal: what Levqor's API is, sign up for a key, the docs."""
    return _public_form(request, "developer.html", error=None, field=None, form={})


@router.post("/signup", dependencies=[public()])
def signup_submit(
    request: Request, session: SessionDep,
    email: Annotated[str, Form(max_length=320)], password: Annotated[str, Form(max_length=256)],
    org_name: Annotated[str, Form(max_length=200)], name: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    industry: Annotated[str, Form(max_length=32)] = "", size_band: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    """Create an organisation and its admin, then email the verification link (throttled per IP)."""
    form = {"email": email, "org_name": org_name, "name": name, "industry": industry, "size_band": size_band}
    if not _csrf_ok(request, csrf_token):
        return _public_form(request, "developer.html", 400, error="Your form expired, try again", field="csrf_token",
                            form=form)
    try:
        params = SignUp(email=email, password=password, org_name=org_name, name=name, industry=industry,
                        size_band=size_band)
    except ValidationError as exc:
        field, message = _first_error(exc)
        return _public_form(request, "developer.html", 422, error=message, field=field, form=form)
    try:
        result = accounts.sign_up(session, params, ip=_ip(request))
    except RateLimited as exc:
        resp = _public_form(request, "developer.html", 429, error=exc.detail, field="email", form=form)
        resp.headers.update(exc.headers)
        return resp
    resp = render(request, "developer_check_email.html", email=result.email)
    resp.delete_cookie(LOGIN_CSRF_COOKIE)
    return resp


@router.get("/verify", dependencies=[public(), writes()])
def verify(request: Request, session: SessionDep, token: Annotated[str, Query(max_length=100)] = "") -> Response:
    """Verify the email from the link we sent, sign the person in and go to their API keys."""
    try:
        user, verified_now = accounts.verify_email(session, token)
    except BadRequest as exc:
        resp = render(request, "developer_message.html", title="Email not verified", message=exc.detail)
        resp.status_code = 400
        return resp
    if not verified_now:  # a used link signs nobody in
        return render(request, "developer_message.html", title="Email already verified",
                      message="This address is verified. Log in to continue.")
    raw, _bs = open_session(session, user, get_settings().session_ttl_hours, how="email_verification")
    return _signed_in(raw, "/developer/keys?verified=1")


@router.get("/login", dependencies=[public()])
def portal_login_page(request: Request, error: str | None = None) -> HTMLResponse:
    """Show the developer portal's sign-in form."""
    return _public_form(request, "developer_login.html", error=error)


@router.post("/login", dependencies=[public()])
def portal_login(
    request: Request, session: SessionDep,
    email: Annotated[str, Form(max_length=320)], password: Annotated[str, Form(max_length=256)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Check the password (throttled per account and IP like /login) and go to the API keys."""
    if not _csrf_ok(request, csrf_token):
        return _public_form(request, "developer_login.html", 400, error="Your form expired, try again")
    try:
        token, _bs, _user = login(session, email, password, get_settings().session_ttl_hours, ip=_ip(request))
    except RateLimited as exc:
        resp = _public_form(request, "developer_login.html", 429,
                            error=f"Too many attempts, try again in {exc.extra['retry_after']} s")
        resp.headers.update(exc.headers)
        return resp
    except Unauthorized:
        return _public_form(request, "developer_login.html", 401, error="Wrong email or password")
    except Forbidden:  # the organisation requires single sign-on (audited in login)
        return _public_form(request, "developer_login.html", 403,
                            error="Your organisation signs in through single sign-on: use Log in with SSO")
    return _signed_in(token)


@router.post("/verify/resend", dependencies=[Depends(form_csrf)])
def resend_verification(request: Request, ctx: Annotated[ToolContext, require("org:read")]) -> Response:
    """Send the signed-in person a new verification link."""
    uid = ctx.principal.user_id
    if ctx.principal.kind != "user" or uid is None:
        raise BadRequest("only a signed-in person has an email to verify", field="email")
    if not accounts.email_verified(ctx.session, uid):
        accounts.send_verification(ctx.session, uid, ip=_ip(request))
    return RedirectResponse("/developer/keys?resent=1", status_code=303)


# ---- keys -------------------------------------------------------------------------------------

def _keys_page(request: Request, ctx: ToolContext, *, created: Any = None, error: str | None = None,
               notice: str | None = None, status_code: int = 200) -> HTMLResponse:
    uid = ctx.principal.user_id
    verified = ctx.principal.kind != "user" or uid is None or accounts.email_verified(ctx.session, uid)
    keys = identity.list_keys(ctx, NoInput()).items
    org = identity.get_org(ctx, NoInput())
    resp = render(request, "developer_keys.html", ctx, keys=keys, created=created, error=error, notice=notice,
                  verified=verified, org=org, grace_s=get_settings().key_rotation_grace_s,
                  base_url=get_settings().base_url.rstrip("/"))
    resp.status_code = status_code
    return resp


@router.get("/keys")
def keys_page(request: Request, ctx: Annotated[ToolContext, require("keys:read")],
              verified: Annotated[int, Query(ge=0, le=1)] = 0,
              resent: Annotated[int, Query(ge=0, le=1)] = 0) -> HTMLResponse:
    """The organisation's API keys (prefix, role, mode, expiry, last use) and the forms to manage them."""
    notice = "Email verified: create your first key." if verified else \
        "A new verification link is on its way." if resent else None
    return _keys_page(request, ctx, notice=notice)


@router.post("/keys", dependencies=[Depends(form_csrf)])
def keys_create(
    request: Request, ctx: Annotated[ToolContext, require("keys:write")],
    name: Annotated[str, Form(max_length=200)],
    role: Annotated[str, Form(max_length=20)] = "viewer",
    mode: Annotated[str, Form(max_length=10)] = "test",
    expires_in_days: Annotated[str, Form(max_length=10)] = "",
) -> HTMLResponse:
    """Create a test or live key with a role and an optional expiry; show it once."""
    accounts.require_verified(ctx)
    days: Any = expires_in_days.strip() or None
    params = ApiKeyCreate.model_validate({"name": name, "role": role, "mode": mode, "expires_in_days": days})
    if params.role == "partner":
        raise BadRequest("create partner keys through the partner API", field="role")
    created = identity.create_key(ctx, params)
    return _keys_page(request, ctx, created=created, status_code=201)


@router.post("/keys/{key_id}/rotate", dependencies=[Depends(form_csrf)])
def keys_rotate(request: Request, key_id: KeyId, ctx: Annotated[ToolContext, require("keys:write")]) -> HTMLResponse:
    """Replace a key; the old one keeps working for the grace period. The new key is shown once."""
    accounts.require_verified(ctx)
    rotated = portal_keys.rotate_key(ctx, portal_keys.KeyRotate(key_id=key_id))
    return _keys_page(request, ctx, created=rotated, notice=f"{rotated.replaces.prefix}… now expires at "
                      f"{rotated.replaces.expires_at:%Y-%m-%d %H:%M} UTC.")


@router.post("/keys/{key_id}/revoke", dependencies=[Depends(form_csrf)])
def keys_revoke(request: Request, key_id: KeyId, ctx: Annotated[ToolContext, require("keys:write")]) -> HTMLResponse:
    """Revoke a key: it stops working at once."""
    revoked = identity.revoke_key(ctx, ApiKeyRevoke(key_id=key_id))
    return _keys_page(request, ctx, notice=f"{revoked.prefix}… is revoked.")


# ---- usage ------------------------------------------------------------------------------------

CHART_W, CHART_H, CHART_PAD = 720, 180, 4
CHART_LEFT, CHART_BOTTOM = 64, 22  # room for the axis labels


def _chart(days: list[usage_tools.UsageDay]) -> dict[str, Any]:
    """Bars for a server-rendered SVG: one per day, requests in blue with refusals stacked in red."""
    top = max([d.requests + d.refused for d in days] + [1])
    step = CHART_W / max(1, len(days))
    width = max(1.0, step - 2)
    bars = []
    for i, d in enumerate(days):
        h_ok = (CHART_H - CHART_PAD) * d.requests / top
        h_no = (CHART_H - CHART_PAD) * d.refused / top
        x = round(i * step + 1, 1)
        bars.append({"x": x, "w": round(width, 1), "day": d.day.isoformat(), "requests": d.requests,
                     "refused": d.refused, "y_ok": round(CHART_H - h_ok, 1), "h_ok": round(h_ok, 1),
                     "y_no": round(CHART_H - h_ok - h_no, 1), "h_no": round(h_no, 1)})
    # Axes: requests per day at 0, half and the top on the left; the first, middle and last day below.
    y_ticks = [{"value": f"{v:,}", "y": round(CHART_H - (CHART_H - CHART_PAD) * v / top, 1)}
               for v in sorted({0, top // 2, top})]
    picks = sorted({0, len(days) // 2, len(days) - 1}) if days else []
    x_ticks = [{"label": days[i].day.strftime("%d %b"), "x": round(i * step + step / 2, 1),
                "anchor": "start" if i == 0 and len(picks) > 1 else "end" if i == len(days) - 1 and i else "middle"}
               for i in picks]
    return {"W": CHART_W, "H": CHART_H, "top": top, "bars": bars, "y_ticks": y_ticks, "x_ticks": x_ticks,
            "LEFT": CHART_LEFT, "BOTTOM": CHART_BOTTOM}


@router.get("/usage")
def usage_page(request: Request, ctx: Annotated[ToolContext, require("usage:read")],
               start: Annotated[dt.date | None, Query(alias="from")] = None,
               end: Annotated[dt.date | None, Query(alias="to")] = None,
               key: Annotated[str | None, Query(min_length=1, max_length=32,
                                                pattern=r"^lvq_(live|test)_[A-Za-z0-9]+$")] = None) -> HTMLResponse:
    """Requests per day (a chart), per key and endpoint, the plan's limits and a CSV download."""
    report = usage_tools.usage_report(ctx, usage_tools.UsageQuery(start=start, end=end, key=key))
    totals: dict[tuple[str, str, str, str], list[int]] = {}
    for r in report.rows:
        t = totals.setdefault((r.key, r.mode, r.method, r.endpoint), [0, 0])
        t[0] += r.requests
        t[1] += r.refused
    query = {"from": report.start.isoformat(), "to": report.end.isoformat(), **({"key": key} if key else {})}
    keys = identity.list_keys(ctx, NoInput()).items
    return render(request, "developer_usage.html", ctx, report=report, chart=_chart(report.days),
                  totals=sorted(totals.items(), key=lambda kv: -kv[1][0]), keys=keys,
                  csv_url="/v1/usage.csv?" + urlencode(query))


# ---- team -------------------------------------------------------------------------------------

def _team_page(request: Request, ctx: ToolContext, *, notice: str | None = None, error: str | None = None,
               status_code: int = 200) -> HTMLResponse:
    users = identity.list_users(ctx, NoInput()).items
    invites = accounts.list_invites(ctx, accounts.NoInput()).items
    resp = render(request, "developer_team.html", ctx, users=users, invites=invites, notice=notice, error=error)
    resp.status_code = status_code
    return resp


@router.get("/team")
def team_page(request: Request, ctx: Annotated[ToolContext, require("users:read")]) -> HTMLResponse:
    """The organisation's people and pending invitations."""
    return _team_page(request, ctx)


@router.post("/team/invites", dependencies=[Depends(form_csrf)])
def team_invite(request: Request, ctx: Annotated[ToolContext, require("users:write")],
                email: Annotated[str, Form(max_length=320)],
                role: Annotated[str, Form(max_length=20)] = "viewer") -> HTMLResponse:
    """Email a teammate an invitation link with a role."""
    params = InviteCreate.model_validate({"email": email, "role": role})
    try:
        sent = accounts.invite(ctx, params)
    except AppError as exc:
        if exc.status_code != 409:
            raise
        return _team_page(request, ctx, error=exc.detail, status_code=409)
    return _team_page(request, ctx, notice=f"Invitation sent to {sent.email}.", status_code=201)


@router.get("/invite", dependencies=[public()])
def invite_page(request: Request, session: SessionDep, token: Annotated[str, Query(max_length=100)] = "") -> Response:
    """The form to accept an invitation (name and password)."""
    try:
        row = accounts.pending_invite(session, token)
    except BadRequest as exc:
        resp = render(request, "developer_message.html", title="Invitation not valid", message=exc.detail)
        resp.status_code = 400
        return resp
    return _public_form(request, "developer_invite.html", email=row.email, role=row.role, token=token, error=None)


@router.post("/invite", dependencies=[public()])
def invite_accept(
    request: Request, session: SessionDep,
    token: Annotated[str, Form(max_length=100)], password: Annotated[str, Form(max_length=256)],
    name: Annotated[str, Form(max_length=200)] = "", csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Join the organisation and sign in (throttled per IP like sign-up)."""
    if not _csrf_ok(request, csrf_token):
        return RedirectResponse(f"/developer/invite?token={token}", status_code=303)
    try:
        params = InviteAccept(name=name, password=password)
    except ValidationError as exc:
        row = accounts.pending_invite(session, token)
        return _public_form(request, "developer_invite.html", 422, email=row.email, role=row.role, token=token,
                            error=_first_error(exc)[1])
    try:
        user = accounts.accept_invite(session, token, params, ip=_ip(request))
    except RateLimited as exc:
        resp = render(request, "developer_message.html", title="Too many attempts", message=exc.detail)
        resp.status_code = 429
        resp.headers.update(exc.headers)
        return resp
    raw, _bs = open_session(session, user, get_settings().session_ttl_hours, how="invitation")
    return _signed_in(raw)


# ---- webhook endpoints and test data -------------------------------------------------------------

def _in_mode(ctx: ToolContext, mode: str) -> ToolContext:
    """``ctx`` seeing the objects of ``mode``: a person on the pages sees live data, or test data on request."""
    return dataclasses.replace(ctx, principal=dataclasses.replace(ctx.principal, key_mode=mode))


def _webhooks_page(request: Request, ctx: ToolContext, mode: str, *, shown: Any = None, notice: str | None = None,
                   status_code: int = 200) -> HTMLResponse:
    mctx = _in_mode(ctx, mode)
    items = endpoints.list_endpoints(mctx, endpoints.NoInput()).items
    credit = credit_tools.get_credits(_in_mode(ctx, "test"), credit_tools.CreditsQuery(limit=1))
    resp = render(request, "developer_webhooks.html", ctx, mode=mode, endpoints=items, shown=shown, notice=notice,
                  test_credits=credit, monthly=get_settings().test_credits_monthly)
    resp.status_code = status_code
    return resp


@router.get("/webhooks")
def webhooks_page(request: Request, ctx: Annotated[ToolContext, require("pipelines:read")],
                  mode: Mode = "test") -> HTMLResponse:
    """Webhook endpoints of one mode (test by default) with their secrets on request; test credits and reset."""
    return _webhooks_page(request, ctx, mode)


@router.post("/webhooks", dependencies=[Depends(form_csrf)])
def webhooks_create(request: Request, ctx: Annotated[ToolContext, require("pipelines:write")],
                    url: Annotated[str, Form(max_length=2000)], mode: Annotated[str, Form(pattern="^(live|test)$")],
                    description: Annotated[str, Form(max_length=500)] = "") -> HTMLResponse:
    """Register a webhook endpoint in live or test mode; its signing secret is shown."""
    try:
        params = EndpointCreate(url=url, description=description)
    except ValidationError as exc:
        raise BadRequest(_first_error(exc)[1], field="url") from None
    created = endpoints.create_endpoint(_in_mode(ctx, mode), params)
    return _webhooks_page(request, ctx, mode, shown=created, status_code=201)


@router.post("/webhooks/{endpoint_id}/reveal", dependencies=[Depends(form_csrf)])
def webhooks_reveal(request: Request, endpoint_id: EndpointId, mode: Mode,
                    ctx: Annotated[ToolContext, require("pipelines:write")]) -> HTMLResponse:
    """Show an endpoint's signing secret (audited)."""
    shown = endpoints.reveal_secret(_in_mode(ctx, mode), EndpointRef(endpoint_id=endpoint_id))
    return _webhooks_page(request, ctx, mode, shown=shown)


@router.post("/webhooks/{endpoint_id}/rotate", dependencies=[Depends(form_csrf)])
def webhooks_rotate(request: Request, endpoint_id: EndpointId, mode: Mode,
                    ctx: Annotated[ToolContext, require("pipelines:write")]) -> HTMLResponse:
    """Replace an endpoint's signing secret and show the new one."""
    shown = endpoints.rotate_endpoint_secret(_in_mode(ctx, mode), EndpointRef(endpoint_id=endpoint_id))
    return _webhooks_page(request, ctx, mode, shown=shown, notice="Secret rotated: the old one no longer signs.")


@router.post("/webhooks/{endpoint_id}/delete", dependencies=[Depends(form_csrf)])
def webhooks_delete(request: Request, endpoint_id: EndpointId, mode: Mode,
                    ctx: Annotated[ToolContext, require("pipelines:write")]) -> HTMLResponse:
    """Delete a webhook endpoint."""
    gone = endpoints.delete_endpoint(_in_mode(ctx, mode), EndpointRef(endpoint_id=endpoint_id))
    return _webhooks_page(request, ctx, mode, notice=f"Endpoint {gone.url} deleted.")


@router.post("/test-data/reset", dependencies=[Depends(form_csrf)])
def test_data_reset(request: Request, ctx: Annotated[ToolContext, require("org:write")]) -> HTMLResponse:
    """Delete the organisation's test data and restore its test credits (admins; audited)."""
    out = sandbox.reset_test_data(ctx, sandbox.NoInput())
    return _webhooks_page(request, ctx, "test", notice=f"Test data deleted ({out.pipelines} pipelines, {out.jobs} "
                          f"jobs, {out.installs} installs, {out.events} events); test credits back to "
                          f"{out.test_credits}.")


# ---- docs and changelog -------------------------------------------------------------------------

@router.get("/docs", dependencies=[public()])
def docs_index(request: Request) -> HTMLResponse:
    """The developer docs: quick start and guides."""
    return docs_page(request, "index")


@router.get("/docs/{page}", dependencies=[public()])
def docs_page(request: Request, page: Annotated[str, Path(max_length=64)]) -> HTMLResponse:
    """One page of the developer docs, rendered from ``docs/dev_portal/*.md``."""
    doc = docs.page(page)
    if doc is None:
        raise NotFound(f"no docs page {page!r}", field="page")
    return render(request, "developer_doc.html", doc=doc, pages=docs.PAGES)


@router.get("/changelog", dependencies=[public()])
def changelog(request: Request) -> HTMLResponse:
    """The API changelog (``docs/dev_portal/changelog.md``)."""
    doc = docs.page("changelog")
    assert doc is not None
    return render(request, "developer_doc.html", doc=doc, pages=docs.PAGES)
