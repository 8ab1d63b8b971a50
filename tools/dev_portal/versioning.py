"""API versioning: the version every response names, and the routes being retired.

Every response carries ``Levqor-Version: <API_VERSION>`` (a date, as Stripe names versions; changes are in
``docs/dev_portal/changelog.md``, shown at ``/developer/changelog``). A route listed in
:data:`DEPRECATIONS` is marked deprecated in the OpenAPI document and its responses carry
``Deprecation`` (RFC 9745: ``@<unix seconds>`` of when it was deprecated), ``Sunset`` (RFC 8594: the
HTTP date after which it may stop answering) and ``Link: <successor>; rel="successor-version"`` plus the
changelog as ``rel="deprecation"``.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from email.utils import format_datetime

API_VERSION = "2026-12-05"
VERSION_HEADER = "Levqor-Version"
CHANGELOG_PATH = "/developer/changelog"


@dataclass(frozen=True)
class Deprecation:
    """A route being retired: since when, until when it answers, and what replaces it."""

    since: dt.date
    sunset: dt.date
    successor: str | None = None

    def headers(self) -> dict[str, str]:
        since = calendar.timegm(self.since.timetuple())
        sunset = dt.datetime.combine(self.sunset, dt.time(), tzinfo=dt.UTC)
        links = [f'<{CHANGELOG_PATH}>; rel="deprecation"; type="text/html"']
        if self.successor:
            links.insert(0, f'<{self.successor}>; rel="successor-version"')
        return {"Deprecation": f"@{since}", "Sunset": format_datetime(sunset, usegmt=True), "Link": ", ".join(links)}


# (METHOD, path template) -> its deprecation. Empty while no route is being retired; add one here (and a
# changelog entry) to retire a route: the app factory marks it deprecated and the headers follow.
DEPRECATIONS: dict[tuple[str, str], Deprecation] = {}
