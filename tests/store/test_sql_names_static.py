"""A static guard: no SQL text in src/ is built from a name by hand (issue 15, item 2).

Every data-derived identifier reaches SQL through :func:`keymoments.quoting.quote_ident` and every literal
through a bound parameter or :func:`keymoments.quoting.quote_literal`. This test reads the source (AST) and
fails on the shapes that hand-built quoting takes:

* a value put between quotes in an f-string, ``f'AS "{name}"'`` / ``f"`{name}`"`` (an identifier quoted by
  hand: a ``"`` inside the name ends it);
* in an f-string that reads as SQL, a value right after an opening quote, ``f"name = '{v}'"``;
* quotes doubled by hand (``.replace("'", "''")``, ``.replace('"', '""')``, ``chr(39)``) outside quoting.py.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import keymoments

SRC = Path(keymoments.__file__).parent
_SQL = re.compile(
    r"\b(SELECT|FROM|WHERE|INSERT|UPDATE|DELETE|JOIN|FILTER|UNPIVOT|PIVOT|COPY|ATTACH|CREATE|CAST)\b", re.I
)
_QUOTES = ('"', "'", "`")
#: values an f-string quotes that are not SQL (the value's expression -> why it is fine)
NOT_SQL = {
    "mo['text']": "a customer's words quoted in a recognition note",
    "' '.join(path)": "a Markdown heading in the CLI reference",
    "size": "an HTML style attribute of a chart's div (serve/charts.py)",
    "html.escape(spec, quote=True)": "a chart's JSON in an HTML attribute, escaped for HTML",
    "html.escape(json.dumps(CONFIG), quote=True)": "the charts' Plotly config in an HTML attribute, escaped for HTML",
}


def _problems(path: Path) -> list[str]:
    where = path.relative_to(SRC.parent) if path.is_relative_to(SRC.parent) else path.name
    out = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = node.values
            text = "".join(p.value if isinstance(p, ast.Constant) else "{}" for p in parts)
            sql = bool(_SQL.search(text))
            for i, p in enumerate(parts):
                if not isinstance(p, ast.FormattedValue):
                    continue
                before = parts[i - 1].value if i and isinstance(parts[i - 1], ast.Constant) else ""
                after = (
                    parts[i + 1].value
                    if i + 1 < len(parts) and isinstance(parts[i + 1], ast.Constant)
                    else ""
                )
                opened = str(before)[-1:] in _QUOTES
                closed = str(after)[:1] in _QUOTES
                if ast.unparse(p.value) in NOT_SQL:
                    continue
                if (opened and closed and str(before)[-1] == str(after)[0] and str(before)[-1] != "'") or (
                    sql and opened
                ):
                    out.append(f"{where}:{node.lineno}: {ast.unparse(node)[:100]}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "replace"
        ):
            args = [a.value for a in node.args if isinstance(a, ast.Constant)]
            if args in (["'", "''"], ['"', '""'], ["`", "``"]):
                out.append(f"{where}:{node.lineno}: quotes doubled by hand: {ast.unparse(node)[:80]}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "chr":
            out.append(f"{where}:{node.lineno}: chr() in source: {ast.unparse(node)[:80]}")
    return out


def test_no_sql_is_built_from_a_name_without_quote_ident():
    problems = [p for f in sorted(SRC.rglob("*.py")) if f.name != "quoting.py" for p in _problems(f)]
    assert not problems, "SQL built from names by hand; use keymoments.quoting:\n" + "\n".join(problems)


def test_the_guard_catches_the_shapes_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "n = 'x'\n"
        "a = f'SELECT max(v) AS \"{n}\" FROM t'\n"
        'b = ", ".join(f\'"{c}"\' for c in [n])\n'
        "c = f\"SELECT 1 FROM t WHERE name = '{n}'\"\n"
        'd = n.replace("\'", "\'\'")\n'
        "e = f'max(value) FILTER (WHERE name = {n}) AS c'\n",  # fine: no quotes around the value
        encoding="utf-8",
    )
    found = _problems(bad)
    assert sorted(f.split(":")[1] for f in found) == ["2", "3", "4", "5"]
