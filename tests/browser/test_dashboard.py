"""The dashboard in a real browser: every page loads with its charts drawn, nothing is fetched from outside
loopback, a case goes from open to resolved, and the layout holds on a phone. Screenshots land in
tests/browser/screenshots/ (git-ignored)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: (path, screenshot name, least number of Plotly charts on the page)
PAGES = [
    ("/", "01-overview", 1),
    ("/journey", "02-journey", 1),
    ("/moments", "04-moments", 1),
    ("/roadmap", "05-roadmap", 1),
    ("/peak-end", "06-peak-end", 1),
    ("/segments", "07-segments", 1),
    ("/recovery", "08-recovery", 1),
    ("/milestones", "09-milestones", 1),
    ("/recognition", "10-recognition", 1),
    ("/playbooks", "13-playbooks", 1),
]


def test_sign_in_is_required(server, browser):
    base, _ = server
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(f"{base}/journey")
    assert "/login" in page.url
    page.fill("#key", "km_nope_wrong")
    page.click("button[type=submit]")
    assert "unknown or revoked" in page.content()
    ctx.close()


def test_every_analysis_page_draws_its_charts(signed_in):
    s = signed_in("admin")
    for path, name, least in PAGES:
        s.open(path)
        n = s.charts(least)
        assert s.page.locator("h1").inner_text().strip()
        s.shot(name)
        assert n >= least, path


def test_journey_filters_and_drill_down(signed_in):
    s = signed_in("analyst")
    s.open("/journey")
    s.page.select_option("select[name=channel]", "app")
    s.page.click(".filters button[type=submit]")
    s.page.wait_for_load_state("load")
    assert "channel=app" in s.page.url
    s.charts()
    pit = s.page.locator("a.tp.tp-pit").first
    target = pit if pit.count() else s.page.locator("a.tp").first
    name = target.locator(".tp-name").inner_text()
    target.click()
    s.page.wait_for_load_state("load")
    assert s.page.locator("h1").inner_text().strip() == name
    assert s.page.locator("blockquote.quote").count() > 0  # customers' own words
    s.shot("03-touchpoint")


def test_case_from_open_to_resolved(signed_in):
    agent = signed_in("agent")
    agent.open("/cases?status=open")
    agent.shot("11-case-queue")
    agent.page.locator("a.case-link").first.click()
    agent.page.wait_for_load_state("load")
    case_url = agent.page.url
    assert agent.page.locator("#case-status").inner_text() == "open"
    agent.charts()  # the customer's journey, as they felt it
    agent.page.click("#take")
    agent.page.wait_for_load_state("load")
    assert agent.page.locator("#case-status").inner_text() == "in progress"
    # above the recovery pool's empowerment limit: the spend waits for a manager
    agent.page.select_option("#pool", "recovery")
    agent.page.fill("#amount", "2500")
    agent.page.click("#compensate")
    agent.page.wait_for_load_state("load")
    assert agent.page.locator("#case-status").inner_text() == "awaiting approval", agent.page.content()[:2000]
    agent.shot("12-case-awaiting-approval")

    manager = signed_in("admin")
    manager.open(case_url.replace(manager.base, "").split("?")[0])
    manager.page.click("#approve")
    manager.page.wait_for_load_state("load")
    assert "approved" in manager.page.locator("#flash").inner_text()
    assert manager.page.locator("#case-status").inner_text() == "in progress"

    agent.page.goto(case_url.split("?")[0])
    agent.page.fill("#note", "Rebooked on the next flight and refunded the upgrade.")
    agent.page.click("#resolve")
    agent.page.wait_for_load_state("load")
    assert agent.page.locator("#case-status").inner_text() == "resolved"
    assert agent.page.locator(".timeline li").count() >= 4
    agent.shot("12b-case-resolved")


def test_budgets_page(signed_in):
    s = signed_in("admin")
    s.open("/budgets")
    assert s.page.locator(".kpi").count() >= 1
    assert s.page.locator("table.data").count() >= 2
    s.shot("14-budgets")


def test_phone_layout(signed_in):
    s = signed_in("admin", viewport={"width": 390, "height": 844})
    s.open("/")
    s.charts()
    width = s.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the overview scrolls sideways on a phone ({width}px)"
    s.shot("15-phone-overview")
    s.open("/journey")
    s.charts()
    s.shot("16-phone-journey")


def test_agent_sees_the_queue_not_the_analyses(signed_in):
    s = signed_in("agent")
    s.page.goto(s.base + "/")
    s.page.wait_for_load_state("load")
    assert s.page.url.endswith("/cases")
    links = s.page.locator(".nav-link").all_inner_texts()
    assert "Case queue" in links and "Moments of truth" not in links


def test_api_docs_render_from_local_files(signed_in):
    s = signed_in("analyst")
    s.open("/docs")
    s.page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    assert s.page.locator(".swagger-ui .opblock").count() >= 20  # every API operation
    assert s.page.locator(".swagger-ui .btn.authorize").count() == 1  # where a key is entered
    s.shot("17-api-docs")


def test_the_outcome_picker_submits_on_change(signed_in):
    s = signed_in("admin")
    s.open("/moments")
    select = s.page.locator("select[name=outcome]")
    options = [o for o in select.locator("option").all_inner_texts() if o.strip()]
    assert len(options) >= 2
    with s.page.expect_navigation():
        select.select_option(options[-1].strip())
    assert "outcome=" in s.page.url
    s.charts()
