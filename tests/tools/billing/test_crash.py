"""A process killed with SIGKILL while applying a Stripe webhook loses nothing and grants once: killed
after the effects were written but before the commit, nothing is left behind and Stripe's redelivery
grants; killed after the commit but before answering, the redelivery is recognised and grants nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from memory.db import session_scope
from tests.factories.orgs import make_org
from tests.fakes.stripe import FakeStripe, post_event, sign
from tests.support import ROOT
from tests.support.processes import child_env

SECRET = "whsec_stripe_test"
CHILD = """
import os, signal, sys
from memory.db import session_scope
from tools.billing.webhooks import handle_stripe_webhook

payload = open(sys.argv[1], "rb").read()
where = sys.argv[3]
with session_scope() as s:
    out = handle_stripe_webhook(s, payload, sys.argv[2])
    assert out.applied, out
    if where == "before_commit":
        os.kill(os.getpid(), signal.SIGKILL)
os.kill(os.getpid(), signal.SIGKILL)  # after the commit, before any answer reaches Stripe
"""


def _balance(org_id: int) -> int:
    from memory.jobs.repository import CreditRepository

    with session_scope() as s:
        return CreditRepository(s).balance(org_id)


def _inbox(event_id: str) -> int:
    from memory.billing.models import BillingEvent

    with session_scope() as s:
        return len(list(s.scalars(select(BillingEvent).where(BillingEvent.id == event_id))))


@pytest.mark.parametrize("where", ["before_commit", "after_commit"])
def test_sigkill_while_applying_a_webhook_grants_exactly_once(where, client, set_settings, tmp_path: Path) -> None:
    with FakeStripe() as fake:
        set_settings(stripe_api_key="sk_test_levqor", stripe_api_base=fake.url, stripe_webhook_secret=SECRET)
        org = make_org(plan="free")
        start = _balance(org.org_id)
        r = client.post("/v1/billing/checkout", json={"kind": "credit_pack", "pack": "large"}, headers=org.headers())
        assert r.status_code == 201, r.text
        fake.billing.complete_checkout(r.json()["id"])
        event: dict[str, Any] = next(e for e in fake.events if e["type"] == "checkout.session.completed")
    payload = json.dumps(event)
    body = tmp_path / "event.json"
    body.write_text(payload)
    child = subprocess.run([sys.executable, "-c", CHILD, str(body), sign(payload, SECRET), where], cwd=ROOT,
                           env=child_env(), capture_output=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
    if where == "before_commit":
        assert _balance(org.org_id) == start and _inbox(event["id"]) == 0  # nothing half-applied
    else:
        assert _balance(org.org_id) == start + 20_000 and _inbox(event["id"]) == 1
    # Stripe got no answer, so it delivers again (twice, for good measure).
    outcomes = [post_event(client, event).json()["outcome"] for _ in range(2)]
    assert outcomes == (["applied", "duplicate"] if where == "before_commit" else ["duplicate", "duplicate"])
    assert _balance(org.org_id) == start + 20_000 and _inbox(event["id"]) == 1
