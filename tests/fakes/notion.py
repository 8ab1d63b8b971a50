"""A small fake of the Notion API (2025-09-03) on 127.0.0.1: data source query and page create."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class FakeNotion:
    """Pages kept in memory per data source; checks the bearer token and the Notion-Version header."""

    def __init__(self, token: str = "secret_test", data_source_id: str = "ds_pulse"):
        self.token = token
        self.data_source_id = data_source_id
        self.pages: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.fail_with: int | None = None
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
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(("POST", self.path, body))
                if fake.fail_with:
                    return self._send(fake.fail_with, {"object": "error", "status": fake.fail_with,
                                                       "code": "internal_server_error", "message": "boom"})
                if self.headers.get("authorization") != f"Bearer {fake.token}":
                    return self._send(401, {"object": "error", "status": 401, "code": "unauthorized",
                                            "message": "API token is invalid."})
                if self.headers.get("notion-version") != "2025-09-03":
                    return self._send(400, {"object": "error", "status": 400, "code": "missing_version",
                                            "message": "wrong Notion-Version"})
                if self.path == f"/v1/data_sources/{fake.data_source_id}/query":
                    return self._send(200, fake.query(body))
                if self.path == "/v1/pages":
                    parent = body.get("parent", {})
                    if parent.get("data_source_id") != fake.data_source_id:
                        return self._send(404, {"object": "error", "status": 404, "code": "object_not_found",
                                                "message": "no such data source"})
                    page = {"object": "page", "id": str(uuid.uuid4()), "properties": _typed(body["properties"])}
                    fake.pages.append(page)
                    return self._send(200, page)
                return self._send(404, {"object": "error", "status": 404, "code": "object_not_found",
                                        "message": self.path})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeNotion:
        self.thread.start()
        return self

    def __exit__(self, *_a: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_day(self, day: str, **numbers: float) -> None:
        props: dict[str, Any] = {"Name": {"title": [{"text": {"content": day}}]}, "Day": {"date": {"start": day}}}
        props.update({k: {"number": v} for k, v in numbers.items()})
        self.pages.append({"object": "page", "id": str(uuid.uuid4()), "properties": _typed(props)})

    def query(self, body: dict[str, Any]) -> dict[str, Any]:
        lo = hi = None
        for cond in body.get("filter", {}).get("and", []):
            date = cond.get("date", {})
            lo = date.get("on_or_after", lo)
            hi = date.get("on_or_before", hi)
        rows = [p for p in self.pages
                if (lo is None or p["properties"]["Day"]["date"]["start"] >= lo)
                and (hi is None or p["properties"]["Day"]["date"]["start"] <= hi)]
        rows.sort(key=lambda p: p["properties"]["Day"]["date"]["start"])
        size = int(body.get("page_size", 100))
        start = int(body.get("start_cursor") or 0)
        chunk = rows[start:start + size]
        more = start + size < len(rows)
        return {"object": "list", "results": chunk, "has_more": more,
                "next_cursor": str(start + size) if more else None, "type": "page_or_data_source"}


def _typed(props: dict[str, Any]) -> dict[str, Any]:
    """Notion returns each property with its type."""
    out = {}
    for name, value in props.items():
        kind = next(iter(value))
        out[name] = {"id": name[:4], "type": kind, **value}
    return out


@pytest.fixture()
def notion(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNotion]:
    """A running FakeNotion that the settings point at (token, data source, base URL) for the test."""
    from levqor.settings import get_settings

    with FakeNotion() as fake:
        monkeypatch.setenv("LEVQOR_NOTION_TOKEN", fake.token)
        monkeypatch.setenv("LEVQOR_NOTION_DATA_SOURCE_ID", fake.data_source_id)
        monkeypatch.setenv("LEVQOR_NOTION_BASE_URL", fake.base_url)
        get_settings.cache_clear()
        yield fake
    get_settings.cache_clear()
