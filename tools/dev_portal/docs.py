"""Developer docs: the Markdown pages of ``docs/dev_portal`` rendered to HTML, and the API reference
(``docs/dev_portal/api_reference.md``) generated from the OpenAPI document.

``levqor docs api-reference`` writes the reference; ``--check`` exits 1 when the file is stale (a test
runs the check too). Rendering uses ``markdown-it-py`` (CommonMark plus tables; raw HTML is escaped),
imported on first use so the ``levqor`` command stays quick to start.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs" / "dev_portal"
API_REFERENCE = DOCS_DIR / "api_reference.md"

# (slug, title, file) in the order the side menu shows them.
PAGES: tuple[tuple[str, str, str], ...] = (
    ("index", "Quick start and guides", "index.md"),
    ("api-reference", "API reference", "api_reference.md"),
    ("sdk-example", "SDK example (Python)", "sdk_example.py"),
    ("changelog", "Changelog", "changelog.md"),
    ("partners", "Partner API", "partners.md"),
    ("marketplace-schema", "Marketplace manifest", "marketplace_schema.md"),
    ("sso", "Single sign-on and SCIM", "sso.md"),
)
_LINKS = {file: f"/developer/docs/{slug}" for slug, _title, file in PAGES}


@dataclass(frozen=True)
class Doc:
    slug: str
    title: str
    html: str


def render_markdown(text: str) -> str:
    """CommonMark + tables to HTML; raw HTML in the source is escaped, links between the pages rewritten."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    tokens = md.parse(text)
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and i + 1 < len(tokens):
            tok.attrSet("id", anchor_of(tokens[i + 1].content))
        for child in tok.children or ():
            if child.type == "link_open":
                href = str(child.attrGet("href") or "")
                target, _, anchor = href.partition("#")
                if target in _LINKS:
                    child.attrSet("href", _LINKS[target] + (f"#{anchor}" if anchor else ""))
    return str(md.renderer.render(tokens, md.options, {}))


def anchor_of(heading: str) -> str:
    """The id a heading gets (lower case, words joined by ``-``), for ``#anchor`` links."""
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


@functools.lru_cache(maxsize=16)
def _load(slug: str, mtime: float) -> Doc | None:
    for s, title, file in PAGES:
        if s == slug:
            text = (DOCS_DIR / file).read_text(encoding="utf-8")
            if file.endswith(".py"):  # a source file: shown whole, as code to copy
                text = f"# {title}\n\n`docs/dev_portal/{file}`:\n\n```python\n{text}```\n"
            return Doc(slug, title, render_markdown(text))
    return None


def page(slug: str) -> Doc | None:
    """The rendered page ``slug`` (None when there is no such page)."""
    for s, _title, file in PAGES:
        if s == slug:
            path = DOCS_DIR / file
            return _load(slug, path.stat().st_mtime) if path.exists() else None
    return None


# ---- API reference --------------------------------------------------------------------------------

def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_schema_name(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_schema_name(schema.get('items', {}))}"
    return str(schema.get("type", "object"))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _fields(schema: dict[str, Any]) -> list[str]:
    props = schema.get("properties") or {}
    if not props:
        return []
    required = set(schema.get("required") or [])
    rows = ["| field | type | required | description |", "|---|---|---|---|"]
    for name, prop in props.items():
        rows.append(f"| `{name}` | {_cell(_schema_name(prop))} | {'yes' if name in required else 'no'} | "
                    f"{_cell(str(prop.get('description', '')))} |")
    return rows


def render_api_reference(openapi: dict[str, Any]) -> str:
    """The API reference in Markdown: every operation by tag, its parameters, body and responses, then schemas."""
    info = openapi.get("info", {})
    out = ["# API reference", "",
           "Generated from the OpenAPI document by `levqor docs api-reference`; do not edit by hand (a test "
           "fails when it is stale). The interactive version is at `/docs`, the raw document at `/openapi.json`.",
           "", f"API {info.get('title', '')}: every route needs `Authorization: Bearer <API key>` unless it says "
           "*public*. Errors are `application/problem+json` (RFC 9457).", ""]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, ops in openapi.get("paths", {}).items():
        for method, op in ops.items():
            tag = (op.get("tags") or ["other"])[0]
            by_tag.setdefault(tag, []).append((path, method.upper(), op))
    out += ["## Contents", ""]
    out += [f"- [{tag}](#{anchor_of(tag)}) ({len(ops)})" for tag, ops in sorted(by_tag.items())]
    out.append("")
    for tag in sorted(by_tag):
        out += [f"## {tag}", ""]
        for path, method, op in sorted(by_tag[tag], key=lambda t: (t[0], t[1])):
            dep = " (deprecated)" if op.get("deprecated") else ""
            out += [f"### `{method} {path}`{dep}", ""]
            summary = (op.get("description") or op.get("summary") or "").strip()
            if summary:
                out += [summary, ""]
            auth = "bearer API key" if op.get("security") else "public"
            out += [f"Authentication: {auth}.", ""]
            params = op.get("parameters") or []
            if params:
                out += ["| parameter | in | type | required |", "|---|---|---|---|"]
                for p in params:
                    out.append(f"| `{p['name']}` | {p['in']} | {_cell(_schema_name(p.get('schema', {})))} | "
                               f"{'yes' if p.get('required') else 'no'} |")
                out.append("")
            body = (op.get("requestBody") or {}).get("content", {})
            for ctype, media in body.items():
                out += [f"Request body ({ctype}): {_schema_name(media.get('schema', {}))}.", ""]
            codes = []
            for code, r in op.get("responses", {}).items():
                schema = (r.get("content") or {}).get("application/json", {}).get("schema")
                shape = f" ({_schema_name(schema)})" if code.startswith("2") and schema else ""
                codes.append(f"{code} {r.get('description', '')}{shape}".strip())
            out += ["Responses: " + "; ".join(codes) + ".", ""]
    schemas = openapi.get("components", {}).get("schemas", {})
    if schemas:
        out += ["## Schemas", ""]
        for name in sorted(schemas):
            schema = schemas[name]
            out += [f"### {name}", ""]
            desc = str(schema.get("description", "")).strip()
            if desc:
                out += [" ".join(desc.split()), ""]
            rows = _fields(schema)
            if rows:
                out += [*rows, ""]
            elif "enum" in schema:
                out += ["One of: " + ", ".join(f"`{json.dumps(v)}`" for v in schema["enum"]) + ".", ""]
    return "\n".join(out).rstrip() + "\n"
