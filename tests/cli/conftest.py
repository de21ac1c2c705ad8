from __future__ import annotations

import json

import pytest


@pytest.fixture
def run_cli(capsys, monkeypatch, tmp_path):
    """Run `keymoments ARGS` in-process from tmp_path; return (exit code, stdout, stderr)."""
    from keymoments.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str, str]:
        code = 0
        try:
            main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    run.json = lambda *a: json.loads(run(*a, "--json")[1])  # type: ignore[attr-defined]
    return run
