"""The LLM guard: a circuit breaker per LLM endpoint and each agent's daily cost cap, kept in the database
so every process (API, scheduler, workers) agrees.

Before a model call the agents' client asks :func:`check`: a closed breaker lets it go; an open one
refuses it (the agent falls back to offline mode, as it does for a failed call) until
``LEVQOR_LLM_BREAKER_OPEN_S`` passed, then lets exactly one call through as a half-open probe; an agent
whose spend in the organisation today reached its cap (``llm_daily_cost_cap_usd`` in ``policy.json``)
is refused until tomorrow. A call that times out or gets a server error counts a failure
(:func:`failed`; ``LEVQOR_LLM_BREAKER_FAILURES`` in a row open the breaker, a failed probe at once); one
that answers closes it (:func:`succeeded`). The monitor opens an incident for an open breaker and for a
capped agent (``tools.auto_intel.rules``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from levqor.llm import request_limits
from levqor.settings import get_settings
from memory.agents.repository import LlmBreakerRepository
from memory.db import aware, session_scope, utcnow
from policies.engine import get_engine

log = logging.getLogger("levqor.agents")
DEFAULT_ENDPOINT = "https://api.openai.com/v1"


class LlmUnavailable(Exception):
    """A model call refused by the guard (breaker open, or the agent's cost cap reached)."""


@dataclass(frozen=True)
class Verdict:
    """Whether a model call may go now; ``probe`` when it is the half-open breaker's one probe."""

    allowed: bool
    probe: bool = False
    reason: str = ""


def endpoint() -> str:
    """The configured LLM endpoint (``OPENAI_BASE_URL``; OpenAI's otherwise): the breaker's key."""
    return (os.environ.get("OPENAI_BASE_URL") or DEFAULT_ENDPOINT).rstrip("/")[:300]


def _probe_s() -> float:
    timeout, retries = request_limits()
    return timeout * (retries + 1) + 5.0  # a probe still out after this was lost with its process


def capped(org_id: int, agent: str) -> str:
    """Why ``agent`` may make no more LLM calls in ``org_id`` today (its cost cap), or ``""``."""
    cap = get_engine().llm_cost_cap_micro_usd(agent)
    if cap is None:
        return ""
    with session_scope() as s:
        spent = LlmBreakerRepository(s).spent_today(org_id, agent, utcnow().date())
    if spent < cap:
        return ""
    return f"agent {agent} reached its daily LLM cost cap (${spent / 1e6:.2f} of ${cap / 1e6:.2f} today)"


def offline_now(org_id: int, agent: str) -> str:
    """Why a run of ``agent`` starting now should run offline (breaker open and not yet due for a probe,
    or the cost cap reached), or ``""``. Reads only: it takes no probe."""
    why = capped(org_id, agent)
    if why:
        return why
    ep = endpoint()
    now = utcnow()
    with session_scope() as s:
        row = LlmBreakerRepository(s).get(ep)
        if row is None or row.state == "closed":
            return ""
        if row.state == "open" and row.retry_at is not None and aware(row.retry_at) > now:
            return f"the LLM endpoint {ep} is failing (circuit breaker open): {row.last_error or ''}"[:300]
        if row.state == "half_open" and row.probe_until is not None and aware(row.probe_until) > now:
            return f"the LLM endpoint {ep} is failing (a probe is out)"
    return ""


def check(org_id: int, agent: str) -> Verdict:
    """Whether a model call of ``agent`` may go now (taking the half-open probe when one is due)."""
    why = capped(org_id, agent)
    if why:
        return Verdict(False, reason=why)
    ep = endpoint()
    now = utcnow()
    with session_scope() as s:
        repo = LlmBreakerRepository(s)
        row = repo.get(ep)
        if row is None or row.state == "closed":
            return Verdict(True)
        if repo.take_probe(ep, now, _probe_s()):
            log.info("LLM breaker half-open: probing", extra={"fields": {"endpoint": ep, "agent": agent}})
            return Verdict(True, probe=True)
        return Verdict(False, reason=f"the LLM endpoint {ep} is failing (circuit breaker {row.state}): "
                                     f"{row.last_error or ''}"[:300])


def succeeded() -> None:
    """A model call answered: the endpoint works (close its breaker)."""
    ep = endpoint()
    with session_scope() as s:
        before = LlmBreakerRepository(s).succeeded(ep, utcnow())
    if before in ("open", "half_open"):
        log.warning("LLM endpoint answers again; breaker closed", extra={"fields": {"endpoint": ep}})


def failed(error: BaseException) -> str:
    """A model call timed out or got a server error: count it; the breaker's state now."""
    ep = endpoint()
    s = get_settings()
    with session_scope() as session:
        state = LlmBreakerRepository(session).failed(ep, utcnow(), f"{type(error).__name__}: {error}",
                                                     threshold=s.llm_breaker_failures, open_s=s.llm_breaker_open_s)
    if state == "open":
        log.warning("LLM endpoint failing; breaker open, agents run offline",
                    extra={"fields": {"endpoint": ep, "error": f"{type(error).__name__}: {error}"[:300]}})
    return state


def is_outage(error: BaseException) -> bool:
    """A timeout, a refused or reset connection, or a 5xx answer (not a 4xx: the request was wrong)."""
    import httpx  # kept lazy with the client's errors

    try:
        import openai
    except ImportError:  # pragma: no cover - the LLM extra is installed wherever LLM mode runs
        openai = None  # type: ignore[assignment]
    if isinstance(error, httpx.TimeoutException | httpx.TransportError | TimeoutError | ConnectionError):
        return True
    if openai is not None:
        if isinstance(error, openai.APITimeoutError | openai.APIConnectionError | openai.InternalServerError):
            return True
        if isinstance(error, openai.APIStatusError):
            return error.status_code >= 500
    return False
