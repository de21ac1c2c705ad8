"""The self-contained HTML report: one file, charts inline, plotly.js embedded once, no network needed.

An analyst can mail it to an executive: it opens offline in any browser. ``keymoments report --out FILE`` and
``keymoments demo`` write it. Each section is one analysis; an analysis that cannot run on the data (no
outcome, too little data, a filter it refuses) leaves a one-line note instead of failing the report. Filters
(segment, channel, date range) apply to every section and are named on the cover.
"""

from __future__ import annotations

import html
import importlib
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from keymoments.analyze.filters import describe_filters, takes_filters
from keymoments.exceptions import KeymomentsError
from keymoments.present import to_jsonable, track
from keymoments.serve import charts
from keymoments.serve.analyses import capture_warnings, status
from keymoments.serve.views import HERE, INTRO, plotly_js, table

__all__ = ["build_report", "write_report"]

log = logging.getLogger("keymoments.serve")

#: (key, title, module, class, needs an outcome)
SECTIONS: list[tuple[str, str, str, str, bool]] = [
    ("journey", "Journey map", "keymoments.analyze.journey", "JourneyMap", False),
    ("moments", "Moments of truth", "keymoments.analyze.moments", "MomentsOfTruth", True),
    ("roadmap", "Roadmap", "keymoments.analyze.roadmap", "Roadmap", True),
    ("peak-end", "Peak-end memory", "keymoments.analyze.peak_end", "PeakEnd", True),
    ("recovery", "Service recovery", "keymoments.analyze.recovery", "Recovery", True),
    ("segments", "Segments and the middle", "keymoments.analyze.segments", "Segments", False),
    ("milestones", "Milestones", "keymoments.analyze.milestones", "Milestones", False),
    ("recognition", "Recognition", "keymoments.analyze.recognition", "Recognition", False),
]

#: the columns each section's main table shows (the rest is in the JSON)
COLUMNS: dict[str, tuple[str, list[str]]] = {
    "journey": ("touchpoints", ["touchpoint", "events", "reach", "mean_valence", "ci_low", "ci_high", "share_negative",
                                "failure_rate", "kind"]),
    "moments": ("touchpoints", ["touchpoint", "impact", "ci_low", "ci_high", "priority", "n", "moment_of_truth"]),
}  # fmt: skip


def _default_outcome(store: Any) -> str | None:
    defs = store.outcome_names()
    for pref in ("retained", "repurchased_90d"):
        if pref in defs:
            return pref
    bools = [n for n, (_, dtype) in sorted(defs.items()) if dtype == "bool"]
    return (bools or sorted(defs) or [None])[0]


def _fit(key: str, module: str, cls_name: str, store: Any, outcome: str | None, journey: Any,
         models: dict[str, Any], filters: dict[str, Any]) -> tuple[Any, list[str]]:  # fmt: skip
    if key in models:
        return models[key], []
    mod = importlib.import_module(module)
    cls = getattr(mod, cls_name)
    if key == "roadmap" and "moments" in models and hasattr(cls, "from_moments"):
        return capture_warnings(cls.from_moments, models["moments"])
    import inspect

    params = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {}
    if "outcome" in params and outcome is not None:
        kwargs["outcome"] = outcome
    if "journey" in params and journey is not None:
        kwargs["journey"] = journey
    if takes_filters(cls):
        kwargs.update({k: v for k, v in filters.items() if v not in (None, "")})
    model = cls(**kwargs)
    _, caveats = capture_warnings(model.fit, store)
    return model, caveats


def build_report(
    store: Any,
    *,
    outcome: str | None = None,
    journey: Any = None,
    title: str = "Customer journey report",
    models: dict[str, Any] | None = None,
    filters: dict[str, Any] | None = None,
) -> str:
    """The report's HTML. ``models``: analyses already fitted (by key, e.g. ``{"journey": jm}``) to reuse, fitted
    under the same ``filters`` (``segment``, ``channel``, ``since``, ``until``) as the rest."""
    if isinstance(journey, str | Path):
        from keymoments.events import JourneyModel

        journey = JourneyModel.from_yaml(journey)
    models = dict(models or {})
    filters = dict(filters or {})
    outcome = outcome or _default_outcome(store)
    sections = []
    headline: dict[str, Any] = {}
    for key, name, module, cls_name, needs_outcome in track(SECTIONS, "fitting the report's analyses"):
        sec: dict[str, Any] = {"key": key, "title": name, "intro": INTRO.get(key, "")}
        if needs_outcome and outcome is None:
            sec["note"] = "No outcome in the store; load one (e.g. retained) to see this analysis."
            sections.append(sec)
            continue
        st = status(key)
        if st.state == "not installed":
            continue
        if not st.ok:
            sec["note"] = f"This analysis failed to load: {st.reason}"
            sections.append(sec)
            continue
        try:
            model, caveats = _fit(key, module, cls_name, store, outcome, journey, models, filters)
        except KeymomentsError as exc:  # the data cannot support it, or a filter it refuses: said in one line
            log.debug("report section %s: %s", key, exc, exc_info=True)
            sec["note"] = f"Not available on this data: {exc}"
            sections.append(sec)
            continue
        except Exception as exc:  # noqa: BLE001 - one analysis that fails must not sink the report
            log.error("report section %s failed", key, exc_info=True)
            sec["note"] = f"This section failed ({type(exc).__name__}: {exc}); the log has the traceback."
            sections.append(sec)
            continue
        models[key] = model
        data = to_jsonable(model.to_dict())
        fig = None
        try:
            fig = charts.moments_figure(data) if key == "moments" else model.figure()
        except Exception:  # noqa: BLE001 - the numbers still go in
            log.warning("report section %s: the chart could not be drawn", key, exc_info=True)
            fig = None
        sec["chart"] = charts.fig_html(fig, height=440) if fig is not None else None
        sec["caveats"] = caveats[:4]
        if key in COLUMNS:
            field, cols = COLUMNS[key]
            recs = data.get(field) or []
            sec["tables"] = [("", table(recs, columns=[c for c in cols if not recs or c in recs[0]], limit=40))]
        else:
            sec["tables"] = [
                (k.replace("_", " ").capitalize(), table(v, limit=25))
                for k, v in data.items()
                if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
            ][:3]
        if key == "journey":
            tps = data["touchpoints"]
            headline.update(
                customers=data["customers"], journeys=data["journeys"], events=data["events"],
                valence=data["overall_valence"],
                pits=[t["touchpoint"] for t in tps if t["kind"] == "pit"],
                peaks=[t["touchpoint"] for t in tps if t["kind"] == "peak"],
            )  # fmt: skip
        if key == "moments" and data.get("mode", "valence") == "valence":  # without valence the section says what it is
            top = sorted(data["touchpoints"], key=lambda r: -(r.get("priority") or 0))[:3]
            headline["moments"] = top
            headline["unit"] = data.get("unit")
        sections.append(sec)
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]))
    tpl = env.get_template("report.html")
    return tpl.render(
        title=title, outcome=outcome, sections=sections, h=headline, generated=datetime.now(UTC),
        css=(HERE / "static" / "app.css").read_text(encoding="utf-8"), plotly_js=plotly_js(),
        source=html.escape(str(getattr(store, "path", ""))), filtered=describe_filters(filters),
    )  # fmt: skip


def write_report(store: Any, out: str | Path, **kwargs: Any) -> Path:
    """Write the report atomically (a temporary file renamed into place); return its path."""
    out = Path(out)
    text = build_report(store, **kwargs)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".report-", suffix=".html")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a report is an ordinary file
    os.replace(tmp, out)
    return out
