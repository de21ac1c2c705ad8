"""The filter bar in a real browser: a filter applied on an analysis page shows as a chip, is kept when the
navigation moves to another analysis, is said when a page cannot apply it, clears in one click, and fits a
phone. Screenshots land in tests/browser/screenshots/."""

from __future__ import annotations

from pathlib import Path

import pytest

SHOTS = Path(__file__).parent / "screenshots"
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _chip(s) -> str:  # noqa: ANN001
    return s.page.locator("#filter-chip").inner_text()


def test_a_filter_is_kept_across_pages_and_clears_in_one_click(signed_in):
    s = signed_in("analyst")
    s.open("/segments")
    assert s.page.locator("#filter-chip").count() == 0
    s.page.select_option("#filters select[name=channel]", "web")
    s.page.fill("#filters input[name=since]", "2025-03-01")
    s.page.click("#filters button[type=submit]")
    s.page.wait_for_load_state("load")
    assert "channel=web" in s.page.url and "since=2025-03-01" in s.page.url
    s.charts()
    assert "channel web · from 2025-03-01" in _chip(s)
    s.shot("20-filters-segments")

    s.page.click("a.nav-link[data-nav=moments]")
    s.page.wait_for_load_state("load")
    assert s.page.url.split("?")[0].endswith("/moments")
    assert "channel=web" in s.page.url and "since=2025-03-01" in s.page.url
    s.charts()
    assert "channel web · from 2025-03-01" in _chip(s)
    assert s.page.locator("#filters select[name=channel]").input_value() == "web"
    assert s.page.locator("#filters input[name=since]").input_value() == "2025-03-01"
    # the outcome picker keeps the filters too
    with s.page.expect_navigation():  # choosing an outcome submits the bar
        s.page.select_option("#filters select[name=outcome]", "repurchased_90d")
    s.page.wait_for_load_state("load")
    assert "outcome=repurchased_90d" in s.page.url and "channel=web" in s.page.url
    s.shot("21-filters-moments")

    s.page.click("a.nav-link[data-nav=recovery]")
    s.page.wait_for_load_state("load")
    assert "channel=web" in s.page.url
    assert "channel filter is not applied on this page" in _chip(s)
    s.charts()
    s.shot("22-filters-recovery")

    s.page.click("#clear-filters")
    s.page.wait_for_load_state("load")
    assert "channel=" not in s.page.url and "since=" not in s.page.url
    assert s.page.locator("#filter-chip").count() == 0
    s.page.click("a.nav-link[data-nav=peak-end]")
    s.page.wait_for_load_state("load")
    assert "channel=" not in s.page.url


def test_the_filter_bar_fits_a_phone(signed_in):
    s = signed_in("analyst", viewport={"width": 390, "height": 844})
    s.open("/peak-end?outcome=nps&segment=segment%3Dbusiness&channel=app&since=2025-02-01&until=2025-11-01")
    s.charts()
    assert "segment segment=business · channel app · from 2025-02-01 · until 2025-11-01" in _chip(s)
    width = s.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"the filtered page scrolls sideways on a phone ({width}px)"
    box = s.page.locator("#filters").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    s.shot("23-phone-filters")
    s.page.locator("#filters").screenshot(path=str(SHOTS / "23b-phone-filter-bar.png"))
