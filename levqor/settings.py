"""Application settings, read from ``LEVQOR_*`` environment variables and ``.env``.

Every setting is listed with its default in README.md; a test keeps the two in step.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Levqor settings (prefix ``LEVQOR_``)."""

    model_config = SettingsConfigDict(env_prefix="LEVQOR_", env_file=".env", extra="ignore")

    env: str = Field("dev", description="Deployment name shown in logs and build info (dev, staging, prod).")
    var_dir: Path = Field(Path("./var"), description="Directory for the SQLite file, keys and runtime state.")
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty means SQLite at VAR_DIR/levqor.db (WAL)."
    )
    db_pool_size: int = Field(10, description="Connection pool size (PostgreSQL).")
    host: str = Field("127.0.0.1", description="API bind address.")
    port: int = Field(8000, description="API port.")
    public_url: str = Field("", description="Public base URL; empty means http://HOST:PORT.")
    secret_key: str = Field("", description="Key for session and CSRF tokens; empty means one kept in VAR_DIR.")
    log_level: str = Field("INFO", description="Log level.")
    log_json: bool = Field(True, description="Structured JSON logs (false: human-readable lines).")
    policy_path: Path = Field(ROOT / "policies" / "policy.json", description="Policy file.")
    audit_key_path: Path | None = Field(
        None, description="Ed25519 key for audit checkpoints; empty means VAR_DIR/audit_ed25519.pem."
    )
    audit_checkpoint_export: Path | None = Field(
        None, description="Append-only copy of signed checkpoints; empty means VAR_DIR/audit-checkpoints.jsonl."
    )
    audit_checkpoint_interval_s: int = Field(300, description="Seconds between signed audit checkpoints.")
    session_ttl_hours: int = Field(12, description="Browser session lifetime.")
    cookie_secure: bool = Field(False, description="Mark cookies Secure (set true behind HTTPS).")
    workers: int = Field(2, description="Worker processes started by `levqor up`.")
    worker_concurrency: int = Field(4, description="Jobs one worker process runs at once.")
    job_lease_s: int = Field(30, description="Job lease length; heartbeats renew it.")
    events_max_attempts: int = Field(8, description="Attempts for an in-process event handler before it is dead.")
    events_poll_s: float = Field(0.5, description="Outbox dispatcher poll interval in seconds.")
    metrics_multiproc_dir: Path | None = Field(
        None, description="prometheus multiprocess dir; empty means VAR_DIR/prometheus when several processes serve."
    )
    allow_loopback_urls: bool = Field(False, description="Let the SSRF guard allow 127.0.0.1 (tests only).")
    scheduler_lease_s: int = Field(15, description="Scheduler leader lease length.")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'levqor.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def resolved_audit_key_path(self) -> Path:
        return self.audit_key_path or self.var_dir / "audit_ed25519.pem"

    @property
    def resolved_checkpoint_export(self) -> Path:
        return self.audit_checkpoint_export or self.var_dir / "audit-checkpoints.jsonl"

    def resolved_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        path = self.var_dir / "secret_key"
        if not path.exists():
            self.var_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (cached; tests call ``get_settings.cache_clear()``)."""
    return Settings()
