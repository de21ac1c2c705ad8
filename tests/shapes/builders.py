"""The data shapes the analyses must be right on: small files generated here, ingested through the CLI.

Each builder writes its input files into a folder and returns the CLI ingest commands that load them, so a
shape goes in the way a user's data does (``ingest-survey`` for the survey, ``ingest`` of an XES log for the
process log). Everything is seeded: the same shape, the same store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["SHAPES", "Shape"]


@dataclass(frozen=True)
class Shape:
    name: str
    #: the outcome analyses are asked about (a shape without outcomes still gets asked, and must refuse clearly)
    outcome: str
    #: what the shape holds, for the matrix in the closing note
    about: str
    #: the commands (CLI argv, without --db) that load it; the demo is built through the Python API instead
    ingest: list[list[str]] = field(default_factory=list)


def _survey(folder: Path, n: int = 160, seed: int = 3) -> list[list[str]]:
    """A wide CSAT survey: one row per respondent, four touchpoint columns, one response date, an outcome."""
    rng = np.random.default_rng(seed)
    tps = ["Booking", "Check-in", "Flight", "Baggage"]
    rows = []
    for i in range(n):
        base = rng.normal(3.6, 0.8)
        ratings = {tp: int(np.clip(round(base + rng.normal(0, 0.9)), 1, 5)) for tp in tps}
        if rng.random() < 0.1:
            ratings["Baggage"] = 0  # not rated
        score = 0.9 * (ratings["Check-in"] - 3) + 0.4 * (ratings["Flight"] - 3) + rng.normal(0, 0.8)
        rows.append({"resp": f"R{i:04d}", "date": (datetime(2024, 3, 1) + timedelta(days=int(i % 60))).date().isoformat(),
                     **ratings, "recommend": "yes" if score > 0 else "no"})
    path = folder / "survey.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    # the given order is not alphabetical, so a chart that sorts by name shows it
    return [["ingest-survey", str(path), "--id-col", "resp", "--touchpoints", ",".join(tps), "--scale", "csat5",
             "--outcome-col", "recommend", "--na-value", "0", "--ts-col", "date"]]


def _purchases(folder: Path, n: int = 150, seed: int = 4) -> list[list[str]]:
    """Purchases with an amount: no rating, no text. Outcome: repurchased within a year after the window."""
    rng = np.random.default_rng(seed)
    events, outcomes = [], []
    start = datetime(2021, 1, 1, tzinfo=UTC)
    for i in range(n):
        cid = f"C{i:04d}"
        k = int(rng.choice([1, 1, 1, 2, 2, 3, 4, 6, 9]))
        t = start + timedelta(days=float(rng.uniform(0, 400)))
        spent = 0.0
        for _ in range(k):
            value = round(float(rng.lognormal(3.5, 0.6)), 2)
            spent += value
            events.append({"customer_id": cid, "ts": t.isoformat(), "touchpoint": "store" if rng.random() < 0.6 else "web",
                           "channel": "retail", "value": value})
            t += timedelta(days=float(rng.exponential(90)))
        p = 1 / (1 + np.exp(-(k - 2.5)))
        outcomes.append({"customer_id": cid, "repurchased": bool(rng.random() < p),
                         "spend_next_12m": round(float(spent * rng.uniform(0.2, 0.6)), 2)})
    pd.DataFrame(events).to_csv(folder / "purchases.csv", index=False)
    pd.DataFrame(outcomes).to_csv(folder / "purchase_outcomes.csv", index=False)
    return [["ingest", str(folder / "purchases.csv")],
            ["ingest-outcomes", str(folder / "purchase_outcomes.csv"), "--key", "customer_id"]]


_MESSAGES = [
    ("Thanks so much, the agent fixed my booking in minutes!", 1),
    ("Still waiting for my refund after three weeks. Terrible.", 0),
    ("The app keeps crashing when I try to check in.", 0),
    ("Lovely crew and a smooth flight, thank you.", 1),
    ("My bag never arrived and nobody answers the phone.", 0),
    ("Great seat, great food, would fly again.", 1),
    ("Where is my order? It has been two weeks.", 0),
    ("Quick delivery and the support chat was helpful.", 1),
]


def _messages(folder: Path, n: int = 90, seed: int = 5) -> list[list[str]]:
    """Text-only messages (a support inbox): no touchpoint, no rating, no value; an outcome per customer."""
    rng = np.random.default_rng(seed)
    rows, outcomes = [], []
    start = datetime(2024, 5, 1, tzinfo=UTC)
    for i in range(n):
        cid = f"M{i:03d}"
        good = 0
        for j in range(int(rng.integers(1, 4))):
            text, pos = _MESSAGES[int(rng.integers(0, len(_MESSAGES)))]
            good += pos
            rows.append({"customer_id": cid, "ts": (start + timedelta(days=i % 30, hours=j * 5)).isoformat(),
                         "touchpoint": "", "text": text})
        outcomes.append({"customer_id": cid, "retained": "yes" if good or rng.random() < 0.3 else "no"})
    pd.DataFrame(rows).to_csv(folder / "messages.csv", index=False)
    pd.DataFrame(outcomes).to_csv(folder / "message_outcomes.csv", index=False)
    return [["ingest", str(folder / "messages.csv")],
            ["ingest-outcomes", str(folder / "message_outcomes.csv"), "--key", "customer_id"]]


def _process_log(folder: Path, n: int = 40, seed: int = 6) -> list[list[str]]:
    """A tiny helpdesk process log in XES: traces of activities with resources, no ratings, no outcomes."""
    rng = np.random.default_rng(seed)
    paths = [["Open ticket", "Assign", "Resolve", "Close"], ["Open ticket", "Assign", "Escalate", "Resolve", "Close"],
             ["Open ticket", "Resolve", "Close"]]
    start = datetime(2023, 2, 1, tzinfo=UTC)
    traces = []
    for i in range(n):
        t = start + timedelta(days=i)
        evs = []
        for act in paths[int(rng.integers(0, len(paths)))]:
            t += timedelta(hours=float(rng.uniform(1, 30)))
            evs.append(f'<event><string key="concept:name" value="{act}"/>'
                       f'<string key="org:resource" value="Agent {int(rng.integers(1, 5))}"/>'
                       f'<date key="time:timestamp" value="{t.isoformat()}"/></event>')
        traces.append(f'<trace><string key="concept:name" value="case-{i:03d}"/>{"".join(evs)}</trace>')
    xes = ('<?xml version="1.0" encoding="UTF-8"?>\n<log xes.version="1.0" xmlns="http://www.xes-standard.org/">'
           + "".join(traces) + "</log>\n")
    (folder / "helpdesk.xes").write_text(xes, encoding="utf-8")
    return [["ingest", str(folder / "helpdesk.xes")]]


def _one_customer(folder: Path) -> list[list[str]]:
    """One customer's three rated events and an outcome."""
    rows = [{"customer_id": "solo", "ts": f"2024-01-0{d}T10:00:00Z", "touchpoint": tp, "rating": r, "rating_scale": "csat5"}
            for d, tp, r in ((1, "booking", 4), (2, "flight", 2), (3, "arrival", 5))]
    pd.DataFrame(rows).to_csv(folder / "solo.csv", index=False)
    pd.DataFrame([{"customer_id": "solo", "retained": "yes"}]).to_csv(folder / "solo_outcomes.csv", index=False)
    return [["ingest", str(folder / "solo.csv")], ["ingest-outcomes", str(folder / "solo_outcomes.csv")]]


SHAPES: dict[str, tuple[Shape, object]] = {
    "demo": (Shape("demo", "retained", "the demo airline, 250 customers: ratings, text, crises, employees, outcomes"), None),
    "survey": (Shape("survey", "recommend", "a CSAT survey (ingest-survey): one timestamp per respondent"), _survey),
    "purchases": (Shape("purchases", "repurchased", "purchases with amounts: no rating, no text"), _purchases),
    "messages": (Shape("messages", "retained", "text-only messages without touchpoints"), _messages),
    "process": (Shape("process", "retained", "a helpdesk process log (XES): no ratings, no outcomes"), _process_log),
    "one-customer": (Shape("one-customer", "retained", "one customer, three rated events"), _one_customer),
    "empty": (Shape("empty", "retained", "a store with nothing in it"), None),
}


def build(name: str, folder: Path) -> Path:
    """Build the store of one shape in ``folder`` (files and store); return the store's path."""
    from keymoments.cli import main
    from keymoments.store.store import Store

    folder.mkdir(parents=True, exist_ok=True)
    db = folder / f"{name}.duckdb"
    shape, make = SHAPES[name]
    if name == "demo":
        from keymoments.examples import generate_airline
        from keymoments.score.store import score_store
        from keymoments.store.writer import ingest_events_frame, ingest_outcomes_frame

        demo = generate_airline(250, seed=7)
        with Store(db) as store:
            ingest_events_frame(store, demo.events, source="demo")
            ingest_outcomes_frame(store, demo.outcomes, key="customer_id")
            ingest_outcomes_frame(store, demo.customers, key="customer_id", attributes_only=True)
            score_store(store)
        return db
    if make is None:  # the empty store
        Store(db).close()
        return db
    for argv in make(folder):  # type: ignore[operator]
        try:
            main([*argv, "--db", str(db), "--json"])
        except SystemExit as exc:
            if exc.code:
                raise RuntimeError(f"building shape {name!r}: `keymoments {' '.join(argv)}` exited {exc.code}") from None
    return db
