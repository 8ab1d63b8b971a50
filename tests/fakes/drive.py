"""A small fake of Google's OAuth token endpoint and the Drive v3 multipart upload, over HTTPS on
127.0.0.1 (the Drive client keeps the https scheme of its upload URL), with a self-signed certificate."""

from __future__ import annotations

import datetime as dt
import json
import ssl
import threading
import uuid
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "drive-cert.pem", directory / "drive-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def service_account(directory: Path, token_uri: str) -> Path:
    """A service account JSON file whose token endpoint is the fake."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = directory / "service-account.json"
    path.write_text(json.dumps({"type": "service_account", "project_id": "levqor-test", "private_key_id": "k1",
                                "private_key": pem, "client_email": "insights@levqor-test.iam.gserviceaccount.com",
                                "client_id": "1", "token_uri": token_uri}))
    return path


class FakeDrive:
    """Issues a bearer token for a JWT grant, then accepts multipart uploads that carry it."""

    def __init__(self, directory: Path):
        self.cert, key = self_signed(directory)
        self.token = "ya29.fake-" + uuid.uuid4().hex
        self.files: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: Any) -> None:
                return

            def _send(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                fake.requests.append(("POST", self.path))
                if self.path == "/token":
                    if b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer" not in raw:
                        return self._send(400, {"error": "unsupported_grant_type"})
                    return self._send(200, {"access_token": fake.token, "expires_in": 3600, "token_type": "Bearer"})
                if self.path.startswith("/upload/drive/v3/files"):
                    if self.headers.get("authorization") != f"Bearer {fake.token}":
                        return self._send(401, {"error": {"code": 401, "message": "invalid credentials"}})
                    msg = message_from_bytes(b"content-type: " + self.headers["content-type"].encode() + b"\r\n\r\n"
                                             + raw)
                    parts = [p for p in msg.walk() if not p.is_multipart()]
                    meta = json.loads(parts[0].get_payload(decode=True))
                    content = parts[1].get_payload(decode=True)
                    fid = uuid.uuid4().hex
                    fake.files.append({"id": fid, "meta": meta, "content": content, "query": self.path})
                    return self._send(200, {"id": fid, "webViewLink": f"https://drive.google.com/file/d/{fid}/view"})
                return self._send(404, {"error": {"code": 404, "message": self.path}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeDrive:
        self.thread.start()
        return self

    def __exit__(self, *_a: object) -> None:
        self.server.shutdown()
        self.server.server_close()
