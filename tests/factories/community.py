"""Community helpers: read the mail sink's community messages, validate an Atom document."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from email.message import EmailMessage

ATOM = "{http://www.w3.org/2005/Atom}"


def atom_entries(xml: str) -> list[ET.Element]:
    """Parse ``xml`` as Atom 1.0 and check RFC 4287's required elements; return the entries."""
    root = ET.fromstring(xml)
    assert root.tag == f"{ATOM}feed", root.tag
    for name in ("id", "title", "updated"):
        assert root.find(f"{ATOM}{name}") is not None and (root.find(f"{ATOM}{name}").text or "").strip(), name  # type: ignore[union-attr]
    feed_author = root.find(f"{ATOM}author/{ATOM}name") is not None
    assert root.find(f"{ATOM}link[@rel='self']") is not None
    entries = root.findall(f"{ATOM}entry")
    ids = set()
    for e in entries:
        for name in ("id", "title", "updated"):
            assert (e.findtext(f"{ATOM}{name}") or "").strip(), (name, ET.tostring(e)[:200])
        assert feed_author or e.find(f"{ATOM}author/{ATOM}name") is not None
        # An entry without content needs a rel=alternate link (RFC 4287 4.1.2).
        assert e.find(f"{ATOM}content") is not None or e.find(f"{ATOM}link[@rel='alternate']") is not None
        ids.add(e.findtext(f"{ATOM}id"))
    assert len(ids) == len(entries), "entry ids must be unique"
    for stamp in [root.findtext(f"{ATOM}updated")] + [e.findtext(f"{ATOM}updated") for e in entries]:
        import datetime as dt
        dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))  # RFC 3339
    return entries


def one_click_target(msg: EmailMessage) -> str:
    """The https/http URL of a message's List-Unsubscribe header, checking RFC 8058's companion header."""
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    value = str(msg["List-Unsubscribe"]).strip()
    assert value.startswith("<") and value.endswith(">"), value
    return value[1:-1]
