"""Scorers by name: lexicon and auto, unknown names, and the hook where other scorers register."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from keymoments.exceptions import ConfigError
from keymoments.score import registry
from keymoments.score.base import TextScores
from keymoments.score.lexicon import LexiconScorer
from keymoments.score.registry import available_scorers, get_scorer, register_scorer, resolve_scorer


class FakeScorer:
    name = "fake-positive"

    def score(self, texts):
        n = len(list(texts))
        return TextScores(np.ones(n), np.full(n, 0.5), np.full(n, "positive", dtype=object))


@pytest.fixture
def clean_registry(monkeypatch):
    """A registry holding only the built-in lexicon scorer, restored after the test."""
    registry._load_plugins()  # so that plugins loaded later by other tests cannot leak in
    monkeypatch.setattr(registry, "_registry", {k: v for k, v in registry._registry.items() if k == "lexicon"})
    monkeypatch.setattr(registry, "_aliases", {k: v for k, v in registry._aliases.items() if v == "lexicon"})
    monkeypatch.setattr(registry, "_instances", {})
    monkeypatch.setattr(registry, "_plugin_errors", {})
    monkeypatch.setattr(registry, "_plugins_loaded", True)
    return registry


def test_lexicon_and_auto(clean_registry):
    scorer = get_scorer("lexicon")
    assert isinstance(scorer, LexiconScorer) and scorer.name == "lexicon-vader"
    assert get_scorer() is scorer and get_scorer("auto") is scorer
    assert (
        get_scorer(" LEXICON ") is scorer
        and get_scorer("lexicon-vader") is scorer
        and get_scorer("vader") is scorer
    )


def test_auto_picks_the_semantic_scorer_when_installed():
    # the 'text' extra is installed wherever the tests run (scripts/setup), so auto must not fall back
    assert get_scorer("auto").name.startswith("semantic")


def test_unknown_name_message(clean_registry):
    with pytest.raises(ConfigError) as info:
        get_scorer("lexcion")
    assert str(info.value) == (
        "The text scorer must be one of ['auto', 'lexicon', 'lexicon-vader', 'vader']. "
        "Got 'lexcion' instead. Did you mean 'lexicon'?"
    )
    assert isinstance(info.value, ValueError)
    with pytest.raises(ConfigError, match=r"Got 'bert' instead\.$"):
        get_scorer("bert")


def test_auto_prefers_the_highest_priority(clean_registry):
    register_scorer("fake", FakeScorer, priority=10)
    assert get_scorer("auto").name == "fake-positive"
    assert [s.name for s in available_scorers()] == ["fake", "lexicon"]
    assert get_scorer("lexicon").name == "lexicon-vader"


def test_auto_skips_a_scorer_that_cannot_run(clean_registry):
    def broken():
        raise ImportError("No module named 'onnxruntime'")

    register_scorer("semantic", broken, priority=100)
    assert get_scorer("auto").name == "lexicon-vader"
    with pytest.raises(ConfigError, match="'semantic' cannot run here: No module named 'onnxruntime'"):
        get_scorer("semantic")


def test_registration_rules(clean_registry):
    register_scorer("fake", FakeScorer, aliases=("pos",))
    with pytest.raises(ConfigError, match=r"\['fake'\] are taken"):
        register_scorer("fake", FakeScorer)
    with pytest.raises(ConfigError, match="reserved"):
        register_scorer("auto", FakeScorer)
    with pytest.raises(ConfigError, match="must be callable"):
        register_scorer("thing", "not a factory")  # type: ignore[arg-type]
    first = get_scorer("pos")
    register_scorer("fake", FakeScorer, replace=True)  # drops the alias and the built instance
    assert get_scorer("fake") is not first
    with pytest.raises(ConfigError, match="Got 'pos'"):
        get_scorer("pos")


def test_factory_must_return_a_scorer(clean_registry):
    register_scorer("nothing", lambda: object())
    with pytest.raises(ConfigError, match="not a TextScorer"):
        get_scorer("nothing")


def test_resolve_scorer():
    mine = FakeScorer()
    assert resolve_scorer(mine) is mine
    assert resolve_scorer(None) is get_scorer("auto")
    assert resolve_scorer("lexicon") is get_scorer("lexicon")
    with pytest.raises(ConfigError, match="got int instead"):
        resolve_scorer(3)  # type: ignore[arg-type]


def test_a_plugin_module_registers_itself_on_first_lookup(clean_registry, tmp_path, monkeypatch):
    (tmp_path / "km_fake_plugin.py").write_text(
        textwrap.dedent(
            """
            import numpy as np

            from keymoments.score.base import TextScores
            from keymoments.score.registry import register_scorer


            class PluggedScorer:
                name = "plugged-neutral"

                def score(self, texts):
                    n = len(list(texts))
                    return TextScores(np.zeros(n), np.zeros(n), np.full(n, "neutral", dtype=object))


            register_scorer("plugged", PluggedScorer, priority=5)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "PLUGIN_MODULES", ("km_fake_plugin", "km_absent_plugin"))
    monkeypatch.setattr(registry, "_plugins_loaded", False)
    monkeypatch.delitem(sys.modules, "km_fake_plugin", raising=False)
    assert get_scorer("auto").name == "plugged-neutral"  # the absent module is skipped silently
    assert get_scorer("plugged").name == "plugged-neutral"
    assert registry._plugin_errors == {}


def test_auto_says_why_it_falls_back_to_the_lexicon(clean_registry, monkeypatch, caplog):
    """Issue 16, item 8: auto fell back to the lexicon silently; now the reason is logged with its traceback."""
    monkeypatch.setattr(registry, "_fallbacks", {})

    def broken():
        raise ImportError("onnxruntime is not installed")

    register_scorer("needs-onnx", broken, priority=50)
    with caplog.at_level("WARNING", logger="keymoments.score"):
        assert get_scorer("auto").name == "lexicon-vader"
        get_scorer("auto")  # said once per process, not on every call
    said = [r for r in caplog.records if "needs-onnx" in r.getMessage()]
    assert len(said) == 1 and "onnxruntime is not installed" in said[0].getMessage()
    assert said[0].exc_info is not None  # with the traceback
    assert registry.fallbacks() == {"needs-onnx": "ImportError: onnxruntime is not installed"}


def test_the_command_line_shows_the_fallback_as_one_warning(clean_registry, monkeypatch, tmp_path, capsys):
    from keymoments.cli import main

    monkeypatch.setattr(registry, "_fallbacks", {})
    monkeypatch.delenv("KM_DEBUG", raising=False)

    def broken():
        raise OSError("model file missing")

    register_scorer("needs-file", broken, priority=50)
    (tmp_path / "t.csv").write_text("text\nLovely crew\n")
    with pytest.raises(SystemExit) as done:
        main(["score-text", str(tmp_path / "t.csv"), "--text-col", "text", "--out", str(tmp_path / "o.csv")])
    assert not done.value.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "needs-file" in ln]
    assert lines == ["warning: the 'needs-file' text scorer cannot run here (OSError: model file missing); auto falls back to the next one"]
    assert "Traceback" not in err
