"""The partner world: a registered partner, a Levqor staff organisation and a customer; manifests;
plugins published, installed, and events fanned out to them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memory.db import session_scope
from tests.factories.orgs import OrgFixture, make_org
from tools.events.service import emit
from workers.dispatcher import dispatch_pending


def manifest(slug: str, url: str | None, **over: Any) -> dict[str, Any]:
    """A valid plugin manifest (``url=None``: no webhook endpoint, no events); ``over`` replaces keys."""
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
    """Install plugin ``slug`` for ``org`` through the API."""
    r = client.post("/v1/installs", json={"plugin": slug, **body}, headers=org.headers())
    assert r.status_code == 201, r.text
    return dict(r.json())


def secrets_for(client: Any, w: World, install_id: int) -> dict[str, Any]:
    """The partner's view of an install (with its signing secret)."""
    r = client.get("/v1/partner/installs", headers=w.partner.headers("partner"))
    assert r.status_code == 200, r.text
    return next(i for i in r.json()["items"] if i["id"] == install_id)


def emit_event(name: str, payload: dict[str, Any], org_id: int) -> None:
    """Emit a platform event (committed) and run the outbox dispatcher until the event is dispatched, so hooks
    have fanned out (a dispatcher thread another test left running may have claimed it first)."""
    from memory.events.models import Event
    from tests.support import wait_for

    with session_scope() as s:
        ev = emit(s, name, payload, org_id=org_id)
        s.flush()
        event_id = ev.id

    def dispatched() -> bool:
        dispatch_pending()
        with session_scope() as s:
            ev = s.get(Event, event_id)
            return ev is not None and ev.dispatched_at is not None

    wait_for(dispatched, timeout=20, what=f"event {name} dispatched")
