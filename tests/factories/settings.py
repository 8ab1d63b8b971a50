"""``LEVQOR_*`` settings for one block or one test (values JSON-encoded unless they are strings), and a
scratch SQLite database for one block."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from levqor.settings import get_settings
from memory.db import get_engine
from memory.migrate import upgrade

# Usage tiers of the test processes (tests/conftest.py) and of the API processes that tests start: so
# high that no test hammering the API (concurrency, fuzzing, tenancy, roles) meets a 429. The tier tests
# (tests/api/test_tiers*.py, tests/tools/dev_portal/test_tiers.py) set their own small limits, and one
# checks the real defaults.
HIGH_TIER = {"key_per_second": 100_000, "org_per_second": 100_000, "key_per_day": 10**9, "org_per_day": 10**9,
             "org_per_month": 10**9}
HIGH_TIERS_JSON = json.dumps({plan: HIGH_TIER for plan in ("free", "pro", "business", "enterprise")})


def _encode(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@contextmanager
def override_settings(**values: Any) -> Iterator[None]:
    """Override settings for the block: ``with override_settings(incident_cooldown_s=0): ...``."""
    old = {k: os.environ.get(f"LEVQOR_{k.upper()}") for k in values}
    for k, v in values.items():
        os.environ[f"LEVQOR_{k.upper()}"] = _encode(v)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(f"LEVQOR_{k.upper()}", None)
            else:
                os.environ[f"LEVQOR_{k.upper()}"] = v
        get_settings.cache_clear()
        if "policy_path" in values:
            _reset_policy_engine()


def _reset_policy_engine() -> None:
    from policies.engine import reset_engine

    reset_engine()


@pytest.fixture()
def set_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``set_settings(staff_orgs=[...], ...)``: settings for the rest of the test."""

    policy_changed = False

    def set_(**values: Any) -> None:
        nonlocal policy_changed
        for k, v in values.items():
            monkeypatch.setenv(f"LEVQOR_{k.upper()}", _encode(v))
        get_settings.cache_clear()
        policy_changed = policy_changed or "policy_path" in values

    yield set_
    monkeypatch.undo()
    get_settings.cache_clear()
    if policy_changed:  # the next test loads the shipped policy, not this test's
        _reset_policy_engine()


@contextmanager
def scratch_sqlite(directory: Path) -> Iterator[str]:
    """A fresh migrated SQLite database in ``directory`` that this process's sessions use for the block,
    whatever the test database is; yields its URL."""
    url = f"sqlite:///{directory / 'levqor.db'}"
    with override_settings(database_url=url):
        upgrade(url)
        try:
            yield url
        finally:
            get_engine(url).dispose()
