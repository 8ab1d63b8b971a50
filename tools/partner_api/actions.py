"""Plugin actions as pipeline steps: which install a call belongs to, and how it is signed.

A pipeline's ``http`` step reaches a plugin's action either by name (``"plugin": "acme.chat",
"action": "post"``: the URL is the action's URL in the version the organisation installed) or by
URL (an action URL, or a path under it, same scheme, host and port). Either way the organisation
must have an active install of that plugin, else the call is refused (when the pipeline is saved
and again when it runs). The request is signed with the install's secrets following Standard
Webhooks (:func:`tools.partner_api.signing.webhook_headers`, both secrets during a rotation) and
names the caller in ``levqor-install-id``, ``levqor-org-id``, ``levqor-plugin`` and
``levqor-action``. Those headers, and every ``webhook-*`` header, are Levqor's alone: a pipeline
may not set them, and any that slip through are replaced. A signed call never follows redirects,
so the signature never reaches another host.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from memory.db import session_scope, utcnow
from memory.partner.repository import PartnerRepository
from tools.errors import Unprocessable
from tools.partner_api.signing import valid_secrets, webhook_headers
from tools.shared.urls import origin_path

RESERVED_HEADER_PREFIXES: tuple[str, ...] = ("webhook-", "levqor-")


def reserved_header(name: str) -> bool:
    """Whether Levqor alone sets header ``name`` (signature and caller identity)."""
    return name.lower().startswith(RESERVED_HEADER_PREFIXES)


def without_reserved(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` minus every reserved one, whatever its case."""
    return {k: v for k, v in headers.items() if not reserved_header(k)}


def endpoint_matches(url: str, action_url: str) -> bool:
    """Whether ``url`` addresses the action at ``action_url``: same origin, and its path or one under it."""
    a, b = origin_path(url), origin_path(action_url)
    if a is None or b is None or a[:3] != b[:3]:
        return False
    base = b[3].rstrip("/")
    return a[3] == b[3] or a[3].startswith(base + "/")


@dataclass(frozen=True)
class PluginCall:
    """A step's call to a plugin action of an active install, and the secrets that sign it."""

    plugin: str
    action: str
    url: str
    install_id: int
    org_id: int
    secrets: tuple[str, ...]

    def headers(self, msg_id: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        """The signature (Standard Webhooks) and caller headers for one request with ``body``."""
        return {**webhook_headers(list(self.secrets), msg_id, body, timestamp=timestamp),
                "levqor-install-id": str(self.install_id), "levqor-org-id": str(self.org_id),
                "levqor-plugin": self.plugin, "levqor-action": self.action}


@dataclass(frozen=True)
class _Action:
    plugin: str
    name: str
    url: str


@dataclass(frozen=True)
class _Install:
    id: int
    plugin: str
    state: str
    actions: tuple[_Action, ...]
    secrets: tuple[str, ...]


def _actions(slug: str, manifest: Mapping[str, Any]) -> tuple[_Action, ...]:
    return tuple(_Action(slug, str(a["name"]), str(a["url"]))
                 for a in (manifest.get("endpoints") or {}).get("actions", []) if a.get("url"))


class PluginDirectory:
    """The plugin actions one organisation's pipelines may call (its active installs) and those it may not."""

    def __init__(self, org_id: int, installs: dict[str, _Install], catalogue: list[_Action]):
        self.org_id = org_id
        self.installs = installs
        self.catalogue = catalogue

    @classmethod
    def load(cls, session: Session, org_id: int, now: dt.datetime | None = None, *,
             mode: str = "live") -> PluginDirectory:
        """Read the organisation's active installs of ``mode`` and every listed or suspended plugin's actions."""
        repo = PartnerRepository(session)
        now = now or utcnow()
        installs: dict[str, _Install] = {}
        for inst in repo.installs_for_org(org_id, mode=mode):
            plugin, version = repo.plugin(inst.plugin_id), repo.version(inst.version_id)
            if plugin is None or version is None:
                continue
            installs[plugin.slug] = _Install(inst.id, plugin.slug, plugin.state,
                                             _actions(plugin.slug, version.manifest), tuple(valid_secrets(inst, now)))
        plugins = repo.plugins(states=["listed", "suspended"])
        listed = repo.listed_versions([p.id for p in plugins])
        catalogue = [a for p in plugins if p.id in listed for a in _actions(p.slug, listed[p.id].manifest)]
        for i in installs.values():
            catalogue += i.actions
        return cls(org_id, installs, catalogue)

    def _usable(self, slug: str, field: str) -> _Install:
        inst = self.installs.get(slug)
        if inst is None:
            raise Unprocessable(f"plugin {slug!r} is not installed in this organisation: install it from the "
                                "marketplace before a pipeline calls its actions", field=field)
        if inst.state != "listed":
            raise Unprocessable(f"plugin {slug!r} is {inst.state}: its actions cannot be called", field=field)
        return inst

    def _call(self, inst: _Install, action: _Action, url: str) -> PluginCall:
        return PluginCall(inst.plugin, action.name, url, inst.id, self.org_id, inst.secrets)

    def by_name(self, slug: str, action: str | None, *, field: str = "plugin") -> PluginCall:
        """The call to action ``action`` of installed plugin ``slug``; Unprocessable if not callable."""
        inst = self._usable(slug, field)
        names = [a.name for a in inst.actions]
        found = next((a for a in inst.actions if a.name == action), None)
        if found is None:
            raise Unprocessable(f"plugin {slug!r} has no action {action!r}; its actions: {', '.join(names) or 'none'}",
                                field=field)
        return self._call(inst, found, found.url)

    def by_url(self, url: str, *, field: str = "url") -> PluginCall | None:
        """The plugin call ``url`` makes (None if it is no plugin's action); Unprocessable if not installed."""
        hits = [a for a in self.catalogue if endpoint_matches(url, a.url)]
        if not hits:
            return None
        # The most specific action wins; an installed plugin before one that is not.
        hits.sort(key=lambda a: (a.plugin not in self.installs, -len(a.url)))
        best = hits[0]
        inst = self._usable(best.plugin, field)
        action = next((a for a in inst.actions if endpoint_matches(url, a.url)), best)
        return self._call(inst, action, url)


class LazyDirectory:
    """A :class:`PluginDirectory` read on first use, in its own short transaction (one per job run)."""

    def __init__(self, org_id: int | None, mode: str = "live"):
        self.org_id = org_id
        self.mode = mode
        self._dir: PluginDirectory | None = None

    def get(self) -> PluginDirectory:
        if self.org_id is None:
            raise Unprocessable("plugin actions need an organisation", field="plugin")
        if self._dir is None:
            with session_scope() as s:
                self._dir = PluginDirectory.load(s, self.org_id, mode=self.mode)
        return self._dir
