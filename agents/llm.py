"""The LLM client of the agents: ``ChatOpenAI`` against the configured OpenAI-compatible backend.

Whether there is one (offline mode otherwise), which model and what a call costs are in ``levqor.llm``.
A run's client carries the LLM guard (:class:`LlmGuard`, ``tools.agents.llm_guard``): each call asks
the endpoint's circuit breaker and the agent's daily cost cap first, and reports how it went.
"""

from __future__ import annotations

import os
from typing import Any

from levqor.llm import model_name, request_limits
from tools.agents import llm_guard


def _guard_class() -> Any:
    from langchain_core.callbacks import BaseCallbackHandler  # kept lazy: start-up time

    class LlmGuard(BaseCallbackHandler):
        """Refuse a model call the breaker or the cost cap forbids (``LlmUnavailable``, which the agents'
        nodes treat as a failed call: offline fallback); count timeouts and 5xx answers, and answers."""

        raise_error = True  # a refusal must stop the call, not be logged and ignored

        def __init__(self, agent: str, org_id: int):
            self.agent, self.org_id = agent, org_id

        def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
            verdict = llm_guard.check(self.org_id, self.agent)
            if not verdict.allowed:
                raise llm_guard.LlmUnavailable(verdict.reason)

        def on_llm_end(self, response: Any, **kwargs: Any) -> None:
            llm_guard.succeeded()

        def on_llm_error(self, error: BaseException, **kwargs: Any) -> None:
            if llm_guard.is_outage(error):
                llm_guard.failed(error)

    return LlmGuard


def guard(agent: str, org_id: int) -> Any:
    """The LLM guard callback for ``agent``'s calls in ``org_id``."""
    return _guard_class()(agent, org_id)


def chat_model(*, agent: str | None = None, org_id: int | None = None, **overrides: Any) -> Any:
    """Build the ``ChatOpenAI`` client for the configured backend (``levqor.llm``), guarded for ``agent``
    in ``org_id`` when given."""
    from langchain_openai import ChatOpenAI  # kept lazy: start-up time (offline mode never loads it)

    timeout, retries = request_limits()
    kwargs: dict[str, Any] = {
        "model": model_name(),
        "api_key": os.environ.get("OPENAI_API_KEY") or "not-needed",
        "base_url": os.environ.get("OPENAI_BASE_URL") or None,
        "timeout": timeout,
        "max_retries": retries,
        # Compatible servers (vLLM, Ollama, llama.cpp) serve chat completions, not /v1/responses.
        "use_responses_api": False,
        # Token usage while streaming (the chat endpoint streams); costs need it.
        "stream_usage": True,
    }
    if agent is not None and org_id is not None:
        kwargs["callbacks"] = [guard(agent, org_id)]
    kwargs.update(overrides)
    return ChatOpenAI(**kwargs)
