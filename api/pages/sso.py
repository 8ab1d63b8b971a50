"""The single sign-on settings page: SAML, OIDC, group mappings, enforcement and the SCIM token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from api.deps import require
from api.pages.router import form_csrf, render
from tools.context import ToolContext
from tools.enterprise import sso
from tools.enterprise.rbac import allowed
from tools.enterprise.sso import NoInput, SsoConfigUpdate
from tools.errors import AppError

router = APIRouter(tags=["pages"], include_in_schema=False)
ROLES = ("admin", "auditor", "viewer", "partner")


def _page(request: Request, ctx: ToolContext, *, error: str | None = None, saved: bool = False,
          scim_token: str | None = None, status_code: int = 200) -> HTMLResponse:
    cfg = sso.get_config(ctx, NoInput())
    mappings = "\n".join(f"{g} = {r}" for g, r in sorted(cfg.group_roles.items()))
    resp = render(request, "sso_settings.html", ctx, cfg=cfg, mappings=mappings, roles=ROLES, error=error,
                  saved=saved, scim_token=scim_token, can_edit=allowed(ctx.principal.role, "sso:write"))
    resp.status_code = status_code
    return resp


@router.get("/settings/sso")
def sso_page(request: Request, ctx: Annotated[ToolContext, require("sso:read")]) -> HTMLResponse:
    """Show the organisation's single sign-on settings and the values to enter at the identity provider."""
    return _page(request, ctx)


def _mappings(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        group, sep, role = line.rpartition("=")
        if not sep or not group.strip() or role.strip() not in ROLES:
            raise ValueError(f"group mappings line {n}: write 'IdP group = admin|auditor|viewer|partner'")
        out[group.strip()] = role.strip()
    return out


@router.post("/settings/sso", dependencies=[Depends(form_csrf)])
def sso_save(
    request: Request, ctx: Annotated[ToolContext, require("sso:write")],
    saml_enabled: Annotated[bool, Form()] = False,
    saml_metadata_xml: Annotated[str, Form(max_length=200_000)] = "",
    saml_metadata_url: Annotated[str, Form(max_length=2048)] = "",
    saml_idp_entity_id: Annotated[str, Form(max_length=1024)] = "",
    saml_idp_sso_url: Annotated[str, Form(max_length=2048)] = "",
    saml_idp_cert: Annotated[str, Form(max_length=20_000)] = "",
    saml_allow_unsolicited: Annotated[bool, Form()] = False,
    oidc_enabled: Annotated[bool, Form()] = False,
    oidc_issuer: Annotated[str, Form(max_length=1024)] = "",
    oidc_client_id: Annotated[str, Form(max_length=255)] = "",
    oidc_client_secret: Annotated[str, Form(max_length=512)] = "",
    oidc_groups_claim: Annotated[str, Form(max_length=64)] = "groups",
    group_roles: Annotated[str, Form(max_length=20_000)] = "",
    default_role: Annotated[str, Form(pattern="^(admin|auditor|viewer|partner|)$")] = "viewer",
    jit: Annotated[bool, Form()] = False,
    enforce_sso: Annotated[bool, Form()] = False,
    break_glass: Annotated[str, Form(max_length=4000)] = "",
) -> HTMLResponse:
    """Save the settings from the form (an empty secret or certificate field keeps the stored one)."""
    try:
        data: dict[str, object] = {
            "saml_enabled": saml_enabled, "saml_allow_unsolicited": saml_allow_unsolicited,
            "oidc_enabled": oidc_enabled, "oidc_groups_claim": oidc_groups_claim or "groups",
            "group_roles": _mappings(group_roles), "default_role": default_role, "jit": jit,
            "enforce_sso": enforce_sso, "break_glass": [e for e in break_glass.replace(",", "\n").split() if e],
            "saml_idp_entity_id": saml_idp_entity_id, "saml_idp_sso_url": saml_idp_sso_url,
            "saml_metadata_url": saml_metadata_url, "oidc_issuer": oidc_issuer, "oidc_client_id": oidc_client_id}
        for key, value in (("saml_metadata_xml", saml_metadata_xml), ("saml_idp_cert", saml_idp_cert),
                           ("oidc_client_secret", oidc_client_secret)):
            if value.strip():
                data[key] = value
        sso.configure(ctx, SsoConfigUpdate.model_validate(data))
    except (ValueError, AppError) as exc:  # pydantic's ValidationError is a ValueError
        ctx.session.rollback()
        message = exc.detail if isinstance(exc, AppError) else str(exc).splitlines()[0 if "line" in str(exc) else -1]
        return _page(request, ctx, error=str(message)[:300], status_code=400)
    return _page(request, ctx, saved=True)


@router.post("/settings/sso/scim-token", dependencies=[Depends(form_csrf)])
def sso_scim_token(request: Request, ctx: Annotated[ToolContext, require("sso:write")]) -> HTMLResponse:
    """Create or replace the SCIM token and show it once."""
    created = sso.rotate_scim_token(ctx, NoInput())
    return _page(request, ctx, scim_token=created.token)
