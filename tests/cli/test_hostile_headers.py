"""An innocent header with quotes in it (``Tier "gold" status``) works everywhere a name goes (issue 15, item 2):
as a customer attribute from an outcome table, and as a survey touchpoint and outcome."""

from __future__ import annotations

import pandas as pd

HEADER = 'Tier "gold" status'


def test_a_quoted_header_as_an_attribute_works_in_moments(run_cli, tmp_path):
    code, _, err = run_cli("demo", "--customers", "300", "--seed", "5")
    assert code == 0, err
    customers = pd.read_csv(tmp_path / "keymoments-demo" / "customers.csv")
    tiers = pd.DataFrame({"customer_id": customers["customer_id"],
                          HEADER: ["gold" if i % 3 == 0 else "silver" for i in range(len(customers))]})  # fmt: skip
    tiers.to_csv(tmp_path / "tiers.csv", index=False)  # the CSV header reads "Tier ""gold"" status"
    assert '"Tier ""gold"" status"' in (tmp_path / "tiers.csv").read_text().splitlines()[0]
    got = run_cli.json("ingest-outcomes", "tiers.csv")
    assert got["attributes"] == [HEADER]
    for _ in range(2):  # "breaks moments for good": it works, and again
        body = run_cli.json("moments", "--outcome", "retained", "--n-boot", "50")
        assert body["outcome"] == "retained" and body["n"] == 300
    seg = run_cli.json("journey", "--segment", f"{HEADER}=gold")
    assert seg["filters"]["segment"] == f"{HEADER}=gold"


def test_a_quoted_header_in_a_survey_is_a_touchpoint_and_an_outcome(run_cli, tmp_path):
    n = 80
    df = pd.DataFrame({
        "id": [f"r{i}" for i in range(n)],
        HEADER: [1 + i % 5 for i in range(n)],
        "it's; DROP TABLE events; --": [1 + (i * 7) % 5 for i in range(n)],
        'rebook"': [1 + (i * 3) % 5 for i in range(n)],
        "loyal \"yes\"": ["yes" if (i * 11) % 7 > 2 else "no" for i in range(n)],
    })  # fmt: skip
    df.to_csv(tmp_path / "survey.csv", index=False)
    tps = [HEADER, "it's; DROP TABLE events; --", 'rebook"']
    got = run_cli.json("ingest-survey", "survey.csv", "--id-col", "id", "--touchpoints", ",".join(tps),
                       "--scale", "csat5", "--outcome-col", 'loyal "yes"', "--date", "2025-01-01")  # fmt: skip
    assert got["accepted"] == 3 * n
    body = run_cli.json("moments", "--outcome", 'loyal "yes"', "--n-boot", "50")
    assert {t["touchpoint"] for t in body["touchpoints"]} == set(tps)
    journey = run_cli.json("journey")
    assert {t["touchpoint"] for t in journey["touchpoints"]} == set(tps)
