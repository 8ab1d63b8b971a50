"""One row read by its key in its own session and detached, so a test can look at it afterwards."""

from __future__ import annotations

from typing import Any, TypeVar

from memory.db import session_scope

T = TypeVar("T")


def detached(model: type[T], key: Any) -> T:
    """Row ``key`` of ``model`` (fails naming both when there is none)."""
    with session_scope() as s:
        row = s.get(model, key)
        assert row is not None, f"{model.__name__} {key} not found"
        s.expunge(row)
        return row
