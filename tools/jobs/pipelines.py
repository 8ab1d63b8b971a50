"""Pipelines: a trigger and ordered steps, validated on save; the safe template language.

Steps never run code. ``transform`` evaluates a JMESPath expression, or a JSON template whose
``{{ expression }}`` placeholders are JMESPath expressions, over the run's data
(``input``, ``prev``, ``steps``, ``job``). ``http`` and ``notify`` URLs go through the SSRF guard.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from levqor.settings import get_settings
from memory.db import utcnow
from memory.jobs.models import Pipeline
from memory.jobs.repository import PipelineRepository
from tools.context import ToolContext
from tools.enterprise import audit_log
from tools.errors import Conflict, NotFound, Unprocessable
from tools.events.service import KNOWN_EVENTS, emit
from tools.partner_api.actions import PluginDirectory, reserved_header
from tools.registry import tool
from tools.shared.ssrf import SSRFBlocked, check_url

_PLACEHOLDER = re.compile(r"\{\{\s*(.+?)\s*\}\}")
MAX_STEPS = 20


# ---- the template language ----------------------------------------------------------------

@lru_cache(maxsize=2048)
def compile_expression(expr: str) -> Any:
    """Compile a JMESPath expression (cached); raise ValueError with the parser's message."""
    import jmespath  # kept lazy: start-up time
    from jmespath.exceptions import JMESPathError

    try:
        return jmespath.compile(expr)
    except JMESPathError as exc:
        raise ValueError(f"invalid JMESPath expression {expr!r}: {str(exc).splitlines()[0]}") from None


def search(expr: str, data: Any) -> Any:
    return compile_expression(expr).search(data)


def _scalar_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def render(template: Any, data: Any) -> Any:
    """Fill ``{{ expr }}`` placeholders; a string that is one placeholder keeps the value's type."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template.strip())
        if whole:
            return search(whole.group(1), data)
        return _PLACEHOLDER.sub(lambda m: _scalar_text(search(m.group(1), data)), template)
    if isinstance(template, dict):
        return {str(k): render(v, data) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, data) for v in template]
    return template


def check_template(template: Any) -> None:
    """Raise ValueError if any placeholder in ``template`` is not valid JMESPath."""
    if isinstance(template, str):
        for m in _PLACEHOLDER.finditer(template):
            compile_expression(m.group(1))
    elif isinstance(template, dict):
        for v in template.values():
            check_template(v)
    elif isinstance(template, list):
        for v in template:
            check_template(v)


def _check_static_url(url: str) -> str:
    check_template(url)
    if _PLACEHOLDER.search(url):
        if not re.match(r"^https?://", url):
            raise ValueError("URL must start with http:// or https:// (only the rest may be templated)")
        return url
    try:
        check_url(url, resolve=False)
    except SSRFBlocked as exc:
        raise ValueError(exc.detail) from None
    return url


# ---- step and trigger schemas ---------------------------------------------------------------

class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("", max_length=200, description="Label shown in results and logs")


class HttpStep(_Step):
    kind: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str | None = Field(None, min_length=1, max_length=2000,
                            description="http(s) URL; may contain {{ }} placeholders (or give plugin and action)")
    plugin: str | None = Field(None, min_length=3, max_length=64, pattern=r"^[a-z0-9][a-z0-9.-]*$",
                               description="Installed plugin whose action this step calls, signed to the partner")
    action: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$",
                               description="Name of the plugin's action (with plugin)")
    headers: dict[str, str] = Field(default_factory=dict, max_length=50)
    body: Any = Field(None, description="JSON template (object/array/string) sent as the body")
    timeout_s: float = Field(10.0, gt=0, le=60)
    ok_status: list[Annotated[int, Field(ge=100, le=599)]] | None = Field(
        None, max_length=50, description="Statuses counted as success (default: any 2xx)")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else _check_static_url(v)

    @model_validator(mode="after")
    def _target(self) -> HttpStep:
        if (self.url is None) == (self.plugin is None):
            raise ValueError("give either 'url' or 'plugin' (with 'action'), not both")
        if (self.plugin is None) != (self.action is None):
            raise ValueError("'plugin' and 'action' go together")
        return self

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for k, val in v.items():
            if not re.fullmatch(r"[A-Za-z0-9-]{1,100}", k):
                raise ValueError(f"invalid header name {k!r}")
            if k.lower() in ("host", "content-length", "transfer-encoding", "connection") or reserved_header(k):
                raise ValueError(f"header {k!r} is set by Levqor")
            if "\n" in val or "\r" in val:
                raise ValueError(f"header {k!r} contains a line break")
            check_template(val)
        return v

    @field_validator("body")
    @classmethod
    def _body(cls, v: Any) -> Any:
        check_template(v)
        if len(json.dumps(v)) > 100_000:
            raise ValueError("body template larger than 100 kB")
        return v


class TransformStep(_Step):
    kind: Literal["transform"]
    expression: str | None = Field(None, max_length=2000, description="JMESPath over the run data")
    template: Any = Field(None, description="JSON template with {{ JMESPath }} placeholders")
    check: str | None = Field(None, max_length=2000,
                              description="JMESPath that must be truthy, else the step fails")
    message: str = Field("", max_length=500, description="Error message when the check fails")
    retryable: bool = Field(False, description="Whether a failed check is worth retrying")

    @model_validator(mode="after")
    def _one_of(self) -> TransformStep:
        if self.expression is None and self.template is None and self.check is None:
            raise ValueError("a transform needs an expression, a template or a check")
        if self.expression is not None and self.template is not None:
            raise ValueError("give either expression or template, not both")
        if self.expression is not None:
            compile_expression(self.expression)
        if self.check is not None:
            compile_expression(self.check)
        check_template(self.template)
        return self


class DelayStep(_Step):
    kind: Literal["delay"]
    seconds: float = Field(ge=0, le=3600)


class NotifyStep(_Step):
    kind: Literal["notify"]
    channel: Literal["email", "webhook"]
    to: EmailStr | None = Field(None, description="Recipient (email channel)")
    url: str | None = Field(None, max_length=2000, description="Endpoint (webhook channel)")
    subject: str = Field("", max_length=300)
    body: Any = Field(None, description="Template for the message")

    @model_validator(mode="after")
    def _channel(self) -> NotifyStep:
        if self.channel == "email" and not self.to:
            raise ValueError("an email notification needs 'to'")
        if self.channel == "webhook":
            if not self.url:
                raise ValueError("a webhook notification needs 'url'")
            _check_static_url(self.url)
        check_template(self.subject)
        check_template(self.body)
        return self


Step = Annotated[HttpStep | TransformStep | DelayStep | NotifyStep, Field(discriminator="kind")]


class Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["manual", "schedule", "webhook", "event"] = "manual"
    cron: str | None = Field(None, max_length=100, description="Five-field crontab (UTC), for schedule")
    event: str | None = Field(None, max_length=100, description="Platform event name, for event")

    @model_validator(mode="after")
    def _fields(self) -> Trigger:
        if self.type == "schedule":
            if not self.cron:
                raise ValueError("a schedule trigger needs 'cron', e.g. '*/5 * * * *'")
            next_fire(self.cron, utcnow())
        elif self.cron is not None:
            raise ValueError("'cron' applies only to a schedule trigger")
        if self.type == "event":
            if self.event not in KNOWN_EVENTS:
                raise ValueError(f"unknown event {self.event!r}; one of {sorted(KNOWN_EVENTS)}")
        elif self.event is not None:
            raise ValueError("'event' applies only to an event trigger")
        return self


def next_fire(cron: str, after: dt.datetime) -> dt.datetime:
    """The next time ``cron`` fires after ``after`` (UTC); ValueError for a bad expression."""
    from apscheduler.triggers.cron import CronTrigger  # kept lazy: start-up time

    if len(cron.split()) != 5:
        raise ValueError(f"cron {cron!r} must have five fields: minute hour day month weekday")
    try:
        trig = CronTrigger.from_crontab(cron, timezone="UTC")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid cron {cron!r}: {exc}") from None
    nxt = trig.get_next_fire_time(None, after)
    if nxt is None:
        raise ValueError(f"cron {cron!r} never fires")
    return nxt.astimezone(dt.UTC)


class PipelineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=1000)
    trigger: Trigger = Field(default_factory=Trigger)
    steps: list[Step] = Field(min_length=1, max_length=MAX_STEPS)
    max_attempts: int = Field(3, ge=1, le=20)
    timeout_s: int = Field(300, ge=1, le=86400)
    retry_backoff_s: float = Field(2.0, ge=0, le=3600, description="Base of the exponential retry backoff")


class PipelinePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=1000)
    trigger: Trigger | None = None
    steps: list[Step] | None = Field(None, min_length=1, max_length=MAX_STEPS)
    max_attempts: int | None = Field(None, ge=1, le=20)
    timeout_s: int | None = Field(None, ge=1, le=86400)
    retry_backoff_s: float | None = Field(None, ge=0, le=3600)


class PipelineUpdate(PipelinePatch):
    pipeline_id: int = Field(ge=1, le=2**31 - 1)


class PipelineRead(BaseModel):
    id: int
    name: str
    description: str
    trigger: dict[str, Any]
    steps: list[dict[str, Any]]
    max_attempts: int
    timeout_s: int
    retry_backoff_s: float
    paused: bool
    version: int
    next_run_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    webhook_url: str | None = Field(None, description="Secret trigger URL; shown only when created or rotated")

    @classmethod
    def of(cls, p: Pipeline, webhook_secret: str | None = None) -> PipelineRead:
        url = None
        if webhook_secret:
            url = f"{get_settings().base_url}/v1/hooks/{webhook_secret}"
        return cls(id=p.id, name=p.name, description=p.description, trigger=dict(p.trigger),
                   steps=list(p.steps), max_attempts=p.max_attempts, timeout_s=p.timeout_s,
                   retry_backoff_s=p.retry_backoff_s, paused=p.paused, version=p.version,
                   next_run_at=p.next_run_at, created_at=p.created_at, updated_at=p.updated_at, webhook_url=url)


class PipelineList(BaseModel):
    items: list[PipelineRead]


class PipelineRef(BaseModel):
    pipeline_id: int = Field(ge=1, le=2**31 - 1)


class NoInput(BaseModel):
    pass


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _apply_trigger(p: Pipeline, trigger: Trigger) -> str | None:
    """Set the trigger columns; return a new webhook secret when one was created."""
    p.trigger = trigger.model_dump(exclude_none=True)
    p.trigger_event = trigger.event if trigger.type == "event" else None
    p.next_run_at = next_fire(trigger.cron, utcnow()) if trigger.type == "schedule" and trigger.cron else None
    if trigger.type == "webhook":
        if p.webhook_secret_hash is None:
            secret = "whk_" + secrets.token_urlsafe(32)
            p.webhook_secret_hash = secret_hash(secret)
            return secret
    else:
        p.webhook_secret_hash = None
    return None


def check_plugin_steps(ctx: ToolContext, steps: list[Any]) -> None:
    """Refuse a step that calls a plugin action without an active install of that plugin."""
    directory: PluginDirectory | None = None
    for i, step in enumerate(steps):
        plugin = step.plugin if isinstance(step, HttpStep) else None
        url = step.url if isinstance(step, HttpStep | NotifyStep) else None
        if plugin is None and (url is None or _PLACEHOLDER.search(url)):
            continue  # no call, or a templated URL (checked when it runs)
        directory = directory or PluginDirectory.load(ctx.session, ctx.org_id, mode=ctx.mode)
        if plugin is not None:
            directory.by_name(plugin, step.action, field=f"steps.{i}.plugin")
        elif url is not None:
            directory.by_url(url, field=f"steps.{i}.url")


def _dump_steps(steps: list[Any]) -> list[dict[str, Any]]:
    return [s.model_dump(mode="json", exclude_none=True) for s in steps]


def get_pipeline(ctx: ToolContext, pipeline_id: int) -> Pipeline:
    p = PipelineRepository(ctx.session).get(ctx.org_id, pipeline_id, ctx.mode)
    if p is None:
        raise NotFound(f"pipeline {pipeline_id} not found", field="pipeline_id")
    return p


# ---- tools ---------------------------------------------------------------------------------

@tool("pipelines.create", risk="write")
def create_pipeline(ctx: ToolContext, params: PipelineCreate) -> PipelineRead:
    """Create a pipeline (trigger and ordered steps), validated before it is saved; a test-mode key makes a
    test pipeline."""
    repo = PipelineRepository(ctx.session)
    if repo.by_name(ctx.org_id, params.name, ctx.mode) is not None:
        raise Conflict(f"a pipeline named {params.name!r} already exists", field="name")
    check_plugin_steps(ctx, params.steps)
    now = utcnow()
    p = Pipeline(org_id=ctx.org_id, mode=ctx.mode, name=params.name, description=params.description,
                 steps=_dump_steps(params.steps), max_attempts=params.max_attempts, timeout_s=params.timeout_s,
                 retry_backoff_s=params.retry_backoff_s, created_at=now, updated_at=now, version=1, paused=False)
    secret = _apply_trigger(p, params.trigger)
    repo.add(p)
    audit_log.record(ctx, "pipelines.created", f"pipeline:{p.id}", after={"name": p.name, "trigger": p.trigger})
    emit(ctx.session, "pipeline_created", {"pipeline_id": p.id, "name": p.name, "trigger": p.trigger["type"]},
         org_id=ctx.org_id, mode=p.mode)
    return PipelineRead.of(p, secret)


@tool("pipelines.list", risk="read")
def list_pipelines(ctx: ToolContext, params: NoInput) -> PipelineList:
    """List the organisation's pipelines."""
    return PipelineList(items=[PipelineRead.of(p)
                               for p in PipelineRepository(ctx.session).for_org(ctx.org_id, ctx.mode)])


@tool("pipelines.get", risk="read")
def read_pipeline(ctx: ToolContext, params: PipelineRef) -> PipelineRead:
    """Show one pipeline with its trigger and steps."""
    return PipelineRead.of(get_pipeline(ctx, params.pipeline_id))


@tool("pipelines.update", risk="write")
def update_pipeline(ctx: ToolContext, params: PipelineUpdate) -> PipelineRead:
    """Change a pipeline; the new definition is validated and its version bumped."""
    p = get_pipeline(ctx, params.pipeline_id)
    before = {"name": p.name, "trigger": p.trigger, "steps": p.steps, "version": p.version}
    if params.name is not None and params.name != p.name:
        if PipelineRepository(ctx.session).by_name(ctx.org_id, params.name, p.mode) is not None:
            raise Conflict(f"a pipeline named {params.name!r} already exists", field="name")
        p.name = params.name
    if params.description is not None:
        p.description = params.description
    if params.steps is not None:
        check_plugin_steps(ctx, params.steps)
        p.steps = _dump_steps(params.steps)
    for attr in ("max_attempts", "timeout_s", "retry_backoff_s"):
        value = getattr(params, attr)
        if value is not None:
            setattr(p, attr, value)
    secret = _apply_trigger(p, params.trigger) if params.trigger is not None else None
    p.version += 1
    p.updated_at = utcnow()
    ctx.session.flush()
    audit_log.record(ctx, "pipelines.updated", f"pipeline:{p.id}", before=before,
                     after={"name": p.name, "trigger": p.trigger, "steps": p.steps, "version": p.version})
    return PipelineRead.of(p, secret)


@tool("pipelines.rotate_webhook", risk="write")
def rotate_webhook(ctx: ToolContext, params: PipelineRef) -> PipelineRead:
    """Replace a webhook pipeline's secret URL; the old URL stops working at once."""
    p = get_pipeline(ctx, params.pipeline_id)
    if p.trigger.get("type") != "webhook":
        raise Unprocessable("this pipeline is not triggered by a webhook", field="pipeline_id")
    p.webhook_secret_hash = None
    secret = _apply_trigger(p, Trigger.model_validate(p.trigger))
    p.updated_at = utcnow()
    ctx.session.flush()
    audit_log.record(ctx, "pipelines.webhook_rotated", f"pipeline:{p.id}")
    return PipelineRead.of(p, secret)


@tool("pipelines.delete", risk="destructive")
def delete_pipeline(ctx: ToolContext, params: PipelineRef) -> PipelineRead:
    """Delete a pipeline and its jobs."""
    p = get_pipeline(ctx, params.pipeline_id)
    out = PipelineRead.of(p)
    PipelineRepository(ctx.session).delete(p)
    audit_log.record(ctx, "pipelines.deleted", f"pipeline:{out.id}", before={"name": out.name})
    return out
