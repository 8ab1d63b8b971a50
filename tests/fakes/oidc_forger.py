"""A hostile OpenID provider on loopback: real discovery, JWKS, authorize and token endpoints, but the
id_token it returns can be forged (another nonce, ``alg: none``, another audience, expired). The honest
provider in the tests is ``oidc-provider-mock``; this one plays the attacker it cannot."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Forger:
    issuer: str = ""
    client_id: str = "levqor"
    claims: dict[str, Any] = field(default_factory=dict)  # merged over the honest claims
    alg_none: bool = False
    codes: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from authlib.jose import JsonWebKey

        self.key = JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": "forger-1"})

    def id_token(self, nonce: str) -> str:
        from authlib.jose import jwt

        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.client_id, "sub": "mallory", "email": "mallory@forger.test",
                  "iat": now, "exp": now + 300, "nonce": nonce, **self.claims}
        if self.alg_none:
            return f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}."
        return jwt.encode({"alg": "RS256", "kid": "forger-1"}, claims, self.key).decode()

    def wsgi(self, environ: dict[str, Any], start: Callable[..., Any]) -> list[bytes]:
        path, q = environ["PATH_INFO"], {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if path == "/.well-known/openid-configuration":
            body: Any = {"issuer": self.issuer, "authorization_endpoint": f"{self.issuer}/authorize",
                         "token_endpoint": f"{self.issuer}/token", "jwks_uri": f"{self.issuer}/jwks",
                         "id_token_signing_alg_values_supported": ["RS256"]}
        elif path == "/jwks":
            body = {"keys": [self.key.as_dict(is_private=False)]}
        elif path == "/authorize":
            code = f"code-{len(self.codes) + 1}"
            self.codes[code] = {"nonce": q["nonce"]}
            start("302 Found", [("Location", f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")])
            return [b""]
        elif path == "/token":
            size = int(environ.get("CONTENT_LENGTH") or 0)
            form = {k: v[0] for k, v in parse_qs(environ["wsgi.input"].read(size).decode()).items()}
            grant = self.codes.get(form.get("code", ""))
            token = self.id_token(grant["nonce"] if grant else "")
            body = {"access_token": "x", "token_type": "Bearer", "id_token": token}
        else:
            start("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        start("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]


@contextmanager
def running_forger() -> Iterator[Forger]:
    """The forger on a free loopback port (``http://localhost:PORT``), stopped afterwards."""
    from werkzeug.serving import make_server

    forger = Forger()
    server = make_server("127.0.0.1", 0, forger.wsgi, threaded=True)
    forger.issuer = f"http://localhost:{server.server_port}"
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield forger
    finally:
        server.shutdown()
        t.join(timeout=10)
