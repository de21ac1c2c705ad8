"""--segment, --channel, --since and --until on every analysis command: the JSON is the filtered analysis's, the
filters are named in it, and a bad filter is one clean error line naming the parameter."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    from keymoments.examples.airline import generate_airline
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

    demo = generate_airline(600, seed=4)
    path = tmp_path_factory.mktemp("cli-filters") / "km.duckdb"
    with Store(path) as s:
        ingest_events_frame(s, demo.events)
        ingest_outcomes_frame(s, demo.outcomes)
        ingest_outcomes_frame(s, demo.customers[["customer_id", "segment", "tier"]], attributes_only=True)
    return str(path)


#: command → (its required arguments, the filters to try)
COMMANDS = {
    "journey": ([], ["--channel", "app", "--since", "2025-04-01"]),
    "moments": (["--outcome", "retained", "--n-boot", "50"], ["--channel", "web"]),
    "roadmap": (["--outcome", "retained", "--n-boot", "50"], ["--segment", "segment=business"]),
    "peak-end": (["--outcome", "nps"], ["--channel", "web", "--until", "2025-10-01"]),
    "segments": ([], ["--segment", "tier=gold", "--since", "2025-02-01"]),
    "recovery": (["--outcome", "retained"], ["--since", "2025-03-01", "--until", "2025-12-01"]),
    "milestones": ([], ["--segment", "segment=business", "--since", "2025-06-01"]),
    "recognition": ([], ["--channel", "airport"]),
}


def _cls(command: str):  # noqa: ANN202
    import importlib

    from keymoments.serve.analyses import ANALYSES

    spec = ANALYSES["journey" if command == "journey" else command]
    return getattr(importlib.import_module(spec.module), spec.cls)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_json_with_filters_is_the_filtered_analysis(command, db, run_cli):
    from keymoments.cli.common import to_jsonable
    from keymoments.store.store import Store

    args, filters = COMMANDS[command]
    code, out, err = run_cli(command, "--db", db, *args, *filters, "--json")
    assert code == 0, err
    import json

    got = json.loads(out)
    kw = {a[2:].replace("-", "_"): v for a, v in zip(args[::2], args[1::2], strict=True)}
    kw.update({a[2:]: v for a, v in zip(filters[::2], filters[1::2], strict=True)})
    kw = {k: int(v) if k == "n_boot" else v for k, v in kw.items()}
    with Store(db, read_only=True) as s, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _cls(command)(**kw).fit(s)
        unfiltered = _cls(command)(**{k: v for k, v in kw.items() if k not in ("segment", "channel", "since", "until")}).fit(s)
    assert got == json.loads(json.dumps(to_jsonable(ref.to_dict())))
    assert got != json.loads(json.dumps(to_jsonable(unfiltered.to_dict())))  # the filters changed the answer
    if command != "journey":
        assert set(got["filters"]) == {a[2:] for a in filters[::2]}


def test_human_output_names_the_filters(db, run_cli):
    code, out, _ = run_cli("segments", "--db", db, "--channel", "web", "--since", "2025-02-01")
    assert code == 0
    assert "Filtered: channel web · from 2025-02-01" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["peak-end", "--outcome", "nps", "--since", "yesterday-ish"],
         "error: The 'since' parameter of PeakEnd must be an ISO-8601 date or time (e.g. 2025-07-01). Got "
         "'yesterday-ish' instead."),
        (["segments", "--segment", "business"],
         "error: The 'segment' parameter of Segments must look like name=value (e.g. tier=gold). Got 'business' instead."),
        (["milestones", "--segment", "tier=platinum"],
         "error: The 'segment' parameter of Milestones must name a value of the customer attribute 'tier' the data "
         "has: one of ['tier=basic', 'tier=gold', 'tier=silver']. Got 'tier=platinum' instead."),
        (["recognition", "--channel", "phnoe"],
         "error: The 'channel' parameter of Recognition must name a channel the data has: one of ['airport', 'app', "
         "'email', 'onboard', 'phone', 'web']. Got 'phnoe' instead. Did you mean 'phone'?"),
        (["roadmap", "--outcome", "retained", "--since", "2025-06-01", "--until", "2025-01-01"],
         "error: The 'until' parameter of Roadmap must be later than 'since' (2025-06-01T00:00:00+00:00)"),
        (["recovery", "--outcome", "retained", "--channel", "web"],
         "error: The 'channel' parameter of Recovery is not supported: a crisis and its resolution usually happen "
         "on different channels"),
    ],
)  # fmt: skip
def test_bad_filters_are_one_clean_line(args, message, db, run_cli):
    code, out, err = run_cli(*args, "--db", db)
    assert code == 2 and out == ""
    assert err.startswith(message), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_report_with_filters_names_them_on_the_cover(db, run_cli, tmp_path):
    out = tmp_path / "r.html"
    code, _, err = run_cli("report", "--db", db, "--out", str(out), "--channel", "web", "--since", "2025-03-01")
    assert code == 0, err
    html = out.read_text(encoding="utf-8")
    assert 'id="filtered"><span class="chip-label">Filtered:</span> channel web · from 2025-03-01</span>' in html
    # the recovery section refuses a channel filter and says why instead of failing the report
    assert "is not supported: a crisis and its resolution usually happen on different channels" in html
