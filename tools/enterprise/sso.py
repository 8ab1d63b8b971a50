"""Single sign-on per organisation: a SAML 2.0 service provider (python3-saml) and an OpenID Connect
relying party (authlib: authorization code + PKCE, discovery, state, nonce, id_token checks), just-in-time
users, IdP groups mapped to roles, enforcement with a break-glass admin.

Every sign-in we start is a row (``sso_requests``: the SAML AuthnRequest id or the OIDC state, with the
nonce and PKCE verifier), so any API replica can finish it and each finishes once. Used SAML assertion ids
stay in ``sso_replay`` until their NotOnOrAfter. Every refusal is an :class:`SsoRefused` (4xx problem
details, ``type`` naming the reason) and an ``sso.login_refused`` audit entry that survives the rollback.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import re
import secrets
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from pydantic import BaseModel, Field, field_validator

from levqor.logging import request_id_var
from levqor.settings import get_settings
from memory.db import utcnow
from memory.identity.models import Organization, User
from memory.identity.repository import IdentityRepository
from memory.sso.models import SsoConfig, SsoIdentity, SsoRequest
from memory.sso.repository import SsoRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import AppError, BadRequest, NotFound
from tools.registry import tool
from tools.shared import ssrf

log = logging.getLogger(__name__)
ROLE_ORDER: tuple[str, ...] = ("admin", "auditor", "viewer", "partner")  # the most privileged mapped group wins
SCIM_PREFIX = "scim_"
EMAIL_ATTRS = ("email", "mail", "emailAddress", "urn:oid:0.9.2342.19200300.100.1.3",
               "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress")
NAME_ATTRS = ("name", "displayName", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name")
GROUP_ATTRS = ("groups", "memberOf", "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
               "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
_ID_TOKEN_ALGS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]  # never "none", never HMAC


class SsoRefused(AppError):
    """A sign-in refused: 400 (bad or replayed answer) or 403 (a valid person who may not sign in)."""

    title = "Single sign-on refused"

    def __init__(self, reason: str, detail: str, *, status: int = 400, field: str | None = None):
        super().__init__(detail, field=field, extra={"reason": reason})
        self.status_code = status
        self.type_slug = f"sso-{reason.replace('_', '-')}"
        self.reason = reason


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _refuse(session: Any, org: Organization | None, protocol: str, reason: str, detail: str, *,
            status: int = 400, field: str | None = None, ip: str = "unknown", **more: Any) -> SsoRefused:
    """Audit a refused sign-in (after the request's rollback) and return the error to raise."""
    audit_log.append_detached(
        session=session, actor=f"ip:{ip}", action="sso.login_refused", target=f"org:{org.id}" if org else "sso",
        org_id=org.id if org else None, request_id=request_id_var.get(), outcome="refused",
        detail={"protocol": protocol, "reason": reason, "message": detail[:500], **more})
    return SsoRefused(reason, detail, status=status, field=field)


# ---- configuration (tools) ------------------------------------------------------------------------

class SsoConfigRead(BaseModel):
    org_slug: str
    saml_enabled: bool
    saml_idp_entity_id: str
    saml_idp_sso_url: str
    saml_idp_cert_sha256: str | None = Field(description="Fingerprint of the IdP signing certificate")
    saml_metadata_url: str
    saml_allow_unsolicited: bool
    oidc_enabled: bool
    oidc_issuer: str
    oidc_client_id: str
    oidc_client_secret_set: bool
    oidc_groups_claim: str
    group_roles: dict[str, str]
    default_role: str | None
    jit: bool
    enforce_sso: bool
    break_glass: list[str]
    scim_token_prefix: str | None
    sp_entity_id: str
    sp_acs_url: str
    sp_metadata_url: str
    oidc_redirect_uri: str
    login_url: str
    scim_base_url: str

    @classmethod
    def of(cls, org: Organization, c: SsoConfig) -> SsoConfigRead:
        urls = endpoints(org.slug)
        fp = None
        if c.saml_idp_cert:
            try:
                fp = hashlib.sha256(base64.b64decode(_cert_body(c.saml_idp_cert))).hexdigest()
            except ValueError:
                fp = None
        return cls(org_slug=org.slug, saml_enabled=c.saml_enabled, saml_idp_entity_id=c.saml_idp_entity_id,
                   saml_idp_sso_url=c.saml_idp_sso_url, saml_idp_cert_sha256=fp, saml_metadata_url=c.saml_metadata_url,
                   saml_allow_unsolicited=c.saml_allow_unsolicited, oidc_enabled=c.oidc_enabled,
                   oidc_issuer=c.oidc_issuer, oidc_client_id=c.oidc_client_id,
                   oidc_client_secret_set=bool(c.oidc_client_secret), oidc_groups_claim=c.oidc_groups_claim,
                   group_roles=dict(c.group_roles or {}), default_role=c.default_role, jit=c.jit,
                   enforce_sso=c.enforce_sso, break_glass=list(c.break_glass or []),
                   scim_token_prefix=c.scim_token_prefix, **urls)


def endpoints(slug: str) -> dict[str, str]:
    """The URLs an IdP administrator enters for this organisation."""
    base = get_settings().base_url.rstrip("/")
    return {"sp_entity_id": f"{base}/sso/{slug}/saml/metadata", "sp_acs_url": f"{base}/sso/{slug}/saml/acs",
            "sp_metadata_url": f"{base}/sso/{slug}/saml/metadata",
            "oidc_redirect_uri": f"{base}/sso/{slug}/oidc/callback", "login_url": f"{base}/sso/{slug}",
            "scim_base_url": f"{base}/scim/v2"}


RoleName = Literal["admin", "viewer", "auditor", "partner"]


class SsoConfigUpdate(BaseModel):
    saml_enabled: bool | None = None
    saml_metadata_xml: str | None = Field(None, max_length=200_000,
                                          description="IdP metadata XML (fills entity id, SSO URL, certificate)")
    saml_metadata_url: str | None = Field(None, max_length=2048, description="Fetch the IdP metadata from here")
    saml_idp_entity_id: str | None = Field(None, max_length=1024)
    saml_idp_sso_url: str | None = Field(None, max_length=2048)
    saml_idp_cert: str | None = Field(None, max_length=20_000, description="IdP signing certificate (PEM or base64)")
    saml_allow_unsolicited: bool | None = None
    oidc_enabled: bool | None = None
    oidc_issuer: str | None = Field(None, max_length=1024)
    oidc_client_id: str | None = Field(None, max_length=255)
    oidc_client_secret: str | None = Field(None, max_length=512)
    oidc_groups_claim: str | None = Field(None, min_length=1, max_length=64)
    group_roles: dict[str, RoleName] | None = Field(None, max_length=200, description="IdP group -> role")
    default_role: RoleName | Literal[""] | None = Field(None, description="Role without a mapped group; '' refuses")
    jit: bool | None = None
    enforce_sso: bool | None = None
    break_glass: list[str] | None = Field(None, max_length=10, description="Admin emails that may still use a password")

    @field_validator("saml_idp_sso_url", "saml_metadata_url", "oidc_issuer")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v and urlsplit(v).scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL")
        return v


def _fetch(method: str, url: str, field: str, **kwargs: Any) -> ssrf.SafeResponse:
    """An SSRF-guarded request to an identity provider; an unreachable or refused address is bad input."""
    try:
        return ssrf.request(method, url, timeout=10, **kwargs)
    except AppError:
        raise
    except Exception as exc:  # httpx connection, TLS, protocol and URL errors
        raise BadRequest(f"could not reach {url[:200]}: {type(exc).__name__}", field=field) from exc


def _cert_body(cert: str) -> str:
    return re.sub(r"-----[A-Z ]+-----|\s", "", cert)


def _defaults(org_id: int) -> SsoConfig:
    return SsoConfig(org_id=org_id, saml_enabled=False, saml_idp_entity_id="", saml_idp_sso_url="", saml_idp_cert="",
                     saml_metadata_url="", saml_allow_unsolicited=False, oidc_enabled=False, oidc_issuer="",
                     oidc_client_id="", oidc_client_secret="", oidc_groups_claim="groups", group_roles={},
                     default_role="viewer", jit=True, enforce_sso=False, break_glass=[])


def _config(session: Any, org_id: int) -> SsoConfig:
    repo = SsoRepository(session)
    cfg = repo.config(org_id)
    if cfg is None:
        cfg = _defaults(org_id)
        repo.add(cfg)
    return cfg


def _org(ctx: ToolContext) -> Organization:
    org = IdentityRepository(ctx.session).org(ctx.org_id)
    if org is None:
        raise NotFound("organisation not found")
    return org


class NoInput(BaseModel):
    pass


@tool("sso.get_config", risk="read")
def get_config(ctx: ToolContext, params: NoInput) -> SsoConfigRead:
    """Show the organisation's SAML, OIDC, SCIM, group mapping and enforcement settings (no secrets)."""
    cfg = SsoRepository(ctx.session).config(ctx.org_id) or _defaults(ctx.org_id)  # a read writes nothing
    return SsoConfigRead.of(_org(ctx), cfg)


@tool("sso.configure", risk="write")
def configure(ctx: ToolContext, params: SsoConfigUpdate) -> SsoConfigRead:
    """Change the organisation's single sign-on settings (audited with before and after)."""
    org = _org(ctx)
    cfg = _config(ctx.session, ctx.org_id)
    before = SsoConfigRead.of(org, cfg).model_dump(mode="json")
    data = params.model_dump(exclude_unset=True, exclude_none=True)  # null: unchanged
    meta_xml = data.pop("saml_metadata_xml", None)
    if data.get("saml_metadata_url") and not meta_xml:
        resp = _fetch("GET", data["saml_metadata_url"], "saml_metadata_url")
        if resp.status_code != 200:
            raise BadRequest(f"IdP metadata URL answered {resp.status_code}", field="saml_metadata_url")
        meta_xml = resp.text
    if meta_xml:
        data.update({k: v for k, v in _parse_idp_metadata(meta_xml).items() if not data.get(k)})
    if "saml_idp_cert" in data and data["saml_idp_cert"]:
        try:
            base64.b64decode(_cert_body(data["saml_idp_cert"]), validate=True)
        except ValueError as exc:
            raise BadRequest("not a PEM or base64 certificate", field="saml_idp_cert") from exc
    if "default_role" in data:
        data["default_role"] = data["default_role"] or None
    if "break_glass" in data:
        data["break_glass"] = sorted({e.strip().lower() for e in data["break_glass"] if e.strip()})
    if data.get("oidc_issuer"):
        data["oidc_issuer"] = data["oidc_issuer"].rstrip("/")
    for k, v in data.items():
        setattr(cfg, k, v)
    if cfg.saml_enabled and not (cfg.saml_idp_entity_id and cfg.saml_idp_sso_url and cfg.saml_idp_cert):
        raise BadRequest("SAML needs the IdP entity id, SSO URL and signing certificate (or its metadata)",
                         field="saml_idp_cert")
    if cfg.oidc_enabled and not (cfg.oidc_issuer and cfg.oidc_client_id):
        raise BadRequest("OIDC needs the issuer and the client id", field="oidc_issuer")
    if cfg.enforce_sso and not (cfg.saml_enabled or cfg.oidc_enabled):
        raise BadRequest("enable SAML or OIDC before requiring single sign-on", field="enforce_sso")
    ctx.session.flush()
    after = SsoConfigRead.of(org, cfg)
    audit_log.record(ctx, "sso.configured", f"org:{org.id}", before=before, after=after.model_dump(mode="json"))
    return after


def _parse_idp_metadata(xml: str) -> dict[str, str]:
    from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser

    try:
        parsed = OneLogin_Saml2_IdPMetadataParser.parse(xml.encode())
    except Exception as exc:  # lxml/defusedxml errors of every kind: bad input
        raise BadRequest(f"IdP metadata is not valid SAML metadata: {str(exc)[:200]}",
                         field="saml_metadata_xml") from exc
    idp = parsed.get("idp") or {}
    sso = (idp.get("singleSignOnService") or {}).get("url", "")
    cert = idp.get("x509cert") or ((idp.get("x509certMulti") or {}).get("signing") or [""])[0]
    if not (idp.get("entityId") and sso and cert):
        raise BadRequest("IdP metadata lacks the entity id, SSO URL or signing certificate", field="saml_metadata_xml")
    return {"saml_idp_entity_id": idp["entityId"], "saml_idp_sso_url": sso, "saml_idp_cert": cert}


class ScimTokenCreated(BaseModel):
    token: str = Field(description="The SCIM bearer token. Shown once: only its hash is stored.")
    prefix: str


@tool("sso.rotate_scim_token", risk="destructive")
def rotate_scim_token(ctx: ToolContext, params: NoInput) -> ScimTokenCreated:
    """Create (or replace) the organisation's SCIM bearer token; the old one stops working at once."""
    cfg = _config(ctx.session, ctx.org_id)
    token = SCIM_PREFIX + secrets.token_urlsafe(32)
    cfg.scim_token_hash, cfg.scim_token_prefix = sha256(token), token[:13]
    ctx.session.flush()
    audit_log.record(ctx, "scim.token_rotated", f"org:{ctx.org_id}", after={"prefix": cfg.scim_token_prefix})
    return ScimTokenCreated(token=token, prefix=cfg.scim_token_prefix)


# ---- shared sign-in ------------------------------------------------------------------------------

def org_and_config(session: Any, slug: str) -> tuple[Organization, SsoConfig]:
    """The organisation ``slug`` and its SSO settings; 404 when it has none."""
    org = IdentityRepository(session).org_by_slug(slug)
    cfg = SsoRepository(session).config(org.id) if org else None
    if org is None or cfg is None or not (cfg.saml_enabled or cfg.oidc_enabled):
        raise NotFound("no single sign-on is set up for this organisation", field="org")
    return org, cfg


def safe_return_to(value: str | None) -> str:
    """A path on this site to return to after sign-in (never another origin)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 1000:
        return "/"
    return value


def role_for(cfg: SsoConfig, groups: list[str]) -> str | None:
    """The most privileged role any of ``groups`` maps to, else the default role (None: refuse)."""
    mapped = {(cfg.group_roles or {}).get(g) for g in groups}
    for role in ROLE_ORDER:
        if role in mapped:
            return role
    return cfg.default_role


def _new_request(session: Any, org: Organization, protocol: str, key: str, return_to: str, **more: str) -> None:
    ttl = get_settings().sso_request_ttl_s
    SsoRepository(session).add(SsoRequest(org_id=org.id, protocol=protocol, key=key, return_to=return_to,
                                          expires_at=utcnow() + dt.timedelta(seconds=ttl), **more))


def _claim_request(session: Any, org: Organization, protocol: str, key: str | None, ip: str) -> SsoRequest:
    """The pending sign-in ``key`` of ``org``, marked used; refused when unknown, used or expired."""
    req = SsoRepository(session).request(key) if key else None
    if req is None or req.org_id != org.id or req.protocol != protocol:
        reason = "unsolicited" if protocol == "saml" else "state_mismatch"
        what = "a SAML response that answers no sign-in started here" if protocol == "saml" else \
            "the state does not match a sign-in started here"
        raise _refuse(session, org, protocol, reason, f"refused {what}", ip=ip,
                      field="SAMLResponse" if protocol == "saml" else "state")
    if req.consumed_at is not None:
        raise _refuse(session, org, protocol, "replayed", "this sign-in answer was already used", ip=ip,
                      field="SAMLResponse" if protocol == "saml" else "code")
    if req.expires_at <= utcnow():
        raise _refuse(session, org, protocol, "expired_request", "the sign-in took too long; start again", ip=ip)
    req.consumed_at = utcnow()
    session.flush()
    return req


def complete(session: Any, org: Organization, cfg: SsoConfig, *, protocol: str, subject: str, email: str | None,
             name: str, groups: list[str], ip: str) -> User:
    """Find or create the user behind an IdP identity and set their role from groups.

    The edge then opens the browser session with ``tools.identity.service.open_session`` (how a password
    sign-in opens one; this package is below identity and does not import it)."""
    repo, srepo = IdentityRepository(session), SsoRepository(session)
    ident = srepo.identity(org.id, protocol, subject)
    user = repo.user(ident.user_id) if ident else None
    email = (email or (subject if "@" in subject else "")).strip().lower()
    if user is None and email:
        user = repo.user_by_email(email)
        if user is not None and user.org_id != org.id:
            raise _refuse(session, org, protocol, "foreign_user", "this email belongs to another organisation",
                          status=403, ip=ip, email=email)
    scim = srepo.scim_identity_by_user(org.id, user.id) if user else None
    if scim is not None:  # groups pushed through SCIM count too
        groups = sorted({*groups, *[g.display_name for g in srepo.groups(org.id) if user and user.id in g.member_ids]})
    role = role_for(cfg, groups)
    if role is None:
        raise _refuse(session, org, protocol, "no_role", "none of your groups gives access to this organisation",
                      status=403, ip=ip, subject=subject, groups=groups)
    if user is None:
        if not cfg.jit:
            raise _refuse(session, org, protocol, "unknown_user", "no account for this identity; ask an admin",
                          status=403, ip=ip, subject=subject)
        if not email or "@" not in email:
            raise _refuse(session, org, protocol, "no_email", "the identity provider sent no email address",
                          ip=ip, subject=subject)
        user = User(org_id=org.id, email=email, name=name[:200], role=role, password_hash=None)
        repo.add(user)
        audit_log.append(session, actor=f"sso:{protocol}", action="sso.user_provisioned", target=f"user:{user.id}",
                         org_id=org.id, request_id=request_id_var.get(),
                         after={"email": email, "role": role, "subject": subject, "groups": groups})
    if not user.active:
        raise _refuse(session, org, protocol, "inactive_user", "this account is deactivated", status=403, ip=ip,
                      user_id=user.id)
    if user.role != role:
        audit_log.append(session, actor=f"sso:{protocol}", action="sso.role_synced", target=f"user:{user.id}",
                         org_id=org.id, request_id=request_id_var.get(), before={"role": user.role},
                         after={"role": role}, detail={"groups": groups})
        user.role = role
    if ident is None:
        ident = SsoIdentity(org_id=org.id, user_id=user.id, protocol=protocol, subject=subject, groups=groups)
        srepo.add(ident)
    ident.groups, ident.last_login_at = groups, utcnow()
    audit_log.append(session, actor=f"user:{user.id}", action="sso.login", target=f"user:{user.id}", org_id=org.id,
                     request_id=request_id_var.get(),
                     detail={"protocol": protocol, "subject": subject, "role": role, "groups": groups, "ip": ip})
    return user


# ---- SAML --------------------------------------------------------------------------------------

def _saml_settings(org: Organization, cfg: SsoConfig) -> dict[str, Any]:
    urls = endpoints(org.slug)
    return {
        "strict": True,
        "debug": False,
        "sp": {"entityId": urls["sp_entity_id"],
               "assertionConsumerService": {"url": urls["sp_acs_url"],
                                            "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"},
               "NameIDFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"},
        "idp": {"entityId": cfg.saml_idp_entity_id,
                "singleSignOnService": {"url": cfg.saml_idp_sso_url,
                                        "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"},
                "x509cert": _cert_body(cfg.saml_idp_cert)},
        "security": {"wantAssertionsSigned": True, "wantMessagesSigned": False, "wantNameId": True,
                     "authnRequestsSigned": False, "rejectUnsolicitedResponsesWithInResponseTo": True,
                     "signatureAlgorithm": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                     "digestAlgorithm": "http://www.w3.org/2001/04/xmlenc#sha256",
                     "rejectDeprecatedAlgorithm": True, "wantAttributeStatement": False,
                     "requestedAuthnContext": False, "allowSingleLabelDomains": True},
    }


def _request_data(acs_url: str, post: dict[str, str] | None = None) -> dict[str, Any]:
    parts = urlsplit(acs_url)
    return {"https": "on" if parts.scheme == "https" else "off", "http_host": parts.hostname or "",
            "server_port": str(parts.port or (443 if parts.scheme == "https" else 80)), "script_name": parts.path,
            "get_data": {}, "post_data": post or {}}


def _auth(org: Organization, cfg: SsoConfig, post: dict[str, str] | None = None) -> Any:
    from onelogin.saml2.auth import OneLogin_Saml2_Auth
    from onelogin.saml2.constants import OneLogin_Saml2_Constants

    OneLogin_Saml2_Constants.ALLOWED_CLOCK_DRIFT = get_settings().sso_clock_skew_s
    data = _request_data(endpoints(org.slug)["sp_acs_url"], post)
    return OneLogin_Saml2_Auth(data, old_settings=_saml_settings(org, cfg))


def saml_metadata(session: Any, slug: str) -> str:
    """This organisation's SP metadata (entity id, ACS URL, NameID format) for the IdP administrator."""
    from onelogin.saml2.settings import OneLogin_Saml2_Settings

    org = IdentityRepository(session).org_by_slug(slug)
    if org is None:
        raise NotFound("no such organisation", field="org")
    cfg = SsoRepository(session).config(org.id) or SsoConfig(saml_idp_entity_id="", saml_idp_sso_url="",
                                                            saml_idp_cert="")
    settings = _saml_settings(org, cfg)
    settings["idp"] = {"entityId": "x", "singleSignOnService": {"url": "https://idp.invalid/"}, "x509cert": ""}
    meta = OneLogin_Saml2_Settings(settings, sp_validation_only=True).get_sp_metadata()
    return meta.decode() if isinstance(meta, bytes) else str(meta)


def saml_login(session: Any, slug: str, return_to: str | None) -> str:
    """Start a SAML sign-in: remember the AuthnRequest id, return the IdP redirect URL."""
    org, cfg = org_and_config(session, slug)
    if not cfg.saml_enabled:
        raise NotFound("SAML is not set up for this organisation", field="org")
    auth = _auth(org, cfg)
    relay = safe_return_to(return_to)
    url = str(auth.login(return_to=relay))
    _new_request(session, org, "saml", str(auth.get_last_request_id()), relay)
    audit_log.append(session, actor="sso:saml", action="sso.login_started", target=f"org:{org.id}", org_id=org.id,
                     request_id=request_id_var.get(), detail={"protocol": "saml", "return_to": relay})
    return url


def _in_response_to(b64: str) -> str | None:
    from onelogin.saml2.utils import OneLogin_Saml2_Utils
    from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

    xml = OneLogin_Saml2_Utils.b64decode(b64)
    doc = OneLogin_Saml2_XML.to_etree(xml)
    value = doc.get("InResponseTo")
    return str(value) if value else None


_REASONS = (  # python3-saml's error text -> our reason (first match wins)
    ("audience", "wrong_audience"), ("not yet valid", "not_yet_valid"), ("expired", "expired"),
    ("signature wrapping", "signature_wrapping"), ("multiple", "signature_wrapping"),
    ("1 assertion", "signature_wrapping"), ("unexpected element", "signature_wrapping"),
    ("is not signed", "unsigned"), ("no signature", "unsigned"), ("signed element", "signature_wrapping"),
    ("reference", "signature_wrapping"), ("signature", "bad_signature"), ("digest", "bad_signature"),
    ("destination", "wrong_recipient"), ("recipient", "wrong_recipient"), ("issuer", "wrong_issuer"),
    ("inresponseto", "unsolicited"), ("deprecated", "weak_algorithm"),
)


def _reason(text: str) -> str:
    low = text.lower()
    for needle, reason in _REASONS:
        if needle in low:
            return reason
    return "invalid_response"


def saml_acs(session: Any, slug: str, saml_response: str, relay_state: str | None, ip: str) -> tuple[User, str]:
    """Check a SAML response (signature, audience, recipient, times, pending request, replay) and sign in.

    Returns the user and the path to return to."""
    org, cfg = org_and_config(session, slug)
    if not cfg.saml_enabled:
        raise NotFound("SAML is not set up for this organisation", field="org")
    try:
        in_response_to = _in_response_to(saml_response)
    except Exception as exc:  # not base64, not XML, entity tricks: bad input
        raise _refuse(session, org, "saml", "malformed", f"the SAML response is not valid XML: {str(exc)[:120]}",
                      field="SAMLResponse", ip=ip) from exc
    pending: SsoRequest | None = None
    if in_response_to is not None or not cfg.saml_allow_unsolicited:
        pending = _claim_request(session, org, "saml", in_response_to, ip)
    auth = _auth(org, cfg, {"SAMLResponse": saml_response, "RelayState": relay_state or ""})
    try:
        auth.process_response(request_id=pending.key if pending else None)
    except Exception as exc:  # python3-saml raises on some malformed documents instead of listing errors
        raise _refuse(session, org, "saml", _reason(str(exc)), f"SAML response refused: {str(exc)[:200]}",
                      field="SAMLResponse", ip=ip) from exc
    errors = auth.get_errors()
    if errors or not auth.is_authenticated():
        why = str(auth.get_last_error_reason() or ", ".join(errors) or "not authenticated")
        raise _refuse(session, org, "saml", _reason(why), f"SAML response refused: {why[:200]}", field="SAMLResponse",
                      ip=ip, errors=errors)
    assertion_id = str(auth.get_last_assertion_id() or "")
    not_after = auth.get_last_assertion_not_on_or_after()
    until = dt.datetime.fromtimestamp(not_after, dt.UTC) if not_after else utcnow() + dt.timedelta(hours=1)
    until += dt.timedelta(seconds=get_settings().sso_clock_skew_s)
    fresh = SsoRepository(session).remember(f"saml:{org.id}:{assertion_id}", org.id, until, utcnow())
    if not assertion_id or not fresh:
        raise _refuse(session, org, "saml", "replayed", "this SAML assertion was already used", field="SAMLResponse",
                      ip=ip, assertion_id=assertion_id)
    attrs: dict[str, list[str]] = {}
    for k, v in (auth.get_attributes() or {}).items():  # Okta: "email"; Entra ID: ".../claims/emailaddress"
        attrs[k] = attrs[re.split(r"[:/]", k)[-1]] = [str(x) for x in v]

    def first(names: tuple[str, ...]) -> str:
        return next((attrs[n][0] for n in names if attrs.get(n)), "")

    groups = sorted({g for n in GROUP_ATTRS for g in attrs.get(n, [])})
    subject = str(auth.get_nameid())
    user = complete(session, org, cfg, protocol="saml", subject=subject, email=first(EMAIL_ATTRS) or None,
                            name=first(NAME_ATTRS), groups=groups, ip=ip)
    return user, safe_return_to(pending.return_to if pending else relay_state)


# ---- OIDC ----------------------------------------------------------------------------------------

def _get_json(url: str, field: str) -> dict[str, Any]:
    resp = _fetch("GET", url, field, headers={"Accept": "application/json"})
    if resp.status_code != 200:
        raise BadRequest(f"{url} answered {resp.status_code}", field=field)
    try:
        data = resp.json()
    except ValueError as exc:
        raise BadRequest(f"{url} did not answer JSON", field=field) from exc
    if not isinstance(data, dict):
        raise BadRequest(f"{url} did not answer a JSON object", field=field)
    return data


def discover(cfg: SsoConfig) -> dict[str, Any]:
    """The provider's discovery document (``/.well-known/openid-configuration``), checked against the issuer."""
    doc = _get_json(f"{cfg.oidc_issuer}/.well-known/openid-configuration", "oidc_issuer")
    if str(doc.get("issuer", "")).rstrip("/") != cfg.oidc_issuer:
        raise BadRequest("the discovery document names another issuer", field="oidc_issuer")
    for k in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(doc.get(k), str):
            raise BadRequest(f"the discovery document lacks {k}", field="oidc_issuer")
    return doc


def oidc_login(session: Any, slug: str, return_to: str | None) -> str:
    """Start an OIDC sign-in (code + PKCE S256, state, nonce kept in the database); the provider URL."""
    from authlib.common.security import generate_token
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    org, cfg = org_and_config(session, slug)
    if not cfg.oidc_enabled:
        raise NotFound("OIDC is not set up for this organisation", field="org")
    doc = discover(cfg)
    state, nonce, verifier = generate_token(40), generate_token(32), generate_token(64)
    relay = safe_return_to(return_to)
    _new_request(session, org, "oidc", state, relay, nonce=nonce, code_verifier=verifier)
    audit_log.append(session, actor="sso:oidc", action="sso.login_started", target=f"org:{org.id}", org_id=org.id,
                     request_id=request_id_var.get(), detail={"protocol": "oidc", "return_to": relay})
    query = {"response_type": "code", "client_id": cfg.oidc_client_id,
             "redirect_uri": endpoints(slug)["oidc_redirect_uri"],
             "scope": "openid email profile", "state": state, "nonce": nonce,
             "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256"}
    sep = "&" if "?" in doc["authorization_endpoint"] else "?"
    return f"{doc['authorization_endpoint']}{sep}{urlencode(query)}"


def oidc_callback(session: Any, slug: str, *, code: str | None, state: str | None, error: str | None,
                  ip: str) -> tuple[User, str]:
    """Finish an OIDC sign-in: state, code exchange with the PKCE verifier, id_token signature, issuer,
    audience, expiry and nonce. Returns the user and the path to return to."""
    from authlib.jose import JsonWebKey, JsonWebToken
    from authlib.jose.errors import JoseError

    org, cfg = org_and_config(session, slug)
    if not cfg.oidc_enabled:
        raise NotFound("OIDC is not set up for this organisation", field="org")
    req = _claim_request(session, org, "oidc", state, ip)
    if error:
        raise _refuse(session, org, "oidc", "provider_error", f"the provider refused: {error[:100]}", ip=ip)
    if not code:
        raise _refuse(session, org, "oidc", "no_code", "the provider sent no code", field="code", ip=ip)
    doc = discover(cfg)
    body = urlencode({"grant_type": "authorization_code", "code": code, "code_verifier": req.code_verifier,
                      "redirect_uri": endpoints(slug)["oidc_redirect_uri"]}).encode()
    basic = base64.b64encode(f"{cfg.oidc_client_id}:{cfg.oidc_client_secret}".encode()).decode()
    resp = _fetch("POST", doc["token_endpoint"], "oidc_issuer", content=body,
                  headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
                                 "Authorization": f"Basic {basic}"})
    try:
        tokens = json.loads(resp.body)
    except ValueError:
        tokens = {}
    if resp.status_code != 200 or not isinstance(tokens, dict) or not tokens.get("id_token"):
        err = tokens.get("error", resp.status_code) if isinstance(tokens, dict) else resp.status_code
        raise _refuse(session, org, "oidc", "code_rejected", f"the provider refused the code ({err})", field="code",
                      ip=ip)
    raw = str(tokens["id_token"])
    try:
        header = json.loads(base64.urlsafe_b64decode(raw.split(".")[0] + "=="))
    except (ValueError, IndexError):
        header = {}
    if not isinstance(header, dict) or header.get("alg") not in _ID_TOKEN_ALGS:
        alg = header.get("alg") if isinstance(header, dict) else None
        raise _refuse(session, org, "oidc", "bad_id_token_alg", f"id_token algorithm {alg!r} is not accepted",
                      field="id_token", ip=ip)
    skew = get_settings().sso_clock_skew_s
    try:
        keys = JsonWebKey.import_key_set(_get_json(doc["jwks_uri"], "oidc_issuer"))
        claims = JsonWebToken(_ID_TOKEN_ALGS).decode(raw, keys, claims_options={
            "iss": {"essential": True, "value": cfg.oidc_issuer},
            "aud": {"essential": True, "value": cfg.oidc_client_id},
            "exp": {"essential": True}, "sub": {"essential": True}, "nonce": {"essential": True, "value": req.nonce}})
        claims.validate(leeway=skew)
    except JoseError as exc:
        text = str(exc)
        reason = "bad_nonce" if "nonce" in text else "wrong_audience" if "aud" in text else \
            "wrong_issuer" if "iss" in text else "expired" if "expired" in text or "exp" in text else "bad_id_token"
        raise _refuse(session, org, "oidc", reason, f"id_token refused: {text[:200]}", field="id_token", ip=ip) from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise _refuse(session, org, "oidc", "bad_id_token", f"id_token refused: {str(exc)[:200]}", field="id_token",
                      ip=ip) from exc
    groups_claim = claims.get(cfg.oidc_groups_claim) or []
    groups = sorted(str(g) for g in groups_claim) if isinstance(groups_claim, list) else [str(groups_claim)]
    user = complete(session, org, cfg, protocol="oidc", subject=str(claims["sub"]),
                            email=str(claims.get("email") or "") or None, name=str(claims.get("name") or ""),
                            groups=groups, ip=ip)
    return user, req.return_to


# ---- enforcement (read by tools.identity.service.login through memory) ---------------------------

def start_url(session: Any, slug: str, return_to: str | None = None) -> str:
    """Where ``/sso/{slug}`` sends a person: SAML when set up, else OIDC."""
    _org_, cfg = org_and_config(session, slug)
    proto = "saml" if cfg.saml_enabled else "oidc"
    query = f"?{urlencode({'return_to': safe_return_to(return_to)})}" if return_to else ""
    return f"/sso/{slug}/{proto}/login{query}"
