"""Pipelines, jobs, the dead-letter list, the queue switch, workers, credits and webhook triggers."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request, Response, status
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import SessionDep, public, require
from levqor.logging import request_id_var
from tools.context import ToolContext
from tools.errors import Unprocessable
from tools.jobs import credits, pipelines, queue, triggers
from tools.jobs import metrics as _metrics  # noqa: F401  (registers the jobs metrics in the API process)
from tools.jobs import workers as worker_tools
from tools.jobs.credits import CreditGrant, CreditGrantOut, CreditsQuery, CreditsRead
from tools.jobs.pipelines import PipelineCreate, PipelineList, PipelinePatch, PipelineRead, PipelineRef, PipelineUpdate
from tools.jobs.queue import (
    DeadPurge,
    DeadQuery,
    JobDetail,
    JobIds,
    JobPage,
    JobQuery,
    JobRead,
    JobRef,
    JobSubmit,
    JobSubmitted,
    PurgeResult,
    QueueStats,
    QueueStatus,
    QueueSwitch,
    RequeueResult,
    RetryFailed,
)
from tools.jobs.triggers import HookCall
from tools.jobs.workers import ScaleIn, ScaleOut, WorkerCommandOut, WorkerList, WorkerRef

router = APIRouter(prefix="/v1", tags=["jobs"])
PipelineId = Annotated[int, Path(ge=1, le=2**31 - 1)]
JobId = Annotated[int, Path(ge=1, le=2**62)]
WorkerId = Annotated[str, Path(min_length=1, max_length=100)]
MAX_HOOK_BODY = 256_000


# ---- pipelines -------------------------------------------------------------------------------

@router.post("/pipelines", response_model=PipelineRead, status_code=status.HTTP_201_CREATED)
def create_pipeline(body: PipelineCreate, ctx: Annotated[ToolContext, require("pipelines:write")]) -> PipelineRead:
    """Create a pipeline; a webhook trigger's secret URL is shown in this response only."""
    return pipelines.create_pipeline(ctx, body)


@router.get("/pipelines", response_model=PipelineList)
def list_pipelines(ctx: Annotated[ToolContext, require("pipelines:read")]) -> PipelineList:
    """List pipelines."""
    return pipelines.list_pipelines(ctx, pipelines.NoInput())


@router.get("/pipelines/{pipeline_id:int}", response_model=PipelineRead)
def get_pipeline(pipeline_id: PipelineId, ctx: Annotated[ToolContext, require("pipelines:read")]) -> PipelineRead:
    """Show a pipeline."""
    return pipelines.read_pipeline(ctx, PipelineRef(pipeline_id=pipeline_id))


@router.patch("/pipelines/{pipeline_id:int}", response_model=PipelineRead)
def update_pipeline(pipeline_id: PipelineId, body: PipelinePatch,
                    ctx: Annotated[ToolContext, require("pipelines:write")]) -> PipelineRead:
    """Change a pipeline (validated; version bumped)."""
    params = PipelineUpdate.model_validate({**body.model_dump(exclude_unset=True), "pipeline_id": pipeline_id})
    return pipelines.update_pipeline(ctx, params)


@router.delete("/pipelines/{pipeline_id:int}", response_model=PipelineRead)
def delete_pipeline(pipeline_id: PipelineId, ctx: Annotated[ToolContext, require("pipelines:write")]) -> PipelineRead:
    """Delete a pipeline and its jobs."""
    return pipelines.delete_pipeline(ctx, PipelineRef(pipeline_id=pipeline_id))


@router.post("/pipelines/{pipeline_id:int}/rotate-webhook", response_model=PipelineRead)
def rotate_webhook(pipeline_id: PipelineId, ctx: Annotated[ToolContext, require("pipelines:write")]) -> PipelineRead:
    """Replace the pipeline's secret webhook URL."""
    return pipelines.rotate_webhook(ctx, PipelineRef(pipeline_id=pipeline_id))


@router.post("/pipelines/{pipeline_id:int}/pause", response_model=QueueStatus)
def pause_pipeline(pipeline_id: PipelineId, ctx: Annotated[ToolContext, require("pipelines:write")]) -> QueueStatus:
    """Stop workers from starting this pipeline's jobs."""
    return queue.pause(ctx, QueueSwitch(pipeline_id=pipeline_id))


@router.post("/pipelines/{pipeline_id:int}/resume", response_model=QueueStatus)
def resume_pipeline(pipeline_id: PipelineId, ctx: Annotated[ToolContext, require("pipelines:write")]) -> QueueStatus:
    """Let workers start this pipeline's jobs again."""
    return queue.resume(ctx, QueueSwitch(pipeline_id=pipeline_id))


# ---- queue ---------------------------------------------------------------------------------

@router.get("/queue", response_model=QueueStats)
def queue_status(ctx: Annotated[ToolContext, require("jobs:read")]) -> QueueStats:
    """Show the queue: paused or not, depth, oldest due job, jobs by state."""
    return queue.queue_status(ctx, queue.NoInput())


@router.post("/queue/pause", response_model=QueueStatus)
def pause_queue(q: Annotated[QueueSwitch, Depends()],
                ctx: Annotated[ToolContext, require("jobs:write")]) -> QueueStatus:
    """Pause the organisation's queue (or one pipeline with ?pipeline_id=)."""
    return queue.pause(ctx, q)


@router.post("/queue/resume", response_model=QueueStatus)
def resume_queue(q: Annotated[QueueSwitch, Depends()],
                 ctx: Annotated[ToolContext, require("jobs:write")]) -> QueueStatus:
    """Resume the organisation's queue (or one pipeline with ?pipeline_id=)."""
    return queue.resume(ctx, q)


# ---- jobs (static paths before /jobs/{job_id}) -----------------------------------------------

@router.post("/jobs", response_model=JobSubmitted, status_code=status.HTTP_201_CREATED,
             responses={200: {"model": JobSubmitted, "description": "Existing job for this idempotency key"},
                        402: {"description": "Not enough credits (problem details)"}})
def submit_job(body: JobSubmit, response: Response, ctx: Annotated[ToolContext, require("jobs:write")],
               idempotency_key: Annotated[str | None, Header(max_length=200)] = None) -> JobSubmitted:
    """Submit a job (charges credits; 402 when short). The same idempotency key returns the same job."""
    if idempotency_key and not body.idempotency_key:
        body = body.model_copy(update={"idempotency_key": idempotency_key})
    out = queue.submit(ctx, body)
    if not out.created:
        response.status_code = status.HTTP_200_OK
    return out


@router.get("/jobs", response_model=JobPage)
def list_jobs(q: Annotated[JobQuery, Depends()], ctx: Annotated[ToolContext, require("jobs:read")]) -> JobPage:
    """List jobs newest first (filter by state, pipeline; paginate with cursor)."""
    return queue.list_jobs(ctx, q)


@router.get("/jobs/dead", response_model=JobPage)
def list_dead(q: Annotated[DeadQuery, Depends()], ctx: Annotated[ToolContext, require("jobs:read")]) -> JobPage:
    """List the dead-letter jobs."""
    return queue.dead_list(ctx, q)


@router.post("/jobs/dead/{job_id:int}/retry", response_model=JobRead)
def retry_dead(job_id: JobId, ctx: Annotated[ToolContext, require("jobs:write")]) -> JobRead:
    """Queue a dead-letter job again."""
    return queue.dead_retry(ctx, JobRef(job_id=job_id))


@router.post("/jobs/dead/purge", response_model=PurgeResult)
def purge_dead(body: DeadPurge, ctx: Annotated[ToolContext, require("jobs:write")]) -> PurgeResult:
    """Delete dead-letter jobs (all, some ids, or older than a while)."""
    return queue.dead_purge(ctx, body)


@router.post("/jobs/retry-failed", response_model=JobIds)
def retry_failed(body: RetryFailed, ctx: Annotated[ToolContext, require("jobs:write")]) -> JobIds:
    """Queue failed jobs again (optionally of one pipeline)."""
    return queue.retry_failed(ctx, body)


@router.post("/jobs/requeue-expired", response_model=RequeueResult)
def requeue_expired(ctx: Annotated[ToolContext, require("jobs:write")]) -> RequeueResult:
    """Return jobs whose worker lease expired to the queue."""
    return queue.requeue_expired_tool(ctx, queue.NoInput())


@router.get("/jobs/{job_id:int}", response_model=JobDetail)
def get_job(job_id: JobId, ctx: Annotated[ToolContext, require("jobs:read")]) -> JobDetail:
    """Show a job with its step results and logs."""
    return queue.get_job(ctx, JobRef(job_id=job_id))


@router.post("/jobs/{job_id:int}/cancel", response_model=JobRead)
def cancel_job(job_id: JobId, ctx: Annotated[ToolContext, require("jobs:write")]) -> JobRead:
    """Cancel a queued or running job."""
    return queue.cancel(ctx, JobRef(job_id=job_id))


@router.post("/jobs/{job_id:int}/retry", response_model=JobRead)
def retry_job(job_id: JobId, ctx: Annotated[ToolContext, require("jobs:write")]) -> JobRead:
    """Queue a failed or dead job again."""
    return queue.retry(ctx, JobRef(job_id=job_id))


@router.post("/jobs/{job_id:int}/dead-letter", response_model=JobRead)
def dead_letter(job_id: JobId, ctx: Annotated[ToolContext, require("jobs:write")]) -> JobRead:
    """Move a poison job to the dead-letter list."""
    return queue.dead_letter(ctx, JobRef(job_id=job_id))


# ---- workers -------------------------------------------------------------------------------

@router.get("/workers", response_model=WorkerList)
def list_workers(ctx: Annotated[ToolContext, require("workers:read")]) -> WorkerList:
    """List workers with health, current job, CPU and RSS."""
    return worker_tools.list_workers(ctx, worker_tools.NoInput())


@router.post("/workers/{worker_id}/restart", response_model=WorkerCommandOut)
def restart_worker(worker_id: WorkerId, ctx: Annotated[ToolContext, require("workers:write")]) -> WorkerCommandOut:
    """Restart a worker (it finishes or returns its jobs first)."""
    return worker_tools.restart_worker(ctx, WorkerRef(worker_id=worker_id))


@router.post("/workers/{worker_id}/drain", response_model=WorkerCommandOut)
def drain_worker(worker_id: WorkerId, ctx: Annotated[ToolContext, require("workers:write")]) -> WorkerCommandOut:
    """Drain a worker (no new jobs)."""
    return worker_tools.drain_worker(ctx, WorkerRef(worker_id=worker_id))


@router.post("/workers/scale", response_model=ScaleOut)
def scale_workers(body: ScaleIn, ctx: Annotated[ToolContext, require("workers:write")]) -> ScaleOut:
    """Set how many worker processes the supervisor runs (Levqor staff; up to LEVQOR_WORKERS_MAX)."""
    return worker_tools.scale_workers(ctx, body)


# ---- credits -------------------------------------------------------------------------------

@router.get("/credits", response_model=CreditsRead)
def get_credits(q: Annotated[CreditsQuery, Depends()],
                ctx: Annotated[ToolContext, require("credits:read")]) -> CreditsRead:
    """Show the credit balance, price per run and ledger."""
    return credits.get_credits(ctx, q)


@router.post("/credits/grant", response_model=CreditGrantOut)
def grant_credits(body: CreditGrant, ctx: Annotated[ToolContext, require("credits:write")]) -> CreditGrantOut:
    """Add credits to the balance."""
    return credits.grant_credits(ctx, body)


# ---- public webhook trigger ---------------------------------------------------------------------

class HookAccepted(BaseModel):
    job_id: int
    state: str
    created: bool


@router.post("/hooks/{secret}", response_model=HookAccepted, status_code=status.HTTP_202_ACCEPTED,
             dependencies=[public()], responses={404: {"description": "Unknown URL"},
                                                 402: {"description": "The pipeline owner is out of credits"}})
async def hook(secret: Annotated[str, Path(min_length=1, max_length=200)], request: Request,
               session: SessionDep) -> HookAccepted:
    """Trigger a webhook pipeline; the JSON object body becomes the job's input."""
    raw = await request.body()
    if len(raw) > MAX_HOOK_BODY:
        raise Unprocessable(f"body larger than {MAX_HOOK_BODY} bytes", field="body")
    body: Any = {}
    if raw.strip():
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise Unprocessable("body must be a JSON object", field="body") from None
    if not isinstance(body, dict):
        raise Unprocessable("body must be a JSON object", field="body")
    key = request.headers.get("idempotency-key") or request.headers.get("webhook-id")
    params = HookCall(secret=secret, body=body, idempotency_key=key[:200] if key else None)
    ctx = triggers.hook_context(session, request_id_var.get())
    out = await run_in_threadpool(triggers.trigger_webhook, ctx, params)
    return HookAccepted(job_id=out.id, state=out.state, created=out.created)
