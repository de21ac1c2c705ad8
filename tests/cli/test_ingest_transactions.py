"""One command is one transaction: its events, outcomes, attributes and survey answers commit together or not at
all; it exits non-zero when nothing was accepted or too much was rejected (the rejects file written either way);
and a command that fails creates no store file (issue 16 item 2). Real CLI, real DuckDB files."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from keymoments.store.store import Store
from keymoments.testing import make_events


def _counts(db) -> dict[str, int]:  # noqa: ANN001
    with Store(db, read_only=True) as store:
        return {t: store.count(t) for t in ("events", "outcomes", "outcome_defs", "attributes", "batches")}


def _survey(tmp_path, n: int = 30, dates: list[str] | None = None) -> None:  # noqa: ANN001
    pd.DataFrame({
        "id": [f"r{i}" for i in range(n)],
        "Booking": [1 + i % 5 for i in range(n)],
        "Flight": [1 + (i * 3) % 5 for i in range(n)],
        "answered": dates or ["2024-05-01"] * n,
        "satisfied": ["yes" if i % 2 else "no" for i in range(n)],
        "tier": ["gold" if i % 3 else "blue" for i in range(n)],
    }).to_csv(tmp_path / "survey.csv", index=False)  # fmt: skip


SURVEY = ("ingest-survey", "survey.csv", "--id-col", "id", "--touchpoints", "Booking,Flight", "--scale", "csat5",
          "--outcome-col", "satisfied", "--outcome-col", "tier")  # fmt: skip


def test_survey_with_unreadable_dates_fails_and_stores_no_outcomes(run_cli, tmp_path):
    """The issue's case: every event rejected ("0 accepted"), exit 0, yet 3,701 outcome rows stored."""
    _survey(tmp_path, dates=["the 3rd Tuesday"] * 30)
    code, out, err = run_cli(*SURVEY, "--ts-col", "answered")
    assert code != 0
    assert "all 60 rows were rejected (ts: 60); nothing was written" in err and "Traceback" not in err
    assert "survey.rejects.csv" in err
    rejects = pd.read_csv(tmp_path / "survey.rejects.csv")  # written either way
    assert len(rejects) == 60 and rejects["reason"].str.startswith("ts the 3rd Tuesday is not a timestamp").all()
    assert not (tmp_path / "keymoments.duckdb").exists()  # a failed first command leaves no store behind

    make_events(3, 2).to_csv(tmp_path / "e.csv", index=False)  # the same into a store that already holds data
    assert run_cli("ingest", "e.csv", "--no-score")[0] == 0
    before = _counts(tmp_path / "keymoments.duckdb")
    code, out, err = run_cli(*SURVEY, "--ts-col", "answered")
    assert code != 0
    assert _counts(tmp_path / "keymoments.duckdb") == before  # no outcome, attribute or batch row either


def test_survey_answers_and_outcomes_commit_together(run_cli, tmp_path):
    _survey(tmp_path)
    code, out, err = run_cli(*SURVEY, "--ts-col", "answered")
    assert code == 0, err
    counts = _counts(tmp_path / "keymoments.duckdb")
    assert (counts["events"], counts["outcomes"], counts["attributes"]) == (60, 30, 30)


def test_too_many_rejected_rows_write_nothing_unless_allowed(run_cli, tmp_path):
    df = make_events(10, 2)  # 20 events
    df.loc[[1, 4, 7], "rating"] = 11  # 15% rejected: more than the default 10%
    df.to_csv(tmp_path / "e.csv", index=False)
    code, out, err = run_cli("ingest", "e.csv")
    assert code == 2
    assert "3 of 20 rows were rejected (15%, more than --max-rejects 10%; rating: 3); nothing was written" in err
    assert "--max-rejects" in err and "e.rejects.csv" in err
    assert len(pd.read_csv(tmp_path / "e.rejects.csv")) == 3
    assert not (tmp_path / "keymoments.duckdb").exists()
    code, out, err = run_cli("ingest", "e.csv", "--max-rejects", "20%", "--no-score")
    assert code == 0, err
    assert "17 accepted, 0 duplicate, 3 rejected" in out
    code, out, err = run_cli("ingest", "e.csv", "--max-rejects", "lots")
    assert code == 2 and "--max-rejects takes a share such as 10% or 0.1" in err


def test_nothing_accepted_exits_non_zero_even_when_rejects_are_allowed(run_cli, tmp_path):
    pd.DataFrame({"customer_id": ["a", "b"], "touchpoint": "t", "ts": ["soon", "later"]}).to_csv(tmp_path / "e.csv", index=False)
    code, out, err = run_cli("ingest", "e.csv", "--max-rejects", "100%")
    assert code == 2 and "all 2 rows were rejected" in err
    assert not (tmp_path / "keymoments.duckdb").exists()
    # a file ingested again is all duplicates: nothing new, yet nothing wrong either
    make_events(2, 2).to_csv(tmp_path / "ok.csv", index=False)
    assert run_cli("ingest", "ok.csv", "--no-score")[0] == 0
    code, out, err = run_cli("ingest", "ok.csv", "--no-score")
    assert code == 0 and "0 accepted, 4 duplicate, 0 rejected" in out


def test_the_files_of_one_ingest_commit_together(run_cli, tmp_path):
    make_events(4, 2).to_csv(tmp_path / "good.csv", index=False)
    bad = make_events(4, 2, start="2024-06-01")
    bad["ts"] = "not a time"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    make_events(1, 1).assign(event_id="seed").to_csv(tmp_path / "seed.csv", index=False)
    assert run_cli("ingest", "seed.csv", "--no-score")[0] == 0
    before = _counts(tmp_path / "keymoments.duckdb")
    code, out, err = run_cli("ingest", "good.csv", "bad.csv", "--no-score")
    assert code == 2 and "bad.csv: all 8 rows were rejected" in err
    assert "good.csv" not in out  # nothing is reported as accepted when nothing was committed
    assert _counts(tmp_path / "keymoments.duckdb") == before
    code, out, err = run_cli("ingest", "good.csv", "--no-score")
    assert code == 0 and "8 accepted" in out


def test_a_refused_file_creates_no_store(tmp_path):
    """Through the installed command (a subprocess), as a user runs it."""
    pd.DataFrame({"who": ["a"], "when": ["2024-01-01"]}).to_csv(tmp_path / "e.csv", index=False)
    proc = subprocess.run([sys.executable, "-m", "keymoments.cli", "ingest", "e.csv"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "column 'customer_id' is missing" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.csv"]


def test_python_api_survey_is_one_transaction(tmp_path, monkeypatch):
    import keymoments as km
    from keymoments.exceptions import RejectedRowsError

    monkeypatch.chdir(tmp_path)  # where the rejects file goes
    _survey(tmp_path, dates=["never"] * 30)
    with km.connect(tmp_path / "km.duckdb") as eng:
        with pytest.raises(RejectedRowsError, match="all 60 rows were rejected"):
            eng.ingest_survey(tmp_path / "survey.csv", id_col="id", touchpoints=["Booking", "Flight"], scale="csat5",
                              outcome_cols=["satisfied"], ts_col="answered", max_rejects=0.1)  # fmt: skip
        assert eng.store.count("outcomes") == 0 and eng.store.count("batches") == 0


def test_a_write_that_fails_midway_leaves_the_store_as_it_was(run_cli, tmp_path, fail_writes_of):
    """The second file's write fails after its rows went in (a full disk): the first file's are undone too."""
    make_events(2, 2).to_csv(tmp_path / "a.csv", index=False)
    b = make_events(2, 2, start="2024-07-01")
    b["customer_id"], b["event_id"] = "boom", "b-" + b["event_id"]
    b.to_csv(tmp_path / "b.csv", index=False)
    fail_writes_of("boom")
    with pytest.raises(OSError, match="No space"):
        run_cli("ingest", "a.csv", "b.csv", "--no-score")
    assert not (tmp_path / "keymoments.duckdb").exists()


def test_python_api_max_rejects_writes_nothing(tmp_path):
    import keymoments as km
    from keymoments.exceptions import RejectedRowsError

    df = make_events(5, 2)
    df.loc[[0, 3], "rating"] = 9  # 20% rejected
    with km.connect(tmp_path / "km.duckdb") as eng:
        with pytest.raises(RejectedRowsError, match="2 of 10 rows were rejected") as caught:
            eng.ingest(df, max_rejects=0.1, rejects=tmp_path / "r.csv", score=False)
        assert caught.value.result.rejected == 2 and (tmp_path / "r.csv").exists()
        assert eng.count() == 0 and eng.store.count("batches") == 0
        assert eng.ingest(df, max_rejects=0.25, rejects=tmp_path / "r.csv", score=False).accepted == 8
