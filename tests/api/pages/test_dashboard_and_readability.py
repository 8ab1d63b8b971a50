"""What a person opens the product for, readable: the dashboard in headless Chromium (KPIs against targets,
open incidents, recent jobs and failures, runs waiting for approval, links onward), numbers formatted for
people on /ops and /pulse, a WCAG AA contrast check of the visible text on every page, an HTML 404 for
browsers (problem+json for API clients), and a favicon."""

from __future__ import annotations

import re
from typing import Any

from tests.factories.jobs import make_job, make_pipeline
from tests.factories.pulse import seeded_org
from tests.support.browser import chromium_page

PAGES = ("/", "/pulse", "/ops", "/agents", "/advisor", "/marketplace", "/audit", "/keys", "/billing", "/sla",
         "/settings/sso", "/certification", "/certification/experts", "/governance", "/insights", "/partner-network",
         "/news", "/developer/changelog", "/developer", "/developer/keys", "/developer/team", "/developer/usage",
         "/developer/webhooks")

# Every visible element with its own text: its colour against the first opaque background behind it
# (the page's own when none), as the WCAG 2.1 contrast ratio; AA asks 4.5 (3 for large text).
CONTRAST_JS = r"""
() => {
  const parse = c => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
    const p = m[1].split(',').map(x => parseFloat(x));
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = c => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const bgOf = el => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0.5) return c; } return {r: 255, g: 255, b: 255, a: 1}; };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    if (['SCRIPT', 'STYLE', 'svg', 'SVG', 'OPTION'].includes(el.tagName) || el.closest('svg')) continue;
    const own = [...el.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent.trim()).join('');
    if (!own) continue;
    const r = el.getBoundingClientRect(); const st = getComputedStyle(el);
    if (r.width === 0 || r.height === 0 || st.visibility === 'hidden' || st.display === 'none') continue;
    const fg = parse(st.color); const bg = bgOf(el);
    const a = lum(fg), b = lum(bg); const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(st.fontSize); const bold = parseInt(st.fontWeight) >= 700;
    const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
    if (ratio < need) out.push(`${el.tagName}.${el.className} "${own.slice(0, 40)}" ${ratio.toFixed(2)} < ${need}`);
  }
  return out;
}
"""


def _login(page: Any, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_url(f"{base}/")


def test_dashboard_formatting_and_contrast_in_chromium(client, live_server: str, monkeypatch) -> None:
    from agents.runtime import start_run

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # the planner's offline path

    org = seeded_org()
    start_run("planner", org.org_id, "manual")  # proposed suggestions: /pulse shows Accept and Reject buttons
    pid = make_pipeline(org.org_id)
    make_job(org.org_id, pid, "failed", retryable=True, last_error="timeout talking to the CRM")
    make_job(org.org_id, pid, "succeeded")
    errors: list[str] = []
    with chromium_page(errors) as page:
        _login(page, live_server, org.admin_email, org.admin_password)
        page.goto(f"{live_server}/")
        targets = page.locator("#dash-targets").inner_text()
        assert "Uptime" in targets and "Partner revenue share" in targets and re.search(r"\$\d", targets)
        assert not re.search(r"\d\.\d{5,}", targets)
        assert "timeout talking to the CRM" in page.locator("#dash-jobs").inner_text()
        assert page.locator("#dash-incidents").is_visible() and page.locator("#dash-approvals").is_visible()
        for href in ("/pulse", "/ops", "/agents", "/advisor"):
            assert page.locator(f'main a[href="{href}"]').count() >= 1, href
        page.goto(f"{live_server}/pulse")
        text = page.locator("main").inner_text()
        assert not re.search(r"\bis not (<=|>=|<|>) ", text), "raw rule strings on /pulse"
        assert " to " in page.locator("tr[data-kpi='revenue'] .axis").inner_text()  # the sparkline's range
        page.goto(f"{live_server}/ops")
        assert not re.search(r"\d\.\d{6,}", page.locator("main").inner_text()), "raw floats on /ops"
        assert page.goto(f"{live_server}/pulse") is not None
        assert page.get_by_role("button", name="Reject").count() >= 1  # checked below with the rest of /pulse
        page.goto(f"{live_server}/agents?agent=planner")  # the planner's run is listed with what it did
        runs = page.locator("main").inner_text()
        assert "No runs yet" not in runs and "new suggestion" in runs, runs[:500]
        failures = {}
        for path in PAGES:
            resp = page.goto(f"{live_server}{path}")
            assert resp is not None and resp.status == 200, (path, resp and resp.status)
            raw = re.findall(r"\d\.\d{5,}", page.locator("main").inner_text())
            assert not raw, (path, raw[:5])  # numbers are rounded for people on every page
            low = page.evaluate(CONTRAST_JS)
            if low:
                failures[path] = low
        assert failures == {}, failures
        assert page.evaluate("document.querySelector('link[rel=icon]').getAttribute('href')") == "/static/favicon.svg"
        resp = page.goto(f"{live_server}/no-such-page")
        assert resp is not None and resp.status == 404 and page.title().startswith("Page not found")
        assert page.get_by_role("link", name="Go to the dashboard").is_visible()
        assert page.evaluate(CONTRAST_JS) == []
    assert not [e for e in errors if "404" not in e], errors


def test_reject_and_examples_are_not_light_grey(client, live_server: str) -> None:
    org = seeded_org()
    with chromium_page() as page:
        _login(page, live_server, org.admin_email, org.admin_password)
        page.goto(f"{live_server}/advisor")
        colour = page.evaluate("getComputedStyle(document.querySelector('button.example')).color")
        assert colour != "rgb(209, 213, 219)" and page.evaluate(CONTRAST_JS) == []


def test_api_clients_keep_problem_json_and_the_favicon_is_served(client) -> None:
    r = client.get("/no-such-page", headers={"accept": "application/json"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = client.get("/v1/no-such-thing", headers={"accept": "text/html"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = client.get("/no-such-page", headers={"accept": "text/html,application/xhtml+xml"})
    assert r.status_code == 404 and "Page not found" in r.text and r.headers["content-type"].startswith("text/html")
    fav = client.get("/favicon.ico")
    assert fav.status_code == 200 and fav.headers["content-type"] == "image/svg+xml" and b"<svg" in fav.content
