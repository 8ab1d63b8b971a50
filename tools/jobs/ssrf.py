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
import re
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

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
        import json

        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _loopback_allowed() -> bool:
    from levqor.settings import get_settings

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
        return Target(url, scheme, host, port, ipaddress.IPv4Address("0.0.0.0"))
    for cand in candidates:
        why = refusal(cand)
        if why:
            raise SSRFBlocked(f"URL host {host!r} resolves to a {why}", field="url")
    return Target(url, scheme, host, port, candidates[0])


@functools.lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    """One TLS context per process: building one costs tens of milliseconds (CA bundle load)."""
    return ssl.create_default_context()


def request(method: str, url: str, *, headers: dict[str, str] | None = None, content: bytes | None = None,
            timeout: float = 10.0, max_redirects: int = MAX_REDIRECTS,
            max_body: int = MAX_BODY_BYTES) -> SafeResponse:
    """Send one HTTP request through the guard, following (and re-checking) up to ``max_redirects``."""
    import httpx

    seen: list[str] = []
    current = url
    send_method, send_content = method.upper(), content
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, verify=_ssl_context()) as client:
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
