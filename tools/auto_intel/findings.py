"""A finding: one symptom the monitor sees now, a rule breach or an anomalous point, named by its cause.

The cause (``worker:<id>``, ``pipeline:<id>``, ``queue``, ``partner:<id>``, ...) is what groups findings
into one incident (:mod:`tools.auto_intel.lifecycle`); the rules (:mod:`tools.auto_intel.rules`) and the
anomaly scoring (:mod:`tools.auto_intel.anomalies`) produce them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Finding:
    """One symptom seen now: a rule breach or an anomalous point."""

    cause: str
    fingerprint: str
    kind: str  # rule | anomaly
    diagnosis: str
    title: str
    severity: str = "medium"
    subject: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)
    org_id: int | None = None
    symptom_at: dt.datetime | None = None
    # The symptom is over already (seen after the fact, e.g. a database outage nobody could record while it
    # lasted): the incident resolves at this time.
    ended_at: dt.datetime | None = None
