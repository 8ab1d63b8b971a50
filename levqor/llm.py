"""The LLM backend's configuration. No ``OPENAI_API_KEY`` (and no ``OPENAI_BASE_URL``) means offline mode:
deterministic graph nodes and templates, never a scripted imitation of a model. The client itself is
built by ``agents.llm``; what the mode is, which model, and what a call costs are settings every layer reads.
"""

from __future__ import annotations

import os
from typing import Any

from levqor.settings import get_settings

DEFAULT_MODEL = "gpt-4o-mini"


def model_name() -> str:
    return os.environ.get("LEVQOR_LLM_MODEL") or DEFAULT_MODEL


def request_limits() -> tuple[float, int]:
    """(timeout in seconds, retries) of one model request: ``LEVQOR_LLM_TIMEOUT_S`` and
    ``LEVQOR_LLM_MAX_RETRIES`` as the environment has them now, else the settings."""
    s = get_settings()
    return (float(os.environ.get("LEVQOR_LLM_TIMEOUT_S") or s.llm_timeout_s),
            int(os.environ.get("LEVQOR_LLM_MAX_RETRIES") or s.llm_max_retries))


def is_online() -> bool:
    """Whether an OpenAI-compatible backend is configured."""
    return bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))


def mode() -> str:
    return "llm" if is_online() else "offline"


def mode_info() -> dict[str, Any]:
    """What the UI, API and CLI show about the active mode."""
    if is_online():
        return {"mode": "llm", "model": model_name(),
                "base_url": os.environ.get("OPENAI_BASE_URL") or "api.openai.com",
                "label": f"LLM mode ({model_name()})"}
    return {"mode": "offline", "model": None, "base_url": None,
            "label": "Offline mode: agents decide with deterministic rules and write from templates"}


def cost_micro_usd(model: str, tokens_in: int, tokens_out: int) -> int:
    """Cost of one call in millionths of a dollar from the price table (USD per million tokens)."""
    prices = get_settings().llm_prices
    price = prices.get(model)
    if price is None:
        # Dated snapshots (gpt-4o-mini-2024-07-18) cost what their family costs.
        family = [k for k in prices if model.startswith(k)]
        price = prices[max(family, key=len)] if family else {}
    # USD per million tokens == micro-USD per token.
    return round(tokens_in * float(price.get("in", 0)) + tokens_out * float(price.get("out", 0)))
