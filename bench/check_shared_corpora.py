"""Whole-corpus checks against ``../shared/data``: what the tests check on the subsets of ``tests/data``, on the
whole published files, with their published counts. Not a test (a fresh clone has no ``../shared``).

Run: ``.venv/bin/python bench/check_shared_corpora.py [--shared ../shared/data]``; prints one line per check and
exits 1 when one fails. About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def check_helpdesk(shared: Path, folder: Path) -> str:
    """The XES log's 21,348 events and 4,580 cases, and its CSV export recognised as the same events."""
    from keymoments.ingest.files import read_source
    from keymoments.ingest.source import parse_mapping
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_source

    with Store(folder / "helpdesk.duckdb") as store:
        r = ingest_source(store, read_source(shared / "support_journeys" / "Helpdesk.xes.gz"))
        assert (r.rows, r.accepted, r.rejected) == (21348, 21348, 0), r
        assert store.query("SELECT count(DISTINCT journey_id) AS j FROM events")["j"].iloc[0] == 4580
        mapping = parse_mapping(["case:concept:name=journey_id", "case:concept:name=customer_id",
                                 "concept:name=touchpoint", "time:timestamp=ts", "org:resource=employee_id"])  # fmt: skip
        r = ingest_source(
            store, read_source(shared / "support_journeys" / "Helpdesk_events.csv", mapping=mapping)
        )
        assert (r.accepted, r.duplicates) == (0, 21348), r
    return "Helpdesk: 21,348 events in 4,580 cases; the CSV export is the same 21,348 events"


def check_twcs(shared: Path, folder: Path) -> str:
    """All 5,000 tweets go in but the one broken record; scoring the file keeps its 5,000 rows."""
    from keymoments.ingest.files import read_source
    from keymoments.ingest.source import parse_mapping
    from keymoments.score.frame import score_text_file
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_source

    path = shared / "support_journeys" / "twcs_head5000.csv"
    with Store(folder / "twcs.duckdb") as store:
        src = read_source(
            path, mapping=parse_mapping(["author_id=customer_id", "created_at=ts", "tweet_id=event_id"])
        )
        r = ingest_source(store, src, rejects_path=folder / "twcs.rejects.csv")
        assert r.accepted == 4999, r
    df, _ = score_text_file(path, out=folder / "twcs.scored.parquet", scorer="lexicon")
    assert len(df) == 5000
    return "twcs_head5000: 4,999 of 5,000 tweets ingested (tweet 3399 rejected), 5,000 rows scored"


def check_telco(shared: Path, folder: Path) -> str:
    """The published churn count (1,869 of 7,043) and the 11 blank TotalCharges."""
    from keymoments.ingest.outcomes import read_outcomes
    from keymoments.store.store import Store
    from keymoments.store.writer import ingest_outcomes_frame

    with Store(folder / "telco.duckdb") as store:
        df = read_outcomes(
            shared / "churn" / "WA_Fn-UseC_-Telco-Customer-Churn.csv", ["customerID=customer_id"]
        )
        ingest_outcomes_frame(store, df)
        wide = store.outcomes_wide(["Churn", "TotalCharges"])
        assert len(wide) == 7043 and wide["Churn"].sum() == 1869 and wide["TotalCharges"].isna().sum() == 11
    return "telco churn: 7,043 customers, 1,869 churned, 11 blank TotalCharges"


def check_subsets(shared: Path, folder: Path) -> str:
    """tests/data is what scripts/make_test_data.py makes from these files today."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import make_test_data  # noqa: PLC0415

    out = folder / "test_data"
    make_test_data.build(shared, out)
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        committed = ROOT / "tests" / "data" / path.relative_to(out)
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} differs: run scripts/make_test_data.py"
        )
    return "tests/data: the same bytes as scripts/make_test_data.py makes"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args(argv)
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for check in (check_helpdesk, check_twcs, check_telco, check_subsets):
            try:
                print("ok  ", check(args.shared, Path(tmp)))
            except AssertionError as exc:
                failed += 1
                print("FAIL", check.__name__, exc)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
