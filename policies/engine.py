"""The policy engine: load ``policy.json`` strictly, then decide per actor and tool.

``decide`` returns allow | deny | needs_approval with a reason. Order: a ``deny`` match, an
argument over its limit, or a rate limit reached denies; then ``needs_approval``; then ``allow``;
anything not allowed is denied. Patterns are a tool name, ``area.*``, ``risk:<risk>`` or ``*``.
Denials are written to the audit log in their own transaction (they survive the caller's rollback).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

if TYPE_CHECKING:
    from tools.context import ToolContext
    from tools.registry import ToolSpec

Outcome = Literal["allow", "deny", "needs_approval"]
_PATTERN = re.compile(r"^(\*|risk:(read|write|destructive|financial)|[a-z_]+\.(\*|[a-z_]+))$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RateLimit(Strict):
    tool: str
    max: int = Field(ge=0)
    window_s: int = Field(gt=0)


class ActorPolicy(Strict):
    description: str = ""
    allow: list[str] = []
    deny: list[str] = []
    needs_approval: list[str] = []
    rate_limits: list[RateLimit] = []
    # tool -> argument -> maximum (a number's value, or a list's length)
    arg_limits: dict[str, dict[str, float]] = {}

    @field_validator("allow", "deny", "needs_approval")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pat in value:
            if not _PATTERN.match(pat):
                raise ValueError(f"bad pattern {pat!r}: use a tool name, area.*, risk:<risk> or *")
        return value


class RevenueShare(Strict):
    min_partner_share: float = Field(ge=0, le=1)
    max_partner_share: float = Field(ge=0, le=1)
    platform_fee_floor: float = Field(ge=0, le=1)


class PolicyDocument(Strict):
    version: int
    actors: dict[str, ActorPolicy]
    revenue_share: RevenueShare
    code_of_conduct: dict[str, Any] | None = None
    approval_ttl_s: int = 86400


class PolicyError(Exception):
    """policy.json cannot be used; the message names the file, line and key."""


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str


def _line_of(text: str, loc: tuple[int | str, ...]) -> int:
    """Find the line of the key path ``loc`` in the JSON ``text`` (best effort, first match in order)."""
    pos = 0
    for part in loc:
        if isinstance(part, int):
            continue
        idx = text.find(f'"{part}"', pos)
        if idx < 0:
            break
        pos = idx
    return text.count("\n", 0, pos) + 1


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
        else:
            msg = f"{where}: {err['msg']}"
        raise PolicyError(f"{path}:{_line_of(text, loc)}: {msg}") from None


def _matches(pattern: str, spec: ToolSpec) -> bool:
    if pattern == "*" or pattern == spec.name:
        return True
    if pattern.startswith("risk:"):
        return pattern[5:] == spec.risk
    if pattern.endswith(".*"):
        return spec.area == pattern[:-2]
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

    def evaluate(self, actor: str, kind: str, spec: ToolSpec, args: dict[str, Any],
                 recent_count: Any = None) -> Decision:
        """Pure decision (no I/O except ``recent_count(tool, window_s)`` for rate limits)."""
        key, pol = self.actor_policy(actor, kind)
        for pat in pol.deny:
            if _matches(pat, spec):
                return Decision("deny", f"{spec.name} is denied to {actor} by policy ({key}: deny {pat})")
        for arg, limit in pol.arg_limits.get(spec.name, {}).items():
            value = args.get(arg)
            size = len(value) if isinstance(value, list | tuple | dict | str) else value
            if isinstance(size, int | float) and size > limit:
                return Decision("deny", f"{spec.name}: argument {arg}={size} is over the policy limit {limit:g}")
        for rl in pol.rate_limits:
            if rl.tool in (spec.name, "*") and recent_count is not None:
                used = recent_count(spec.name if rl.tool != "*" else None, rl.window_s)
                if used >= rl.max:
                    return Decision(
                        "deny", f"rate limit: {actor} may call {rl.tool} {rl.max} times per {rl.window_s}s"
                    )
        for pat in pol.needs_approval:
            if _matches(pat, spec):
                return Decision("needs_approval", f"{spec.name} needs a person's approval ({key}: {pat})")
        for pat in pol.allow:
            if _matches(pat, spec):
                return Decision("allow", f"allowed by {key}: {pat}")
        return Decision("deny", f"{spec.name} ({spec.risk}) is not in {actor}'s allow-list")

    def decide(self, ctx: ToolContext, spec: ToolSpec, params: BaseModel) -> Decision:
        """Decide, record agent decisions (rate limits count them) and audit every denial."""
        from memory.policy.repository import PolicyDecisionRepository

        principal = ctx.principal
        args = params.model_dump(mode="json")
        repo = PolicyDecisionRepository(ctx.session)
        decision = self.evaluate(
            principal.actor, principal.kind, spec, args,
            recent_count=lambda tool, window: repo.count_allowed(principal.actor, tool, window),
        )
        if principal.kind == "agent":
            repo.record(principal.actor, spec.name, decision.outcome, decision.reason, args)
        if decision.outcome == "deny":
            from tools.enterprise.audit_log import append_detached

            append_detached(
                actor=principal.actor, action="policy.denied", target=spec.name, org_id=principal.org_id,
                request_id=ctx.request_id, outcome="denied",
                detail={"reason": decision.reason, "args": args, "risk": spec.risk},
            )
        return decision


_lock = threading.Lock()
_engine: PolicyEngine | None = None


def get_engine() -> PolicyEngine:
    """The process-wide engine, loaded from ``LEVQOR_POLICY_PATH`` on first use."""
    global _engine
    with _lock:
        if _engine is None:
            from levqor.settings import get_settings

            path = get_settings().policy_path
            _engine = PolicyEngine(load_policy(path), path)
        return _engine


def reset_engine() -> None:
    global _engine
    with _lock:
        _engine = None


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
