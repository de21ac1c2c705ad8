"""The analyses the API and the dashboard serve, by route name, with one runner for all of them.

Each entry names the fitter (module and class, as the CLI uses them). An analysis whose module has not been
installed yet is simply not served (:func:`available`). The runner fits on the server's store with the
server's journey model, captures statistical caveats (warnings) instead of failing, and caches the fitted
object and its JSON per data version and parameters (the event filters among them, so each filter set is
its own cache entry).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from keymoments.present import to_jsonable

__all__ = ["ANALYSES", "AnalysisResult", "AnalysisSpec", "available", "capture_warnings", "run_analysis"]


@dataclass(frozen=True)
class AnalysisSpec:
    name: str  # the route: /api/v1/analyses/<name>
    module: str
    cls: str
    title: str
    cli: str  # the CLI command with the same parameters and JSON


ANALYSES: dict[str, AnalysisSpec] = {
    s.name: s
    for s in [
        AnalysisSpec("journey", "keymoments.analyze.journey", "JourneyMap", "Journey map", "keymoments journey"),
        AnalysisSpec("moments", "keymoments.analyze.moments", "MomentsOfTruth", "Moments of truth", "keymoments moments"),
        AnalysisSpec("peak-end", "keymoments.analyze.peak_end", "PeakEnd", "Peak-end memory", "keymoments peak-end"),
        AnalysisSpec("segments", "keymoments.analyze.segments", "Segments", "Segments and the middle", "keymoments segments"),
        AnalysisSpec("recovery", "keymoments.analyze.recovery", "Recovery", "Service recovery", "keymoments recovery"),
        AnalysisSpec("milestones", "keymoments.analyze.milestones", "Milestones", "Milestones", "keymoments milestones"),
        AnalysisSpec("recognition", "keymoments.analyze.recognition", "Recognition", "Recognition", "keymoments recognition"),
        AnalysisSpec("roadmap", "keymoments.analyze.roadmap", "Roadmap", "Roadmap", "keymoments roadmap"),
    ]
}


def available(name: str) -> bool:
    """Whether the analysis's module is installed and defines its class."""
    spec = ANALYSES[name]
    try:
        if importlib.util.find_spec(spec.module) is None:
            return False
        return hasattr(importlib.import_module(spec.module), spec.cls)
    except Exception:  # noqa: BLE001 - a module that fails to import is not served
        return False


@dataclass
class AnalysisResult:
    """A fitted analysis, its JSON (as the CLI's --json prints it) and the caveats raised while fitting."""

    name: str
    model: Any
    data: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    _body: bytes | None = None

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._body = json.dumps(self.data, ensure_ascii=False, allow_nan=False).encode("utf-8")
        return self._body

    def figure(self) -> Any | None:
        fig = getattr(self.model, "figure", None)
        if fig is None:
            return None
        try:
            return fig()
        except Exception:  # noqa: BLE001 - a chart that cannot be drawn leaves the numbers
            return None


#: fitting touches the warnings filters, which are process-wide: one fit at a time records them
_fit_lock = threading.Lock()


def capture_warnings(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, list[str]]:
    """Run ``fn`` and return (its result, the messages of the warnings it raised) instead of emitting them."""
    with _fit_lock, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))


def _build(spec: AnalysisSpec, params: dict[str, Any], journey: Any) -> Any:
    cls = getattr(importlib.import_module(spec.module), spec.cls)
    accepted = inspect.signature(cls).parameters
    open_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    kwargs = {k: v for k, v in params.items() if v is not None and (k in accepted or open_kwargs)}
    if journey is not None and "journey" in accepted:
        kwargs["journey"] = journey
    return cls(**kwargs)


def run_analysis(state: Any, name: str, params: dict[str, Any]) -> AnalysisResult:
    """Fit (or fetch from the cache) one analysis on the server's store."""
    spec = ANALYSES[name]
    key = (name, tuple(sorted((k, v) for k, v in params.items() if v is not None)))

    def compute() -> AnalysisResult:
        model = _build(spec, params, state.journey)
        _, msgs = capture_warnings(model.fit, state.store)
        return AnalysisResult(name, model, to_jsonable(model.to_dict()), msgs)

    return state.results.get(key, compute)
