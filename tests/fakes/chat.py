"""Discord and Telegram on loopback: a real HTTP server answering like a Discord webhook
(``POST /api/webhooks/{id}/{token}``: JSON with ``content`` of at most 2,000 characters, 204) and the Telegram
Bot API (``POST /bot{token}/sendMessage``: ``chat_id`` and ``text``, ``{"ok": true, "result": {...}}``; a wrong
token is 401 ``{"ok": false}``). ``fail_next`` makes the next N requests answer 500 (to test retries)."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BOT_TOKEN = "123456:TEST-token"
WEBHOOK_PATH = "/api/webhooks/42/hook-token"


@dataclass
class Post:
    service: str
    path: str
    payload: dict[str, Any]


class ChatServers:
    """One server standing in for both services; what each accepted is in :attr:`posts`."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.fail_next = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_a: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any] | None) -> None:
                raw = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                with fake.lock:
                    if fake.fail_next > 0:
                        fake.fail_next -= 1
                        return self._answer(500, {"message": "injected failure"})
                try:
                    payload = json.loads(raw)
                except ValueError:
                    return self._answer(400, {"message": "body is not JSON"})
                if self.path == WEBHOOK_PATH:
                    content = payload.get("content")
                    if not isinstance(content, str) or not content or len(content) > 2000:
                        return self._answer(400, {"message": "Cannot send an empty message", "code": 50006})
                    with fake.lock:
                        fake.posts.append(Post("discord", self.path, payload))
                    return self._answer(204, None)
                m = re.fullmatch(r"/bot([^/]+)/sendMessage", self.path)
                if m:
                    if m.group(1) != BOT_TOKEN:
                        return self._answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                    if not payload.get("chat_id") or not payload.get("text"):
                        return self._answer(400, {"ok": False, "error_code": 400,
                                                  "description": "Bad Request: message text is empty"})
                    with fake.lock:
                        fake.posts.append(Post("telegram", self.path, payload))
                        n = len(fake.posts)
                    return self._answer(200, {"ok": True, "result": {"message_id": n, "chat": {
                        "id": payload["chat_id"]}, "text": payload["text"]}})
                return self._answer(404, {"message": "Unknown route"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def settings(self) -> dict[str, str]:
        """The ``LEVQOR_*`` settings that point Levqor's announcements at this server."""
        return {"community_discord_webhook_url": self.base + WEBHOOK_PATH,
                "community_telegram_bot_token": BOT_TOKEN, "community_telegram_chat_id": "@levqor_test",
                "community_telegram_api_base": self.base, "allow_loopback_urls": "true"}

    def of(self, service: str) -> list[Post]:
        with self.lock:
            return [p for p in self.posts if p.service == service]

    def __enter__(self) -> ChatServers:
        self.thread.start()
        return self

    def __exit__(self, *_a: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
