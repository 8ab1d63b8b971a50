"""The demo's certified users are real: attempts taken through the exam tools, certificates signed, and
Pulse's certified_users KPI counts them (the seed invents no figure)."""

from __future__ import annotations

from sqlalchemy import select

from memory.db import session_scope, utcnow
from tests.factories.orgs import make_org, org_ctx


def test_demo_attempts_go_through_the_exam_tools_and_feed_the_kpi(client) -> None:
    from memory.certification.models import Certificate, ExamAttempt
    from tools.certification.cert_issue import check_signature
    from tools.demo.certification import CANDIDATES, seed_certification
    from tools.demo.pulse import demo_series
    from tools.pulse.kpis import providers

    assert all("certified_users" not in v for v in demo_series(utcnow().date()).values())
    org = make_org()
    with session_scope() as s:
        seed_certification(org_ctx(s, org.org_id))
    with session_scope() as s:
        attempts = list(s.scalars(select(ExamAttempt).where(ExamAttempt.org_id == org.org_id)))
        certs = list(s.scalars(select(Certificate).where(Certificate.org_id == org.org_id)))
        assert len(attempts) == len(CANDIDATES) and all(a.demo and a.status == "graded" for a in attempts)
        assert 1 <= len(certs) < len(CANDIDATES) and all(c.demo for c in certs)
        assert all(check_signature(c.credential_jwt) for c in certs)
        kpi = providers()["certified_users"](org_ctx(s, org.org_id), utcnow().date())
        assert kpi.value == float(len(certs)) and kpi.source == "certification.kpis"
    listed = client.get("/v1/certification/directory").json()
    assert any(e["name"] == "Amara Okafor" for e in listed)
