"""A small fake of the Stripe API for the endpoints Levqor uses (accounts, account_links,
transfers, payouts), with idempotency keys handled like Stripe: the same key and parameters
return the first response; the same key with other parameters is an error."""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``metadata[a]=1&capabilities[transfers][requested]=true`` -> nested dicts."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        cur = out
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = value
    return out


class FakeStripe:
    def __init__(self) -> None:
        self.accounts: dict[str, dict[str, Any]] = {}
        self.transfers: list[dict[str, Any]] = []
        self.idempotent: dict[str, tuple[str, int, dict[str, Any]]] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: Any) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", "req_" + secrets.token_hex(6))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                path = urlsplit(self.path).path
                if path == "/v1/transfers":
                    with fake.lock:
                        self._send(200, {"object": "list", "data": list(reversed(fake.transfers)), "has_more": False,
                                         "url": "/v1/transfers"})
                    return
                if path.startswith("/v1/accounts/"):
                    acct = fake.accounts.get(path.rsplit("/", 1)[1])
                    if acct:
                        self._send(200, acct)
                        return
                self._send(404, {"error": {"type": "invalid_request_error", "message": "No such object"}})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length).decode()
                params = _nest(parse_qsl(raw, keep_blank_values=True))
                path = urlsplit(self.path).path
                key = self.headers.get("idempotency-key")
                auth = self.headers.get("authorization", "")
                with fake.lock:
                    fake.requests.append((path, raw, key))
                    if not auth.startswith("Bearer sk_test_"):
                        self._send(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}})
                        return
                    if key and key in fake.idempotent:
                        first_raw, code, body = fake.idempotent[key]
                        if first_raw != raw:
                            self._send(400, {"error": {"type": "idempotency_error", "message":
                                                       "Keys for idempotent requests can only be used with the "
                                                       "same parameters they were first used with."}})
                        else:
                            self._send(code, body)
                        return
                    code, body = fake.handle(path, params)
                    if key:
                        fake.idempotent[key] = (raw, code, body)
                self._send(code, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, path: str, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        now = int(time.time())
        if path == "/v1/accounts":
            acct = {"id": "acct_" + secrets.token_hex(8), "object": "account", "type": p.get("type", "express"),
                    "email": p.get("email"), "metadata": p.get("metadata", {}), "charges_enabled": False,
                    "payouts_enabled": False, "details_submitted": False, "created": now}
            self.accounts[acct["id"]] = acct
            return 200, acct
        if path == "/v1/account_links":
            if p.get("account") not in self.accounts:
                return 400, {"error": {"type": "invalid_request_error", "message": "No such account",
                                       "param": "account"}}
            return 200, {"object": "account_link", "created": now, "expires_at": now + 300,
                         "url": f"https://connect.stripe.test/setup/e/{p['account']}/{secrets.token_hex(6)}"}
        if path == "/v1/transfers":
            if p.get("destination") not in self.accounts:
                return 400, {"error": {"type": "invalid_request_error", "message": "No such destination",
                                       "param": "destination"}}
            tr = {"id": "tr_" + secrets.token_hex(8), "object": "transfer", "amount": int(p["amount"]),
                  "currency": p["currency"], "destination": p["destination"],
                  "transfer_group": p.get("transfer_group"), "metadata": p.get("metadata", {}),
                  "reversed": False, "created": now}
            self.transfers.append(tr)
            return 200, tr
        return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL {path}"}}

    def __enter__(self) -> FakeStripe:
        self.thread.start()
        return self

    def __exit__(self, *_a: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
