"""Single sign-on: the organisation's settings (``/v1/sso``) and the browser endpoints an identity
provider talks to (``/sso/{org}/saml/*``, ``/sso/{org}/oidc/*``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from api.deps import SESSION_COOKIE, SessionDep, public, require, writes
from api.pages.router import render
from levqor.settings import get_settings
from tools.context import ToolContext
from tools.enterprise import sso
from tools.enterprise.sso import NoInput, ScimTokenCreated, SsoConfigRead, SsoConfigUpdate
from tools.identity.service import open_session

router = APIRouter(tags=["sso"])
browser = APIRouter(tags=["sso"], include_in_schema=False)


@router.get("/v1/sso", response_model=SsoConfigRead)
def get_config(ctx: Annotated[ToolContext, require("sso:read")]) -> SsoConfigRead:
    """Show the organisation's SAML, OIDC, SCIM, group mapping and enforcement settings."""
    return sso.get_config(ctx, NoInput())


@router.put("/v1/sso", response_model=SsoConfigRead)
def configure(body: SsoConfigUpdate, ctx: Annotated[ToolContext, require("sso:write")]) -> SsoConfigRead:
    """Change the single sign-on settings (fields left out stay as they are)."""
    return sso.configure(ctx, body)


@router.post("/v1/sso/scim-token", response_model=ScimTokenCreated, status_code=status.HTTP_201_CREATED)
def rotate_scim_token(ctx: Annotated[ToolContext, require("sso:write")]) -> ScimTokenCreated:
    """Create or replace the SCIM bearer token; the response is the only time it is shown."""
    return sso.rotate_scim_token(ctx, NoInput())


def _ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _signed_in(session: Session, user: Any, how: str, to: str) -> Response:
    """Open the browser session and set the cookie exactly as a password login does (api/pages/router.py)."""
    settings = get_settings()
    token, _bs = open_session(session, user, settings.session_ttl_hours, how=how)
    resp = RedirectResponse(to, status_code=303)
    resp.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", secure=settings.secure_cookies,
                    max_age=settings.session_ttl_hours * 3600)
    return resp


@browser.get("/sso/start", dependencies=[public()])
def start(request: Request, session: SessionDep, org: str, return_to: str | None = None) -> Response:
    """Send a person to their organisation's identity provider (from the login form).

    A page that moves on, not a redirect: the pages' CSP lets forms reach Levqor only, and a redirect
    answering a form counts as the form's target."""
    return render(request, "sso_redirect.html", url=sso.start_url(session, org.strip().lower()[:64], return_to))


@browser.get("/sso/{org}", dependencies=[public()])
def org_start(session: SessionDep, org: str, return_to: str | None = None) -> Response:
    """The organisation's SSO login link (what an IdP dashboard tile opens)."""
    return RedirectResponse(sso.start_url(session, org, return_to), status_code=303)


@browser.get("/sso/{org}/saml/metadata", dependencies=[public()])
def saml_metadata(session: SessionDep, org: str) -> Response:
    """This organisation's SAML service provider metadata."""
    return Response(sso.saml_metadata(session, org), media_type="application/samlmetadata+xml")


@browser.get("/sso/{org}/saml/login", dependencies=[public(), writes()])
def saml_login(session: SessionDep, org: str, return_to: str | None = None) -> Response:
    """Start a SAML sign-in (SP-initiated, HTTP-Redirect binding)."""
    return RedirectResponse(sso.saml_login(session, org, return_to), status_code=303)


@browser.post("/sso/{org}/saml/acs", dependencies=[public()])
def saml_acs(request: Request, session: SessionDep, org: str,
             SAMLResponse: Annotated[str, Form(min_length=1, max_length=500_000)],  # noqa: N803 (SAML's name)
             RelayState: Annotated[str, Form(max_length=2000)] = "") -> Response:  # noqa: N803
    """Assertion consumer service: check the IdP's response, sign the person in, return them."""
    user, to = sso.saml_acs(session, org, SAMLResponse, RelayState or None, _ip(request))
    return _signed_in(session, user, "saml", to)


@browser.get("/sso/{org}/oidc/login", dependencies=[public(), writes()])
def oidc_login(session: SessionDep, org: str, return_to: str | None = None) -> Response:
    """Start an OpenID Connect sign-in (authorization code with PKCE)."""
    return RedirectResponse(sso.oidc_login(session, org, return_to), status_code=303)


@browser.get("/sso/{org}/oidc/callback", dependencies=[public(), writes()])
def oidc_callback(request: Request, session: SessionDep, org: str, code: str | None = None, state: str | None = None,
                  error: str | None = None) -> Response:
    """The provider's redirect back: check state, exchange the code, check the id_token, sign in."""
    user, to = sso.oidc_callback(session, org, code=code[:2000] if code else None, state=state[:200] if state else None,
                                  error=error, ip=_ip(request))
    return _signed_in(session, user, "oidc", to)
