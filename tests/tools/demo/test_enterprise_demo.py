"""The demo enterprise organisation: created through the identity tools and the Stripe webhook path,
on the Enterprise plan, with a labelled probe history whose missed month earned one credit note."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from memory.billing.models import CreditNote
from memory.db import session_scope, utcnow
from memory.identity.repository import IdentityRepository
from tools.demo.enterprise import ENTERPRISE_SLUG, seed_enterprise
from tools.enterprise.sla import build_report, previous_month


def test_demo_enterprise_org_has_measured_uptime_and_a_credit_note() -> None:
    with session_scope() as s:
        if IdentityRepository(s).org_by_slug(ENTERPRISE_SLUG) is None:
            assert seed_enterprise(s).get("enterprise_password")
    with session_scope() as s:
        assert "enterprise_password" not in seed_enterprise(s)  # idempotent: a second seed adds nothing
        org = IdentityRepository(s).org_by_slug(ENTERPRISE_SLUG)
        assert org is not None and org.plan == "enterprise" and "(demo)" in org.name
        missed = build_report(s, org, previous_month(utcnow()))
        assert missed.demo and missed.plan == "enterprise" and missed.met is False and missed.uptime_pct is not None
        assert missed.credit_status == "issued" and missed.credit_note is not None and missed.credit_note.demo
        assert missed.credit_note.amount_minor == missed.fee_minor * missed.credit_percent // 100 > 0
        assert any(e.status == "excluded" for e in missed.events)  # the announced upgrade
        assert missed.maintenance and missed.coverage_pct > 99
        two_ago = (utcnow().date().replace(day=1) - dt.timedelta(days=1)).replace(day=1) - dt.timedelta(days=1)
        met = build_report(s, org, two_ago.strftime("%Y-%m"))
        assert met.met is True and met.credit_note is None
        current = build_report(s, org, utcnow().strftime("%Y-%m"))
        assert current.in_progress and current.credit_minor == 0
        notes = list(s.scalars(select(CreditNote).where(CreditNote.org_id == org.id)))
        assert len(notes) == 1
