"""Application settings, read from ``LEVQOR_*`` environment variables and ``.env``.

Every setting is listed with its default in README.md; a test keeps the two in step.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class ApiTier(BaseModel):
    """One usage tier's API limits (requests with an API key on ``/v1``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_per_second: int = Field(ge=1, description="Requests per second per API key.")
    org_per_second: int = Field(ge=1, description="Requests per second per organisation (all its keys).")
    key_per_day: int = Field(ge=1, description="Requests per UTC day per API key.")
    org_per_day: int = Field(ge=1, description="Requests per UTC day per organisation.")
    org_per_month: int = Field(ge=1, description="Monthly quota: requests per UTC calendar month per organisation.")


PLANS: tuple[str, ...] = ("free", "pro", "business", "enterprise")

# The usage tiers, keyed by ``organizations.plan``; docs/dev_portal/index.md shows this table (a test compares).
DEFAULT_API_TIERS: dict[str, ApiTier] = {
    "free": ApiTier(key_per_second=10, org_per_second=20, key_per_day=10_000, org_per_day=20_000,
                    org_per_month=100_000),
    "pro": ApiTier(key_per_second=100, org_per_second=200, key_per_day=500_000, org_per_day=1_000_000,
                   org_per_month=10_000_000),
    "business": ApiTier(key_per_second=500, org_per_second=1_000, key_per_day=5_000_000, org_per_day=10_000_000,
                        org_per_month=100_000_000),
    "enterprise": ApiTier(key_per_second=2_000, org_per_second=5_000, key_per_day=50_000_000,
                          org_per_day=100_000_000, org_per_month=1_000_000_000),
}


class Settings(BaseSettings):
    """Levqor settings (prefix ``LEVQOR_``)."""

    model_config = SettingsConfigDict(env_prefix="LEVQOR_", env_file=".env", extra="ignore")

    env: str = Field("dev", description="Deployment name shown in logs and build info (dev, staging, prod).")
    var_dir: Path = Field(Path("./var"), description="Directory for the SQLite file, keys and runtime state.")
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty means SQLite at VAR_DIR/levqor.db (WAL)."
    )
    db_pool_size: int = Field(
        10, description="Database connections kept per process (as many again may overflow); the API lets this "
        "many requests hold a session at once, the others wait their turn without a thread.",
    )
    db_busy_timeout_s: float = Field(
        30.0, gt=0, description="SQLite: how long a transaction waits for another process's lock before the "
        "database counts as unavailable (the API then answers 503 with Retry-After).",
    )
    db_ping_idle_s: float = Field(
        5.0, ge=0, description="A pooled PostgreSQL connection is tested (SELECT 1) on checkout only after sitting "
        "idle this long; 0 tests it on every checkout.",
    )
    api_key_touch_s: int = Field(
        60, description="An API key's last_used_at is written at most once per this many seconds (per key and "
        "process), in its own short transaction after the request.",
    )
    api_key_cache_s: float = Field(
        1.0, ge=0, le=1, description="Seconds an API process reuses a verified API key without reading it again "
        "(0: read it on every request). A key revoked or expired elsewhere is refused within this time; a "
        "revocation made in the same process, at once.",
    )
    api_tiers: dict[str, ApiTier] = Field(
        default_factory=lambda: dict(DEFAULT_API_TIERS),
        description="Usage tiers as JSON: plan (free, pro, business, enterprise) -> {key_per_second, "
        "org_per_second, key_per_day, org_per_day, org_per_month}; plans left out keep their defaults.",
    )
    rate_limit_sync_s: float = Field(
        1.0, ge=0, description="Seconds between an API process's syncs of its day and month counters and usage "
        "rows to the database (0: only at shutdown). Replicas may overshoot a day limit or the "
        "monthly quota by at most (replicas - 1) x per-second limit x this.",
    )
    api_keepalive_s: int = Field(
        75, gt=0, le=3600, description="Seconds the API keeps an idle keep-alive connection open. Longer than "
        "clients' and load balancers' idle timeouts (60 s on most), so a client never reuses a connection the "
        "server is closing at that moment (a dropped request); uvicorn's own default is 5.",
    )
    api_processes: int = Field(
        0, ge=0, le=64, description="API processes `levqor up` serves on its one port (0: one per CPU core); "
        "`levqor api` runs one unless given --processes.",
    )
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
    sso_clock_skew_s: int = Field(
        120, description="Clock skew allowed on SAML assertion and OIDC id_token times (seconds).")
    sso_request_ttl_s: int = Field(
        600, description="How long a started SAML or OIDC sign-in may take before its answer is refused (seconds).")
    cookie_secure: bool = Field(
        False, description="Mark cookies Secure even when PUBLIC_URL is not https (they are whenever it is).")
    max_body_bytes: int = Field(
        1_048_576, description="Largest request body in bytes (413 beyond; a few routes have their own limit).")
    max_json_depth: int = Field(32, description="Deepest nesting of arrays and objects in a JSON body (422 beyond).")
    max_string_length: int = Field(100_000, description="Longest string in a JSON body, in characters (422 beyond).")
    max_list_length: int = Field(
        10_000, description="Most items in one JSON list or object of a request body (422 beyond).")
    login_max_failures: int = Field(
        5, description="Wrong passwords for one account within LOGIN_WINDOW_S before it is locked (429).")
    login_max_failures_per_ip: int = Field(
        20, description="Failed sign-ins from one IP address within LOGIN_WINDOW_S before it is locked (429).")
    login_window_s: int = Field(900, description="Window in seconds over which failed sign-ins are counted.")
    login_lockout_s: int = Field(
        30, description="First sign-in lockout in seconds; each further lockout within a day doubles it.")
    login_lockout_max_s: int = Field(3600, description="Longest sign-in lockout in seconds.")
    signup_max_per_ip: int = Field(
        10, ge=1, description="Developer portal sign-ups (and invite acceptances) from one IP address within "
        "SIGNUP_WINDOW_S before further ones are refused (429, Retry-After).")
    signup_window_s: int = Field(3600, ge=1, description="Window in seconds over which sign-ups per IP are counted.")
    email_verify_ttl_h: int = Field(48, ge=1, description="Hours an email verification link stays valid.")
    invite_ttl_h: int = Field(168, ge=1, description="Hours a teammate invitation link stays valid.")
    key_rotation_grace_s: int = Field(
        86400, ge=0, description="Seconds a rotated API key keeps working beside its replacement (0: it stops at "
        "once).")
    test_credits_monthly: int = Field(
        1000, ge=0, description="Test-mode credits an organisation gets each month (UTC), apart from its live "
        "balance; POST /v1/test-data/reset restores them.")
    workers: int = Field(2, description="Worker processes started by `levqor up`.")
    workers_max: int = Field(
        8, description="Most worker processes `workers.scale` may ask the `levqor up` supervisor for."
    )
    worker_concurrency: int = Field(4, description="Jobs one worker process runs at once.")
    worker_prefetch: int = Field(
        16, ge=0, description="Claimed jobs a worker may hold beyond those running, while its runs are short "
        "(under 50 ms on average): one claim round trip serves many jobs. 0 turns prefetch off.")
    job_lease_s: int = Field(30, description="Job lease length; heartbeats renew it.")
    events_max_attempts: int = Field(8, description="Attempts for an in-process event handler before it is dead.")
    events_poll_s: float = Field(0.5, description="Outbox dispatcher poll interval in seconds.")
    metrics_multiproc_dir: Path | None = Field(
        None, description="prometheus multiprocess dir; empty means VAR_DIR/prometheus when several processes serve."
    )
    metrics_port: int = Field(
        0, description="Port where a standalone `levqor worker`/`scheduler` serves /metrics (0: off)."
    )
    metrics_token: str = Field(
        "", description="Bearer token every /metrics scrape must send (API and standalone workers); empty: none."
    )
    metrics_tenant_kpis: bool = Field(
        False, description="Publish per-organisation Pulse KPI, target and error-budget gauges (label: org id) "
                           "on /metrics. Off: /metrics carries no organisation's business figures."
    )
    job_lease_sweep: bool = Field(
        True, description="Workers return jobs with expired leases to the queue on each heartbeat (the chaos "
        "suite turns this off so that only the healer can fix them).",
    )
    smtp_url: str = Field(
        "", description="SMTP server for email notifications, smtp://[user:pass@]host[:port] (smtps:// for TLS, "
        "smtp+starttls:// for STARTTLS); empty writes each message as an .eml file in VAR_DIR/mail.",
    )
    smtp_from: str = Field("Levqor <noreply@levqor.ai>", description="From address of email notifications.")
    allow_loopback_urls: bool = Field(False, description="Let the SSRF guard allow 127.0.0.1 (tests only).")
    tls_ca_file: str = Field(
        "", description="PEM file of extra CA certificates trusted for partner and customer HTTPS calls, besides "
        "the system ones (a private CA; tests use it for their loopback endpoints).")
    governance_tick_s: float = Field(
        300.0, description="How often the scheduler leader runs queued partner audits and enforces audit deadlines.")
    staff_orgs: list[str] = Field(
        default_factory=list,
        description="Slugs of Levqor staff organisations (JSON list); their admins review plugins, run payouts and "
                    "command the shared workers; any of their roles reads platform-wide signals and audit checkpoints.",
    )
    hooks_concurrency: int = Field(16, description="Partner webhook deliveries one worker sends at once.")
    hooks_per_endpoint: int = Field(
        2, description="Deliveries in flight per partner endpoint (a slow one cannot starve others)."
    )
    hooks_timeout_s: float = Field(10, description="Partner webhook request timeout in seconds.")
    hooks_disable_after_s: int = Field(
        432000, description="Disable a partner endpoint failing for this long (seconds) and email the partner.")
    hooks_org_backlog_max: int = Field(
        1000, ge=0, description="Unfinished due partner webhook deliveries one organisation may have queued; "
        "beyond it the fan-out sheds that organisation's new deliveries (recorded, replayable). 0: no limit.")
    hooks_endpoint_max_lag_s: float = Field(
        10.0, ge=0, description="Seconds the oldest unclaimed due delivery of an endpoint may wait; beyond it the "
        "fan-out sheds new deliveries to that endpoint (recorded, replayable). 0: no limit.")
    stripe_api_key: str = Field("", description="Stripe secret key for Connect payouts; empty disables payouts.")
    stripe_api_base: str = Field("", description="Stripe API base URL; empty means https://api.stripe.com.")
    stripe_webhook_secret: str = Field("", description="Stripe webhook signing secret (whsec_...).")
    billing_grace_days: int = Field(
        7, ge=0, le=90, description="Days a failed subscription payment leaves the plan in place before the "
                                    "organisation moves to the free plan (dunning).")
    billing_dunning_interval_s: int = Field(900, ge=5, description="How often the dunning check runs.")
    cert_exam_questions: int = Field(40, ge=3, le=100, description="Questions drawn for one certification "
                                     "exam (stratified across topics and difficulty).")
    cert_exam_minutes: int = Field(60, ge=1, le=600, description="Minutes a candidate has to submit an exam.")
    cert_pass_percent: int = Field(70, ge=1, le=100, description="Score (percent) that passes the exam.")
    cert_attempt_limit: int = Field(3, ge=1, le=100, description="Exam attempts per candidate email in "
                                    "an organisation per year.")
    cert_retake_cooldown_s: int = Field(86400, ge=0, description="Seconds a candidate waits after a "
                                        "failed attempt before the next.")
    cert_validity_days: int = Field(730, ge=1, description="Days a certificate is valid.")
    cert_key_path: Path | None = Field(
        None, description="Ed25519 key that signs certificates (not the audit key); empty means "
                          "VAR_DIR/cert_ed25519.pem.")
    cert_docs_root: Path | None = Field(
        None, description="Directory whose docs/ pages the examiner watches for changes (to propose new exam "
                          "questions) and against which added questions' references resolve; empty means the "
                          "installed project.")
    payout_minimum_minor: int = Field(
        2500, description="Smallest partner payout in minor units; smaller shares roll over to the next run.")
    scheduler_lease_s: int = Field(15, description="Scheduler leader lease length.")
    scheduler_renew_s: float = Field(
        0, description="Seconds between scheduler lease renewals; 0 means a third of the lease.")
    llm_timeout_s: float = Field(30, description="LLM request timeout in seconds.")
    llm_max_retries: int = Field(2, description="LLM request retries (with backoff) before a run fails.")
    llm_breaker_failures: int = Field(1, ge=1, description="LLM calls in a row that time out or get a server "
                                      "error before the endpoint's circuit breaker opens (agents run offline).")
    llm_breaker_open_s: float = Field(30, gt=0, description="Seconds an open LLM circuit breaker refuses calls "
                                      "before it lets one probe call through (half-open).")
    llm_prices: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {
            "gpt-4o-mini": {"in": 0.15, "out": 0.60}, "gpt-4o": {"in": 2.50, "out": 10.00},
            "gpt-4.1-mini": {"in": 0.40, "out": 1.60}, "gpt-4.1": {"in": 2.00, "out": 8.00}},
        description="LLM price table as JSON: model -> USD per million tokens {in, out}; unknown cost 0.",
    )
    agent_recursion_limit: int = Field(40, description="LangGraph recursion limit for one agent run.")
    agent_schedules: dict[str, str] = Field(
        default_factory=lambda: {"janitor": "interval:300"},
        description='Agent schedules as JSON: agent -> "interval:SECONDS" or "cron:MIN HOUR DOM MON DOW".',
    )
    agent_event_triggers: dict[str, list[str]] = Field(
        default_factory=dict,
        description='Agents started by platform events (JSON: event -> [agents]), e.g. {"job_failed": ["janitor"]}.',
    )
    approval_ttl_s: int = Field(
        0, description="Seconds before a pending approval expires (then rejected); 0: policy approval_ttl_s.")
    janitor_batch_threshold: int = Field(
        5, description="Janitor: more retries than this in one run need one approval for the batch.")
    pulse_targets: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {
            "uptime": {"op": ">=", "value": 99.98, "window": "month"},
            "spend": {"op": "<=", "value": 1000, "window": "day"},
            "partner_revenue_share": {"op": ">=", "value": 20.0, "window": "month"},
            "certified_users": {"op": ">=", "value": 100, "window": "latest"},
            "manual_incidents": {"op": "<", "value": 1, "window": "quarter"}},
        description="KPI targets as JSON: kpi -> {op, value, window: day|month|quarter|latest}; money in cents.",
    )
    pulse_probe_interval_s: int = Field(60, description="Seconds between the scheduler's /readyz uptime probes.")
    pulse_check_interval_s: int = Field(
        900, description="Seconds between Pulse checks (daily snapshot, weekly planner, monthly PDF; idempotent).")
    # ---- community (tools/community) ----
    early_access_min_fill_s: int = Field(
        3, description="Seconds the early-access form must be open before a submit counts (faster: a bot).")
    early_access_max_per_ip: int = Field(
        5, description="Early-access applications from one IP address within the window.")
    early_access_window_s: int = Field(
        3600, description="Window over which early-access applications per IP are counted (seconds).")
    early_access_confirm_ttl_h: int = Field(48, description="Hours an early-access confirmation link stays valid.")
    community_discord_url: str = Field(
        "", description="Public invite link of the Discord community (footer, Partner Network page).")
    community_telegram_url: str = Field(
        "", description="Public link of the Telegram community channel (footer, Partner Network page).")
    community_discord_webhook_url: str = Field(
        "", description="Discord webhook announcements are posted to (SSRF-guarded); empty: off.")
    community_telegram_bot_token: str = Field(
        "", description="Telegram bot token for posting announcements; with the chat id enables it.")
    community_telegram_chat_id: str = Field("", description="Telegram chat (e.g. @levqor) announcements are posted to.")
    community_telegram_api_base: str = Field("https://api.telegram.org", description="Telegram Bot API base URL.")
    announcement_batch_size: int = Field(50, description="Announcement deliveries sent per batch.")
    announcement_max_attempts: int = Field(6, description="Attempts per announcement delivery before it is failed.")
    announcement_send_interval_s: float = Field(
        15, description="Seconds between the scheduler's announcement delivery rounds.")
    notion_token: str = Field("", description="Notion integration token; with the data source id enables the feed.")
    notion_data_source_id: str = Field("", description="Notion Pulse data source id (API 2025-09-03).")
    notion_base_url: str = Field("", description="Notion API base URL; empty means https://api.notion.com.")
    notion_badges_data_source_id: str = Field(
        "", description="Notion data source that receives a page per certificate issued (with the Notion token).")
    # Data insights (tools/data_insights): anonymised platform aggregates and the quarterly report
    insights_k: int = Field(10, ge=2, description="k-anonymity: no group of fewer organisations is published.")
    insights_epsilon: float = Field(0.0, ge=0, description="Laplace noise per published figure (ε-DP); 0 = off.")
    insights_clip_jobs: int = Field(50_000, ge=1, description="Most jobs one organisation adds to a figure.")
    insights_rollup_interval_s: int = Field(60, ge=5, description="Seconds between rollups of finished jobs.")
    google_drive_service_account_file: str = Field("", description="Service account JSON; enables Drive upload.")
    google_drive_folder_id: str = Field("", description="Drive folder the Insights Reports are uploaded to.")
    google_drive_base_url: str = Field("", description="Drive API root URL; empty means Google's (tests: a fake).")
    google_drive_ca_file: str = Field("", description="Extra CA bundle for the Drive endpoint (tests: the fake's).")
    insights_notion_data_source_id: str = Field("", description="Notion data source receiving report summaries.")
    ops_sample_interval_s: float = Field(5, description="Seconds between the monitor's samples of the platform.")
    monitor_heartbeats_kept: int = Field(12, ge=1, description="Monitor runs in which nothing happened (heartbeats) "
                                         "kept on /agents; older ones are pruned by the monitor each tick.")
    ops_anomaly_threshold: float = Field(0.5, description="Anomaly score at or above which a series opens an incident.")
    ops_detector_warmup: int = Field(300, description="Points a series' detector learns before it scores.")
    ops_queue_age_max_s: float = Field(600, description="Rule: the oldest due job waiting longer opens an incident.")
    ops_failure_rate_max: float = Field(0.5, description="Rule: a pipeline failing more than this share opens one.")
    ops_failure_min_jobs: int = Field(5, description="Rule: finished jobs in the window before a failure rate counts.")
    ops_partner_error_rate_max: float = Field(0.5, description="Rule: partner endpoint error rate over this.")
    ops_rss_growth_bytes: int = Field(
        200_000_000, description="Rule: a worker whose RSS grew this much, steadily, over the last samples leaks.")
    ops_window_s: int = Field(300, description="Window of the rate signals (failure rate, latency) in seconds.")
    ops_capacity_horizon_s: float = Field(
        300, description="Rule: a backlog (now or forecast) the workers cannot clear within this many seconds at "
        "their measured throughput warns of a capacity shortage (the healer adds workers)."
    )
    ops_api_p95_max_s: float = Field(2.0, description="Rule: an API route whose p95 latency exceeds this is slow.")
    ops_disk_free_min_bytes: int = Field(
        100_000_000, description="Rule: free space in the var directory below this opens a disk_full incident (the "
        "healer frees rotated logs and expired exports); it resolves once free space is back above it.")
    ops_disk_reserve_bytes: int = Field(
        8_000_000, description="A reserve file (VAR_DIR/.disk-reserve) the monitor keeps while space allows and "
        "deletes when free space falls under the limit, so the incident and the database can still be written; 0: "
        "off.")
    ops_export_retention_s: float = Field(
        7 * 86400, description="Generated files under VAR_DIR/exports older than this are expired: the healer may "
        "delete them when the var directory runs out of space.")
    chaos_leak_bytes_per_job: int = Field(
        0, description="Chaos suite only: a worker keeps this many bytes per job it runs (a memory leak); 0: off."
    )
    chaos_api_delay_file: str = Field(
        "", description="Chaos suite only: the API sleeps, per request, the seconds written in this file; empty: off."
    )
    chaos_tick_pause: dict[str, float] = Field(
        default_factory=dict, description="Chaos suite only (JSON: scheduled job -> seconds): the scheduler waits "
        "this long after the job's work and before recording its tick finished (a window to kill it mid-tick)."
    )
    ops_resolve_quiet_s: float = Field(30, description="An incident not seen for this long resolves itself.")
    ops_api_down_probes: int = Field(2, description="Rule: this many failed /readyz probes in a row open an "
                                     "api_down outage incident (it counts as downtime).")
    ops_api_down_escalate_s: float = Field(600, description="An api_down outage lasting longer goes to a person.")
    ops_db_outage_min_s: float = Field(
        5.0, ge=0, description="A database outage shorter than this (a dropped connection replaced at once) is "
        "logged, not recorded as a db_outage incident.",
    )
    ops_flap_window_s: float = Field(600, description="A cause that comes back within this reopens its incident.")
    ops_flap_max: int = Field(3, description="Reopens after which an incident is flapping: a person must look.")
    ops_heal_max_attempts: int = Field(3, description="Healer attempts per incident before it escalates to a person.")
    ops_heal_verify_s: float = Field(20, description="Seconds the healer waits for a symptom to go before retrying.")
    ops_notify_emails: list[str] = Field(default_factory=list, description="Incident emails go to these (JSON list).")
    ops_notify_webhook: str = Field("", description="Incident notifications POSTed here (SSRF-guarded); empty: off.")
    ops_raw_retention_h: int = Field(24, description="Hours raw samples are kept (then 5-minute rollups).")
    ops_rollup_retention_d: int = Field(30, description="Days 5-minute rollups are kept.")
    prometheus_url: str = Field("", description="External Prometheus HTTP API base URL to read series from.")

    @field_validator("api_tiers")
    @classmethod
    def _all_plans(cls, v: dict[str, ApiTier]) -> dict[str, ApiTier]:
        unknown = sorted(set(v) - set(PLANS))
        if unknown:
            raise ValueError(f"unknown plan(s) {unknown}; plans are {list(PLANS)}")
        return {**DEFAULT_API_TIERS, **v}

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
    def secure_cookies(self) -> bool:
        """Cookies carry ``Secure`` when forced, or when the public URL is https."""
        return self.cookie_secure or self.base_url.lower().startswith("https://")

    @property
    def resolved_audit_key_path(self) -> Path:
        return self.audit_key_path or self.var_dir / "audit_ed25519.pem"

    @property
    def resolved_cert_key_path(self) -> Path:
        return self.cert_key_path or self.var_dir / "cert_ed25519.pem"

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
