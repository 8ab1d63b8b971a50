"""The developer portal as a person uses it: sign up through /developer, read the mail sink, follow links."""

from __future__ import annotations

import email
import email.policy
import re
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from levqor.settings import get_settings

PASSWORD = "correct horse battery staple"


def csrf(html: str) -> str:
    """The csrf_token of the first form on a page."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def mails_to(address: str) -> list[EmailMessage]:
    """Every message the mail sink (``VAR_DIR/mail``, no SMTP configured) holds for ``address``, oldest first."""
    folder = get_settings().var_dir / "mail"
    out = []
    for path in sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns) if folder.exists() else []:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        if msg["To"] == address:
            out.append(msg)
    return out


def link(msg: EmailMessage, path: str) -> str:
    """The path and query of the link to ``path`` in ``msg`` (e.g. ``/developer/verify?token=...``)."""
    body = msg.get_content()
    found = re.search(rf"https?://[^/\s]+({re.escape(path)}\?token=[A-Za-z0-9_-]+)", body)
    assert found, body
    return found.group(1)


@dataclass
class Developer:
    email: str
    password: str
    org_name: str


def new_developer() -> Developer:
    tag = uuid.uuid4().hex[:8]
    return Developer(f"dev-{tag}@example.com", PASSWORD, f"Acme {tag}")


def sign_up(client: Any, dev: Developer, **override: str) -> Any:
    """Fill the /developer sign-up form; the response."""
    token = csrf(client.get("/developer").text)
    data = {"email": dev.email, "password": dev.password, "org_name": dev.org_name, "csrf_token": token, **override}
    return client.post("/developer/signup", data=data)


def verified_developer(client: Any) -> Developer:
    """Sign up and open the verification link: ``client`` is signed in on /developer/keys."""
    dev = new_developer()
    assert sign_up(client, dev).status_code == 200
    (msg,) = mails_to(dev.email)
    r = client.get(link(msg, "/developer/verify"), follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/developer/keys?verified=1", r.text
    return dev


def create_key(client: Any, *, name: str = "first", mode: str = "test", role: str = "admin",
               expires_in_days: str = "") -> str:
    """Create a key on /developer/keys (signed in); the full key shown once."""
    token = csrf(client.get("/developer/keys").text)
    r = client.post("/developer/keys", data={"name": name, "mode": mode, "role": role,
                                             "expires_in_days": expires_in_days, "csrf_token": token})
    assert r.status_code == 201, r.text[:500]
    found = re.search(r'id="new-key">([^<]+)<', r.text)
    assert found, r.text[:500]
    return found.group(1)
