"""Baseline of the API benchmark: a bare FastAPI app doing the same kind of work as ``levqor api``.

``GET /v1/me`` and ``GET /v1/jobs`` are plain ``def`` endpoints (FastAPI's threadpool) that hash the bearer
key, look it up, and for ``/v1/jobs`` read the organisation's newest 50 jobs, in one SQLAlchemy session on
the same database and tables, with the same pool size and SQLite pragmas (WAL, busy timeout) as Levqor.
No roles, policy, audit, metrics, logging or request ids. Served by uvicorn like ``levqor api``.
Usage: python bench/api/baseline.py DATABASE_URL PORT
"""

from __future__ import annotations

import hashlib
import sys
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Header, HTTPException
from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import Session

POOL = 10  # LEVQOR_DB_POOL_SIZE's default, with the same overflow


def create_app(url: str) -> FastAPI:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=POOL, max_overflow=POOL)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
    else:
        engine = create_engine(url, pool_size=POOL, max_overflow=POOL, pool_pre_ping=True)
    app = FastAPI()

    def key_row(s: Session, authorization: str) -> Any:
        raw = authorization.removeprefix("Bearer ").strip()
        row = s.execute(text("SELECT id, org_id, prefix, role, name, mode FROM api_keys "
                             "WHERE key_hash = :h AND revoked_at IS NULL"),
                        {"h": hashlib.sha256(raw.encode()).hexdigest()}).first()
        if row is None:
            raise HTTPException(401, "invalid API key")
        return row

    @app.get("/v1/me")
    def me(authorization: Annotated[str, Header()]) -> dict[str, Any]:
        with Session(engine) as s:
            k = key_row(s, authorization)
        return {"actor": f"api_key:{k.prefix}", "kind": "api_key", "role": k.role, "org_id": k.org_id,
                "name": k.name, "key_mode": k.mode}

    @app.get("/v1/jobs")
    def jobs(authorization: Annotated[str, Header()]) -> dict[str, Any]:
        with Session(engine) as s:
            k = key_row(s, authorization)
            rows = s.execute(text("SELECT * FROM jobs WHERE org_id = :o ORDER BY id DESC LIMIT 51"),
                             {"o": k.org_id}).mappings().all()
        items = [dict(r) for r in rows[:50]]
        return {"items": items, "next_cursor": items[-1]["id"] if len(rows) > 50 else None}

    return app


if __name__ == "__main__":
    uvicorn.run(create_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_config=None,
                access_log=False)
