"""The one SSRF guard for every customer or partner URL Levqor calls.

``check_url`` parses the URL, resolves the host and refuses any address that is not public
(private, loopback, link-local, reserved, multicast, unspecified, shared/CGNAT, IPv4-mapped or
otherwise embedded IPv4, documentation ranges), including numeric tricks that resolvers accept
(``127.1``, ``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``[::ffff:127.0.0.1]``). ``request``
then connects to the address it checked (no second DNS lookup an attacker could rebind), sends
the original ``Host`` and TLS server name, and re-checks every redirect.

``LEVQOR_ALLOW_LOOPBACK_URLS=1`` lets 127.0.0.1 and ::1 through (tests only; off by default).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urljoin, urlsplit

from levqor.settings import get_settings
from tools.errors import AppError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.I)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_LOOPBACK_ALLOWED = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
MAX_REDIRECTS = 5
MAX_BODY_BYTES = 1_000_000


class SSRFBlocked(AppError):
    """The URL points somewhere Levqor must not call."""

    status_code = 422
    title = "URL not allowed"
    type_slug = "url-not-allowed"


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    ip: IPAddress


@dataclass
class SafeResponse:
    status_code: int
    headers: dict[str, str]
    body: bytes
    url: str
    redirects: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _loopback_allowed() -> bool:
    return get_settings().allow_loopback_urls


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    # IPv4-compatible (deprecated) ::a.b.c.d
    if int(ip) >> 32 == 0 and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip))
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` must not be called, or None when it is a public address."""
    if ip in _LOOPBACK_ALLOWED and _loopback_allowed():
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"IPv4-mapped address {ip}"
        inner = _embedded_v4(ip)
        if inner is not None:
            return f"address {ip} embeds IPv4 {inner}"
        if ip.scope_id:
            return f"scoped address {ip}"
    checks = (
        ("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast), ("private", ip.is_private), ("reserved", ip.is_reserved),
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
    )
    for name, bad in checks:
        if bad:
            return f"{name} address {ip}"
    if not ip.is_global:
        return f"non-public address {ip}"
    return None


def _literal(host: str) -> IPAddress | None:
    """The address a host string denotes without DNS, in any notation resolvers accept."""
    h = host.strip("[]")
    if "%" in h:
        h = h.split("%", 1)[0]
    try:
        return ipaddress.ip_address(h)
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            raise SSRFBlocked(f"malformed numeric host {host!r}", field="url") from None
    return None


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise SSRFBlocked(f"cannot resolve host {host!r}: {exc}", field="url") from None
    out: list[IPAddress] = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]
        ip = ipaddress.ip_address(addr)
        if ip not in out:
            out.append(ip)
    if not out:
        raise SSRFBlocked(f"host {host!r} has no address", field="url")
    return out


def check_url(url: str, *, resolve: bool = True) -> Target:
    """Parse ``url`` and pick the address to connect to; raise :class:`SSRFBlocked` if not allowed.

    Every resolved address must be public (one bad record refuses the URL, so a hostname cannot
    mix a public and a private answer). ``resolve=False`` checks only the syntax and literal IPs
    (validation on save, where DNS may change later anyway).
    """
    try:
        parts = urlsplit(url)
        port_raw = parts.port
    except ValueError as exc:
        raise SSRFBlocked(f"invalid URL: {exc}", field="url") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise SSRFBlocked(f"URL scheme must be http or https, not {scheme or 'none'!r}", field="url")
    if parts.username or parts.password:
        raise SSRFBlocked("credentials in the URL are not allowed; use a header", field="url")
    host = (parts.hostname or "").lower()
    if not host:
        raise SSRFBlocked("URL has no host", field="url")
    port = port_raw or (443 if scheme == "https" else 80)
    ip = address_for(host, port, resolve=resolve)
    return Target(url, scheme, host, port, ip or ipaddress.IPv4Address("0.0.0.0"))


def address_for(host: str, port: int, *, resolve: bool = True) -> IPAddress | None:
    """The public address to connect to for ``host``; raise :class:`SSRFBlocked` if there is none.

    ``resolve=False`` checks only names and literal IPs (None for a name left unresolved).
    """
    host = host.lower()
    ip = _literal(host)
    bare = host.rstrip(".")
    if ip is None and (bare in ("localhost", "localhost.localdomain") or bare.endswith(".localhost")):
        if not _loopback_allowed():
            raise SSRFBlocked(f"host {host!r} is loopback", field="url")
    if ip is not None:
        candidates = [ip]
    elif resolve:
        candidates = _resolve(host, port)
    else:
        return None
    for cand in candidates:
        why = refusal(cand)
        if why:
            raise SSRFBlocked(f"URL host {host!r} resolves to a {why}", field="url")
    return candidates[0]


_ssl_lock = threading.Lock()


@functools.cache
def _ssl_context_once(extra_ca: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if extra_ca:
        ctx.load_verify_locations(cafile=extra_ca)
    return ctx


def _ssl_context() -> ssl.SSLContext:
    """One TLS context per process (per ``LEVQOR_TLS_CA_FILE``): building one costs tens of milliseconds.

    The system CAs, plus the extra CA file when one is configured. The lock keeps threads that start
    together from each building their own.
    """
    with _ssl_lock:
        return _ssl_context_once(get_settings().tls_ca_file)


def verified_tls_context() -> ssl.SSLContext:
    """The TLS context every guarded call verifies certificates with (for probes that inspect TLS)."""
    return _ssl_context()


def _unverified_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def request(method: str, url: str, *, headers: dict[str, str] | None = None, content: bytes | None = None,
            timeout: float = 10.0, max_redirects: int = MAX_REDIRECTS,
            max_body: int = MAX_BODY_BYTES, verify_tls: bool = True) -> SafeResponse:
    """Send one HTTP request through the guard, following (and re-checking) up to ``max_redirects``.

    ``verify_tls=False`` is for audit probes only (they carry test data, never a secret or customer
    data): an audit reports a bad certificate and still checks the endpoint's other behaviour. The
    address checks are the same either way.
    """
    import httpx  # kept lazy: start-up time

    seen: list[str] = []
    current = url
    send_method, send_content = method.upper(), content
    verify = _ssl_context() if verify_tls else _unverified_context()
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=verify) as client:
        for _ in range(max_redirects + 1):
            target = check_url(current)
            parts = urlsplit(current)
            ip_host = f"[{target.ip}]" if isinstance(target.ip, ipaddress.IPv6Address) else str(target.ip)
            netloc = f"{ip_host}:{target.port}"
            pinned = parts._replace(netloc=netloc).geturl()
            hdrs = dict(headers or {})
            default_port = 443 if target.scheme == "https" else 80
            hdrs["Host"] = target.host if target.port == default_port else f"{target.host}:{target.port}"
            extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
            req = client.build_request(send_method, pinned, headers=hdrs, content=send_content,
                                       extensions=extensions)
            resp = client.send(req, stream=True)
            try:
                if resp.status_code in (301, 302, 303, 307, 308) and "location" in resp.headers:
                    seen.append(current)
                    current = urljoin(current, resp.headers["location"])
                    if resp.status_code == 303 or (resp.status_code in (301, 302) and send_method == "POST"):
                        send_method, send_content = "GET", None
                    continue
                body = b""
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > max_body:
                        raise SSRFBlocked(f"response larger than {max_body} bytes", field="url")
                return SafeResponse(resp.status_code, dict(resp.headers), body, current, seen)
            finally:
                resp.close()
    raise SSRFBlocked(f"more than {max_redirects} redirects", field="url")


def _guarded_backend() -> Any:
    import httpcore  # kept lazy: start-up time

    class GuardedBackend(httpcore.SyncBackend):
        """Resolves and checks the host of every new connection, then connects to that very address."""

        def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                        socket_options: Any = None) -> httpcore.NetworkStream:
            ip = address_for(host, port)
            assert ip is not None
            return super().connect_tcp(str(ip), port, timeout, local_address, socket_options)

    return GuardedBackend()


class GuardedPool:
    """Keep-alive connections reused across requests (webhook delivery), guarded like :func:`request`.

    The guard moves from the request to the connection: every new TCP connection resolves its host,
    refuses non-public addresses and connects to the address it checked (so a rebinding DNS answer
    cannot slip in between), and a kept-alive connection is only ever reused for its own
    ``scheme://host:port``, whose TLS certificate was verified for that host name. Each request and
    redirect is still checked for scheme, credentials and numeric host tricks first.

    Each thread keeps its own idle connections (at most ``per_thread``, least recently used
    closed first): no pool lock or scan of every connection per request, which under many sender
    threads cost more than the requests. Thread-safe.
    """

    def __init__(self, *, per_thread: int = 32, keepalive_expiry: float = 30.0):
        self._backend = _guarded_backend()
        self._per_thread = per_thread
        self._expiry = keepalive_expiry
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[Any] = []

    def _idle(self) -> dict[tuple[str, str, int], Any]:
        idle = getattr(self._local, "idle", None)
        if idle is None:
            idle = self._local.idle = {}
        return cast(dict[tuple[str, str, int], Any], idle)

    def _connection(self, key: tuple[str, str, int]) -> Any:
        import httpcore  # kept lazy: start-up time

        conn = self._idle().pop(key, None)
        if conn is not None and (conn.has_expired() or not conn.is_idle()):
            conn.close()
            conn = None
        if conn is None:
            conn = httpcore.HTTPConnection(
                httpcore.Origin(key[0].encode(), key[1].encode("idna"), key[2]), ssl_context=_ssl_context(),
                keepalive_expiry=self._expiry, network_backend=self._backend)
            with self._lock:
                self._opened = [c for c in self._opened if not c.is_closed()] + [conn]
        return conn

    def _release(self, key: tuple[str, str, int], conn: Any) -> None:
        idle = self._idle()
        if not conn.is_idle():
            conn.close()
            return
        idle[key] = conn
        while len(idle) > self._per_thread:
            idle.pop(next(iter(idle))).close()

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                content: bytes | None = None, timeout: float = 10.0, max_redirects: int = MAX_REDIRECTS,
                max_body: int = MAX_BODY_BYTES) -> SafeResponse:
        """Send one request, following (and re-checking) up to ``max_redirects``."""
        import httpcore  # kept lazy: start-up time

        seen: list[str] = []
        current = url
        send_method, send_content = method.upper(), content
        base = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
                if k.lower() not in ("host", "content-length")]
        limits = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
        for _ in range(max_redirects + 1):
            target = check_url(current, resolve=False)  # addresses are checked as connections open
            default_port = 443 if target.scheme == "https" else 80
            host = target.host if target.port == default_port else f"{target.host}:{target.port}"
            hdrs = [(b"Host", host.encode("idna"))] + base
            if send_content is not None:
                hdrs.append((b"Content-Length", str(len(send_content)).encode()))
            key = (target.scheme, target.host, target.port)
            conn = self._connection(key)
            req = httpcore.Request(send_method, current, headers=hdrs, content=send_content or b"",
                                   extensions={"timeout": limits})
            resp = conn.handle_request(req)
            done = False
            try:
                got = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in resp.headers}
                body = b""
                for chunk in resp.iter_stream():
                    body += chunk
                    if len(body) > max_body:
                        raise SSRFBlocked(f"response larger than {max_body} bytes", field="url")
                done = True
            finally:
                resp.close()
                if done:
                    self._release(key, conn)
                else:
                    conn.close()
            if resp.status in (301, 302, 303, 307, 308) and "location" in got:
                seen.append(current)
                current = urljoin(current, got["location"])
                if resp.status == 303 or (resp.status in (301, 302) and send_method == "POST"):
                    send_method, send_content = "GET", None
                continue
            return SafeResponse(resp.status, got, body, current, seen)
        raise SSRFBlocked(f"more than {max_redirects} redirects", field="url")

    def close(self) -> None:
        """Close every connection (idle ones of other threads too); later requests open new ones."""
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
