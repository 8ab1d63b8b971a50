"""Guardrails: ``policy.json`` and the engine that decides allow / deny / needs_approval."""
