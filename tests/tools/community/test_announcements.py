"""Announcements: the segment (confirmed applicants and active partners, unsubscribes skipped), durable
batches (a sender that dies after claiming loses nothing and sends nothing twice), retries against the fake
Discord and Telegram servers, the Atom feed, staff-only writes, and the launch checklist from the data."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from memory.community.models import AnnouncementDelivery, CommunityUnsubscribe, EarlyAccessApplication
from memory.community.repository import CommunityRepository
from memory.db import session_scope, utcnow
from memory.insights.repository import InsightsRepository
from tests.factories.community import atom_entries
from tests.factories.orgs import make_org
from tests.fakes.chat import ChatServers
from tools.community import announcements as ann


def _applicants(n: int, status: str = "pending") -> list[str]:
    tag = uuid.uuid4().hex[:8]
    emails = [f"seg-{tag}-{i}@example.com" for i in range(n)]
    with session_scope() as s:
        for e in emails:
            s.add(EarlyAccessApplication(email=e, name="N", company="C", status=status))
    return emails


def _announce(client: Any, staff: Any, segments: list[str]) -> int:
    slug = f"news-{uuid.uuid4().hex[:8]}"
    r = client.post("/v1/announcements", json={"slug": slug, "title": f"Title {slug}", "summary": "Summary",
                                               "body": "Body text", "link_path": "/insights", "segments": segments},
                    headers=staff.headers())
    assert r.status_code == 201, r.text
    r = client.post(f"/v1/announcements/{r.json()['id']}/publish", headers=staff.headers())
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


def _recipients(ann_id: int, channel: str = "email") -> dict[str, str]:
    with session_scope() as s:
        return {d.recipient: d.state for d in s.query(AnnouncementDelivery).filter_by(announcement_id=ann_id,
                                                                                    channel=channel)}


def test_writing_and_publishing_is_staff_only(client, set_settings) -> None:
    staff, other = make_org(), make_org()
    set_settings(staff_orgs=[staff.slug])
    body = {"slug": f"x-{uuid.uuid4().hex[:6]}", "title": "Nope", "summary": "Nope", "body": "Nope"}
    assert client.post("/v1/announcements", json=body, headers=other.headers()).status_code == 403
    r = client.post("/v1/announcements", json={**body, "segments": ["everyone"]}, headers=staff.headers())
    assert r.status_code == 422 and "segments" in r.text
    assert client.post("/v1/announcements/999999/publish", headers=other.headers()).status_code == 403


def test_segment_is_confirmed_applicants_without_unsubscribes_and_a_crashed_sender_loses_nothing(
        client, set_settings, smtp_server) -> None:
    staff = make_org()
    set_settings(staff_orgs=[staff.slug])
    confirmed = _applicants(5)
    unconfirmed = _applicants(1, "unconfirmed")
    rejected = _applicants(1, "rejected")
    with session_scope() as s:
        s.add(CommunityUnsubscribe(email=confirmed[0], source="link"))
    ann_id = _announce(client, staff, ["early_access"])
    got = _recipients(ann_id)
    assert set(confirmed) <= set(got) and not ({*unconfirmed, *rejected} & set(got))

    # A sender claims a batch, commits the claim, and dies before sending anything.
    now = utcnow()
    with session_scope() as s:
        crashed = [d.id for d in CommunityRepository(s).claim_due(now, now + dt.timedelta(seconds=120), 3, ann_id)]
    assert len(crashed) == 3
    ann.send_all(ann_id)  # another sender: the claimed rows are leased, the rest go
    assert [d for d, st in _recipients(ann_id).items() if st == "sending"] != []
    with session_scope() as s:  # the dead sender's lease runs out
        s.query(AnnouncementDelivery).filter(AnnouncementDelivery.id.in_(crashed)).update(
            {"lease_until": utcnow() - dt.timedelta(seconds=1)}, synchronize_session=False)
    final = ann.send_all(ann_id)
    assert final["sending"] == 0 and final["pending"] == 0 and final["failed"] == 0, final
    to = [str(m["To"]) for m in smtp_server.messages if str(m["Subject"]).startswith("Title news-")]
    assert sorted(e for e in to if e in confirmed) == sorted(confirmed[1:])  # each once; the unsubscribed none
    assert _recipients(ann_id)[confirmed[0]] == "skipped"
    assert all(m["List-Unsubscribe"] for m in smtp_server.messages)


def test_discord_and_telegram_posts_retry_then_fail_after_the_last_attempt(client, set_settings) -> None:
    staff = make_org()
    with ChatServers() as chat:
        set_settings(staff_orgs=[staff.slug], announcement_max_attempts=3, **chat.settings())
        ann_id = _announce(client, staff, [])
        chat.fail_next = 1  # the first post answers 500
        first = ann.send_all(ann_id)
        assert first["pending"] == 1 and first["sent"] == 1, first  # one waits for its backoff
        assert ann.send_all(ann_id, retry_now=True)["sent"] == 2
        assert len(chat.of("discord")) == 1 and len(chat.of("telegram")) == 1
        with session_scope() as s:
            attempts = sorted(d.attempts for d in s.query(AnnouncementDelivery).filter_by(announcement_id=ann_id))
        assert attempts == [1, 2]

        set_settings(community_telegram_bot_token="999:wrong")  # Telegram refuses every try
        broken = _announce(client, staff, [])
        done = ann.send_all(broken, retry_now=True)
        assert done["failed"] == 1 and done["sent"] == 1, done
        with session_scope() as s:
            tg = s.query(AnnouncementDelivery).filter_by(announcement_id=broken, channel="telegram").one()
            assert tg.attempts == 3 and "401" in tg.last_error


def test_news_feed_is_valid_atom_and_lists_published_only(client, set_settings) -> None:
    staff = make_org()
    set_settings(staff_orgs=[staff.slug])
    ann_id = _announce(client, staff, [])
    draft = client.post("/v1/announcements", json={"slug": f"draft-{uuid.uuid4().hex[:6]}", "title": "Draft <b>x</b>",
                                                   "summary": "s & t", "body": "a draft"}, headers=staff.headers())
    r = client.get("/news.atom")
    entries = atom_entries(r.text)
    titles = [e.findtext("{http://www.w3.org/2005/Atom}title") for e in entries]
    with session_scope() as s:
        row = CommunityRepository(s).announcement(ann_id)
        assert row is not None and row.title in titles
    assert draft.json()["title"] not in titles
    assert client.get(f"/news/{draft.json()['slug']}").status_code == 404


def test_launch_checklist_is_computed_from_the_data(client, set_settings) -> None:
    staff = make_org()
    set_settings(staff_orgs=[staff.slug], community_telegram_url="")
    r = client.get("/v1/community/launch-checklist", headers=staff.headers())
    items = {i["key"]: i for i in r.json()["items"]}
    assert set(items) == {"partner_network", "early_access", "community_channel", "certification_beta",
                          "marketplace_opening", "insights_report"}
    assert items["community_channel"]["done"] is False
    set_settings(community_telegram_url="https://t.me/levqor")
    r = client.get("/v1/community/launch-checklist", headers=staff.headers())
    items = {i["key"]: i for i in r.json()["items"]}
    assert items["community_channel"]["done"] is True
    # The first-report item names the report in the archive (or its absence), not just the announcement.
    with session_scope() as s:
        first = InsightsRepository(s).first_report()
    expected = f"/insights/reports/{first.id}.pdf" if first else "no Insights Report in the archive yet"
    assert expected in items["insights_report"]["evidence"]
    assert client.post("/v1/insights/reports", json={}, headers=staff.headers()).status_code == 201
    r = client.get("/v1/community/launch-checklist", headers=staff.headers())
    assert "/insights/reports/" in {i["key"]: i for i in r.json()["items"]}["insights_report"]["evidence"]
    assert client.get("/v1/community/launch-checklist", headers=make_org().headers()).status_code == 403
