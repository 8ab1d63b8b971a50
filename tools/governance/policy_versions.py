"""Policy versions: every policy document seen in force is recorded once (by digest) with its diff from the
previous one, and each change is an audit-log entry carrying that diff."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from memory.governance.models import PolicyVersion
from memory.governance.repository import GovernanceRepository
from policies.engine import get_engine, policy_digest
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.enterprise.rbac import require_staff
from tools.identity.service import NoInput
from tools.registry import tool


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b.0": leaf}`` for every leaf of a JSON document (lists of scalars kept whole)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}.{i}"))
        return out
    return {prefix: value}


def diff(before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, Any]]:
    """The changed leaves: ``{"path", "before", "after"}`` (a missing side is None), sorted by path."""
    a, b = flatten(before or {}), flatten(after)
    return [{"path": p, "before": a.get(p), "after": b.get(p)} for p in sorted(set(a) | set(b)) if a.get(p) != b.get(p)]


class PolicyVersionRead(BaseModel):
    id: int
    version: int
    digest: str
    recorded_by: str
    recorded_at: dt.datetime
    changes: list[dict[str, Any]] = Field(description="path, before, after of each changed setting")
    in_force: bool


class PolicyVersionList(BaseModel):
    in_force: int = Field(description="The version of the policy the engine uses now")
    digest: str
    items: list[PolicyVersionRead]


def record_in_force(ctx: ToolContext) -> PolicyVersion | None:
    """Record the policy in force when it is new (audit entry with the diff); None when already recorded."""
    engine = get_engine()
    doc = engine.doc.model_dump(mode="json")
    digest = policy_digest(engine.doc)
    repo = GovernanceRepository(ctx.session)
    if repo.policy_by_digest(digest) is not None:
        return None
    prev = repo.latest_policy()
    changes = diff(prev.document if prev else None, doc)
    row = PolicyVersion(version=engine.doc.version, digest=digest, document=doc, diff=changes,
                        recorded_by=ctx.principal.actor)
    repo.add(row)
    detail: dict[str, Any] = {"digest": digest, "changes": changes[:200]}
    if prev is not None and prev.version >= engine.doc.version:
        detail["warning"] = f"content changed but version stayed {engine.doc.version} (was {prev.version})"
    audit_log.record(ctx, "policy.changed", "policy.json",
                     before={"version": prev.version, "digest": prev.digest} if prev else None,
                     after={"version": engine.doc.version, "digest": digest}, detail=detail)
    return row


@tool("governance.policy_record", risk="write")
def policy_record(ctx: ToolContext, params: NoInput) -> PolicyVersionList:
    """Record the policy version in force if it changed (an audit entry with the diff); list the versions."""
    require_staff(ctx, "record policy versions")
    record_in_force(ctx)
    return policy_versions(ctx, params)


@tool("governance.policy_versions", risk="read")
def policy_versions(ctx: ToolContext, params: NoInput) -> PolicyVersionList:
    """List the policy versions that have been in force, newest first, with what each changed."""
    engine = get_engine()
    digest = policy_digest(engine.doc)
    rows = GovernanceRepository(ctx.session).policy_versions()
    return PolicyVersionList(in_force=engine.doc.version, digest=digest, items=[
        PolicyVersionRead(id=r.id, version=r.version, digest=r.digest, recorded_by=r.recorded_by,
                          recorded_at=r.recorded_at, changes=list(r.diff or []), in_force=r.digest == digest)
        for r in rows])
