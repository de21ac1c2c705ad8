"""The dashboard in a real browser on data other than the demo: a survey answered at once and purchases without
ratings or text (tests/shapes). Every page loads without a JavaScript error, charts are drawn where the data
supports them, a survey's journey is drawn in the order its touchpoints were given, pages the data cannot
support say what it lacks, and a table's CSV link downloads."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAGES = ["/", "/journey", "/moments", "/roadmap", "/peak-end", "/segments", "/recovery", "/milestones", "/recognition"]


def test_a_survey_in_the_browser(shape_server, browse):
    base, key = shape_server("survey")
    s = browse(base, key)
    for path in PAGES:
        s.open(path)
    s.open("/journey")
    s.charts()
    ticks = list(dict.fromkeys(s.page.locator(".js-plotly-plot .xaxislayer-above text").all_text_contents()))
    assert ticks == ["Booking", "Check-in", "Flight", "Baggage"]  # the --touchpoints order, not sorted
    assert "no time order" in s.page.locator("#time-order-note").inner_text()
    s.shot("30-survey-journey")
    s.open("/peak-end")
    assert "Not available on this data" in s.page.content() and "no ending to remember" in s.page.content()
    s.open("/segments")
    s.charts()
    assert "recommend rate" in s.page.content()
    with s.page.expect_download() as dl:
        s.page.locator("a.download").first.click()
    assert dl.value.suggested_filename == "segments-tiers.csv"


def test_purchases_in_the_browser(shape_server, browse):
    base, key = shape_server("purchases")
    s = browse(base, key)
    for path in PAGES:
        s.open(path)
    s.open("/moments")
    s.charts()
    assert "no event has a rating or scored text" in s.page.content()
    s.shot("31-purchases-moments")
    s.open("/milestones")
    s.charts()
    assert "purchase_2" in s.page.content()
    s.open("/roadmap")
    assert "Not available on this data" in s.page.content()
