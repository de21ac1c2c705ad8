"""Issue 16, item 8: what the server catches is logged with its traceback, and the dashboard tells an analysis
that is not installed from one that failed, with the reason."""

from __future__ import annotations

import logging
import sys

import pytest

from keymoments.serve import analyses, views
from keymoments.serve.analyses import ANALYSES, AnalysisSpec, ModuleStatus, status


@pytest.fixture
def fake_analyses(monkeypatch, tmp_path):
    """Two extra analyses: one whose module does not exist, one whose module raises when imported."""
    (tmp_path / "km_broken_analysis.py").write_text("raise RuntimeError('a column the code expects is gone')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(analyses, "_status_cache", {})
    extra = {
        "absent": AnalysisSpec("absent", "km_no_such_module", "X", "Absent", "keymoments absent"),
        "broken": AnalysisSpec("broken", "km_broken_analysis", "X", "Broken", "keymoments broken"),
    }
    monkeypatch.setattr(analyses, "ANALYSES", {**ANALYSES, **extra})
    yield
    sys.modules.pop("km_broken_analysis", None)


def test_status_tells_not_installed_from_failed(fake_analyses, caplog):
    with caplog.at_level(logging.ERROR, logger="keymoments.serve"):
        assert status("absent") == ModuleStatus("not installed", "the module km_no_such_module is not installed")
        broken = status("broken")
    assert broken.state == "failed" and "RuntimeError: a column the code expects is gone" in broken.reason
    logged = [r for r in caplog.records if "broken" in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert status("journey").ok


@pytest.mark.parametrize(("state", "code", "says"), [
    (ModuleStatus("not installed", "the module x is not installed"), 400, "is not installed (the module x is not installed)"),
    (ModuleStatus("failed", "x failed to import: RuntimeError: boom"), 500, "failed to load: x failed to import: RuntimeError: boom"),
])  # fmt: skip
def test_the_dashboard_says_which(empty_api, monkeypatch, state, code, says):
    monkeypatch.setattr(views, "status", lambda name: state if name == "segments" else ModuleStatus("ok"))
    r = empty_api.get("/segments")
    assert r.status_code == code
    assert says in r.text


def test_an_internal_error_on_a_page_is_logged_with_its_traceback(empty_api, monkeypatch, caplog):
    def boom(*a, **k):
        raise TypeError("'>' not supported between instances of 'NoneType' and 'float'")

    monkeypatch.setattr(views, "run_analysis", boom)
    with caplog.at_level(logging.ERROR, logger="keymoments.serve"):
        r = empty_api.get("/journey")
    assert r.status_code == 500
    assert "Internal error (TypeError: &#39;&gt;&#39; not supported" in r.text
    rec = [x for x in caplog.records if x.levelno == logging.ERROR and "/journey" in x.getMessage()]
    assert rec and rec[0].exc_info is not None


def test_data_that_cannot_support_an_analysis_is_a_page_not_an_error(empty_api):
    r = empty_api.get("/segments")
    assert r.status_code == 200
    assert "Not available on this data" in r.text and "ingest events first" in r.text
