"""Partner endpoints on 127.0.0.1 over real TLS: certificates made with ``cryptography`` (a test CA and a
leaf for 127.0.0.1 it signs, or a self-signed leaf), and a server whose behaviour is set per instance."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tools.errors import Unauthorized
from tools.shared.signing import verify


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_certs(directory: Path) -> dict[str, Path]:
    """A CA (``ca.pem``), a leaf for 127.0.0.1 it signs (``good.pem``/``good.key``) and a self-signed
    leaf for 127.0.0.1 (``weak.pem``/``weak.key``)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Levqor Test CA")).issuer_name(_name("Levqor Test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    out = {"ca": directory / "ca.pem"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, issuer_key, issuer in (("good", ca_key, ca), ("weak", None, None)):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder().subject_name(_name("127.0.0.1"))
             .issuer_name(issuer.subject if issuer else _name("127.0.0.1")).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
             .not_valid_after(now + dt.timedelta(days=90))
             .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                            critical=False))
        cert = b.sign(issuer_key or key, hashes.SHA256())
        out[name] = directory / f"{name}.pem"
        out[f"{name}_key"] = directory / f"{name}.key"
        out[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[f"{name}_key"].write_bytes(_pem_key(key))
    return out


class TlsPartner:
    """An HTTPS partner site on 127.0.0.1: ``/events`` (webhooks), ``/privacy`` and ``/support`` pages.

    ``secret`` set: unsigned or wrongly signed events get 401. ``headers`` go on every response;
    ``ack_delay`` delays every answer to a POST."""

    def __init__(self, cert: Path, key: Path, *, secret: str | None = None, headers: dict[str, str] | None = None,
                 ack_delay: float = 0.0, privacy_text: str = "We retain Levqor data for 30 days, then delete it."):
        self.secret, self.headers, self.ack_delay, self.privacy_text = secret, headers or {}, ack_delay, privacy_text
        self.posts: list[dict[str, Any]] = []
        self.on_post: Callable[[], None] | None = None  # called (in the server's thread) as each POST arrives
        self.done = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_a: Any) -> None:
                pass

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                for k, v in site.headers.items():
                    self.send_header(k, v)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/privacy":
                    self._answer(200, site.privacy_text.encode())
                elif self.path == "/support":
                    self._answer(200, b"Write to support@partner.example")
                else:
                    self._answer(404, b"no")

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                site.posts.append({"path": self.path, "headers": hdrs, "body": body})
                if site.on_post is not None:
                    site.on_post()
                if site.ack_delay:
                    site.done.wait(site.ack_delay)
                if site.secret is not None:
                    try:
                        verify([site.secret], hdrs, body)
                    except Unauthorized:
                        self._answer(401, b"bad signature")
                        return
                self._answer(200, b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cert), str(key))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self) -> TlsPartner:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.server.shutdown()
        self.server.server_close()
