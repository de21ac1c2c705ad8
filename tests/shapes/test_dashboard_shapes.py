"""Every dashboard page, and every table's CSV link, on every data shape: HTTP 200, no raw Python values.

A page whose analysis the data cannot support is a page that says so ("Not available on this data" and what to
add), not an error.
"""

from __future__ import annotations

import csv
import io
import re

import pytest

from keymoments.serve.views import PAGES

from .builders import SHAPES
from .test_matrix import EXPECTED, OK, RAW

PAGE_OF = {"": "journey", "journey": "journey", "moments": "moments", "peak-end": "peak-end", "segments": "segments",
           "recovery": "recovery", "milestones": "milestones", "recognition": "recognition", "roadmap": "roadmap"}  # fmt: skip


def _text(html: str) -> str:
    body = html[html.find("<main"):] if "<main" in html else html
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return re.sub(r"<[^>]+>", " ", body)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_page_renders(dashboard, shape):
    client = dashboard(shape)
    links: set[str] = set()
    for slug, *_ in PAGES:
        r = client.get(f"/{slug}")
        assert r.status_code == 200, f"/{slug} on {shape}: {r.status_code} {_text(r.text)[:400]}"
        text = _text(r.text)
        assert not RAW.search(text), f"/{slug} on {shape} shows a raw value: {RAW.search(text).group(0)!r}"
        command = PAGE_OF.get(slug)
        # pages that need no outcome refuse exactly where the command does (the others pick the default outcome)
        if slug and command in ("journey", "segments", "milestones", "recognition") and EXPECTED[shape][command] != OK:
            assert "Not available on this data" in text, f"/{slug} on {shape} should say what the data lacks"
        links |= set(re.findall(r'href="(/download/[^"]+)"', r.text))
    if EXPECTED[shape]["journey"] == OK:
        first = client.get("/journey").text
        tp = re.search(r'href="/journey/([^"?]+)', first)
        assert tp, "the journey page links its touchpoints"
        r = client.get(f"/journey/{tp.group(1)}")
        assert r.status_code == 200 and not RAW.search(_text(r.text))
        assert links, "every table has its CSV link"
    for link in sorted(links):
        r = client.get(link.replace("&amp;", "&"))
        assert r.status_code == 200, link
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(r.text)))
        assert rows and rows[0], link
