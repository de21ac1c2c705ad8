"""The analyses the API and the dashboard serve, by route name, with one runner for all of them.

Each entry names the fitter (module and class, as the CLI uses them). An analysis whose module has not been
installed yet is simply not served (:func:`available`); one whose module is there but fails to import is
*failed*, not missing: :func:`status` tells the two apart, with the reason, and logs the traceback. The runner fits on the server's store with the
server's journey model, captures statistical caveats (warnings) instead of failing, and caches the fitted
object and its JSON per data version and parameters (the event filters among them, so each filter set is
its own cache entry).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import logging
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from keymoments.present import to_jsonable

__all__ = [
    "ANALYSES", "AnalysisResult", "AnalysisSpec", "ModuleStatus", "available", "capture_warnings", "run_analysis",
    "status",
]  # fmt: skip

log = logging.getLogger("keymoments.serve")


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


@dataclass(frozen=True)
class ModuleStatus:
    """Whether an analysis can be served: ``state`` is "ok", "not installed" (its module is absent) or "failed"
    (its module is there but cannot be imported, or lacks its class); ``reason`` says why when not "ok"."""

    state: str
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "ok"


_status_cache: dict[str, ModuleStatus] = {}


def status(name: str) -> ModuleStatus:
    """Whether the analysis ``name`` is installed and loads; a failure to load is logged with its traceback."""
    hit = _status_cache.get(name)
    if hit is not None:
        return hit
    spec = ANALYSES[name]
    try:
        found = importlib.util.find_spec(spec.module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        found = False
    if not found:
        st = ModuleStatus("not installed", f"the module {spec.module} is not installed")
    else:
        try:
            module = importlib.import_module(spec.module)
        except Exception as exc:  # noqa: BLE001 - reported as failed, with the reason, instead of crashing the server
            log.exception("the %s analysis (%s) failed to import", name, spec.module)
            st = ModuleStatus("failed", f"{spec.module} failed to import: {type(exc).__name__}: {exc}")
        else:
            st = ModuleStatus("ok") if hasattr(module, spec.cls) else ModuleStatus(
                "failed", f"{spec.module} defines no {spec.cls}")  # fmt: skip
            if not st.ok:
                log.error("the %s analysis cannot be served: %s", name, st.reason)
    _status_cache[name] = st
    return st


def available(name: str) -> bool:
    """Whether the analysis's module is installed and defines its class (see :func:`status` for why not)."""
    return status(name).ok


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
            log.warning("the %s chart could not be drawn; the page shows the numbers only", self.name, exc_info=True)
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
