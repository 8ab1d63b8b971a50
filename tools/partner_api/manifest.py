"""The plugin manifest: its schema, and the checks a manifest passes before it is saved.

A manifest is validated strictly: HTTPS endpoints through the one SSRF guard in
:mod:`tools.shared.ssrf`, the revenue share within ``policy.json`` bounds, known categories,
scopes and events, and a semantic version.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from levqor.settings import get_settings
from policies.engine import get_engine
from tools.errors import Unprocessable
from tools.events.service import KNOWN_EVENTS
from tools.shared.ssrf import SSRFBlocked, check_url

CATEGORIES: tuple[str, ...] = ("analytics", "communication", "crm", "data", "devops", "finance", "marketing",
                               "productivity", "security", "support")
# Scopes a plugin may request; they decide which event fields reach it (see fanout.SCOPE_FIELDS).
PLUGIN_SCOPES: dict[str, str] = {
    "events:read": "Receive the names and ids of subscribed platform events.",
    "jobs:read": "Job and pipeline ids, states, attempts and errors in job events.",
    "users:read": "User ids, emails and roles in user events (personal data).",
    "org:read": "The installing organisation's id and slug.",
    "credits:read": "Credit balances in billing events.",
}
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$")
SLUG = r"^[a-z0-9][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*)*$"


def semver_key(version: str) -> tuple[int, int, int, int, tuple[Any, ...]]:
    """Sort key following semver precedence (pre-releases before the release; build ignored)."""
    m = _SEMVER.match(version)
    if m is None:
        raise Unprocessable(f"version {version!r} is not semver (MAJOR.MINOR.PATCH)", field="version")
    pre = m.group(4)
    parts = pre.split(".") if pre else []
    pre_key: tuple[Any, ...] = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), 0 if pre else 1, pre_key


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pricing(Strict):
    model: Literal["free", "monthly", "per_run"] = Field(description="How installs are charged.")
    monthly_minor: int | None = Field(None, ge=1, le=10_000_000, description="Monthly price in minor units.")
    credits_per_run: int | None = Field(None, ge=1, le=10_000, description="Credits per pipeline run using it.")
    currency: Literal["usd"] = "usd"

    @model_validator(mode="after")
    def _consistent(self) -> Pricing:
        if self.model == "monthly" and self.monthly_minor is None:
            raise ValueError("pricing.monthly_minor is required for monthly pricing")
        if self.model == "per_run" and self.credits_per_run is None:
            raise ValueError("pricing.credits_per_run is required for per-run pricing")
        if self.model == "free" and (self.monthly_minor or self.credits_per_run):
            raise ValueError("free pricing takes no monthly_minor or credits_per_run")
        return self


class Action(Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
    url: str = Field(max_length=2000, description="HTTPS URL the pipeline step calls (signed).")
    description: str = Field("", max_length=500)


class Endpoints(Strict):
    webhook_url: str | None = Field(None, max_length=2000, description="HTTPS URL receiving subscribed events.")
    actions: list[Action] = Field(default_factory=list, max_length=20)


def _known(values: list[str], allowed: Collection[str], what: str) -> list[str]:
    """Refuse values outside ``allowed`` (naming them); return the rest sorted without repeats."""
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValueError(f"unknown {what} {bad}; use {', '.join(allowed)}")
    return sorted(set(values))


class Manifest(Strict):
    """A plugin manifest (the roadmap's ``id, name, author, endpoints, revenue_share`` and more)."""

    id: str = Field(min_length=3, max_length=64, pattern=SLUG, description="Unique plugin id, e.g. acme.slack")
    name: str = Field(min_length=1, max_length=100)
    author: str = Field(min_length=1, max_length=200)
    version: str = Field(max_length=64, description="Semantic version, e.g. 1.2.0")
    description: str = Field("", max_length=5000)
    categories: list[str] = Field(default_factory=list, max_length=5)
    icon: str | None = Field(None, max_length=2000, description="HTTPS URL of a square icon")
    pricing: Pricing = Field(default_factory=lambda: Pricing(model="free"))
    scopes: list[str] = Field(default_factory=list, max_length=len(PLUGIN_SCOPES))
    events: list[str] = Field(default_factory=list, max_length=len(KNOWN_EVENTS))
    endpoints: Endpoints = Field(default_factory=Endpoints)
    revenue_share: float = Field(ge=0, le=1, description="Partner's share of the plugin's revenue (0-1)")
    support_url: str = Field(max_length=2000)
    privacy_url: str = Field(max_length=2000)

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        if not _SEMVER.match(v):
            raise ValueError(f"{v!r} is not semver (MAJOR.MINOR.PATCH, e.g. 1.0.0)")
        return v

    @field_validator("categories")
    @classmethod
    def _categories(cls, v: list[str]) -> list[str]:
        return _known(v, CATEGORIES, "categories")

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, v: list[str]) -> list[str]:
        return _known(v, PLUGIN_SCOPES, "scopes")

    @field_validator("events")
    @classmethod
    def _events(cls, v: list[str]) -> list[str]:
        return _known(v, sorted(KNOWN_EVENTS), "events")

    @model_validator(mode="after")
    def _webhook_needed(self) -> Manifest:
        if self.events and not self.endpoints.webhook_url:
            raise ValueError("endpoints.webhook_url is required when events are subscribed")
        return self


def _loopback_host(host: str) -> bool:
    bare = host.strip("[]").rstrip(".")
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def check_partner_url(url: str, field: str, *, resolve: bool) -> None:
    """HTTPS only (http to loopback only with LEVQOR_ALLOW_LOOPBACK_URLS), then the SSRF guard."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise Unprocessable(f"{field}: invalid URL: {exc}", field=field) from None
    if parts.scheme != "https":
        loop_ok = get_settings().allow_loopback_urls and parts.scheme == "http" and _loopback_host(
            parts.hostname or "")
        if not loop_ok:
            raise Unprocessable(f"{field}: partner URLs must use https, not {parts.scheme or 'no scheme'!r}",
                                field=field)
    try:
        check_url(url, resolve=resolve)
    except SSRFBlocked as exc:
        raise SSRFBlocked(f"{field}: {exc.detail}", field=field) from None


def validate_manifest(raw: dict[str, Any]) -> Manifest:
    """Parse ``raw`` into a :class:`Manifest` and check URLs and the revenue share; clear errors."""
    try:
        m = Manifest.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in ("manifest", *err["loc"]))
        raise Unprocessable(f"{loc}: {err['msg']}", field=loc) from None
    if m.endpoints.webhook_url:
        check_partner_url(m.endpoints.webhook_url, "manifest.endpoints.webhook_url", resolve=True)
    for i, action in enumerate(m.endpoints.actions):
        check_partner_url(action.url, f"manifest.endpoints.actions.{i}.url", resolve=True)
    for name in ("icon", "support_url", "privacy_url"):
        value = getattr(m, name)
        if value:
            check_partner_url(value, f"manifest.{name}", resolve=False)
    rules = get_engine().doc.revenue_share
    share = m.revenue_share
    if not rules.min_partner_share <= share <= rules.max_partner_share:
        raise Unprocessable(
            f"manifest.revenue_share: {share:g} is outside the policy bounds "
            f"{rules.min_partner_share:g}-{rules.max_partner_share:g}", field="manifest.revenue_share")
    if 1 - share < rules.platform_fee_floor - 1e-9:
        raise Unprocessable(f"manifest.revenue_share: the platform fee {1 - share:g} is under the floor "
                            f"{rules.platform_fee_floor:g}", field="manifest.revenue_share")
    return m


def share_bps(manifest: dict[str, Any]) -> int:
    """The partner's revenue share of a stored manifest, in basis points."""
    return int(round(float(manifest["revenue_share"]) * 10000))
