"""The event filters over HTTP: every analysis route takes segment, channel, since and until with the fitter's
meaning, caches per filter, documents them, answers a bad one in the one error shape; the dashboard's analysis
pages apply them, show them as a chip and keep them in their links."""

from __future__ import annotations

import json
import re
import warnings

import pytest

from keymoments.cli.common import to_jsonable

#: route → (its parameters, the fitter's, the filters to try)
ROUTES = {
    "moments": ({"outcome": "retained", "n_boot": 50}, {"outcome": "retained", "n_boot": 50}, {"channel": "web"}),
    "roadmap": ({"outcome": "retained"}, {"outcome": "retained"}, {"segment": "segment=business"}),
    "peak-end": ({"outcome": "nps"}, {"outcome": "nps"}, {"channel": "app", "since": "2025-02-01"}),
    "segments": ({}, {}, {"segment": "tier=gold"}),
    "recovery": ({"outcome": "retained"}, {"outcome": "retained"}, {"since": "2025-04-01", "until": "2025-11-01"}),
    "milestones": ({}, {}, {"since": "2025-07-01"}),
    "recognition": ({}, {}, {"channel": "phone"}),
}


def _fitted(api, name: str, **kw):  # noqa: ANN001, ANN003, ANN202
    import importlib

    from keymoments.serve.analyses import ANALYSES

    spec = ANALYSES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = getattr(importlib.import_module(spec.module), spec.cls)(**kw).fit(api.store)
    return json.loads(json.dumps(to_jsonable(model.to_dict())))


@pytest.mark.parametrize("name", list(ROUTES))
def test_route_with_filters_equals_the_filtered_fitter(api, name):
    params, fit_kw, filters = ROUTES[name]
    r = api.get(f"/api/v1/analyses/{name}", role="analyst", params={**params, **filters})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body == _fitted(api, name, **fit_kw, **filters)
    assert set(body["filters"]) == set(filters)


def test_the_cache_keys_on_the_filters(api):
    cache = api.app.state.km.results
    url = "/api/v1/analyses/segments"
    first = api.get(url, params={"channel": "web"}).json()
    misses, hits = cache.misses, cache.hits
    assert api.get(url, params={"channel": "web"}).json() == first
    assert (cache.misses, cache.hits) == (misses, hits + 1)
    other = api.get(url, params={"channel": "app"}).json()
    assert cache.misses == misses + 1 and other != first and other["filters"] == {"channel": "app"}


@pytest.mark.parametrize(
    ("name", "params", "loc", "message"),
    [
        ("peak-end", {"outcome": "nps", "since": "last tuesday"}, "since",
         "The 'since' parameter of PeakEnd must be an ISO-8601 date or time (e.g. 2025-07-01). Got 'last tuesday' instead."),
        ("segments", {"segment": "gold"}, "segment",
         "The 'segment' parameter of Segments must look like name=value (e.g. tier=gold). Got 'gold' instead."),
        ("milestones", {"segment": "tier=diamond"}, "segment",
         "The 'segment' parameter of Milestones must name a value of the customer attribute 'tier' the data has"),
        ("recognition", {"channel": "fax"}, "channel",
         "The 'channel' parameter of Recognition must name a channel the data has: one of ['airport', 'app', 'email', "
         "'onboard', 'phone', 'web']. Got 'fax' instead."),
        ("recovery", {"outcome": "retained", "channel": "web"}, "channel",
         "The 'channel' parameter of Recovery is not supported: a crisis and its resolution usually happen on "
         "different channels"),
        ("roadmap", {"outcome": "retained", "since": "2025-09-01", "until": "2025-08-01"}, "until",
         "The 'until' parameter of Roadmap must be later than 'since'"),
    ],
)  # fmt: skip
def test_a_bad_filter_is_a_422_in_the_one_error_shape(api, name, params, loc, message):
    r = api.get(f"/api/v1/analyses/{name}", params=params)
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"ok", "error", "errors", "status"} and body["ok"] is False and body["status"] == 422
    assert body["error"].startswith(message), body["error"]
    assert body["errors"][0]["loc"] == [loc]


def test_openapi_documents_the_filters_on_every_analysis(api):
    spec = api.client.get("/openapi.json").json()
    for name in ("journey", *ROUTES):
        op = spec["paths"][f"/api/v1/analyses/{name}"]["get"]
        params = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
        for f in ("segment", "channel", "since", "until"):
            assert f in params and params[f]["description"], (name, f)
        assert "422" in op["responses"]


# -- the dashboard -------------------------------------------------------------------------------------------
PAGES = ["moments", "roadmap", "peak-end", "segments", "recovery", "milestones", "recognition"]


def _page(api, path: str) -> str:
    r = api.get(path, role="analyst")
    assert r.status_code == 200, (path, r.text[:2000])
    return r.text


@pytest.mark.parametrize("slug", PAGES)
def test_every_analysis_page_has_the_filter_bar_and_keeps_the_filters(api, slug):
    html = _page(api, f"/{slug}?segment=segment%3Dbusiness&since=2025-03-01")
    assert '<form class="filters" id="filters"' in html
    assert 'name="since" value="2025-03-01"' in html
    assert '<option value="segment=business" selected>' in html
    chip = re.search(r'id="filter-chip".*?</div>', html, re.S).group(0)
    assert "Filtered:</span> segment segment=business · from 2025-03-01" in chip
    clear = re.search(r'id="clear-filters" href="([^"]*)"', chip).group(1)
    assert clear.split("?")[0] == f"/{slug}" and "segment=" not in clear and "since=" not in clear
    # every analysis link in the navigation carries the filters; the act pages do not need them
    for other in ["", "journey", *PAGES]:
        assert f'href="/{other}?segment=segment%3Dbusiness&amp;since=2025-03-01"' in html, other
    assert 'href="/cases"' in html or "/cases" not in html
    # the JSON and CLI pointers name the same filters
    assert re.search(r'href="/api/v1/analyses/[^"]*segment=segment%3Dbusiness[^"]*since=2025-03-01', html)
    assert "--segment segment=business --since 2025-03-01" in html


def test_a_page_applies_its_filters(api):
    def touchpoints(html: str) -> set[str]:
        rows = re.search(r"<h2>Touchpoints</h2>(.*?)</table>", html, re.S).group(1)
        return set(re.findall(r"<tr[^>]*><td class=\"\">([^<]+)</td>", rows))

    plain = touchpoints(_page(api, "/moments?outcome=retained"))
    web = touchpoints(_page(api, "/moments?outcome=retained&channel=web"))
    assert web == {"reservation", "information", "check-in"}  # the web moments only
    assert {"boarding", "flight"} <= plain


def test_recovery_keeps_but_does_not_apply_a_channel_filter(api):
    html = _page(api, "/recovery?channel=web")
    assert "The channel filter is not applied on this page: a crisis and its resolution" in html
    assert 'href="/segments?channel=web"' in html  # still carried to the next page
    assert "--channel" not in html


def test_a_bad_filter_on_a_page_keeps_the_bar(api):
    r = api.get("/peak-end?since=garbage", role="analyst")
    assert r.status_code == 422
    assert "The &#39;since&#39; parameter of PeakEnd must be an ISO-8601 date" in r.text
    assert '<form class="filters" id="filters"' in r.text and 'id="clear-filters"' in r.text
