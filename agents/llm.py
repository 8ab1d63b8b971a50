"""LLM backend choice. No ``OPENAI_API_KEY`` (and no ``OPENAI_BASE_URL``) means offline mode:
deterministic graph nodes and templates, never a scripted imitation of a model."""

from __future__ import annotations

import os
from typing import Any

DEFAULT_MODEL = "gpt-4o-mini"


def model_name() -> str:
    return os.environ.get("LEVQOR_LLM_MODEL") or DEFAULT_MODEL


def is_online() -> bool:
    """Whether an OpenAI-compatible backend is configured."""
    return bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))


def mode_info() -> dict[str, Any]:
    """What the UI, API and CLI show about the active mode."""
    if is_online():
        return {"mode": "llm", "model": model_name(), "base_url": os.environ.get("OPENAI_BASE_URL") or "api.openai.com",
                "label": f"LLM mode ({model_name()})"}
    return {"mode": "offline", "model": None, "base_url": None,
            "label": "Offline mode: agents decide with deterministic rules and write from templates"}


def chat_model(**overrides: Any) -> Any:
    """Build the ``ChatOpenAI`` client (imported here so the CLI starts fast)."""
    from langchain_openai import ChatOpenAI

    kwargs: dict[str, Any] = {
        "model": model_name(),
        "api_key": os.environ.get("OPENAI_API_KEY") or "not-needed",
        "base_url": os.environ.get("OPENAI_BASE_URL") or None,
        "timeout": float(os.environ.get("LEVQOR_LLM_TIMEOUT_S", "30")),
        "max_retries": int(os.environ.get("LEVQOR_LLM_MAX_RETRIES", "2")),
        "use_responses_api": False,
    }
    kwargs.update(overrides)
    return ChatOpenAI(**kwargs)
