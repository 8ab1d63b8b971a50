"""Plugin registry: manifest validation, review states, immutable versions, installs, secrets,
ratings, marketplace.json and its schema, KPIs."""

from __future__ import annotations

import json
from typing import Any

from tests.factories.partners import install, make_world, manifest, publish, secrets_for
from tests.support import ROOT

HOOK = "http://127.0.0.1:9/hook"  # validated only (loopback allowed in these tests), never called


def _create(client: Any, w: Any, m: dict[str, Any]) -> Any:
    return client.post("/v1/plugins", json={"manifest": m}, headers=w.partner.headers("partner"))


def test_manifest_errors_are_clear_and_name_the_field(client, set_settings) -> None:
    w = make_world(client, set_settings)
    cases = [
        ({"version": "1.0"}, "manifest.version", "semver"),
        ({"revenue_share": 0.95}, "manifest.revenue_share", "policy bounds"),
        ({"revenue_share": 0.2}, "manifest.revenue_share", "policy bounds"),
        ({"categories": ["gambling"]}, "manifest.categories", "unknown categories"),
        ({"scopes": ["root"]}, "manifest.scopes", "unknown scopes"),
        ({"events": ["nope"]}, "manifest.events", "unknown events"),
        ({"pricing": {"model": "monthly"}}, "manifest.pricing", "monthly_minor"),
        ({"support_url": "http://acme-partner.example/s"}, "manifest.support_url", "https"),
        ({"endpoints": {"webhook_url": "ftp://x.example/h"}}, "manifest.endpoints.webhook_url", "https"),
        ({"endpoints": {}}, "manifest", "webhook_url is required"),
        ({"surprise": 1}, "manifest.surprise", "Extra inputs"),
    ]
    for i, (over, field, words) in enumerate(cases):
        m = manifest(f"bad-{w.partner.slug}-{i}", HOOK, **over)
        r = _create(client, w, m)
        assert r.status_code == 422, (over, r.text)
        body = r.json()
        assert body["field"] == field, (over, body)
        assert words in body["detail"], (over, body["detail"])


def test_lifecycle_review_immutability_and_visibility(client, set_settings) -> None:
    w = make_world(client, set_settings)
    slug = f"{w.partner.slug}.chat"
    m = manifest(slug, HOOK)
    assert _create(client, w, m).status_code == 201
    assert _create(client, w, m).json()["field"] == "manifest.id"  # unique ids
    # A draft is invisible to others and cannot be installed.
    assert client.get(f"/v1/plugins/{slug}", headers=w.customer.headers()).status_code == 404
    assert client.post("/v1/installs", json={"plugin": slug}, headers=w.customer.headers()).status_code == 404
    # Only Levqor staff approve, and only what is in review.
    ph = w.partner.headers("partner")
    assert client.post(f"/v1/plugins/{slug}/versions/1.0.0/review", json={"decision": "approve"},
                       headers=w.staff.headers()).status_code == 409
    assert client.post(f"/v1/plugins/{slug}/versions/1.0.0/submit", headers=ph).json()["state"] == "in_review"
    denied = client.post(f"/v1/plugins/{slug}/versions/1.0.0/review", json={"decision": "approve"},
                         headers=w.partner.headers())
    assert denied.status_code == 403 and "staff" in denied.json()["detail"]
    listed = client.post(f"/v1/plugins/{slug}/versions/1.0.0/review", json={"decision": "approve", "note": "ok"},
                         headers=w.staff.headers()).json()
    assert listed["state"] == "listed" and listed["listed_version"] == "1.0.0"
    # Listed versions are immutable; a new version must be higher and goes through review.
    changed = {**m, "description": "changed"}
    r = client.put(f"/v1/plugins/{slug}/versions", json={"manifest": changed}, headers=ph)
    assert r.status_code == 409 and "immutable" in r.json()["detail"]
    r = client.put(f"/v1/plugins/{slug}/versions", json={"manifest": {**changed, "version": "0.9.0"}}, headers=ph)
    assert r.status_code == 409 and "higher" in r.json()["detail"]
    r = client.put(f"/v1/plugins/{slug}/versions", json={"manifest": {**changed, "version": "1.1.0-beta.1"}},
                   headers=ph)
    assert r.status_code == 200, r.text
    seen = client.get(f"/v1/plugins/{slug}", headers=w.customer.headers()).json()
    assert seen["listed_version"] == "1.0.0" and seen["manifest"]["description"] != "changed"
    assert seen["versions"] is None  # versions are for the owner and staff
    client.post(f"/v1/plugins/{slug}/versions/1.1.0-beta.1/submit", headers=ph)
    client.post(f"/v1/plugins/{slug}/versions/1.1.0-beta.1/review", json={"decision": "reject", "note": "no"},
                headers=w.staff.headers())
    mine = client.get(f"/v1/plugins/{slug}", headers=ph).json()
    assert [(v["version"], v["state"]) for v in mine["versions"]] == [("1.0.0", "listed"), ("1.1.0-beta.1", "rejected")]
    # Suspension (staff) hides it from the marketplace; the partner cannot suspend, only retire.
    assert client.post(f"/v1/plugins/{slug}/state", json={"state": "suspended"}, headers=ph).status_code == 403
    assert client.post(f"/v1/plugins/{slug}/state", json={"state": "suspended"},
                       headers=w.staff.headers()).json()["state"] == "suspended"
    ids = [p["id"] for p in client.get("/marketplace.json").json()["plugins"]]
    assert slug not in ids
    assert client.post(f"/v1/plugins/{slug}/state", json={"state": "listed"},
                       headers=w.staff.headers()).json()["state"] == "listed"
    assert slug in [p["id"] for p in client.get("/marketplace.json").json()["plugins"]]


def test_marketplace_json_matches_documented_schema(client, set_settings) -> None:
    import jsonschema

    w = make_world(client, set_settings)
    slug = f"{w.partner.slug}.mkt"
    publish(client, w, manifest(slug, HOOK, pricing={"model": "monthly", "monthly_minor": 900},
                                categories=["analytics"]))
    doc = client.get("/marketplace.json").json()
    item = next(p for p in doc["plugins"] if p["id"] == slug)
    assert item["pricing"] == {"model": "monthly", "monthly_minor": 900, "credits_per_run": None, "currency": "usd"}
    assert "endpoints" not in item and "webhook_url" not in json.dumps(item)  # never the endpoints
    text = (ROOT / "docs" / "dev_portal" / "marketplace_schema.md").read_text()
    schema = json.loads(text.split("```json", 1)[1].split("```", 1)[0])
    jsonschema.validate(doc, schema)
    from tools.partner_api.marketplace import MarketplaceDocument

    assert schema == MarketplaceDocument.model_json_schema(), "regenerate docs/dev_portal/marketplace_schema.md"
    generated = json.loads((ROOT / "tools" / "partner_api" / "marketplace.json").read_text())
    jsonschema.validate(generated, schema)


def test_install_scopes_secrets_rotation_and_ratings(client, set_settings) -> None:
    w = make_world(client, set_settings)
    slug = f"{w.partner.slug}.inst"
    publish(client, w, manifest(slug, HOOK, scopes=["jobs:read", "users:read"]))
    r = client.post("/v1/installs", json={"plugin": slug, "scopes": ["credits:read"]}, headers=w.customer.headers())
    assert r.status_code == 422 and r.json()["field"] == "scopes"
    # Only an admin installs.
    assert client.post("/v1/installs", json={"plugin": slug}, headers=w.customer.headers("viewer")).status_code == 403
    inst = install(client, w.customer, slug, scopes=["jobs:read"])
    assert inst["scopes"] == ["jobs:read"]
    assert client.post("/v1/installs", json={"plugin": slug}, headers=w.customer.headers()).status_code == 409
    s1 = secrets_for(client, w, inst["id"])
    assert s1["secret"].startswith("whsec_") and s1["previous_secret"] is None
    rotated = client.post(f"/v1/installs/{inst['id']}/rotate-secret", headers=w.customer.headers()).json()
    assert rotated["previous_secret"] == s1["secret"] and rotated["secret"] != s1["secret"]
    # Another org sees neither the install nor its secrets (this makes other.staff the staff org).
    other = make_world(client, set_settings)
    assert client.post(f"/v1/installs/{inst['id']}/rotate-secret", headers=other.customer.headers()).status_code == 404
    def rate(org: Any, stars: int) -> Any:
        return client.post(f"/v1/plugins/{slug}/rating", json={"stars": stars}, headers=org.headers())

    assert rate(other.customer, 4).status_code == 400
    assert rate(w.customer, 4).json()["rating"] == 4
    assert rate(w.customer, 2).json()["rating"] == 2
    item = next(p for p in client.get("/marketplace.json").json()["plugins"] if p["id"] == slug)
    assert item["installs"] == 1 and item["rating"] == 2 and item["rating_count"] == 1
    kpis = client.get("/v1/partners/kpis", headers=w.partner.headers("partner")).json()
    assert kpis["scope"] == "partner" and kpis["installs_by_plugin"][slug] == 1
    staff = client.get("/v1/partners/kpis", headers=other.staff.headers()).json()  # the staff org now
    assert staff["scope"] == "platform" and staff["plugin_installs"] >= 1
    assert client.delete(f"/v1/installs/{inst['id']}", headers=w.customer.headers()).json()["status"] == "uninstalled"
    assert client.get("/v1/installs", headers=w.customer.headers()).json()["items"] == []
