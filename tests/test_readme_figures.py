"""Every measured figure in the README comes from a results file the benchmarks wrote (bench/out/*.json).

The README's figures sit in one table, "Measured figures": each row gives the value, its 95% interval (or, for a
speed, the range of its runs), the rows it was measured on and the command that prints it, with the key of the
figure in that command's results file. This test checks each row against the file, and that the rest of the
README states no figure (a decimal, a rate, a percentage) that the table does not source.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
OUT = ROOT / "bench" / "out"

#: Phrases the README may state outside the table, each holding a number that is a setting or a version, not a
#: measurement. A number is allowed only inside its phrase, so the same digits elsewhere still need a source.
NOT_FIGURES = {
    "confidence 0.9": "the confidence the contract gives a rating's valence",
    "Python ≥ 3.11": "the Python version",
    "Apache-2.0": "the name of the licence",
    "PySpark 4.0": "the PySpark version the spark extra pins",
    "1 MiB": "the default cap on a request body and on a playbook YAML file (a setting)",
    "128 MiB": "the default cap on an ingest request body (a setting)",
}
_ROW = re.compile(r"^\|(?P<what>[^|]+)\|(?P<value>[^|]+)\|(?P<ci>[^|]+)\|(?P<on>[^|]+)\|(?P<source>[^|]+)\|\s*$")
_SOURCE = re.compile(r"^`(?P<command>[^`]+)`\s*→\s*`(?P<key>[\w]+)\.(?P<field>\w+)`$")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_FIGURE_LIKE = re.compile(
    r"(?<![\d.])\d+\.\d+\b(?!\.\d)"  # a decimal, not a version or a date
    r"|\d[\d,.]*[kKM]?\s*(?:texts|events|tweets|rows|requests)\s*(?:/s|per\s+(?:CPU-)?second)"
    r"|\d+(?:\.\d+)?\s*%"
    r"|\d+(?:\.\d+)?\s*(?:GB|MB|GiB|MiB)\b"
)


def _sections(text: str) -> tuple[list[str], str]:
    """The rows of the Measured figures table, and the README without code blocks, that table and the
    rating-scale table."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    head, _, rest = text.partition("## Measured figures")
    assert rest, "the README has no 'Measured figures' section"
    body, _, tail = rest.partition("\n## ")
    rows = [ln for ln in body.splitlines() if ln.startswith("|")][2:]  # header and rule
    prose = head + "\n## " + tail
    prose = re.sub(r"\| scale \| range \| mapping \|.*?\n\n", "", prose, flags=re.S)
    return rows, prose


def _results() -> dict[str, dict]:
    files = {}
    for path in sorted(OUT.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if "command" in data and "figures" in data:
            files[data["command"]] = data
    return files


def _as_number(text: str) -> tuple[float, int]:
    """The number in a cell and how many decimals it shows."""
    found = _NUMBER.search(text)
    assert found, f"no number in {text!r}"
    digits = found.group().replace(",", "")
    return float(digits), len(digits.split(".")[1]) if "." in digits else 0


def _matches(shown: str, value: float) -> bool:
    number, decimals = _as_number(shown)
    return number == round(float(value), decimals)


def test_every_figure_in_the_table_matches_its_results_file():
    rows, _ = _sections(README.read_text(encoding="utf-8"))
    assert len(rows) >= 8
    results = _results()
    for row in rows:
        cells = _ROW.match(row)
        assert cells, f"a row of Measured figures is not five cells: {row}"
        source = _SOURCE.match(cells["source"].strip())
        assert source, f"{cells['what'].strip()}: name the command and the figure, as `command` → `key.field`"
        data = results.get(source["command"])
        assert data is not None, f"{source['command']!r} wrote no results file in bench/out with this command"
        figure = data["figures"].get(source["key"])
        assert figure is not None, f"{source['command']} has no figure {source['key']!r}"
        value = figure[source["field"]]
        assert _matches(cells["value"], value), (row, value)
        interval = figure.get(f"{source['field']}_95ci") or figure.get(f"{source['field']}_runs") or figure.get("runs")
        assert interval, f"{source['key']}: no interval (95% CI or range of runs) in the results file"
        lo_hi = _NUMBER.findall(cells["ci"])
        assert len(lo_hi) == 2, f"{cells['what'].strip()}: give the interval as lo–hi"
        assert _matches(lo_hi[0], min(interval)) and _matches(lo_hi[1], max(interval)), (row, interval)
        if "n" in figure:  # an accuracy: it names its held-out rows, and how many
            assert data.get("split") == "heldout", f"{source['key']} is not from the held-out run"
            assert "held-out" in cells["on"] and _as_number(cells["on"])[0] == figure["n"], (row, figure["n"])


def test_the_readme_states_no_figure_without_a_source():
    _, prose = _sections(README.read_text(encoding="utf-8"))
    allowed = [(m.start(), m.end()) for phrase in NOT_FIGURES for m in re.finditer(re.escape(phrase), prose)]
    unsourced = [
        m.group() for m in _FIGURE_LIKE.finditer(prose)
        if not any(start <= m.start() and m.end() <= end for start, end in allowed)
    ]  # fmt: skip
    assert not unsourced, (
        f"figures in the README outside 'Measured figures': {unsourced}; put each in the table with the file "
        "that holds it (or, for a setting rather than a measurement, add it to NOT_FIGURES with its reason)"
    )


def test_the_checks_catch_a_figure_with_no_source():
    text = README.read_text(encoding="utf-8").replace("## Use it", "Scores 0.93 on anything.\n\n## Use it", 1)
    _, prose = _sections(text)
    assert "0.93" in [m.group() for m in _FIGURE_LIKE.finditer(prose)]
    with pytest.raises(AssertionError):
        assert _matches("0.80", 0.79)
