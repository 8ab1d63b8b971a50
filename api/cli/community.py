"""``levqor announcements``: list, write the three launch announcements, publish, send with progress."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.cli.common import boot, console, fail, session_or_exit
from tools.community import announcements as ann
from tools.community.announcements import AnnouncementCreate, AnnouncementRef
from tools.community.network import LAUNCH_ANNOUNCEMENTS
from tools.context import SYSTEM, ToolContext
from tools.identity.service import NoInput

announcements = typer.Typer(help="Announcements: list, write the launch ones, publish, send.")


@announcements.command("list")
def list_() -> None:
    """Every announcement with its delivery progress."""
    boot(log=False)
    with session_or_exit() as s:
        items = ann.list_announcements(ToolContext(s, SYSTEM), NoInput()).items
    table = Table("id", "slug", "status", "segments", "deliveries")
    for a in items:
        table.add_row(str(a.id), a.slug, a.status, ", ".join(a.segments),
                      "; ".join(f"{ch}: {by}" for ch, by in a.deliveries.items()))
    console.print(table)


@announcements.command("create-launch")
def create_launch() -> None:
    """Write the roadmap's three launch announcements as drafts (those missing)."""
    boot(log=False)
    with session_or_exit() as s:
        have = {a.slug for a in ann.list_announcements(ToolContext(s, SYSTEM), NoInput()).items}
        for spec in LAUNCH_ANNOUNCEMENTS:
            if spec["slug"] not in have:
                row = ann.create_announcement(ToolContext(s, SYSTEM), AnnouncementCreate(**spec))
                console.print(f"draft #{row.id} {row.slug}")


@announcements.command("publish")
def publish(announcement_id: int) -> None:
    """Publish an announcement (news page, feed) and queue its email segment and chat posts."""
    boot(log=False)
    with session_or_exit() as s:
        row = ann.publish_announcement(ToolContext(s, SYSTEM), AnnouncementRef(announcement_id=announcement_id))
    console.print(f"published #{row.id} {row.slug}: {row.deliveries}")


@announcements.command("send")
def send(announcement_id: int,
         retry_now: Annotated[bool, typer.Option(help="Retry failed deliveries without waiting for backoff")] = False,
         ) -> None:
    """Send an announcement's due deliveries in batches, with progress (resumable: state is in the database)."""
    boot(log=False)
    start = ann.progress(announcement_id)
    if start["total"] == 0:
        fail(f"announcement {announcement_id} has no deliveries (not published, or no recipients)")
    with Progress(TextColumn("[bold]announcement #{task.fields[ann]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("sent {task.fields[sent]} · failed {task.fields[failed]} · skipped {task.fields[skipped]}"
                             " · to retry {task.fields[pending]}"), TimeElapsedColumn(), console=console) as bar:
        f = _fields(start)
        task = bar.add_task("send", total=start["total"], ann=announcement_id, sent=f["sent"], failed=f["failed"],
                            skipped=f["skipped"], pending=f["pending"])

        def update(p: dict[str, int]) -> None:
            bar.update(task, completed=p["sent"] + p["failed"] + p["skipped"], sent=p["sent"], failed=p["failed"],
                       skipped=p["skipped"], pending=p["pending"])

        update(start)
        final = ann.send_all(announcement_id, on_batch=update, retry_now=retry_now)
    console.print(f"sent {final['sent']}, failed {final['failed']}, skipped {final['skipped']}, "
                  f"waiting to retry {final['pending']}")
    if final["failed"] or final["pending"]:
        raise typer.Exit(1)


def _fields(p: dict[str, int]) -> dict[str, int]:
    return {k: p.get(k, 0) for k in ("sent", "failed", "skipped", "pending")}
