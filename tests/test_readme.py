"""The README's Python snippet runs as written, and its Quickstart matches .ci/run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_snippet_runs(tmp_path, monkeypatch):
    from keymoments.examples import generate_airline

    demo = generate_airline(600, seed=2)
    demo.events.assign(attrs=None).to_parquet(tmp_path / "events.parquet")
    demo.outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no python snippet"
    namespace: dict = {}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-sample caveats are expected on 600 customers
        exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert namespace["eng"].count() == len(demo.events)
    assert list(namespace["mot"].summary.columns)


def test_quickstart_has_two_commands_and_ci_runs_the_test_one():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Quickstart", 1)[1].split("```", 2)[1]
    commands = [ln.split("#")[0].strip() for ln in block.splitlines()[1:] if ln.split("#")[0].strip()]
    assert len(commands) == 2
    assert commands[1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
