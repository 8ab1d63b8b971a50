"""Shared pieces for the partner tests: settings overrides, manifests, a real webhook receiver,
and a partner / staff / customer setup through the API."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import OrgFixture, make_org


@pytest.fixture()
def psettings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Set LEVQOR_* settings for one test (values JSON-encoded unless str)."""
    from levqor.settings import get_settings

    def set_(**kv: Any) -> None:
        for k, v in kv.items():
            monkeypatch.setenv(f"LEVQOR_{k.upper()}", v if isinstance(v, str) else json.dumps(v))
        get_settings.cache_clear()

    yield set_
    monkeypatch.undo()
    get_settings.cache_clear()


def manifest(slug: str, url: str | None, **over: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "id": slug, "name": f"Plugin {slug}", "author": "Acme Partners", "version": "1.0.0",
        "description": "Posts job results to a chat channel.", "categories": ["communication"],
        "icon": "https://cdn.acme-partner.example/icon.png",
        "pricing": {"model": "free"}, "scopes": ["jobs:read"], "events": ["job_complete"],
        "endpoints": {"webhook_url": url} if url else {},
        "revenue_share": 0.7, "support_url": "https://acme-partner.example/support",
        "privacy_url": "https://acme-partner.example/privacy",
    }
    if url is None:
        m["events"] = []
    m.update(over)
    return m


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    raw_headers: list[tuple[str, str]] = field(default_factory=list)  # as sent, repeats included


@dataclass
class Behaviour:
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """A real HTTP server on 127.0.0.1 recording every request; behaviour per path."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.behaviour: dict[str, Behaviour] = {}
        self.lock = threading.Lock()
        self.release = threading.Event()  # set to let hanging requests finish
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with rec.lock:
                    rec.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                                 time.time(), list(self.headers.items())))
                    b = rec.behaviour.get(self.path, Behaviour())
                if b.delay:
                    rec.release.wait(b.delay)
                self.send_response(b.status)
                for k, v in b.headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", "2")
                self.end_headers()
                try:
                    self.wfile.write(b"ok")
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.base + path

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_a: Any) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@dataclass
class World:
    partner: OrgFixture
    staff: OrgFixture
    customer: OrgFixture


def make_world(client: Any, set_settings: Callable[..., None], **settings: Any) -> World:
    """A partner org (registered), a Levqor staff org and a customer org; loopback URLs allowed."""
    partner, staff, customer = make_org(), make_org(), make_org()
    set_settings(staff_orgs=[staff.slug], allow_loopback_urls="true", **settings)
    r = client.post("/v1/partners", json={"display_name": f"Acme {partner.slug}", "contact_email":
                                          f"dev@{partner.slug}.example", "bio": "We build chat plugins."},
                    headers=partner.headers("partner"))
    assert r.status_code == 201, r.text
    return World(partner, staff, customer)


def publish(client: Any, w: World, m: dict[str, Any]) -> dict[str, Any]:
    """Create, submit and approve a plugin; return the listed plugin."""
    r = client.post("/v1/plugins", json={"manifest": m}, headers=w.partner.headers("partner"))
    assert r.status_code == 201, r.text
    r = client.post(f"/v1/plugins/{m['id']}/versions/{m['version']}/submit", headers=w.partner.headers("partner"))
    assert r.status_code == 200, r.text
    r = client.post(f"/v1/plugins/{m['id']}/versions/{m['version']}/review", json={"decision": "approve"},
                    headers=w.staff.headers())
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "listed"
    return dict(r.json())


def install(client: Any, org: OrgFixture, slug: str, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/installs", json={"plugin": slug, **body}, headers=org.headers())
    assert r.status_code == 201, r.text
    return dict(r.json())


def secrets_for(client: Any, w: World, install_id: int) -> dict[str, Any]:
    r = client.get("/v1/partner/installs", headers=w.partner.headers("partner"))
    assert r.status_code == 200, r.text
    return next(i for i in r.json()["items"] if i["id"] == install_id)


def emit_event(name: str, payload: dict[str, Any], org_id: int) -> None:
    """Emit a platform event (committed) and run the outbox dispatcher so hooks fan out."""
    from memory.db import session_scope
    from tools.events.service import emit
    from workers.dispatcher import dispatch_pending

    with session_scope() as s:
        emit(s, name, payload, org_id=org_id)
    for _ in range(5):
        if dispatch_pending() == 0:
            break


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = check()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
