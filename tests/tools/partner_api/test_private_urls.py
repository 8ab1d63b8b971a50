"""Partner URLs pointing at private addresses are refused with clear errors (loopback setting
off), whatever the notation, through DNS, or through a redirect at delivery time."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tests.factories.partners import emit_event, install, make_world, manifest, publish
from tests.fakes.partner_endpoint import Behaviour, Receiver


@pytest.mark.parametrize("url, words", [
    ("https://127.1/hook", "loopback address 127.0.0.1"),
    ("https://2130706433/hook", "loopback address 127.0.0.1"),
    ("https://0x7f.1/hook", "loopback address 127.0.0.1"),
    ("https://[::ffff:127.0.0.1]/hook", "IPv4-mapped address"),
    ("https://localhost/hook", "'localhost' is loopback"),
    ("https://10.1.2.3/hook", "private address 10.1.2.3"),
    ("https://169.254.169.254/latest/meta-data", "link-local address 169.254.169.254"),
    ("http://hooks.acme-partner.example/hook", "must use https"),
    ("https://user:pw@hooks.acme-partner.example/hook", "credentials in the URL"),
])
def test_private_partner_urls_are_refused(client, set_settings, url: str, words: str) -> None:
    w = make_world(client, set_settings)
    set_settings(allow_loopback_urls="false")
    r = client.post("/v1/plugins", json={"manifest": manifest(f"{w.partner.slug}.bad", url)},
                    headers=w.partner.headers("partner"))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["field"] == "manifest.endpoints.webhook_url"
    assert words in body["detail"], body["detail"]
    # The same guard covers action endpoints.
    m = manifest(f"{w.partner.slug}.bad2", None, endpoints={"actions": [{"name": "post", "url": url}]})
    r = client.post("/v1/plugins", json={"manifest": m}, headers=w.partner.headers("partner"))
    assert r.status_code == 422 and r.json()["field"] == "manifest.endpoints.actions.0.url"


def test_dns_name_resolving_to_a_private_address_is_refused(client, set_settings, monkeypatch) -> None:
    w = make_world(client, set_settings)
    set_settings(allow_loopback_urls="false")
    real = socket.getaddrinfo

    def fake(host: str, *a: Any, **kw: Any) -> Any:
        if host == "hooks.evil-partner.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 443)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))]
        return real(host, *a, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    r = client.post("/v1/plugins", json={"manifest": manifest(f"{w.partner.slug}.dns",
                                                              "https://hooks.evil-partner.example/h")},
                    headers=w.partner.headers("partner"))
    assert r.status_code == 422
    assert "'hooks.evil-partner.example' resolves to a loopback address 127.0.0.1" in r.json()["detail"]


def test_redirect_to_private_address_is_refused_at_delivery(client, set_settings) -> None:
    from workers.hooks import deliver_due

    with Receiver() as rx:
        rx.behaviour["/moved"] = Behaviour(307, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        w = make_world(client, set_settings)  # loopback allowed: only the receiver itself is reachable
        slug = f"{w.partner.slug}.redir"
        publish(client, w, manifest(slug, rx.url("/moved")))
        inst = install(client, w.customer, slug)
        emit_event("job_complete", {"job_id": 1}, w.customer.org_id)
        deliver_due()
        (d,) = client.get("/v1/webhook-deliveries", params={"install_id": inst["id"]},
                          headers=w.customer.headers()).json()["items"]
        assert d["status"] == "failing" and d["last_status_code"] is None
        assert d["last_error"].startswith("refused:") and "link-local address 169.254.169.254" in d["last_error"]
        assert len(rx.at("/moved")) == 1


def test_loopback_receiver_needs_the_test_setting(client, set_settings) -> None:
    w = make_world(client, set_settings)
    set_settings(allow_loopback_urls="false")
    r = client.post("/v1/plugins", json={"manifest": manifest(f"{w.partner.slug}.lo", "http://127.0.0.1:8080/h")},
                    headers=w.partner.headers("partner"))
    assert r.status_code == 422 and "https" in r.json()["detail"]
    r = client.post("/v1/plugins", json={"manifest": manifest(f"{w.partner.slug}.lo", "https://127.0.0.1:8080/h")},
                    headers=w.partner.headers("partner"))
    assert r.status_code == 422 and "loopback address 127.0.0.1" in r.json()["detail"]
