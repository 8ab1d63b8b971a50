"""The ``levqor`` command. Heavy libraries are imported inside commands so it starts fast."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Levqor: automation platform operations, agents and partner ecosystem.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
audit_app = typer.Typer(help="Audit log: verify, checkpoint, export.", no_args_is_help=True)
tools_app = typer.Typer(help="The tools registry.", no_args_is_help=True)
policy_app = typer.Typer(help="The policy file.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(tools_app, name="tools")
app.add_typer(policy_app, name="policy")
console = Console()
err = Console(stderr=True)


def _boot(log: bool = True) -> None:
    from levqor.logging import configure_logging
    from levqor.settings import get_settings

    s = get_settings()
    if log:
        configure_logging(s.log_level, s.log_json)


def _policy_or_exit() -> None:
    from policies.engine import PolicyError, get_engine

    try:
        get_engine()
    except PolicyError as exc:
        from rich.markup import escape

        # One unwrapped line: the file:LINE stays greppable whatever the terminal width.
        err.print(f"[red]policy error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None


def _org_ctx(session: object, org_slug: str) -> object:
    from memory.identity.repository import IdentityRepository
    from tools.context import Principal, ToolContext

    org = IdentityRepository(session).org_by_slug(org_slug)  # type: ignore[arg-type]
    if org is None:
        err.print(f"[red]no organisation {org_slug!r}[/red]")
        raise typer.Exit(1)
    principal = Principal(kind="system", id="cli", org_id=org.id, role="admin", name="levqor CLI")
    return ToolContext(session=session, principal=principal)  # type: ignore[arg-type]


# ---- processes ---------------------------------------------------------------------------------

@app.command()
def migrate() -> None:
    """Apply database migrations up to head."""
    _boot()
    from memory.migrate import upgrade

    upgrade()
    console.print("[green]database at head[/green]")


@app.command()
def api(host: Annotated[str | None, typer.Option()] = None, port: Annotated[int | None, typer.Option()] = None) -> None:
    """Run the API server (uvicorn)."""
    _boot()
    _policy_or_exit()
    import uvicorn

    from levqor.settings import get_settings

    s = get_settings()
    uvicorn.run("api.app:create_app", factory=True, host=host or s.host, port=port or s.port,
                log_config=None, access_log=False, timeout_graceful_shutdown=10)


@app.command()
def worker(concurrency: Annotated[int | None, typer.Option(help="Jobs at once")] = None) -> None:
    """Run a worker: background work from the database (job queue, event outbox)."""
    _boot()
    _policy_or_exit()
    from workers.worker import run_worker

    run_worker(concurrency)


@app.command()
def scheduler() -> None:
    """Run the scheduler (only the lease holder leads; others stand by)."""
    _boot()
    _policy_or_exit()
    from workers.scheduler import run_scheduler

    run_scheduler()


@app.command()
def up(workers: Annotated[int | None, typer.Option(help="Worker processes")] = None) -> None:
    """Run API + scheduler + N workers under one supervisor; Ctrl-C stops them all."""
    _boot()
    _policy_or_exit()
    from workers.supervisor import supervise

    raise typer.Exit(supervise(workers))


@app.command("seed-demo")
def seed_demo() -> None:
    """Create the demo organisation and admin (idempotent) and print a fresh admin API key."""
    _boot(log=False)
    from memory.db import session_scope
    from tools.demo.seed import seed

    with session_scope() as session:
        out = seed(session)
    from levqor.settings import get_settings

    s = get_settings()
    console.print(f"[bold]Levqor demo[/bold] organisation [cyan]{out['org']}[/cyan]")
    console.print(f"  URL:            {s.base_url}  (API docs: {s.base_url}/docs)")
    console.print(f"  Admin login:    {out['email']}" + (f"  password: {out['password']}" if out.get("password")
                                                          else "  (password set on first seed)"))
    console.print(f"  Admin API key:  [bold yellow]{out['key']}[/bold yellow]  (shown once)", soft_wrap=True)


# ---- users and keys ------------------------------------------------------------------------------

@users_app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(help="Admin email")],
    org: Annotated[str, typer.Option(help="Organisation slug (created if missing)")] = "default",
    password: Annotated[str | None, typer.Option(help="Password (prompted when omitted)")] = None,
) -> None:
    """Create an admin user (and the organisation if needed)."""
    _boot(log=False)
    from memory.db import session_scope
    from memory.identity.repository import IdentityRepository
    from tools.context import SYSTEM, Principal, ToolContext
    from tools.errors import AppError
    from tools.registry import registry

    if password is None:
        password = typer.prompt("Password (12+ characters)", hide_input=True, confirmation_prompt=True)
    try:
        with session_scope() as s:
            repo = IdentityRepository(s)
            o = repo.org_by_slug(org)
            if o is None:
                registry.invoke("org.create", ToolContext(s, SYSTEM), {"name": org.title(), "slug": org})
                o = repo.org_by_slug(org)
            assert o is not None
            ctx = ToolContext(s, Principal(kind="system", id="cli", org_id=o.id, role="admin"))
            user = registry.invoke("users.create", ctx, {"email": email, "role": "admin", "password": password})
    except AppError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    console.print(f"[green]admin created:[/green] {user.email} in {org}")  # type: ignore[attr-defined]


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option()],
    org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
    role: Annotated[str, typer.Option(help="admin | viewer | auditor")] = "viewer",
    mode: Annotated[str, typer.Option(help="live | test")] = "live",
    expires_in_days: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Create an API key and print it once."""
    _boot(log=False)
    from memory.db import session_scope
    from tools.errors import AppError
    from tools.registry import registry

    try:
        with session_scope() as s:
            out = registry.invoke("keys.create", _org_ctx(s, org), {  # type: ignore[arg-type]
                "name": name, "role": role, "mode": mode, "expires_in_days": expires_in_days})
    except AppError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{out.key}")  # type: ignore[attr-defined]
    err.print(f"[dim]key {out.prefix} ({role}, {mode}) created; it will not be shown again[/dim]")  # type: ignore[attr-defined]


@keys_app.command("list")
def keys_list(org: Annotated[str, typer.Option()] = "demo") -> None:
    """List API keys of an organisation."""
    _boot(log=False)
    from memory.db import session_scope
    from tools.registry import registry

    with session_scope() as s:
        out = registry.invoke("keys.list", _org_ctx(s, org), {})  # type: ignore[arg-type]
    t = Table("id", "name", "prefix", "role", "mode", "created", "last used", "status")
    for k in out.items:  # type: ignore[attr-defined]
        t.add_row(str(k.id), k.name, k.prefix, k.role, k.mode, f"{k.created_at:%Y-%m-%d %H:%M}",
                  f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never",
                  "revoked" if k.revoked_at else "active")
    console.print(t)


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="Key id or visible prefix")],
                org: Annotated[str, typer.Option()] = "demo") -> None:
    """Revoke an API key by id or prefix."""
    _boot(log=False)
    from memory.db import session_scope
    from tools.errors import AppError
    from tools.registry import registry

    params = {"key_id": int(key)} if key.isdigit() else {"prefix": key}
    try:
        with session_scope() as s:
            out = registry.invoke("keys.revoke", _org_ctx(s, org), params)  # type: ignore[arg-type]
    except AppError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    console.print(f"[green]revoked[/green] {out.prefix}")  # type: ignore[attr-defined]


# ---- audit ------------------------------------------------------------------------------------

@audit_app.command("verify")
def audit_verify(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Verify the audit chain; exit 0 when intact, 1 naming the first bad entry."""
    _boot(log=False)
    from memory.db import session_scope
    from tools.enterprise.audit_log import verify_chain

    with session_scope() as s:
        result = verify_chain(s)
    if json_out:
        print(result.model_dump_json())
    elif result.ok:
        console.print(f"[green]audit log intact[/green]: {result.entries} entries, "
                      f"{result.checkpoints_checked} signed checkpoints verified")
    else:
        console.print(f"[red]audit log broken at entry {result.first_bad_seq}[/red]: {result.problem}")
    raise typer.Exit(0 if result.ok else 1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Write a signed checkpoint of the chain head now."""
    _boot(log=False)
    from memory.db import session_scope
    from tools.enterprise.audit_log import write_checkpoint

    with session_scope() as s:
        cp = write_checkpoint(s)
        msg = f"checkpoint at entry {cp.seq} ({cp.head_hash[:16]}…)" if cp else "log is empty"
    console.print(msg)


@audit_app.command("export")
def audit_export(org: Annotated[str, typer.Option()] = "demo",
                 out: Annotated[Path | None, typer.Option(help="File (default stdout)")] = None) -> None:
    """Export an organisation's audit entries as JSON lines."""
    _boot(log=False)
    from memory.db import session_scope
    from tools.enterprise.audit_tools import AuditSearch, export_jsonl

    with session_scope() as s:
        ctx = _org_ctx(s, org)
        lines = list(export_jsonl(s, ctx.principal.org_id, AuditSearch()))  # type: ignore[attr-defined]
    if out:
        out.write_text("".join(lines))
        err.print(f"{len(lines)} entries written to {out}")
    else:
        sys.stdout.write("".join(lines))


# ---- tools and policy ---------------------------------------------------------------------------

@tools_app.command("list")
def tools_list(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Print every registered tool with its risk."""
    from tools.registry import registry

    specs = registry.all()
    if json_out:
        print(json.dumps([{"name": t.name, "risk": t.risk, "description": t.description} for t in specs]))
        return
    t = Table("tool", "risk", "description")
    for spec in specs:
        t.add_row(spec.name, spec.risk, spec.description)
    console.print(t)


@policy_app.command("check")
def policy_check(path: Annotated[Path | None, typer.Argument()] = None) -> None:
    """Validate a policy file (default: the configured one)."""
    from levqor.settings import get_settings
    from policies.engine import PolicyError, load_policy

    p = path or get_settings().policy_path
    try:
        load_policy(p)
    except PolicyError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"[green]{p} is valid[/green]")


# ---- agents and approvals -------------------------------------------------------------------------

agents_app = typer.Typer(help="Agents: list them, run one now.", no_args_is_help=True)
approvals_app = typer.Typer(help="Agent approvals: list, approve, reject.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
app.add_typer(approvals_app, name="approvals")


def _person_ctx(session: object, org_slug: str, email: str) -> object:
    """A ToolContext for the person deciding (approvals need a human with the role, never the CLI itself)."""
    from memory.identity.repository import IdentityRepository
    from tools.context import Principal, ToolContext

    repo = IdentityRepository(session)  # type: ignore[arg-type]
    org = repo.org_by_slug(org_slug)
    user = repo.user_by_email(email)
    if org is None or user is None or user.org_id != org.id or not user.active:
        err.print(f"[red]no active user {email!r} in organisation {org_slug!r}[/red]")
        raise typer.Exit(1)
    principal = Principal(kind="user", id=str(user.id), org_id=org.id, role=user.role, name=user.name,
                          user_id=user.id)
    return ToolContext(session=session, principal=principal)  # type: ignore[arg-type]


@agents_app.command("list")
def agents_list(org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
                json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List agents, their schedules, triggers and offered tools, and the LLM mode."""
    _boot(log=False)
    from memory.db import session_scope
    from tools.registry import registry

    with session_scope() as s:
        out = registry.invoke("agents.list", _org_ctx(s, org), {})  # type: ignore[arg-type]
    if json_out:
        print(out.model_dump_json())
        return
    console.print(out.mode["label"])  # type: ignore[attr-defined]
    t = Table("agent", "schedule", "events", "tools (allow / needs approval)", "description")
    for a in out.items:  # type: ignore[attr-defined]
        tools = ", ".join(f"{n}{'*' if o == 'needs_approval' else ''}" for n, o in sorted(a.tools.items()))
        t.add_row(a.name, a.schedule or "-", ", ".join(a.events) or "-", tools or "(none yet)", a.description)
    console.print(t)


@agents_app.command("run")
def agents_run(name: Annotated[str, typer.Argument(help="Agent name, e.g. janitor")],
               org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
               json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Run an agent now in this process and print the outcome (a paused run names its approval)."""
    _boot(log=False)
    from agents.runtime import execute_run
    from memory.db import session_scope
    from tools.errors import AppError
    from tools.registry import registry

    try:
        with session_scope() as s:
            ctx = _org_ctx(s, org)
            run_id = registry.invoke("agents.run", ctx, {"agent": name}).id  # type: ignore[arg-type, attr-defined]
        execute_run(run_id)  # no-op when the post-commit hook already ran it
        with session_scope() as s:
            ctx = _org_ctx(s, org)
            run = registry.invoke("agents.get_run", ctx, {"run_id": run_id})  # type: ignore[arg-type]
            pending = registry.invoke("approvals.list", ctx, {"status": "pending"})  # type: ignore[arg-type]
    except AppError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    waiting = [a for a in pending.items if a.run_id == run_id]  # type: ignore[attr-defined]
    if json_out:
        print(json.dumps({"run": run.model_dump(mode="json"), "approvals": [a.model_dump(mode="json")
                                                                            for a in waiting]}))
    else:
        console.print(f"run {run_id} ({run.mode}): [bold]{run.status}[/bold]")  # type: ignore[attr-defined]
        if run.summary:  # type: ignore[attr-defined]
            console.print(run.summary)  # type: ignore[attr-defined]
        for a in waiting:
            console.print(f"approval {a.id} pending: {a.tool} {json.dumps(a.args)} — {a.reason} "
                          f"(levqor approvals approve {a.id} --by EMAIL)")
    raise typer.Exit(1 if run.status == "failed" else 0)  # type: ignore[attr-defined]


@approvals_app.command("list")
def approvals_list(org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
                   status: Annotated[str | None, typer.Option(help="pending|approved|rejected|expired")] = "pending",
                   json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List agent approvals (pending by default)."""
    _boot(log=False)
    from memory.db import session_scope
    from tools.errors import AppError
    from tools.registry import registry

    try:
        with session_scope() as s:
            out = registry.invoke("approvals.list", _org_ctx(s, org), {"status": status})  # type: ignore[arg-type]
    except AppError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    if json_out:
        print(out.model_dump_json())
        return
    t = Table("id", "agent", "run", "tool", "args", "reason", "status", "expires", "decided by")
    for a in out.items:  # type: ignore[attr-defined]
        t.add_row(str(a.id), a.agent, str(a.run_id), a.tool, json.dumps(a.args), a.reason, a.status,
                  f"{a.expires_at:%Y-%m-%d %H:%M}", a.decided_by or "")
    console.print(t)


def _decide(verb: str, approval_id: int, org: str, by: str, note: str | None, args: str | None) -> None:
    _boot(log=False)
    from memory.db import session_scope
    from tools.errors import AppError
    from tools.registry import registry

    params: dict[str, object] = {"approval_id": approval_id, "note": note}
    if args is not None:
        try:
            params["args"] = json.loads(args)
        except json.JSONDecodeError as exc:
            err.print(f"[red]--args is not JSON: {exc}[/red]")
            raise typer.Exit(2) from None
    try:
        with session_scope() as s:
            out = registry.invoke(f"approvals.{verb}", _person_ctx(s, org, by), params)  # type: ignore[arg-type]
        # The run resumed in this process once the decision committed.
        with session_scope() as s:
            run = registry.invoke("agents.get_run", _org_ctx(s, org), {"run_id": out.run_id})  # type: ignore[arg-type, attr-defined]
    except AppError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    console.print(f"approval {approval_id} {out.status} by {out.decided_by}; "  # type: ignore[attr-defined]
                  f"run {run.id}: [bold]{run.status}[/bold]")  # type: ignore[attr-defined]
    if run.summary:  # type: ignore[attr-defined]
        console.print(run.summary)  # type: ignore[attr-defined]


@approvals_app.command("approve")
def approvals_approve(
    approval_id: Annotated[int, typer.Argument()],
    by: Annotated[str, typer.Option(help="Email of the person approving (needs approvals:write)")],
    org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
    args: Annotated[str | None, typer.Option(help="Edited arguments as JSON")] = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Approve a paused agent call (optionally with edited arguments); the run resumes here."""
    _decide("approve", approval_id, org, by, note, args)


@approvals_app.command("reject")
def approvals_reject(
    approval_id: Annotated[int, typer.Argument()],
    by: Annotated[str, typer.Option(help="Email of the person rejecting (needs approvals:write)")],
    org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Reject a paused agent call; the run resumes without it."""
    _decide("reject", approval_id, org, by, note, None)


# ---- models (anomaly detector, load forecaster) -------------------------------------------------

@app.command()
def detect(path: Annotated[Path | None, typer.Argument(help="CSV of timestamp,value (default stdin)")] = None
           ) -> None:
    """Print one anomaly score in [0, 1] per row, scoring each row as it is read (causal)."""
    from tools.auto_intel.series_io import detect_stream

    if path is None:
        detect_stream(sys.stdin, sys.stdout)
    else:
        with path.open() as f:
            detect_stream(f, sys.stdout, flush=False)


@app.command()
def forecast(
    horizon: Annotated[int, typer.Option(min=1, help="Steps to forecast after the last row")],
    path: Annotated[Path | None, typer.Argument(help="CSV of timestamp,value (default stdin)")] = None,
) -> None:
    """Print timestamp,yhat,lower,upper (90% interval) for the steps after the history."""
    from tools.auto_intel.predictor import ForecastError
    from tools.auto_intel.series_io import forecast_csv

    try:
        if path is None:
            forecast_csv(sys.stdin, sys.stdout, horizon=horizon)
        else:
            with path.open() as f:
                forecast_csv(f, sys.stdout, horizon=horizon)
    except ForecastError as exc:
        err.print(f"[red]forecast error:[/red] {exc}")
        raise typer.Exit(2) from None


# ---- pulse, costs, planner ------------------------------------------------------------------------

pulse_app = typer.Typer(help="Pulse: KPI snapshots, targets, monthly report.", no_args_is_help=True)
costs_app = typer.Typer(help="The Cost DB: import bills, show spend.", no_args_is_help=True)
planner_app = typer.Typer(help="The planner: find KPIs off target and propose suggestions.", no_args_is_help=True)
app.add_typer(pulse_app, name="pulse")
app.add_typer(costs_app, name="costs")
app.add_typer(planner_app, name="planner")


def _invoke_or_exit(org: str, tool_name: str, params: dict[str, object]) -> object:
    from memory.db import session_scope
    from tools.errors import AppError
    from tools.registry import registry

    try:
        with session_scope() as s:
            return registry.invoke(tool_name, _org_ctx(s, org), params)  # type: ignore[arg-type]
    except AppError as exc:
        err.print(f"[red]{escape_markup(exc.detail)}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None


def escape_markup(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@pulse_app.command("snapshot")
def pulse_snapshot(org: Annotated[str, typer.Option(help="Organisation slug")] = "demo") -> None:
    """Take (or refresh) today's KPI snapshot."""
    _boot(log=False)
    out = _invoke_or_exit(org, "pulse.snapshot", {})
    t = Table("kpi", "value", "note")
    for i in out.items:  # type: ignore[attr-defined]
        t.add_row(i.kpi, "" if i.value is None else f"{i.value:g}", i.reason or "")
    console.print(t)


@pulse_app.command("targets")
def pulse_targets(org: Annotated[str, typer.Option(help="Organisation slug")] = "demo") -> None:
    """Evaluate the KPI targets."""
    _boot(log=False)
    out = _invoke_or_exit(org, "pulse.targets", {})
    t = Table("kpi", "actual", "target", "status", "trend", "why")
    for i in out.items:  # type: ignore[attr-defined]
        t.add_row(i.kpi, "n/a" if i.actual is None else f"{i.actual:g}", f"{i.op} {i.target:g}", i.status,
                  i.trend.direction, i.reason)
    console.print(t)


@pulse_app.command("report")
def pulse_report(month: Annotated[str, typer.Option(help="YYYY-MM, e.g. 2026-10")],
                 org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
                 out: Annotated[Path | None, typer.Option(help="Also write the PDF here")] = None) -> None:
    """Generate and archive the monthly Ecosystem Pulse PDF."""
    _boot(log=False)
    import re

    if not re.match(r"^(19|20)\d{2}-(0[1-9]|1[0-2])$", month):
        err.print(f"[red]--month must be YYYY-MM, got {escape_markup(month)!r}[/red]")
        raise typer.Exit(2)
    rep = _invoke_or_exit(org, "pulse.report_generate", {"month": month})
    if out is not None:
        from memory.db import session_scope
        from tools.pulse.report import pdf_bytes

        with session_scope() as s:
            out.write_bytes(pdf_bytes(_org_ctx(s, org), month))  # type: ignore[arg-type]
    console.print(f"[green]Pulse report {month}[/green]: {rep.pages} pages, {rep.size_bytes} bytes"  # type: ignore[attr-defined]
                  + (f", written to {out}" if out else f"; download {rep.download_url}"))  # type: ignore[attr-defined]


@costs_app.command("import")
def costs_import(file: Annotated[Path, typer.Argument(help="CSV: day,source,amount_cents[,description,ref]")],
                 org: Annotated[str, typer.Option(help="Organisation slug")] = "demo") -> None:
    """Import spend entries from a CSV bill (all rows or none)."""
    _boot(log=False)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]cannot read {file}: {exc}[/red]")
        raise typer.Exit(2) from None
    out = _invoke_or_exit(org, "costs.import_csv", {"csv": text})
    console.print(f"[green]imported {out.rows} rows[/green] ({out.created} new, {out.updated} updated), "  # type: ignore[attr-defined]
                  f"total {out.total_cents / 100:.2f} USD")  # type: ignore[attr-defined]


@costs_app.command("summary")
def costs_summary(org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
                  days: Annotated[int, typer.Option()] = 30) -> None:
    """Show spend by source over the last N days."""
    _boot(log=False)
    out = _invoke_or_exit(org, "costs.summary", {"days": days})
    t = Table("source", "total USD", "share", "per day USD")
    for s_ in out.by_source:  # type: ignore[attr-defined]
        t.add_row(s_.source, f"{s_.total_cents / 100:.2f}", f"{s_.share_pct} %", f"{s_.per_day_cents / 100:.2f}")
    console.print(t)


@planner_app.command("run")
def planner_run(org: Annotated[str, typer.Option(help="Organisation slug")] = "demo") -> None:
    """Run the deterministic planner now and print its suggestions."""
    _boot(log=False)
    out = _invoke_or_exit(org, "planner.run", {})
    for f in out.findings:  # type: ignore[attr-defined]
        console.print(f"[bold]{f.kpi}[/bold] {f.status}: " + "; ".join(f.drivers))
    for sg in out.suggestions:  # type: ignore[attr-defined]
        console.print(f"  #{sg.id} {sg.title} (confidence {sg.confidence:.0%})")
    if not out.suggestions:  # type: ignore[attr-defined]
        console.print("no new suggestions")


@app.command("marketplace-json")
def marketplace_json(out: Annotated[str | None, typer.Option(help="File (default tools/partner_api/marketplace.json)")]
                     = None) -> None:
    """Write marketplace.json (every listed plugin's public metadata) from the registry."""
    from pathlib import Path

    from memory.db import session_scope
    from tools.partner_api.registry import MARKETPLACE_JSON, write_marketplace_json

    _boot(log=False)
    with session_scope() as s:
        path = write_marketplace_json(s, Path(out) if out else MARKETPLACE_JSON)
    console.print(f"wrote {path}")


@app.command("payouts-run")
def payouts_run(period: Annotated[str, typer.Option(help="Month to pay, YYYY-MM")]) -> None:
    """Prepare a month's partner payouts and transfer them through Stripe Connect (idempotent)."""
    from tools.partner_api.payouts import run_payouts

    _boot(log=False)
    prepared, sent = run_payouts(period)
    for p in prepared.payouts:
        console.print(f"payout #{p.id} partner {p.partner_id}: {p.amount_minor} {p.currency} minor units")
    for h in prepared.held:
        console.print(f"held partner {h.partner_id}: {h.amount_minor} ({h.reason})")
    console.print(f"transferred: {sent}")


@app.command("credits-grant")
def credits_grant(amount: Annotated[int, typer.Argument(help="Credits to add")],
                  org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
                  note: Annotated[str, typer.Option()] = "granted with the levqor CLI") -> None:
    """Add job credits to an organisation (a ledger row records it)."""
    _boot(log=False)
    from memory.db import session_scope
    from tools.errors import AppError
    from tools.registry import registry

    try:
        with session_scope() as s:
            out = registry.invoke("credits.grant", _org_ctx(s, org), {"amount": amount, "note": note})  # type: ignore[arg-type]
    except AppError as exc:
        err.print(f"[red]{exc.detail}[/red]")
        raise typer.Exit(1) from None
    console.print(f"balance of {org}: {out.balance}")  # type: ignore[attr-defined]


chaos_app = typer.Typer(help="The chaos suite: inject faults, measure detection and self-healing.",
                        no_args_is_help=True)
app.add_typer(chaos_app, name="chaos")


@chaos_app.command("run", add_help_option=False,
                   context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def chaos_run(ctx: typer.Context) -> None:
    """Break a small real platform on purpose; print detection, recovery, losses per scenario.

    The harness lives with the benchmarks, in the source checkout (``bench/chaos/run.py --help``)."""
    import runpy

    script = Path(__file__).resolve().parents[1] / "bench" / "chaos" / "run.py"
    if not script.exists():
        err.print(f"[red]the chaos suite runs from a source checkout: {script} not found[/red]")
        raise typer.Exit(2)
    sys.argv = [str(script), *ctx.args]
    runpy.run_path(str(script), run_name="__main__")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
