"""Charts the dashboard and the report draw themselves (the analyses' own ``figure()`` covers the rest), and
the one function that turns any Plotly figure into an HTML fragment in the product's look."""

from __future__ import annotations

from typing import Any

__all__ = ["FONT", "PIT", "PEAK", "NEUTRAL", "fig_div", "fig_html", "moments_figure", "roadmap_curve_figure", "style"]

PIT = "#d64550"
PEAK = "#1f9d6b"
NEUTRAL = "#8a94a6"
ACCENT = "#3b5bdb"
FONT = "Inter, 'Segoe UI', system-ui, -apple-system, Roboto, 'Helvetica Neue', Arial, sans-serif"


def style(fig: Any, *, height: int | None = 420) -> Any:
    """The product's chart look: white, quiet grid, system fonts, tight margins, no title (the card has one)."""
    title = fig.layout.title.text if fig.layout.title and fig.layout.title.text else None
    fig.update_layout(
        template="plotly_white",
        font={"family": FONT, "size": 13, "color": "#1f2733"},
        margin={"l": 48, "r": 16, "t": 16 if not title else 16, "b": 48},
        title=None,
        height=height,
        autosize=True,
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        hoverlabel={"font": {"family": FONT}},
    )
    fig.update_xaxes(gridcolor="#eef0f4", zerolinecolor="#d7dbe3")
    fig.update_yaxes(gridcolor="#eef0f4", zerolinecolor="#d7dbe3")
    return fig


CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


def fig_html(fig: Any, *, height: int | None = 420) -> str:
    """A figure as a <div> fragment with its inline script, for the self-contained report; plotly.js itself is
    loaded once by the page (never from a CDN)."""
    return style(fig, height=height).to_html(full_html=False, include_plotlyjs=False, config=CONFIG,
                                             default_width="100%")  # fmt: skip


def fig_div(fig: Any, *, height: int | None = 420) -> str:
    """A figure as a <div> holding its JSON, drawn by the dashboard's /static/app.js: no inline script, so the
    dashboard's Content-Security-Policy can refuse every inline script."""
    import html
    import json

    import plotly.io as pio

    spec = pio.to_json(style(fig, height=height), validate=False)
    size = f"height:{int(height)}px; width:100%;" if height else "width:100%;"
    return (
        f'<div class="plotly-graph-div km-chart" style="{size}" data-figure="{html.escape(spec, quote=True)}" '
        f'data-config="{html.escape(json.dumps(CONFIG), quote=True)}"></div>'
    )


def moments_figure(data: dict[str, Any]) -> Any:
    """Impact of each touchpoint on the outcome with its CI, largest priority on top."""
    import plotly.graph_objects as go

    rows = [r for r in data.get("touchpoints", []) if r.get("impact") is not None]
    rows = sorted(rows, key=lambda r: (r.get("priority") or 0, r.get("impact") or 0))
    y = [r["touchpoint"] for r in rows]
    x = [r["impact"] for r in rows]
    lo = [r["impact"] - r["ci_low"] if r.get("ci_low") is not None else 0 for r in rows]
    hi = [r["ci_high"] - r["impact"] if r.get("ci_high") is not None else 0 for r in rows]
    colours = [PEAK if (r.get("ci_low") or 0) > 0 else (PIT if (r.get("ci_high") or 0) < 0 else NEUTRAL) for r in rows]
    fig = go.Figure(
        go.Bar(
            x=x, y=y, orientation="h", marker_color=colours,
            error_x={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo, "color": "#5c6678"},
            hovertemplate="%{y}<br>impact %{x:+.3f}<extra></extra>",
        )
    )  # fmt: skip
    unit = data.get("unit", "")
    per = "per +1 valence" if data.get("mode", "valence") == "valence" else "of having it (per doubling of money spent)"
    fig.update_layout(xaxis_title=f"impact on {data.get('outcome', 'the outcome')} {per} ({unit})")
    fig.add_vline(x=0, line_color="#9aa3b2")
    return fig


def roadmap_curve_figure(curve: list[dict[str, Any]]) -> Any | None:
    """Today's emotion curve against the future state."""
    import plotly.graph_objects as go

    if not curve:
        return None
    keys = set(curve[0])
    now_key = next((k for k in ("current_valence", "current", "valence") if k in keys), None)
    fut_key = next((k for k in ("future_valence", "future", "target") if k in keys), None)
    if now_key is None or fut_key is None or "touchpoint" not in keys:
        return None
    x = [r["touchpoint"] for r in curve]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[r[now_key] for r in curve], name="today", mode="lines+markers",
                             line={"color": NEUTRAL, "shape": "spline"}))  # fmt: skip
    fig.add_trace(go.Scatter(x=x, y=[r[fut_key] for r in curve], name="future state", mode="lines+markers",
                             line={"color": ACCENT, "shape": "spline", "dash": "dash"}))  # fmt: skip
    fig.update_layout(yaxis_title="valence", yaxis_range=[-1.05, 1.05], legend={"orientation": "h", "y": 1.1})
    return fig
