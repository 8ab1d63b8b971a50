"""Running partner audits without holding a database transaction over the network.

An audit is claimed under a lease (``lease_owner`` until ``lease_until``) in a short transaction that
commits before anything is sent; its plugin version is then probed with no session open (TLS handshakes,
test events, the privacy and support pages: up to the code of conduct's time limits each); the outcome is
recorded in another short transaction, and only while the claimant still holds the lease. With at most
one open audit per plugin version (a unique index), two schedulers or workers never audit the same
version twice, and the audit of a crashed auditor is taken over once its lease has expired.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from memory.db import session_scope, utcnow
from memory.governance.repository import GovernanceRepository
from memory.partner.repository import PartnerRepository
from tools.context import Principal, ToolContext
from tools.enterprise import audit_log
from tools.governance import partner_audit

log = logging.getLogger("levqor.governance")
# Longer than the slowest audit (about ten requests, each within its time limit).
LEASE = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class Claim:
    audit_id: int
    owner: str


def new_owner() -> str:
    """A lease owner naming this process, unique per claim."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def claim(session: Session, limit: int, *, audit_id: int | None = None,
          now: dt.datetime | None = None) -> list[Claim]:
    """Lease up to ``limit`` claimable audits (or just ``audit_id``) to a new owner, in the caller's transaction;
    the caller commits before running them."""
    now = now or utcnow()
    owner = new_owner()
    return [Claim(i, owner) for i in GovernanceRepository(session).claim(now, now + LEASE, owner, limit, audit_id)]


def run(claims: list[Claim], principal: Principal) -> list[int]:
    """Probe and record each claimed audit, no session open while probing; the ids recorded."""
    return [c.audit_id for c in claims if _run_one(c, principal)]


def run_now(audit_id: int, principal: Principal) -> bool:
    """Claim one audit and run it at once (a partner's or staff's request); False when another auditor has it."""
    with session_scope() as s:
        claims = claim(s, 1, audit_id=audit_id)
    return bool(run(claims, principal))


def _run_one(c: Claim, principal: Principal) -> bool:
    now = utcnow()
    try:
        with session_scope() as s:
            audit = GovernanceRepository(s).leased(c.audit_id, c.owner)
            if audit is None:  # recorded already (a replayed step), or taken over after our lease expired
                return False
            plan = partner_audit.plan(s, audit, now)
    except Exception as exc:
        return _record(c, principal, error=str(getattr(exc, "detail", exc)))
    try:
        outcome = partner_audit.probe(plan, now)
    except Exception as exc:  # a broken check must not leave the audit running until its lease expires
        log.exception("partner audit failed", extra={"fields": {"audit": c.audit_id}})
        return _record(c, principal, error=f"{type(exc).__name__}: {exc}")
    return _record(c, principal, outcome=outcome)


def _record(c: Claim, principal: Principal, *, outcome: partner_audit.Outcome | None = None,
            error: str = "") -> bool:
    with session_scope() as s:
        audit = GovernanceRepository(s).settle(c.audit_id, c.owner, "done" if outcome else "error", utcnow())
        if audit is None:
            log.warning("audit lease lost before recording", extra={"fields": {"audit": c.audit_id}})
            return False
        if outcome is None:
            audit.error = error[:1000]
            return True
        partner_audit.finish(s, audit, outcome)
        plugin = PartnerRepository(s).plugin(audit.plugin_id)
        audit_log.record(ToolContext(session=s, principal=principal), "governance.audited",
                         f"plugin:{plugin.slug if plugin else audit.plugin_id}",
                         after={"audit": audit.id, "version": audit.version, "result": audit.result,
                                "findings": [f["code"] for f in audit.findings]}, detail={"trigger": audit.trigger})
    return True
