"""Verified API keys, kept by each process for at most ``LEVQOR_API_KEY_CACHE_S`` (1 s) each.

A request whose key this process verified less than that long ago is authenticated without reading
the database. An entry is stamped *before* the read that verified it, so whatever the read saw, a key
revoked (or changed, or deleted) by another process is refused at most ``LEVQOR_API_KEY_CACHE_S`` after
that change committed. Changes made through this process's ORM (``keys.revoke``, ``levqor keys revoke``,
an ORM update or delete of ``api_keys``) drop the entries at once, and again once their session closes.
Expiry needs no database: each entry carries the key's ``expires_at`` and is checked on every use.
Only keys that verified are kept, so an unknown key costs one indexed read every time, as before.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from memory.db import after_close
from memory.identity.models import ApiKey
from tools.context import Principal

MAX_ENTRIES = 10_000  # keys verified within one TTL; beyond this the oldest entries go first


@dataclass(frozen=True, slots=True)
class CachedKey:
    """A key as verified: who it authenticates, when it expires, when it was last recorded as used."""

    principal: Principal
    key_id: int
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    stamped: float  # the cache's clock, read before the verifying read


class KeyCache:
    """Verified keys by key hash (never the key itself); thread-safe; time from ``clock`` (monotonic)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = MAX_ENTRIES) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict[str, CachedKey] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str, ttl: float, now: dt.datetime) -> CachedKey | None:
        """The entry for ``key_hash`` if it was stamped less than ``ttl`` ago and the key has not expired."""
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if self.clock() - entry.stamped >= ttl or (entry.expires_at is not None and entry.expires_at <= now):
            with self._lock:
                if self._entries.get(key_hash) is entry:
                    del self._entries[key_hash]
            return None
        return entry

    def put(self, key_hash: str, entry: CachedKey) -> None:
        with self._lock:
            if key_hash not in self._entries and len(self._entries) >= self.max_entries:
                for old in list(self._entries)[: max(1, self.max_entries // 10)]:  # dicts keep insertion order
                    del self._entries[old]
            self._entries[key_hash] = entry

    def forget(self, key_hash: str | None = None) -> None:
        """Drop one key's entry, or every entry."""
        with self._lock:
            if key_hash is None:
                self._entries.clear()
            else:
                self._entries.pop(key_hash, None)

    def __len__(self) -> int:
        return len(self._entries)


cache = KeyCache()


def _forget_row(_mapper: Any, _conn: Any, key: ApiKey) -> None:
    """An ``api_keys`` row changed or went in this process: drop it now and when its session closes."""
    key_hash = key.key_hash
    cache.forget(key_hash)
    session = Session.object_session(key)
    if session is not None:
        after_close(session, lambda: cache.forget(key_hash))


TOUCH_ONLY = "levqor_key_touch_only"  # session info: its api_keys updates only record last use


def _forget_bulk(state: ORMExecuteState) -> None:
    """An ORM ``update(ApiKey)``/``delete(ApiKey)`` statement: drop every entry, now and at close."""
    if (state.is_update or state.is_delete) and state.bind_mapper is not None \
            and state.bind_mapper.class_ is ApiKey and not state.session.info.get(TOUCH_ONLY):
        cache.forget()
        after_close(state.session, cache.forget)


event.listen(ApiKey, "after_update", _forget_row)
event.listen(ApiKey, "after_delete", _forget_row)
event.listen(Session, "do_orm_execute", _forget_bulk)
