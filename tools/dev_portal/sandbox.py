"""The sandbox: test mode, isolated like Stripe's.

Objects made with a test-mode key (``lvq_test_``) are test objects (``mode = 'test'``): pipelines, jobs
with their steps and events, plugin installs with their deliveries, credit ledger rows, webhook
endpoints. Test keys see only test objects and live keys only live ones (404 otherwise, as for another
organisation's). Test jobs run on the same workers, charged to the separate test credits
(``LEVQOR_TEST_CREDITS_MONTHLY`` a month); they never accrue partner revenue, never email partners, and
call out only to the organisation's registered TEST webhook endpoints (:mod:`tools.jobs.endpoints`).

:func:`reset_test_data` deletes the organisation's test objects and restores its test credits.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from levqor.settings import get_settings
from memory.events.repository import EventRepository
from memory.jobs.repository import CreditRepository, JobRepository, PipelineRepository
from memory.partner.repository import PartnerRepository
from tools.context import ToolContext
from tools.dev_portal.accounts import NoInput
from tools.enterprise import audit_log
from tools.errors import Forbidden
from tools.jobs.credits import period_now
from tools.registry import tool


class ResetResult(BaseModel):
    pipelines: int = Field(description="Test pipelines deleted")
    jobs: int = Field(description="Test jobs deleted (with their steps)")
    installs: int = Field(description="Test plugin installs deleted (with their deliveries)")
    events: int = Field(description="Test events deleted")
    test_credits: int = Field(description="The restored test balance")


@tool("test_data.reset", risk="destructive")
def reset_test_data(ctx: ToolContext, params: NoInput) -> ResetResult:
    """Delete the organisation's test data (pipelines, jobs, installs, events) and restore its test credits."""
    p = ctx.principal
    if p.role != "admin" or p.kind not in ("user", "api_key"):
        raise Forbidden("only an owner or admin of the organisation may reset its test data", field="org")
    org = ctx.org_id
    jobs = JobRepository(ctx.session).delete_mode(org, "test")
    pipelines = PipelineRepository(ctx.session).delete_mode(org, "test")
    installs = PartnerRepository(ctx.session).delete_installs_mode(org, "test")
    events = EventRepository(ctx.session).delete_mode(org, "test")
    credits = CreditRepository(ctx.session)
    credits.delete_ledger_mode(org, "test")
    balance = credits.reset_test(org, period_now(), get_settings().test_credits_monthly)
    out = ResetResult(pipelines=pipelines, jobs=jobs, installs=installs, events=events, test_credits=balance)
    audit_log.record(ctx, "test_data.reset", f"org:{org}", detail=out.model_dump())
    return out
