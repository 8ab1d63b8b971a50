"""``levqor agents`` and ``levqor approvals``: run an agent now, decide a paused call as a person."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from agents.runtime import execute_run, resume_after_commit
from api.cli.common import JsonFlag, boot, console, fail, org_session, params, session_or_exit, table
from tools.agents.service import (
    ApprovalDecision,
    ApprovalQuery,
    NoInput,
    RunId,
    RunStart,
    approve,
    get_run,
    list_agents,
    list_approvals,
    reject,
    start_run,
)
from tools.identity.service import org_context, person_context

agents = typer.Typer(help="Agents: list them, run one now.", no_args_is_help=True)
approvals = typer.Typer(help="Agent approvals: list, approve, reject.", no_args_is_help=True)


@agents.command("list")
def agents_list(org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
                json_out: JsonFlag = False) -> None:
    """List agents, their schedules, triggers and offered tools, and the LLM mode."""
    boot(log=False)
    with org_session(org) as ctx:
        out = list_agents(ctx, NoInput())
    if json_out:
        print(out.model_dump_json())
        return
    console.print(out.mode["label"])
    t = table("agent", "schedule", "events", "tools (allow / needs approval)", "description")
    for a in out.items:
        tools = "\n".join(f"{n}{'*' if o == 'needs_approval' else ''}" for n, o in sorted(a.tools.items()))
        t.add_row(a.name, a.schedule or "-", ", ".join(a.events) or "-", tools or "(none yet)", a.description)
    console.print(t)


@agents.command("run")
def agents_run(name: Annotated[str, typer.Argument(help="Agent name, e.g. janitor")],
               org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
               json_out: JsonFlag = False) -> None:
    """Run an agent now in this process and print the outcome (a paused run names its approval)."""
    boot(log=False)
    start = params(RunStart, agent=name)
    with org_session(org) as ctx:
        run_id = start_run(ctx, start).id
    execute_run(run_id)  # here, now that the queued run has committed
    with org_session(org) as ctx:
        run = get_run(ctx, RunId(run_id=run_id))
        pending = list_approvals(ctx, ApprovalQuery(status="pending"))
    waiting = [a for a in pending.items if a.run_id == run_id]
    if json_out:
        print(json.dumps({"run": run.model_dump(mode="json"), "approvals": [a.model_dump(mode="json")
                                                                            for a in waiting]}))
    else:
        console.print(f"run {run_id} ({run.mode}): [bold]{run.status}[/bold]")
        if run.summary:
            console.print(run.summary)
        for a in waiting:
            console.print(f"approval {a.id} pending: {a.tool} {json.dumps(a.args)} — {a.reason} "
                          f"(levqor approvals approve {a.id} --by EMAIL)")
    raise typer.Exit(1 if run.status == "failed" else 0)


@approvals.command("list")
def approvals_list(org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
                   status: Annotated[str | None, typer.Option(help="pending|approved|rejected|expired")] = "pending",
                   json_out: JsonFlag = False) -> None:
    """List agent approvals (pending by default)."""
    boot(log=False)
    query = params(ApprovalQuery, status=status)
    with org_session(org) as ctx:
        out = list_approvals(ctx, query)
    if json_out:
        print(out.model_dump_json())
        return
    t = table("id", "agent", "run", "tool", "args", "reason", "status", "expires", "decided by")
    for a in out.items:
        t.add_row(str(a.id), a.agent, str(a.run_id), a.tool, json.dumps(a.args), a.reason, a.status,
                  f"{a.expires_at:%Y-%m-%d %H:%M}", a.decided_by or "")
    console.print(t)


def _decide(verb: str, approval_id: int, org: str, by: str, note: str | None, args: str | None) -> None:
    boot(log=False)
    edited = None
    if args is not None:
        try:
            edited = json.loads(args)
        except json.JSONDecodeError as exc:
            fail(f"--args is not JSON: {exc}", 2)
    decision = params(ApprovalDecision, approval_id=approval_id, note=note, args=edited)
    with session_or_exit() as s:
        out = (approve if verb == "approve" else reject)(person_context(s, org, by), decision)
        resume_after_commit(s, out.id)
    # The run resumed in this process once the decision committed.
    with session_or_exit() as s:
        run = get_run(org_context(s, org), RunId(run_id=out.run_id))
    console.print(f"approval {approval_id} {out.status} by {out.decided_by}; "
                  f"run {run.id}: [bold]{run.status}[/bold]")
    if run.summary:
        console.print(run.summary)


@approvals.command("approve")
def approvals_approve(
    approval_id: Annotated[int, typer.Argument()],
    by: Annotated[str, typer.Option(help="Email of the person approving (needs approvals:write)")],
    org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
    args: Annotated[str | None, typer.Option(help="Edited arguments as JSON")] = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Approve a paused agent call (optionally with edited arguments); the run resumes here."""
    _decide("approve", approval_id, org, by, note, args)


@approvals.command("reject")
def approvals_reject(
    approval_id: Annotated[int, typer.Argument()],
    by: Annotated[str, typer.Option(help="Email of the person rejecting (needs approvals:write)")],
    org: Annotated[str, typer.Option(help="Organisation slug")] = "demo",
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Reject a paused agent call; the run resumes without it."""
    _decide("reject", approval_id, org, by, note, None)
