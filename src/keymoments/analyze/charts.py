"""Plotly charts of the journey analyses. Figures only: no JavaScript is fetched (the caller embeds
plotly.js from the installed package)."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = [
    "journey_map_figure",
    "keep_order",
    "milestones_figure",
    "peak_end_figure",
    "recognition_figure",
    "recovery_figure",
    "segments_figure",
]

KIND_COLOURS = {"pit": "#d62728", "peak": "#2ca02c", "neutral": "#7f7f7f"}


def _go() -> Any:
    import plotly.graph_objects as go

    return go


def journey_map_figure(touchpoints: pd.DataFrame, overall: float) -> Any:
    """The classic journey map: emotion curve with CIs, pits and peaks marked, volume beneath."""
    from plotly.subplots import make_subplots

    go = _go()
    tp = touchpoints
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.05)
    fig.add_trace(
        go.Scatter(
            x=tp["touchpoint"],
            y=tp["mean_valence"],
            mode="lines+markers",
            name="mean valence",
            line={"shape": "spline", "color": "#1f77b4"},
            marker={"size": 12, "color": [KIND_COLOURS.get(k, "#7f7f7f") for k in tp["kind"]]},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": (tp["ci_high"] - tp["mean_valence"]).tolist(),
                "arrayminus": (tp["mean_valence"] - tp["ci_low"]).tolist(),
            },
            text=tp["kind"],
            hovertemplate="%{x}<br>valence %{y:.2f}<br>%{text}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    if pd.notna(overall):
        fig.add_hline(y=overall, line_dash="dot", annotation_text="overall", row=1, col=1)
    for kind in ("pit", "peak"):
        sel = tp[tp["kind"] == kind]
        for r in sel.itertuples():
            fig.add_annotation(
                x=r.touchpoint, y=r.mean_valence, text=kind, showarrow=True, arrowhead=2,
                ay=30 if kind == "pit" else -30, font={"color": KIND_COLOURS[kind]}, row=1, col=1,
            )
    fig.add_trace(go.Bar(x=tp["touchpoint"], y=tp["events"], name="events", marker_color="#aec7e8"), row=2, col=1)
    fig.update_yaxes(title_text="valence", range=[-1.05, 1.05], row=1, col=1)
    fig.update_yaxes(title_text="events", row=2, col=1)
    keep_order(fig, tp["touchpoint"])
    fig.update_layout(title="Journey map: emotion across touchpoints", showlegend=False, template="plotly_white")
    return fig


def keep_order(fig: Any, touchpoints: Any) -> None:
    """Draw the touchpoints as categories in the journey's order (the order given, for a survey): never sorted,
    and never read as numbers or dates ("2024", "10")."""
    order = [str(t) for t in touchpoints]
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=order)


def _bar_ci(df: pd.DataFrame, x: str, y: str, low: str, high: str, title: str, ytitle: str) -> Any:
    go = _go()
    fig = go.Figure(
        go.Bar(
            x=df[x],
            y=df[y],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": (df[high] - df[y]).tolist(),
                "arrayminus": (df[y] - df[low]).tolist(),
            },
        )
    )
    fig.update_layout(title=title, yaxis_title=ytitle, template="plotly_white")
    return fig


def peak_end_figure(models: pd.DataFrame, metric: str) -> Any:
    return _bar_ci(models, "name", "score", "ci_low", "ci_high", f"Which memory model predicts the outcome ({metric})", metric)


def recovery_figure(groups: pd.DataFrame, outcome: str) -> Any:
    return _bar_ci(groups, "group", "rate", "ci_low", "ci_high", f"Service recovery paradox: {outcome}", outcome)


def segments_figure(tiers: pd.DataFrame, outcome: str | None = None) -> Any:
    """Spend per tier; without spend, the rate (or mean) of ``outcome`` per tier; without either, customers."""
    if "mean_spend" in tiers.columns:
        return _bar_ci(tiers, "tier", "mean_spend", "spend_ci_low", "spend_ci_high", "Spend per customer by valence tier", "spend")
    if outcome is not None:
        col = f"{outcome}_rate" if f"{outcome}_rate" in tiers.columns else f"{outcome}_mean"
        if col in tiers.columns:
            what = "rate" if col.endswith("_rate") else "mean"
            return _bar_ci(tiers, "tier", col, f"{outcome}_ci_low", f"{outcome}_ci_high",
                           f"{outcome} {what} by valence tier", f"{outcome} {what}")  # fmt: skip
    go = _go()
    fig = go.Figure(go.Bar(x=tiers["tier"], y=tiers["customers"], name="customers"))
    fig.update_layout(title="Customers by valence tier", yaxis_title="customers", template="plotly_white")
    return fig


def milestones_figure(effects: pd.DataFrame) -> Any:
    go = _go()
    fig = go.Figure(go.Bar(x=effects["milestone"], y=effects["customers"], name="customers crossing"))
    fig.update_layout(title="Invisible milestones: customers crossing each", template="plotly_white")
    return fig


def recognition_figure(employees: pd.DataFrame) -> Any:
    go = _go()
    df = employees.head(20)
    fig = go.Figure(
        go.Bar(
            x=df["employee_id"],
            y=df["shrunk_lift"],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": (df["ci_high"] - df["shrunk_lift"]).tolist(),
                "arrayminus": (df["shrunk_lift"] - df["ci_low"]).tolist(),
            },
        )
    )
    fig.update_layout(title="Employees behind the peaks (shrunk toward the mean)", template="plotly_white")
    return fig
