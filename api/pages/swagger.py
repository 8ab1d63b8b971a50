"""``/docs``: the interactive API reference (Swagger UI) served from local files, so it works offline."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.deps import public

router = APIRouter(include_in_schema=False)
SWAGGER_UI_VERSION = "5.35.0"  # api/pages/static/swagger-ui (swagger-ui-dist from npm)

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Levqor API reference</title>
<link rel="icon" type="image/png" href="/static/swagger-ui/favicon-32x32.png">
<link rel="stylesheet" href="/static/swagger-ui/swagger-ui.css"></head>
<body>
<p><a href="/developer">Developer portal</a> · <a href="/developer/docs">Guides</a> ·
<a href="/openapi.json">openapi.json</a></p>
<div id="swagger-ui"></div>
<script src="/static/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/swagger-init.js"></script>
</body></html>
"""


@router.get("/docs", dependencies=[public()])
def swagger_ui() -> HTMLResponse:
    """The interactive API reference (Swagger UI from /static, no CDN)."""
    return HTMLResponse(PAGE)
