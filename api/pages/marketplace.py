"""Marketplace pages: catalogue with search and categories, plugin detail with install, partner
profile, and the partner's revenue statement. Browsing is public; installing needs an admin."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from api.deps import SESSION_COOKIE, SessionDep, public, require
from api.pages.router import form_csrf, render
from tools.context import Principal, ToolContext
from tools.enterprise.rbac import allowed
from tools.errors import AppError, NotFound, Unauthorized
from tools.identity.service import NoInput, session_principal
from tools.partner_api import marketplace
from tools.partner_api.installs import InstallCreate, InstallRef, install_plugin, list_installs, uninstall_plugin
from tools.partner_api.manifest import PLUGIN_SCOPES
from tools.partner_api.payouts import PayoutQuery, list_payouts
from tools.partner_api.statements import StatementQuery, statement

router = APIRouter(tags=["pages"], include_in_schema=False)
Slug = Annotated[str, Path(min_length=3, max_length=64, pattern=r"^[a-z0-9][a-z0-9.-]*$")]


def _viewer(request: Request, session: Any) -> Principal | None:
    """The logged-in person, if any (these pages are public)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        principal, bs = session_principal(session, token)
    except Unauthorized:
        return None
    request.state.csrf_token = bs.csrf_token
    return principal


def _installed(session: Any, principal: Principal | None) -> dict[str, int]:
    if principal is None or not allowed(principal.role, "plugins:read"):
        return {}
    page = list_installs(ToolContext(session, principal), NoInput())
    return {i.plugin: i.id for i in page.items}


@router.get("/marketplace", dependencies=[public()])
def marketplace_page(request: Request, session: SessionDep,
                     q: Annotated[str | None, Query(max_length=100)] = None,
                     category: Annotated[str | None, Query(max_length=40)] = None) -> HTMLResponse:
    """Browse and search listed plugins by category."""
    principal = _viewer(request, session)
    doc = marketplace.public_catalogue(session)
    items = marketplace.search(doc, q or None, category or None)
    return render(request, "marketplace.html", principal=principal, plugins=items, categories=doc.categories,
                  q=q or "", category=category or "", installed=_installed(session, principal))


@router.get("/marketplace/{slug}", dependencies=[public()])
def plugin_page(request: Request, session: SessionDep, slug: Slug, installed: int | None = None,
                error: Annotated[str | None, Query(max_length=300)] = None) -> HTMLResponse:
    """A plugin's detail page with its install button."""
    principal = _viewer(request, session)
    plugin = next((p for p in marketplace.public_catalogue(session).plugins if p.id == slug), None)
    if plugin is None:
        raise NotFound(f"plugin {slug!r} is not in the marketplace", field="slug")
    can_install = principal is not None and allowed(principal.role, "plugins:install")
    return render(request, "marketplace_plugin.html", principal=principal, plugin=plugin,
                  partner_id=marketplace.publisher_id(session, slug), scope_help=PLUGIN_SCOPES,
                  install_id=_installed(session, principal).get(slug), can_install=can_install,
                  just_installed=bool(installed), error=error)


@router.post("/marketplace/{slug}/install", dependencies=[Depends(form_csrf)])
def install_from_page(request: Request, slug: Slug,
                      ctx: Annotated[ToolContext, require("plugins:install")]) -> Response:
    """Install the plugin for the organisation, then show its page."""
    try:
        install_plugin(ctx, InstallCreate(plugin=slug))
    except ValidationError as exc:  # a slug no plugin can have: said on the page, like any refusal
        error = f"plugin: {exc.errors()[0]['msg']}"
    except AppError as exc:
        if exc.status_code == 404:
            raise
        error = exc.detail
    else:
        return RedirectResponse(f"/marketplace/{slug}?installed=1", status_code=303)
    return RedirectResponse(f"/marketplace/{slug}?error={quote(error)}", status_code=303)


@router.post("/marketplace/{slug}/uninstall", dependencies=[Depends(form_csrf)])
def uninstall_from_page(request: Request, slug: Slug,
                        ctx: Annotated[ToolContext, require("plugins:install")],
                        install_id: Annotated[int, Form(ge=1, le=2**31 - 1)]) -> Response:
    """Uninstall the plugin, then show its page."""
    uninstall_plugin(ctx, InstallRef(install_id=install_id))
    return RedirectResponse(f"/marketplace/{slug}", status_code=303)


@router.get("/marketplace/partners/{partner_id}", dependencies=[public()])
def partner_page(request: Request, session: SessionDep,
                 partner_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> HTMLResponse:
    """A partner's public profile and listed plugins."""
    principal = _viewer(request, session)
    partner = marketplace.partner_profile(session, partner_id)
    if partner is None:
        raise NotFound(f"partner {partner_id} not found", field="partner_id")
    plugins = [p for p in marketplace.public_catalogue(session).plugins if p.partner == partner.display_name]
    return render(request, "marketplace_partner.html", principal=principal, partner=partner, plugins=plugins)


@router.get("/partners/statement")
def statement_page(request: Request, ctx: Annotated[ToolContext, require("payouts:read")],
                   period: Annotated[str | None, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = None) -> HTMLResponse:
    """The partner's revenue statement, with a CSV download."""
    st = statement(ctx, StatementQuery(period=period))
    payouts = list_payouts(ctx, PayoutQuery())
    return render(request, "partner_statement.html", ctx, st=st, payouts=payouts.items, period=period or "")
