"""Network probes of a partner endpoint, all through the SSRF guard: its TLS handshake and certificate,
and signed or unsigned test requests (test data only, never a secret or customer data)."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import time
from dataclasses import dataclass, field

from tools.shared import ssrf


@dataclass
class TlsInfo:
    version: str | None = None
    verified: bool = False
    verify_error: str = ""
    subject: str = ""
    issuer: str = ""
    not_after: dt.datetime | None = None
    legacy_accepted: str | None = None  # a TLS version below 1.2 the server also accepted
    error: str = ""


@dataclass
class Probe:
    status: int | None = None
    elapsed_ms: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""
    timed_out: bool = False
    redirects: list[str] = field(default_factory=list)
    blocked: str = ""  # the SSRF guard refused where it led (a redirect to a private address)


def _describe(cert_der: bytes) -> tuple[str, str, dt.datetime | None]:
    from cryptography import x509  # kept lazy: start-up time

    cert = x509.load_der_x509_certificate(cert_der)
    return cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.not_valid_after_utc


def tls_probe(url: str, timeout: float = 5.0) -> TlsInfo:
    """Handshake with the endpoint's host (the address the guard checked), verified then, if that fails,
    unverified to describe the certificate; also try whether a legacy TLS version is still accepted."""
    info = TlsInfo()
    target = ssrf.check_url(url)
    addr = (str(target.ip), target.port)
    try:
        with socket.create_connection(addr, timeout=timeout) as sock, \
                ssrf.verified_tls_context().wrap_socket(sock, server_hostname=target.host) as tls:
            info.version, info.verified = tls.version(), True
            der = tls.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as exc:
        info.verify_error = exc.verify_message or str(exc)
        der = None
    except (OSError, ssl.SSLError) as exc:
        info.error = f"TLS handshake failed: {exc}"
        return info
    if der is None:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        try:
            with socket.create_connection(addr, timeout=timeout) as sock, \
                    ctx.wrap_socket(sock, server_hostname=target.host) as tls:
                info.version = tls.version()
                der = tls.getpeercert(binary_form=True)
        except (OSError, ssl.SSLError) as exc:
            info.error = f"TLS handshake failed: {exc}"
            return info
    if der:
        info.subject, info.issuer, info.not_after = _describe(der)
    info.legacy_accepted = _legacy(addr, target.host, timeout)
    return info


def _legacy(addr: tuple[str, int], host: str, timeout: float) -> str | None:
    """``TLSv1.1`` or ``TLSv1`` when the server completes a handshake capped at that version."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        with socket.create_connection(addr, timeout=timeout) as sock, \
                ctx.wrap_socket(sock, server_hostname=host) as tls:
            return tls.version()
    except (OSError, ssl.SSLError, ValueError):
        return None


def http_probe(method: str, url: str, *, headers: dict[str, str], body: bytes | None, timeout: float,
               verify_tls: bool) -> Probe:
    """One request through the guard (redirects re-checked), timed; errors become the probe's fields."""
    import httpx  # kept lazy: start-up time

    started = time.perf_counter()
    out = Probe()
    try:
        resp = ssrf.request(method, url, headers=headers, content=body, timeout=timeout, verify_tls=verify_tls,
                            max_body=64_000)
        out.status, out.headers, out.redirects = resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, \
            resp.redirects
    except ssrf.SSRFBlocked as exc:
        out.blocked = exc.detail
    except httpx.TimeoutException:
        out.timed_out, out.error = True, f"no answer within {timeout:g}s"
    except (httpx.HTTPError, OSError) as exc:
        out.error = f"{type(exc).__name__}: {exc}"
    out.elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    return out
