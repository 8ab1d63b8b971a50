"""Healer graph state: one healing attempt on one incident."""

from __future__ import annotations

from typing import Any, TypedDict


class HealerState(TypedDict, total=False):
    incident_id: int | None
    trigger: str
    incident: dict[str, Any]  # the brief the nodes (and the model) see: title, diagnosis, subject, timeline ...
    incident_summary: str  # the plain-language summary (the model's, or the offline template)
    proposal: str | None  # a playbook the model proposed (checked like any other)
    step: dict[str, Any]  # the healing step: outcome, action, detail, tool, args
    approval: dict[str, Any] | None  # outcome, approval_id, approved_by, message (approval path only)
    verified: dict[str, Any] | None  # the check right after acting: healed | waiting | ...
    summary: str  # the run's summary (runs list, agents page)
    run_id: int  # set by run_healer on what it returns
