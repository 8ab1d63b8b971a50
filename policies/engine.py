"""The policy engine: load ``policy.json`` strictly, then decide per actor and tool.

``decide`` returns allow | deny | needs_approval with a reason. Order: a ``deny`` match, an
argument over its limit, or a rate limit reached denies; then ``needs_approval``; then ``allow``;
anything not allowed is denied. A tool named exactly in ``allow`` is pre-approved: a pattern in
``needs_approval`` (``risk:destructive``, ``area.*``, ``*``) does not apply to it, only its exact name
does (so "destructive tools need approval, except these two, within their rate limits" is one
policy). Patterns are a tool name, ``area.*``, ``risk:<risk>`` or ``*``; a rate limit names a pattern
too and counts the actor's recorded allowed calls of every tool it matches.

The engine is pure: it reads the policy file and decides. Recording agents' decisions and auditing
denials is the tools registry's part (``tools.registry``), which asks the engine before every call.
"""

from __future__ import annotations

import bisect
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from levqor.settings import get_settings

Outcome = Literal["allow", "deny", "needs_approval"]
_TOOL_NAME = r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*"
_PATTERN = re.compile(rf"^(\*|risk:(read|write|destructive|financial)|[a-z][a-z0-9_]*\.\*|{_TOOL_NAME})$")
_TOOL = re.compile(rf"^{_TOOL_NAME}$")
_ACTOR = re.compile(r"^(human|system|agent:\*|(agent|user|api_key):[A-Za-z0-9_.:-]+)$")


def _check_pattern(pat: str) -> str:
    if not _PATTERN.match(pat):
        raise ValueError(f"bad pattern {pat!r}: use a tool name, area.*, risk:<risk> or *")
    return pat


def _check_tool(name: str) -> str:
    if not _TOOL.match(name):
        raise ValueError(f"bad tool name {name!r}: use area.verb")
    return name


def _check_actor(name: str) -> str:
    if not _ACTOR.match(name):
        raise ValueError(f"bad actor {name!r}: use human, system, agent:*, agent:<name>, user:<id> "
                         "or api_key:<prefix>")
    return name


Pattern = Annotated[str, AfterValidator(_check_pattern)]
ToolName = Annotated[str, AfterValidator(_check_tool)]
ActorName = Annotated[str, AfterValidator(_check_actor)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RateLimit(Strict):
    tool: Pattern
    max: int = Field(ge=0)
    window_s: int = Field(gt=0)


class ActorPolicy(Strict):
    description: str = ""
    allow: list[Pattern] = []
    deny: list[Pattern] = []
    needs_approval: list[Pattern] = []
    rate_limits: list[RateLimit] = []
    # tool -> argument -> maximum (a number's value, or a list's, string's or object's length)
    arg_limits: dict[ToolName, dict[str, float]] = {}
    # An agent's LLM spend per organisation and day (USD): past it, its model calls stop (it runs offline)
    # until the next day. On ``agent:*``, the cap of every agent that does not set its own.
    llm_daily_cost_cap_usd: float | None = Field(None, ge=0)


class VolumeTier(Strict):
    """From ``min_monthly_installs`` active installs on, a plugin's partner share may reach ``max_partner_share``."""

    min_monthly_installs: int = Field(ge=0)
    max_partner_share: float = Field(ge=0, le=1)


class RevenueShare(Strict):
    min_partner_share: float = Field(ge=0, le=1)
    max_partner_share: float = Field(ge=0, le=1)
    platform_fee_floor: float = Field(ge=0, le=1)
    # By volume: the highest tier a plugin reaches caps its share (none: max_partner_share for all).
    tiers: list[VolumeTier] = []

    @model_validator(mode="after")
    def _consistent(self) -> RevenueShare:
        if self.min_partner_share > self.max_partner_share:
            raise ValueError("min_partner_share is above max_partner_share")
        if self.max_partner_share + self.platform_fee_floor > 1 + 1e-9:
            raise ValueError("max_partner_share + platform_fee_floor is above 1")
        for t in self.tiers:
            if not self.min_partner_share <= t.max_partner_share <= self.max_partner_share:
                raise ValueError(f"tier from {t.min_monthly_installs} installs: its share is outside the bounds")
        if [t.min_monthly_installs for t in self.tiers] != sorted({t.min_monthly_installs for t in self.tiers}):
            raise ValueError("tiers must be ordered by min_monthly_installs, each once")
        return self

    def cap_for(self, installs: int) -> float:
        """The highest partner share a plugin with ``installs`` active installs may have."""
        cap = self.tiers[0].max_partner_share if self.tiers else self.max_partner_share
        for t in self.tiers:
            if installs >= t.min_monthly_installs:
                cap = t.max_partner_share
        return cap


Severity = Literal["critical", "high", "medium", "low", "info"]


class DataScopes(Strict):
    """Which data scopes a plugin may request; personal-data scopes carry disclosure duties."""

    allowed: list[str] = Field(min_length=1)
    personal_data: list[str] = []
    # A scope must be needed by a subscribed event (least privilege); unneeded ones are findings.
    least_privilege: bool = True


class Retention(Strict):
    """How long a partner may keep Levqor data it receives, and that its privacy page must say so."""

    max_days: int = Field(ge=1, le=3650)
    privacy_page_must_mention: bool = True


class Floors(Strict):
    """Service floors a listed plugin's endpoint must meet (from audits and the delivery log)."""

    ack_within_ms: int = Field(ge=50, le=30_000)
    max_error_rate: float = Field(ge=0, le=1)
    max_p95_latency_ms: int = Field(ge=50, le=60_000)
    window_days: int = Field(30, ge=1, le=366)
    min_sample: int = Field(20, ge=1)


class Disclosure(Strict):
    """What a plugin must disclose to the organisations installing it."""

    privacy_url_reachable: bool = True
    support_url_reachable: bool = True
    personal_data_in_description: bool = True


class EndpointRules(Strict):
    """What a partner endpoint must do over HTTPS."""

    min_tls: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    hsts_min_age_s: int = Field(15_552_000, ge=0)
    security_headers: list[str] = ["x-content-type-options"]
    cert_expiry_warn_days: int = Field(14, ge=0)


class Enforcement(Strict):
    """What happens after a failed audit: the partner is told and has ``fix_within_days`` to fix it."""

    fix_within_days: int = Field(ge=0, le=365)
    fail_at: list[Severity] = ["critical", "high"]
    suspend_listing: bool = True
    hold_payouts: bool = True


class CodeOfConduct(Strict):
    """The partner code of conduct, checked by every partner audit (``tools.governance``)."""

    data_scopes: DataScopes
    retention: Retention
    prohibited_categories: list[str] = []
    floors: Floors
    disclosure: Disclosure = Disclosure()
    endpoint: EndpointRules = EndpointRules()
    enforcement: Enforcement


class PolicyDocument(Strict):
    version: int
    actors: dict[ActorName, ActorPolicy]
    revenue_share: RevenueShare
    code_of_conduct: CodeOfConduct | None = None
    approval_ttl_s: int = 86400


def policy_digest(doc: PolicyDocument) -> str:
    """A SHA-256 of the document's canonical JSON: tells two policies apart whatever their formatting."""
    import hashlib

    canon = json.dumps(doc.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


class PolicyError(Exception):
    """policy.json cannot be used; the message names the file, line and key."""


class ToolRef(Protocol):
    """What the engine needs to know of a tool: its name (``area.verb``) and its risk."""

    @property
    def name(self) -> str: ...

    @property
    def risk(self) -> str: ...


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str


def _path_lines(text: str) -> dict[tuple[int | str, ...], int]:
    """Map every key path of the (valid) JSON ``text`` to the line where its key or item starts."""
    newlines = [i for i, ch in enumerate(text) if ch == "\n"]
    lines: dict[tuple[int | str, ...], int] = {}
    decoder = json.JSONDecoder()
    pos = 0

    def line(at: int) -> int:
        return bisect.bisect_left(newlines, at) + 1

    def skip() -> None:
        nonlocal pos
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1

    def value(path: tuple[int | str, ...]) -> None:
        nonlocal pos
        skip()
        if text[pos] == "{":
            pos += 1
            skip()
            while text[pos] != "}":
                start = pos
                key, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
                skip()
                pos += 1  # the colon
                lines[(*path, key)] = line(start)
                value((*path, key))
                skip()
                if text[pos] == ",":
                    pos += 1
                    skip()
            pos += 1
        elif text[pos] == "[":
            pos += 1
            skip()
            index = 0
            while text[pos] != "]":
                lines[(*path, index)] = line(pos)
                value((*path, index))
                index += 1
                skip()
                if text[pos] == ",":
                    pos += 1
                    skip()
            pos += 1
        else:
            _, pos = decoder.raw_decode(text, pos)

    value(())
    return lines


def _line_of(text: str, loc: tuple[int | str, ...]) -> int:
    """The line of the deepest part of the key path ``loc`` that exists in the JSON ``text``."""
    lines = _path_lines(text)
    for n in range(len(loc), 0, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return 1


def load_policy(path: Path) -> PolicyDocument:
    """Parse and validate ``path``; raise :class:`PolicyError` naming the line on any problem."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read policy file: {exc}") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    try:
        return PolicyDocument.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r} at {where}"
        elif loc and loc[-1] == "[key]":
            msg = f"{'.'.join(str(p) for p in loc[:-1])}: {err['msg']}"
        else:
            msg = f"{where}: {err['msg']}"
        raise PolicyError(f"{path}:{_line_of(text, loc)}: {msg}") from None


def matches(pattern: str, tool: ToolRef) -> bool:
    """Whether a policy pattern (a tool name, ``area.*``, ``risk:<risk>`` or ``*``) names ``tool``."""
    if pattern == "*" or pattern == tool.name:
        return True
    if pattern.startswith("risk:"):
        return pattern[5:] == tool.risk
    if pattern.endswith(".*"):
        return tool.name.split(".", 1)[0] == pattern[:-2]
    return False


class PolicyEngine:
    """Decides what an actor may do with a tool."""

    def __init__(self, doc: PolicyDocument, path: Path | None = None):
        self.doc = doc
        self.path = path

    def actor_policy(self, actor: str, kind: str) -> tuple[str, ActorPolicy]:
        actors = self.doc.actors
        if actor in actors:
            return actor, actors[actor]
        if kind == "agent" and "agent:*" in actors:
            return "agent:*", actors["agent:*"]
        if kind in ("user", "api_key") and "human" in actors:
            return "human", actors["human"]
        if kind == "system" and "system" in actors:
            return "system", actors["system"]
        return "(none)", ActorPolicy()

    def llm_cost_cap_micro_usd(self, agent: str) -> int | None:
        """The daily LLM cost cap of ``agent`` (its own entry's, else ``agent:*``'s) in micro-USD, or None."""
        own = self.doc.actors.get(f"agent:{agent}")
        cap = own.llm_daily_cost_cap_usd if own is not None else None
        if cap is None and "agent:*" in self.doc.actors:
            cap = self.doc.actors["agent:*"].llm_daily_cost_cap_usd
        return None if cap is None else round(cap * 1_000_000)

    def evaluate(self, actor: str, kind: str, spec: ToolRef, args: dict[str, Any],
                 recent_count: Callable[[str, int], int] | None = None) -> Decision:
        """Pure decision (no I/O except ``recent_count(pattern, window_s)`` for rate limits).

        ``recent_count`` returns how many calls of tools matching ``pattern`` the actor was allowed
        in the last ``window_s`` seconds.
        """
        key, pol = self.actor_policy(actor, kind)
        for pat in pol.deny:
            if matches(pat, spec):
                return Decision("deny", f"{spec.name} is denied to {actor} by policy ({key}: deny {pat})")
        for arg, limit in pol.arg_limits.get(spec.name, {}).items():
            value = args.get(arg)
            size = len(value) if isinstance(value, list | tuple | dict | str) else value
            if isinstance(size, int | float) and not isinstance(size, bool) and size > limit:
                return Decision("deny", f"{spec.name}: argument {arg}={size} is over the policy limit {limit:g}")
        for rl in pol.rate_limits:
            if recent_count is not None and matches(rl.tool, spec):
                used = recent_count(rl.tool, rl.window_s)
                if used >= rl.max:
                    return Decision(
                        "deny", f"rate limit: {actor} may call {rl.tool} {rl.max} times per {rl.window_s}s"
                    )
        pre_approved = spec.name in pol.allow
        for pat in pol.needs_approval:
            if matches(pat, spec) and (pat == spec.name or not pre_approved):
                return Decision("needs_approval", f"{spec.name} needs a person's approval ({key}: {pat})")
        for pat in pol.allow:
            if matches(pat, spec):
                return Decision("allow", f"allowed by {key}: {pat}")
        return Decision("deny", f"{spec.name} ({spec.risk}) is not in {actor}'s allow-list")


_lock = threading.Lock()
_engine: PolicyEngine | None = None


def get_engine() -> PolicyEngine:
    """The process-wide engine, loaded from ``LEVQOR_POLICY_PATH`` on first use."""
    global _engine
    with _lock:
        if _engine is None:
            path = get_settings().policy_path
            _engine = PolicyEngine(load_policy(path), path)
        return _engine


def reset_engine() -> None:
    global _engine
    with _lock:
        _engine = None
