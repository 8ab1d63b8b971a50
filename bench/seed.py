"""Shared by the benchmarks: an organisation with a no-op pipeline and job credits.

Import it only where the benchmark's settings (``LEVQOR_*``) are already in the environment.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from tools.context import SYSTEM, Principal, ToolContext
from tools.identity.service import OrgCreate, create_org
from tools.jobs.credits import CreditGrant, grant_credits
from tools.jobs.pipelines import PipelineCreate, create_pipeline


def bench_org(ses: Session, credits: int) -> tuple[ToolContext, int]:
    """Organisation ``bench`` (plan pro) with a one-step no-op pipeline and ``credits`` job credits:
    (a system admin context in it, the pipeline id)."""
    org = create_org(ToolContext(ses, SYSTEM), OrgCreate(name="Bench", slug="bench", plan="pro"))
    ctx = ToolContext(ses, Principal(kind="system", id="bench", org_id=org.id, role="admin"))
    pipe = create_pipeline(ctx, PipelineCreate.model_validate({"name": "noop", "steps": [
        {"kind": "transform", "expression": "input"}]}))
    grant_credits(ctx, CreditGrant(amount=credits))
    return ctx, pipe.id
