"""docs/cli.md is generated from --help; this fails when a command or option changes without the docs."""

from __future__ import annotations

from pathlib import Path

from keymoments.cli.reference import render

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_cli_reference_is_up_to_date():
    assert DOCS.read_text(encoding="utf-8") == render() + "\n", (
        "docs/cli.md is stale: run `.venv/bin/python -m keymoments.cli.reference > docs/cli.md`"
    )


def test_every_contract_command_is_documented():
    text = DOCS.read_text(encoding="utf-8")
    for cmd in ("demo", "ingest", "ingest-outcomes", "ingest-survey", "score-text", "journey", "moments",
                "peak-end", "roadmap", "report", "serve", "playbooks backtest", "playbooks run"):
        assert f"## `keymoments {cmd}`" in text, cmd
