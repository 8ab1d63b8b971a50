"""``levqor api``: the HTTP API alone (at scale, any number of replicas).

``levqor api`` serves from one process unless given ``--processes N`` (or ``LEVQOR_API_PROCESSES``);
as the API child of ``levqor up`` it serves from ``LEVQOR_API_PROCESSES`` processes, by default one per
CPU core: uvicorn's workers sharing the one listening socket, each with its own pool and key cache.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Annotated

import psutil
import typer
from fastapi import FastAPI

from api.cli.common import boot, policy_or_exit
from levqor.metrics import mark_process_dead, prepare_multiproc_dir
from levqor.settings import Settings, get_settings
from memory.db import session_scope
from tools.jobs.workers import api_process_started, api_process_stopped
from workers.process import die_with_parent, watch_supervisor

cli = typer.Typer()
log = logging.getLogger("levqor.process")
SERVING_ENV = "LEVQOR_API_SERVING"  # set by ``levqor api`` for its processes: how many of them serve


def api_processes(given: int | None, settings: Settings, *, under_up: bool, cores: int | None) -> int:
    """How many processes serve the API: ``--processes``, else ``LEVQOR_API_PROCESSES`` when it is set or
    the API runs under ``levqor up`` (0: one per core), else one."""
    if given is not None:
        return max(1, given)
    if not under_up and "api_processes" not in settings.model_fields_set:
        return 1
    return settings.api_processes or cores or 1


def drop_dead_processes(mpdir: Path) -> list[int]:
    """Drop the live gauges of processes that are gone (API processes of an API parent that was killed:
    ``levqor up`` drops only its own children's); the pids dropped."""
    dead: list[int] = []
    for f in mpdir.glob("gauge_live*_*.db"):
        pid = f.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and int(pid) not in dead and not psutil.pid_exists(int(pid)):
            dead.append(int(pid))
            mark_process_dead(int(pid), mpdir)
    return dead


def _record(started: bool) -> None:
    """Record this API process as serving (or as stopped cleanly). One killed -9 keeps its record: the
    monitor's ``api_process_died`` rule sees it, and forgets it once a replacement serves. A process
    starting (the replacement of a killed one, too) also drops the live gauges of API processes that are
    gone, which would otherwise linger in ``/metrics`` until the whole API restarts."""
    if started and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        drop_dead_processes(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    try:
        with session_scope() as s:
            if started:
                api_process_started(s, os.getpid(), int(os.environ.get(SERVING_ENV) or 1))
            else:
                api_process_stopped(s, os.getpid())
    except Exception:  # the database may be down: serving comes first
        log.warning("could not record the API process", exc_info=True)


def serving_app() -> FastAPI:
    """The app of an API process, recording the process while it serves."""
    from api.app import create_app

    app = create_app()
    app.router.add_event_handler("startup", lambda: _record(True))
    app.router.add_event_handler("shutdown", lambda: _record(False))
    return app


def worker_app() -> FastAPI:
    """The app of one of several API processes; it stops if the process that started it dies (Linux)."""
    die_with_parent(signal.SIGTERM)  # not Linux: the parent's SIGTERM still stops every process
    return serving_app()


@cli.command()
def api(host: Annotated[str | None, typer.Option()] = None, port: Annotated[int | None, typer.Option()] = None,
        processes: Annotated[int | None, typer.Option(min=1, help="API processes on the one port "
                                                      "(default: 1; under `levqor up`, LEVQOR_API_PROCESSES)")]
        = None) -> None:
    """Run the API server (uvicorn)."""
    boot(service=True)
    policy_or_exit()
    import uvicorn  # kept lazy: only this command serves HTTP

    s = get_settings()
    n = api_processes(processes, s, under_up=os.environ.get("LEVQOR_PROCESS_ROLE") == "api",
                      cores=os.cpu_count())
    if n > 1:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            drop_dead_processes(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
        else:  # /metrics answers for every process only through a shared directory (``levqor up`` sets one)
            mpdir = s.metrics_multiproc_dir or s.var_dir / "prometheus"
            prepare_multiproc_dir(mpdir)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(mpdir.resolve())
    os.environ[SERVING_ENV] = str(n)  # the processes' records say how many serve
    watch_supervisor()  # under `levqor up`: stop (as SIGTERM does) if the supervisor goes
    uvicorn.run("api.cli.serve:worker_app" if n > 1 else "api.cli.serve:serving_app", factory=True,
                host=host or s.host, port=port or s.port, workers=n if n > 1 else None,
                log_config=None, access_log=False, timeout_graceful_shutdown=10,
                timeout_keep_alive=s.api_keepalive_s)
