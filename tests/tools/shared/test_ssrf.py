"""The SSRF guard: address tricks refused, loopback only when the setting allows it, redirects re-checked."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tools.shared import ssrf

TRICKS = [
    "http://localhost/", "http://127.0.0.1/", "http://127.1/", "http://2130706433/", "http://0x7f.1/",
    "http://0x7f000001/", "http://0177.0.0.1/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/", "http://0.0.0.0/", "http://0/", "http://10.0.0.5/", "http://172.16.3.4/",
    "http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://100.64.0.1/",
    "http://224.0.0.1/", "http://240.0.0.1/", "http://[fc00::1]/", "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/", "http://[::]/", "http://127.0.0.1.nip.io.localhost/", "http://[::127.0.0.1]/",
]


@pytest.fixture()
def loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    from levqor.settings import get_settings

    monkeypatch.setattr(get_settings(), "allow_loopback_urls", True)


@pytest.mark.parametrize("url", TRICKS)
def test_non_public_addresses_are_refused(url: str) -> None:
    with pytest.raises(ssrf.SSRFBlocked):
        ssrf.check_url(url)


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "gopher://x/", "http://user:pw@8.8.8.8/",
                                 "http://", "http://[::1/"])
def test_bad_schemes_and_shapes_are_refused(url: str) -> None:
    with pytest.raises(ssrf.SSRFBlocked):
        ssrf.check_url(url)


def test_public_literal_is_allowed_and_pinned() -> None:
    t = ssrf.check_url("https://8.8.8.8:8443/x")
    assert str(t.ip) == "8.8.8.8" and t.port == 8443 and t.scheme == "https"


def test_hostname_resolving_to_private_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def fake(host: str, port: int, **kw: object) -> list[tuple[object, ...]]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    with pytest.raises(ssrf.SSRFBlocked, match="private"):
        ssrf.check_url("http://partner.example/")


def test_loopback_setting_allows_only_127_0_0_1(loopback: None) -> None:
    assert str(ssrf.check_url("http://127.0.0.1:9/").ip) == "127.0.0.1"
    for url in ("http://127.0.0.2/", "http://10.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://169.254.169.254/"):
        with pytest.raises(ssrf.SSRFBlocked):
            ssrf.check_url(url)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/redirect-private"):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        if self.path.startswith("/redirect-ok"):
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.end_headers()
            return
        body = b'{"ok": true, "host": "' + self.headers.get("Host", "").encode() + b'"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def local_server() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_requests_to_loopback_fail_without_the_setting(local_server: str) -> None:
    with pytest.raises(ssrf.SSRFBlocked):
        ssrf.request("GET", local_server + "/ok")


def test_redirects_are_followed_and_rechecked(loopback: None, local_server: str) -> None:
    r = ssrf.request("GET", local_server + "/redirect-ok")
    assert r.status_code == 200 and r.json()["ok"] is True and r.redirects == [local_server + "/redirect-ok"]
    with pytest.raises(ssrf.SSRFBlocked, match="link-local"):
        ssrf.request("GET", local_server + "/redirect-private")


class _KeepAlive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self) -> None:
        type(self).connections += 1
        super().setup()

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        out = b'{"host": "' + self.headers.get("Host", "").encode() + b'", "got": ' + str(len(body)).encode() + b"}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def keepalive_server() -> Iterator[int]:
    _KeepAlive.connections = 0
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield int(srv.server_address[1])
    srv.shutdown()
    srv.server_close()


def test_guarded_pool_reuses_a_connection_and_checks_every_new_one(
        keepalive_server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from levqor.settings import get_settings

    answer = {"ip": "127.0.0.1"}
    real = socket.getaddrinfo

    def fake(host: str, *a: object, **kw: object) -> object:
        if host == "hooks.partner.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer["ip"], keepalive_server))]
        return real(host, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    url = f"http://hooks.partner.example:{keepalive_server}/hook"
    pool = ssrf.GuardedPool()
    try:
        with pytest.raises(ssrf.SSRFBlocked, match="resolves to a loopback address 127.0.0.1"):
            pool.request("POST", url, content=b"{}")
        assert _KeepAlive.connections == 0
        monkeypatch.setattr(get_settings(), "allow_loopback_urls", True)
        for _ in range(3):
            r = pool.request("POST", url, content=b"{}")
            assert r.status_code == 200 and r.json() == {"host": f"hooks.partner.example:{keepalive_server}",
                                                         "got": 2}
        assert _KeepAlive.connections == 1  # kept alive, not re-resolved
        answer["ip"] = "10.0.0.5"  # the name now rebinds to a private address: a new connection is refused
        pool.close()
        with pytest.raises(ssrf.SSRFBlocked, match="private address 10.0.0.5"):
            pool.request("POST", url, content=b"{}")
        assert _KeepAlive.connections == 1
    finally:
        pool.close()
