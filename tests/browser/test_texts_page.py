"""The texts page in a real browser: the analyst corrects five tags with the per-row select and button, and the
tagger's answer changes on similar texts nobody corrected; an agent is refused the page."""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: three touchpoints; the fee-for-a-bag texts look like baggage to the zero-shot tagger, but are billing
JOURNEY = {"touchpoints": [
    {"name": "flight", "description": "The flight itself, delays, cabin crew, seats"},
    {"name": "baggage", "description": "Checked luggage, the carousel, lost or damaged bags"},
    {"name": "billing", "description": "Charges, fees, refunds and payments"},
]}  # fmt: skip
FEES_CORRECTED = ["they charged me 60 dollars to check my suitcase", "a 45 dollar fee just to check one bag",
                  "charged 30 pounds for my checked luggage", "paid 50 euros extra for my second suitcase",
                  "had to pay 70 dollars for an overweight bag"]  # fmt: skip
FEES_SIMILAR = ["they charged me 65 dollars to check my suitcases", "a 40 dollar fee to check my bag",
                "charged 35 pounds for checked luggage"]  # fmt: skip
TEXTS_OTHER = ["the flight was two hours late", "the crew were rude on board", "cramped seats for a long flight",
               "my suitcase never showed up on the belt", "lost luggage again", "the bag came back torn",
               "I was charged twice for my ticket", "still waiting for my refund", "what is this fee on my card",
               "the pilot announced another delay", "my bag arrived soaking wet", "the refund went to the wrong card"]  # fmt: skip


@pytest.fixture(scope="module")
def texts_server(tmp_path_factory, serve_db):
    """Complaints that came without a touchpoint, tagged zero-shot, served on loopback."""
    import pandas as pd

    from keymoments.events import JourneyModel
    from keymoments.score.store import tag_store
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame

    texts = FEES_CORRECTED + FEES_SIMILAR + TEXTS_OTHER
    db = tmp_path_factory.mktemp("texts") / "texts.duckdb"
    rows = [{"customer_id": f"c{i % 7}", "ts": f"2024-01-01T10:{i:02d}:00Z", "text": t} for i, t in enumerate(texts)]
    with Store(db) as store:
        ingest_events_frame(store, pd.DataFrame(rows))
        tag_store(store, JourneyModel.model_validate(JOURNEY))
    return serve_db(db)


@pytest.fixture(scope="module")
def texts_signed_in(texts_server, sessions_on):
    return lambda role: sessions_on(texts_server, role)


def _tags(page) -> dict[str, str]:  # noqa: ANN001
    rows = page.locator("table#texts tbody tr[data-id]")
    return {rows.nth(i).locator("td.text").inner_text().strip(): rows.nth(i).get_attribute("data-tag")
            for i in range(rows.count())}  # fmt: skip


def test_five_corrections_change_the_tag_of_similar_texts(texts_signed_in):
    s = texts_signed_in("analyst")
    s.open("/texts")
    assert s.page.locator("nav a[href='/texts'], a[href='/texts']").count() >= 1  # linked from the navigation
    before = _tags(s.page)
    assert len(before) == len(FEES_CORRECTED) + len(FEES_SIMILAR) + len(TEXTS_OTHER)
    assert all(before[t] == "baggage" for t in FEES_CORRECTED + FEES_SIMILAR), before  # the zero-shot answer
    # the least certain first, its confidence beside the next likeliest tag's: "62% · next: billing 31%"
    cells = s.page.locator("table#texts tbody tr[data-id] td.conf")
    first = cells.first.inner_text().strip()
    got = re.fullmatch(r"(\d+)% · next: (\w+) (\d+)%", first)
    assert got and got[2] in ("flight", "baggage", "billing", "other") and int(got[3]) <= int(got[1]), first
    s.shot("20-texts-before")
    carried = 0
    for i, text in enumerate(FEES_CORRECTED):
        row = s.page.locator("table#texts tbody tr[data-id]", has_text=text)
        row.locator("select[name=touchpoint]").select_option("billing")
        row.locator("button[type=submit]").click()
        s.page.wait_for_load_state("load")
        flash = s.page.locator("#flash").inner_text()
        said = re.match(r"Tagged billing: (?:(\d+) other texts? now billing|no other text became billing) "
                        rf"\(\d+ changed tag in all; the tagger learnt from {i + 1} corrections?\)\.$", flash)  # fmt: skip
        assert said, flash
        carried += int(said[1] or 0)
        assert s.page.locator("tr", has_text=text).locator("td.conf").inner_text().strip() == "set by an analyst"
    # every similar text, and corrected ones before their own turn, were counted as carried along
    assert carried >= len(FEES_SIMILAR), carried
    after = _tags(s.page)
    assert all(after[t] == "billing" for t in FEES_CORRECTED)
    # the similar texts were never corrected, yet the refitted tagger now says billing
    assert all(after[t] == "billing" for t in FEES_SIMILAR), {t: after[t] for t in FEES_SIMILAR}
    assert s.page.locator("tr", has_text=FEES_SIMILAR[0]).locator(".corrected").count() == 0
    # texts about something else keep their tag
    for text in ("lost luggage again", "the flight was two hours late", "still waiting for my refund"):
        assert after[text] == before[text], text
    assert "5 corrected so far" in s.page.content()
    s.shot("21-texts-after")


def test_an_agent_may_not_open_or_post_the_texts_page(texts_signed_in):
    s = texts_signed_in("agent")
    r = s.page.goto(s.base + "/texts")
    assert r is not None and r.status == 403
    assert s.page.locator("a[href='/texts']").count() == 0  # not in an agent's navigation either
