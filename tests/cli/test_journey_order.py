"""A store knows whether its journeys have a time order (issue 16 item 4: a survey is not a journey), from its own
rows, whichever command put them there."""

from __future__ import annotations

import pandas as pd

from keymoments.store.shape import journey_order, journeys_time_ordered
from keymoments.store.store import Store
from keymoments.testing import make_events


def test_a_survey_has_no_time_order_and_timed_events_do(run_cli, tmp_path):
    pd.DataFrame({"id": ["r1", "r2", "r3"], "Booking": [5, 3, 4], "Flight": [2, 4, 1], "Baggage": [3, 3, 5]}).to_csv(
        tmp_path / "s.csv", index=False
    )
    code, _, err = run_cli("ingest-survey", "s.csv", "--id-col", "id", "--touchpoints", "Booking,Flight,Baggage",
                           "--scale", "csat5", "--date", "2024-03-01", "--db", "survey.duckdb")  # fmt: skip
    assert code == 0, err
    with Store(tmp_path / "survey.duckdb", read_only=True) as store:
        assert journey_order(store).transitions == 6 and journey_order(store).timed == 0
        assert not journeys_time_ordered(store)
    make_events(5, 3).to_csv(tmp_path / "e.csv", index=False)
    assert run_cli("ingest", "e.csv", "--db", "events.duckdb", "--no-score")[0] == 0
    with Store(tmp_path / "events.duckdb", read_only=True) as store:
        assert journeys_time_ordered(store)
