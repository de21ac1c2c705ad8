"""Progress bars on a terminal, silence elsewhere, and no third-party warnings on the user's terminal
(issue 16 item 9). The commands run as a user runs them: a subprocess whose stderr is a pseudo-terminal, or a
pipe."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from keymoments.testing import make_events


def _run(args: list[str], cwd: Path, *, tty: bool, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run `keymoments ARGS`; stderr is a pseudo-terminal when ``tty``. Returns (code, stdout, stderr)."""
    cmd = [sys.executable, "-m", "keymoments.cli", *args]
    full_env = {**os.environ, **(env or {}), "COLUMNS": "120"}
    if not tty:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full_env, timeout=600)
        return proc.returncode, proc.stdout, proc.stderr
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=slave, text=True, env=full_env, timeout=600)
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    return proc.returncode, proc.stdout, b"".join(chunks).decode("utf-8", "replace")


def _big_csv(path: Path, rows: int) -> None:
    n = rows // 4
    df = make_events(n, 4, customers=n)
    df["event_id"] = [f"e{i}" for i in range(len(df))]
    df.to_csv(path, index=False)


@pytest.mark.slow
def test_ingest_and_report_show_a_bar_on_a_terminal_and_nothing_in_a_pipe(tmp_path):
    _big_csv(tmp_path / "big.csv", 400_000)
    code, out, err = _run(["ingest", "big.csv", "--no-score", "--db", "tty.duckdb"], tmp_path, tty=True)
    assert code == 0, err
    assert "reading big.csv" in err  # the bar's label, drawn while DuckDB reads and checks the file
    assert "400,000 accepted" in out  # the summary stays on stdout
    code, out, err = _run(["ingest", "big.csv", "--no-score", "--db", "pipe.duckdb"], tmp_path, tty=False)
    assert code == 0, err
    assert err == ""  # no bar (DuckDB's own used to print here), no warning
    code, out, err = _run(["ingest", "big.csv", "--no-score", "--db", "pipe.duckdb", "--json"], tmp_path, tty=True)
    assert code == 0, err
    assert json.loads(out)["duplicates"] == 400_000  # a bar on the terminal never takes stdout's output
    make_events(30, 4).to_csv(tmp_path / "small.csv", index=False)
    assert _run(["ingest", "small.csv", "--db", "small.duckdb"], tmp_path, tty=False)[0] == 0
    code, out, err = _run(["report", "--db", "small.duckdb", "--out", "r.html"], tmp_path, tty=True)
    assert code == 0, err
    assert "fitting the report's analyses" in err


@pytest.mark.slow
def test_text_scoring_shows_a_bar_and_no_onnxruntime_warning(tmp_path):
    """A fresh cache makes the encoder build (and quantise) its ONNX graph, where onnxruntime used to print
    "Please consider to run pre-processing before quantization" on the user's terminal."""
    pytest.importorskip("onnxruntime")
    texts = [f"flight {i} was {'great' if i % 2 else 'awful'}, the crew {'smiled' if i % 3 else 'ignored us'}" for i in range(3000)]
    pd.DataFrame({"msg": texts}).to_csv(tmp_path / "t.csv", index=False)
    env = {"KM_CACHE_DIR": str(tmp_path / "cache"), "KM_TEXT_DEVICE": "cpu"}
    code, out, err = _run(["score-text", "t.csv", "--text-col", "msg", "--out", "s.csv"], tmp_path, tty=True, env=env)
    assert code == 0, err
    assert "reading texts" in err  # the encoder's bar
    assert "pre-processing" not in err and "WARNING" not in err
    code, out, err = _run(["score-text", "t.csv", "--text-col", "msg", "--out", "s2.csv"], tmp_path, tty=False, env=env)
    assert code == 0
    assert "pre-processing" not in err and "reading texts" not in err


def test_show_progress_draws_only_when_asked(capsys):
    """The helper every command uses: without show_progress, tasks are silent no-ops (the library, --json)."""
    from io import StringIO

    from rich.console import Console

    from keymoments.present import progress_task, show_progress, track

    with progress_task("silent", total=3) as task:
        task.advance(3)
    assert list(track([1, 2], "silent too")) == [1, 2]
    assert capsys.readouterr() == ("", "")
    buf = StringIO()
    with show_progress(True, console=Console(file=buf, force_terminal=True, width=100)):
        with progress_task("counting sheep", total=2) as task:
            task.advance(2)
    assert "counting sheep" in buf.getvalue()
