"""The demo's revenue history goes through the Stripe webhook handler: the ledger, the credit balance and
Pulse's revenue agree, every row is labelled demo, and seeding the same history again changes nothing."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from memory.db import session_scope, utcnow
from tests.factories.orgs import make_org, org_ctx


def test_demo_billing_history_uses_the_webhook_path_and_is_labelled(client) -> None:
    from memory.billing.models import RevenueEntry
    from memory.jobs.repository import CreditRepository
    from tools.billing import catalogue
    from tools.demo.billing import _packs_for, seed_billing
    from tools.pulse.kpis import providers

    org = make_org(plan="free")
    today = utcnow().date()
    days = {today - dt.timedelta(days=i): 11_500 + 300 * i for i in range(1, 41)}
    with session_scope() as s:
        start = CreditRepository(s).balance(org.org_id)
        applied = seed_billing(org_ctx(s, org.org_id), days)
    packs = [p for v in days.values() for p in _packs_for(v)]
    assert applied == len(packs) + 2  # and two Pro invoices (days 0 and 30 of the 40)
    expected = sum(p.price_minor for p in packs) + 2 * catalogue.plan("pro").monthly_minor
    with session_scope() as s:
        total, rows = s.execute(select(func.sum(RevenueEntry.amount_minor), func.count())
                                .where(RevenueEntry.org_id == org.org_id)).one()
        assert total == expected and rows == applied
        assert s.scalar(select(func.count()).where(RevenueEntry.org_id == org.org_id,
                                                   RevenueEntry.demo.is_(False))) == 0
        balance = CreditRepository(s).balance(org.org_id)
        assert balance == start + sum(p.credits for p in packs) + 2 * catalogue.plan("pro").included_credits
        ctx = org_ctx(s, org.org_id)
        assert round(sum(providers()["revenue"](ctx, d).value or 0 for d in days)) == expected
    view = client.get("/v1/billing", headers=org.headers()).json()
    assert view["demo"] is True and view["plan"] == "pro"
    # Every payment is reachable, 24 a page, newest first: the oldest Pro invoice is on the last page.
    pages, page = [], 1
    while True:
        body = client.get("/v1/billing", params={"page": page}, headers=org.headers()).json()
        pages.append(body["invoices"])
        if not body["more"]:
            break
        page += 1
    seen = [i["stripe_id"] for p in pages for i in p]
    assert len(seen) == len(set(seen)) == applied and all(len(p) == 24 for p in pages[:-1])
    assert pages[-1][-1]["kind"] == "subscription"
    html = client.get("/billing", params={"page": 2}, headers=org.headers()).text
    assert 'href="/billing?page=1" rel="prev">Newer payments' in html
    assert ('rel="next">Older payments' in html) is (len(pages) > 2)
    assert client.get("/v1/billing", params={"page": 0}, headers=org.headers()).status_code == 422
    assert "Demo data" in client.get("/billing", headers=org.headers()).text
    with session_scope() as s:  # seeding again: every event is a redelivery
        assert seed_billing(org_ctx(s, org.org_id), days) == 0
    with session_scope() as s:
        assert CreditRepository(s).balance(org.org_id) == balance
