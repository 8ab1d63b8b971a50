"""The LLM client of the agents: ``ChatOpenAI`` against the configured OpenAI-compatible backend.

Whether there is one (offline mode otherwise), which model and what a call costs are in ``levqor.llm``.
"""

from __future__ import annotations

import os
from typing import Any

from levqor.llm import model_name
from levqor.settings import get_settings


def chat_model(**overrides: Any) -> Any:
    """Build the ``ChatOpenAI`` client for the configured backend (``levqor.llm``)."""
    from langchain_openai import ChatOpenAI  # kept lazy: start-up time (offline mode never loads it)

    s = get_settings()
    kwargs: dict[str, Any] = {
        "model": model_name(),
        "api_key": os.environ.get("OPENAI_API_KEY") or "not-needed",
        "base_url": os.environ.get("OPENAI_BASE_URL") or None,
        "timeout": float(os.environ.get("LEVQOR_LLM_TIMEOUT_S") or s.llm_timeout_s),
        "max_retries": int(os.environ.get("LEVQOR_LLM_MAX_RETRIES") or s.llm_max_retries),
        # Compatible servers (vLLM, Ollama, llama.cpp) serve chat completions, not /v1/responses.
        "use_responses_api": False,
        # Token usage while streaming (the chat endpoint streams); costs need it.
        "stream_usage": True,
    }
    kwargs.update(overrides)
    return ChatOpenAI(**kwargs)
