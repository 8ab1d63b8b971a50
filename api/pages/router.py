"""Server-rendered pages: login, dashboard, API keys, audit log."""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api.deps import SESSION_COOKIE, SessionDep, public, require
from levqor import __version__
from levqor.llm import mode_info
from levqor.settings import get_settings
from tools.community.network import community_channels
from tools.context import ToolContext
from tools.dev_portal.accounts import require_verified
from tools.enterprise import audit_tools
from tools.enterprise.audit_tools import AuditSearch
from tools.errors import Forbidden, RateLimited, Unauthorized
from tools.identity import service as identity
from tools.identity.service import ApiKeyCreate, NoInput, end_session, login

router = APIRouter(tags=["pages"], include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.globals["community_channels"] = community_channels  # footer links, read from settings per page
LOGIN_CSRF_COOKIE = "levqor_login_csrf"


async def form_csrf(request: Request) -> None:
    """Parse the form once and expose its csrf_token to the session check in ``get_principal``."""
    if request.method == "POST":
        form = await request.form()
        request.state.form_csrf = str(form.get("csrf_token", ""))


def render(request: Request, name: str, ctx: ToolContext | None = None, **data: Any) -> HTMLResponse:
    data.setdefault("principal", ctx.principal if ctx else None)
    data.setdefault("csrf_token", getattr(request.state, "csrf_token", ""))
    data["version"] = __version__
    return templates.TemplateResponse(request, name, data)


@router.get("/favicon.ico", dependencies=[public()])
def favicon() -> Response:
    """The Levqor mark, for browsers that ask for /favicon.ico before reading the page's icon link."""
    return Response((Path(__file__).parent / "static" / "favicon.svg").read_bytes(), media_type="image/svg+xml",
                    headers={"cache-control": "public, max-age=86400"})


@router.get("/login", dependencies=[public()])
def login_page(request: Request, error: str | None = None) -> HTMLResponse:
    """Show the login form."""
    return _login_form(request, error)


def _login_form(request: Request, error: str | None, status_code: int = 200) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", csrf_token=token, error=error)
    resp.status_code = status_code
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict",
                    secure=get_settings().secure_cookies, max_age=3600)
    return resp


@router.post("/login", dependencies=[public()])
def login_submit(
    request: Request, session: SessionDep,
    email: Annotated[str, Form(max_length=320)], password: Annotated[str, Form(max_length=256)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Check the password, open a browser session, go to the dashboard (throttled per account and IP)."""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf_token):
        return RedirectResponse("/login?error=Your+form+expired%2C+try+again", status_code=303)
    settings = get_settings()
    ip = request.client.host if request.client else "unknown"
    try:
        token, _bs, _user = login(session, email, password, settings.session_ttl_hours, ip=ip)
    except RateLimited as exc:
        wait = exc.extra["retry_after"]
        resp = _login_form(request, f"Too many attempts, try again in {wait} s", status_code=429)
        resp.headers.update(exc.headers)
        return resp
    except Unauthorized:
        return RedirectResponse("/login?error=Wrong+email+or+password", status_code=303)
    except Forbidden:  # the organisation requires single sign-on (audited in login)
        return _login_form(request, "Your organisation signs in through single sign-on: use Log in with SSO below",
                           status_code=403)
    done = RedirectResponse("/", status_code=303)
    done.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=settings.secure_cookies,
                    max_age=settings.session_ttl_hours * 3600)
    done.delete_cookie(LOGIN_CSRF_COOKIE)
    return done


@router.post("/logout", dependencies=[Depends(form_csrf)])
def logout(ctx: Annotated[ToolContext, require("org:read")], request: Request) -> Response:
    """End the browser session."""
    end_session(ctx.session, request.cookies.get(SESSION_COOKIE, ""))
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE)
    return resp


@router.get("/")
def dashboard(request: Request, ctx: Annotated[ToolContext, require("org:read")]) -> HTMLResponse:
    """The home page: KPIs against targets, open incidents, recent jobs and failures, runs awaiting approval."""
    from tools.agents import service as agent_tools
    from tools.agents.service import RunQuery
    from tools.auto_intel.incidents import IncidentQuery, list_incidents
    from tools.enterprise.rbac import allowed
    from tools.jobs.queue import JobQuery, list_jobs
    from tools.pulse import targets as pulse_targets
    from tools.pulse.measure import fmt
    from tools.pulse.report import period_label
    from tools.pulse.targets import TargetsIn

    org = identity.get_org(ctx, NoInput())
    role = ctx.principal.role
    data: dict[str, Any] = {"org": org, "mode": mode_info(), "fmt": fmt, "period_label": period_label}
    if allowed(role, "pulse:read"):
        data["targets"] = pulse_targets.targets(ctx, TargetsIn())
    if allowed(role, "incidents:read"):
        data["incidents"] = list_incidents(ctx, IncidentQuery(state=["open", "acknowledged", "mitigated"], limit=5))
    if allowed(role, "jobs:read"):
        data["jobs"] = list_jobs(ctx, JobQuery(limit=8)).items
        data["failed"] = list_jobs(ctx, JobQuery(state="failed", limit=5)).items
    if allowed(role, "agents:read"):
        data["waiting"] = agent_tools.list_runs(ctx, RunQuery(status="waiting_approval", limit=5)).items
    return render(request, "dashboard.html", ctx, **data)


@router.get("/keys")
def keys_page(request: Request, ctx: Annotated[ToolContext, require("keys:read")],
              created: str | None = None) -> HTMLResponse:
    """List API keys, with a form to create one."""
    keys = identity.list_keys(ctx, NoInput())
    return render(request, "keys.html", ctx, keys=keys.items, created=None)


@router.post("/keys", dependencies=[Depends(form_csrf)])
def keys_create(
    request: Request, ctx: Annotated[ToolContext, require("keys:write")],
    name: Annotated[str, Form(min_length=1, max_length=200)],
    role: Annotated[str, Form(pattern="^(admin|viewer|auditor)$")] = "viewer",
    mode: Annotated[str, Form(pattern="^(live|test)$")] = "live",
) -> HTMLResponse:
    """Create a key and show it once (a signed-up person verifies their email first)."""
    require_verified(ctx)
    created = identity.create_key(ctx, ApiKeyCreate(name=name, role=role, mode=mode))
    keys = identity.list_keys(ctx, NoInput())
    return render(request, "keys.html", ctx, keys=keys.items, created=created)


@router.get("/audit")
def audit_page(request: Request, ctx: Annotated[ToolContext, require("audit:read")],
               action: str | None = None) -> HTMLResponse:
    """Show the organisation's audit log and the chain's verification status."""
    page = audit_tools.search(ctx, AuditSearch(action=action, limit=100))
    verifies = ctx.principal.role in ("admin", "auditor")
    result = audit_tools.verify(ctx, audit_tools.NoInput()) if verifies else None
    return render(request, "audit.html", ctx, page=page, verify=result, action=action or "")
