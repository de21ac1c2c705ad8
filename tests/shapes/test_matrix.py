"""Every analysis command, with and without --json, plus the report, on every data shape.

Each cell of the matrix either succeeds (exit 0, output on stdout) or refuses: exit 2, nothing on stdout, and
one line on stderr that says what the data lacks and what to add (the fragment pinned below). Nothing raises a
traceback, and no human output shows a raw Python value (``np.float64(``, ``None``, ``nan``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .builders import SHAPES

LIBRARY = Path(__file__).resolve().parents[2] / "src" / "keymoments" / "act" / "library"

#: command -> argv after `keymoments` ({o}: the shape's outcome)
COMMANDS: dict[str, list[str]] = {
    "journey": ["journey"],
    "moments": ["moments", "--outcome", "{o}", "--n-boot", "100"],
    "roadmap": ["roadmap", "--outcome", "{o}", "--n-boot", "100"],
    "peak-end": ["peak-end", "--outcome", "{o}"],
    "segments": ["segments"],
    "recovery": ["recovery", "--outcome", "{o}"],
    "milestones": ["milestones"],
    "recognition": ["recognition"],
    "backtest": ["playbooks", "backtest", str(LIBRARY / "service-recovery.yaml")],
}

OK = "ok"
#: (shape, command) -> "ok", or a regular expression the one-line refusal must match
EXPECTED: dict[str, dict[str, str]] = {
    "demo": dict.fromkeys([*COMMANDS, "report"], OK),
    "survey": {
        "journey": OK, "moments": OK, "roadmap": OK,
        "peak-end": r"share one timestamp.*(survey|order)",
        "segments": OK,
        "recovery": r"[Nn]o crises.*outcome",
        "milestones": r"[Nn]o milestones.*(repeat|purchases|value)",
        "recognition": r"employee_id",
        "backtest": OK, "report": OK,
    },
    "purchases": {
        "journey": OK, "moments": OK,
        "roadmap": r"no valence.*moments",
        "peak-end": r"no valence.*(rating|text)",
        "segments": r"rating.*text",
        "recovery": r"[Nn]o crises.*outcome",
        "milestones": OK,
        "recognition": r"employee_id",
        "backtest": OK, "report": OK,
    },
    "messages": {
        "journey": r"touchpoint.*--journey",
        "moments": r"touchpoint.*--journey",
        "roadmap": r"touchpoint.*--journey",
        "peak-end": OK, "segments": OK,
        "recovery": r"[Nn]o crises.*outcome",
        "milestones": r"[Nn]o milestones",
        "recognition": r"employee_id",
        "backtest": OK, "report": OK,
    },
    "process": {
        "journey": OK,
        "moments": r"[Nn]o outcomes.*ingest-outcomes",
        "roadmap": r"[Nn]o outcomes.*ingest-outcomes",
        "peak-end": r"[Nn]o outcomes.*ingest-outcomes",
        "segments": r"rating.*text",
        "recovery": r"[Nn]o outcomes.*ingest-outcomes",
        "milestones": r"[Nn]o milestones",
        "recognition": r"rated|rating",
        "backtest": OK, "report": OK,
    },
    "one-customer": {
        "journey": OK,
        "moments": r"single value|1 customer",
        "roadmap": r"single value|1 customer",
        "peak-end": r"at least 10",
        "segments": r"at least 10",
        "recovery": r"[Nn]o crises.*outcome",
        "milestones": r"[Nn]o milestones",
        "recognition": r"employee_id",
        "backtest": OK, "report": OK,
    },
    "empty": {
        **dict.fromkeys(["journey", "segments", "milestones", "recognition", "backtest"], r"[Nn]o events.*ingest"),
        **dict.fromkeys(["moments", "roadmap", "peak-end", "recovery"], r"[Nn]o outcomes.*ingest-outcomes"),
        "report": OK,
    },
}  # fmt: skip

RAW = re.compile(r"np\.(float|int)\d*\(|\bNone\b|\bnan\b|\bNaN\b")


def _argv(shape: str, command: str) -> list[str]:
    o = SHAPES[shape][0].outcome
    return [a.replace("{o}", o) for a in COMMANDS[command]]


def _check_refusal(expected: str, code: int, out: str, err: str) -> None:
    assert code == 2, f"a refusal exits 2, got {code}: {err}"
    assert out == "", f"a refusal prints nothing on stdout: {out[:300]}"
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    others = [ln for ln in err.splitlines() if ln and not ln.startswith(("error:", "warning:"))]
    assert len(errors) == 1 and not others, f"a refusal is one line: {err}"
    assert re.search(expected, errors[0]), f"{errors[0]!r} does not say {expected!r}"


CELLS = [(s, c) for s in SHAPES for c in COMMANDS]


def test_the_matrix_names_every_cell():
    for shape in SHAPES:
        assert set(EXPECTED[shape]) == {*COMMANDS, "report"}, shape


@pytest.mark.parametrize(("shape", "command"), CELLS, ids=[f"{s}-{c}" for s, c in CELLS])
def test_command_on_shape(km, shape_db, shape_copy, shape, command):
    db = shape_copy(shape) if command == "backtest" else shape_db(shape)
    argv = [*_argv(shape, command), "--db", str(db)]
    expected = EXPECTED[shape][command]
    code, out, err = km(*argv)
    assert not RAW.search(out + err), f"raw Python values in the human output:\n{out}\n{err}"
    if expected == OK:
        assert code == 0, err
        assert out.strip()
    else:
        _check_refusal(expected, code, out, err)
    code_j, out_j, err_j = km(*argv, "--json")
    if expected == OK:
        assert code_j == 0, err_j
        json.loads(out_j)
    else:
        _check_refusal(expected, code_j, out_j, err_j)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_report_on_shape(km, shape_db, tmp_path, shape):
    out_file = tmp_path / f"{shape}.html"
    code, out, err = km("report", "--db", str(shape_db(shape)), "--out", str(out_file))
    assert code == 0, err
    html = out_file.read_text(encoding="utf-8")
    body = html[html.index("<body"):]
    body = re.sub(r"<script.*?</script>", "", body, flags=re.S)
    assert not RAW.search(re.sub(r"<[^>]+>", " ", body)), "raw Python values in the report"
