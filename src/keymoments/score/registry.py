"""Text scorers by name, so a better model drops in without editing any caller.

Callers ask for a scorer by name (``get_scorer("lexicon")``) or for the best one available
(``get_scorer("auto")``, the default). A scorer module registers itself when it is imported::

    # keymoments/score/semantic.py
    from keymoments.score.registry import register_scorer

    register_scorer("semantic", SemanticScorer, priority=100, aliases=("minilm",))

``auto`` tries the registered scorers from the highest ``priority`` down and returns the first whose factory
works; a factory that raises :class:`ImportError`, :class:`OSError` or :class:`~keymoments.exceptions.ConfigError`
(a missing optional dependency or model file) is skipped, so ``auto`` always falls back to the lexicon scorer
(priority 0), which every install has. Asked for by name, such a scorer raises its error instead.

Where scorers come from, all loaded once, on the first lookup:

1. the built-in :class:`~keymoments.score.lexicon.LexiconScorer`, as ``"lexicon"`` (alias ``"lexicon-vader"``,
   its stored model name, and ``"vader"``);
2. the optional modules of this package named in :data:`PLUGIN_MODULES` (``keymoments.score.semantic``):
   imported if present, skipped if absent or if importing them fails with :class:`ImportError`;
3. other packages, through the entry-point group :data:`ENTRY_POINT_GROUP` (``keymoments.scorers``): each
   entry point is loaded (which imports its module, which calls :func:`register_scorer`).

Scorers are built once per name and shared, so they must be safe to call from several threads.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from keymoments.events import did_you_mean
from keymoments.exceptions import ConfigError
from keymoments.score.base import TextScorer

__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGIN_MODULES",
    "ScorerInfo",
    "available_scorers",
    "fallbacks",
    "get_scorer",
    "register_scorer",
    "resolve_scorer",
]

#: Optional scorer modules of this package, imported (when present) on the first lookup.
PLUGIN_MODULES: tuple[str, ...] = ("keymoments.score.semantic",)
#: Entry-point group through which other packages add scorers.
ENTRY_POINT_GROUP = "keymoments.scorers"

#: Exceptions that mean "this scorer cannot run here" (missing dependency or model file), not a bug.
_UNAVAILABLE = (ImportError, OSError, ConfigError)


@dataclass(frozen=True)
class ScorerInfo:
    """One registered scorer."""

    name: str
    factory: Callable[[], TextScorer] = field(repr=False)
    priority: int = 0
    aliases: tuple[str, ...] = ()


_lock = threading.RLock()
_registry: dict[str, ScorerInfo] = {}
_aliases: dict[str, str] = {}
_instances: dict[str, TextScorer] = {}
_plugin_errors: dict[str, str] = {}
#: why ``auto`` passed over a scorer: {name: "ExceptionType: message"} (also logged once, with the traceback)
_fallbacks: dict[str, str] = {}
log = logging.getLogger("keymoments.score")
_plugins_loaded = False


def register_scorer(
    name: str,
    factory: Callable[[], TextScorer],
    priority: int = 0,
    *,
    aliases: tuple[str, ...] | list[str] = (),
    replace: bool = False,
) -> None:
    """Make a scorer available as ``name`` (and its ``aliases``); ``auto`` prefers a higher ``priority``.

    ``factory`` takes no arguments and returns a :class:`TextScorer`; it is called on first use, so
    registering costs nothing. Registering a taken name raises :class:`ConfigError` unless ``replace=True``.
    """
    key = name.strip().lower()
    if not key or key == "auto":
        raise ConfigError(f"A scorer cannot be registered as {name!r}: the name is empty or reserved.")
    if not callable(factory):
        raise ConfigError(f"The factory of scorer {name!r} must be callable; got {type(factory).__name__}.")
    alias_keys = tuple(a.strip().lower() for a in aliases)
    with _lock:
        taken = {k for k in (key, *alias_keys) if k in _registry or k in _aliases}
        if taken and not replace:
            raise ConfigError(f"Scorer name(s) {sorted(taken)} are taken; pass replace=True to replace them.")
        for k in taken:  # a replaced scorer goes whole: its other aliases and its built instance too
            _forget(_aliases.get(k, k))
        _registry[key] = ScorerInfo(key, factory, int(priority), alias_keys)
        for a in alias_keys:
            _aliases[a] = key


def _forget(key: str) -> None:
    info = _registry.pop(key, None)
    if info is not None:
        for a in info.aliases:
            _aliases.pop(a, None)
    _instances.pop(key, None)


def _load_plugins() -> None:
    global _plugins_loaded
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        for module in PLUGIN_MODULES:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    _plugin_errors[module] = str(exc)
                    log.info("the optional scorer module %s is not installed: %s", module, exc, exc_info=True)
            except ImportError as exc:
                _plugin_errors[module] = str(exc)
                log.warning("the scorer module %s failed to import: %s", module, exc, exc_info=True)
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except ImportError as exc:
                _plugin_errors[ep.value] = str(exc)
                log.warning("the scorer entry point %s failed to load: %s", ep.value, exc, exc_info=True)


def available_scorers() -> list[ScorerInfo]:
    """The registered scorers, the one ``auto`` tries first first (whether each can run is checked on use)."""
    _load_plugins()
    with _lock:
        return sorted(_registry.values(), key=lambda s: (-s.priority, s.name))


def _build(key: str) -> TextScorer:
    with _lock:
        if key not in _instances:
            scorer = _registry[key].factory()
            if not isinstance(scorer, TextScorer):
                raise ConfigError(
                    f"The factory of scorer {key!r} returned {type(scorer).__name__}, which is not a TextScorer "
                    "(it needs a 'name' and a 'score(texts)' method)."
                )
            _instances[key] = scorer
        return _instances[key]


def get_scorer(name: str = "auto") -> TextScorer:
    """The text scorer called ``name``, or the best available one for ``"auto"``.

    >>> get_scorer("lexicon").name
    'lexicon-vader'
    """
    _load_plugins()
    key = str(name).strip().lower()
    if key.endswith(".npz"):  # a domain model saved by `keymoments learn-text` (DomainTextModel.save)
        return _saved_model(str(name).strip())
    if key == "auto":
        reasons = []
        for info in available_scorers():
            try:
                return _build(info.name)
            except _UNAVAILABLE as exc:
                reason = f"{type(exc).__name__}: {exc}"
                reasons.append(f"{info.name}: {reason}")
                if _fallbacks.get(info.name) != reason:  # said once per process, with the traceback
                    _fallbacks[info.name] = reason
                    log.warning("the %r text scorer cannot run here (%s); auto falls back to the next one",
                                info.name, reason, exc_info=True)  # fmt: skip
        raise ConfigError("No text scorer can run here: " + "; ".join(reasons))
    with _lock:
        key = _aliases.get(key, key)
        known = key in _registry
        choices = ["auto", *sorted(_registry), *sorted(_aliases)]
    if not known:
        hint = did_you_mean(name, choices)
        broken = "".join(
            f" (The optional module {m} could not be imported: {e}.)" for m, e in _plugin_errors.items()
        )
        raise ConfigError(f"The text scorer must be one of {choices}. Got {name!r} instead.{hint}{broken}")
    try:
        return _build(key)
    except ConfigError:
        raise
    except (ImportError, OSError) as exc:
        raise ConfigError(f"The text scorer {key!r} cannot run here: {exc}") from exc


def fallbacks() -> dict[str, str]:
    """Why ``auto`` passed over each scorer it could not build in this process: ``{name: reason}`` (empty when
    the best one ran)."""
    with _lock:
        return dict(_fallbacks)


def resolve_scorer(scorer: str | TextScorer | None) -> TextScorer:
    """A scorer from a name, an instance or None (``auto``); what functions taking ``scorer=`` call."""
    if scorer is None:
        return get_scorer("auto")
    if isinstance(scorer, str):
        return get_scorer(scorer)
    if isinstance(scorer, TextScorer):
        return scorer
    raise ConfigError(
        f"The 'scorer' parameter must be a scorer name or a TextScorer; got {type(scorer).__name__} instead."
    )


def _saved_model(path: str) -> TextScorer:
    from pathlib import Path  # noqa: PLC0415

    from keymoments.score.domain import DomainTextModel  # noqa: PLC0415

    if not Path(path).is_file():
        raise ConfigError(f"The text model file {path!r} does not exist; `keymoments learn-text` writes one.")
    return DomainTextModel.load(path)


def _lexicon() -> TextScorer:
    from keymoments.score.lexicon import LexiconScorer  # noqa: PLC0415  (light, but only loaded when used)

    return LexiconScorer()


register_scorer("lexicon", _lexicon, priority=0, aliases=("lexicon-vader", "vader"))
