"""Figures and display tables of the savings step: cost before/after, where the savings come from,
break-even, quality vs cost.

Every function returns a `go.Figure` and never shows it. Orders are stable (clusters by id, agents by
name), so a figure redrawn by the dashboard keeps its bars in place.

Usage:
    >>> from slmlab.savings import plot_break_even  # plot_break_even(break_even_curve(result, spec), result)
"""

from __future__ import annotations

import math

import plotly.graph_objects as go
import polars as pl

from slmlab.savings.model import SavingsResult, monthly_volume

BEFORE_COLOUR = "#636efa"
AFTER_COLOUR = "#00cc96"


def _key_order(t: pl.DataFrame, by: str) -> pl.DataFrame:
    """Rows in the key's own order (cluster ids numerically, agents by name): stable across refreshes."""
    return t.sort(by, nulls_last=True)


def cost_table(result: SavingsResult, by: str = "cluster") -> pl.DataFrame:
    """The monthly costs per cluster or agent, rounded and with short headers, so it fits a notebook's
    output (the full-precision table is `result.by_cluster` / `result.by_agent`), in key order.

    Example:
        >>> # cost_table(result).columns[:4]  ->  ['cluster', 'calls', 'on SLM', 'before $/mo']
    """
    t = _key_order(result.by_agent if by == "agent" else result.by_cluster, by)
    return t.select(
        pl.col(by),
        pl.col("calls"),
        pl.col("slm_calls").alias("on SLM"),
        pl.col("monthly_before_usd").round(2).alias("before $/mo"),
        pl.col("monthly_after_usd").round(2).alias("after $/mo"),
        pl.col("monthly_saved_usd").round(2).alias("saved $/mo"),
        pl.col("mean_latency_before_ms").round(0).alias("ms before"),
        pl.col("mean_latency_after_ms").round(0).alias("ms after"),
    )


def plot_cost_before_after(result: SavingsResult, by: str = "agent", title: str | None = None) -> go.Figure:
    """Grouped bars: monthly cost before and after the swap, per agent or per cluster (in key order)."""
    t = _key_order(result.by_agent if by == "agent" else result.by_cluster, by)
    x = [str(v) for v in t[by].to_list()]
    fig = go.Figure(
        [
            go.Bar(
                name="before (all LLM)", x=x, y=t["monthly_before_usd"].to_list(), marker_color=BEFORE_COLOUR
            ),
            go.Bar(name="after (routed)", x=x, y=t["monthly_after_usd"].to_list(), marker_color=AFTER_COLOUR),
        ]
    )
    fig.update_layout(
        barmode="group",
        title=title or f"Monthly cost by {by}",
        yaxis_title="USD / month",
        xaxis_title=by,
        xaxis={"type": "category", "categoryorder": "array", "categoryarray": x},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def plot_savings_waterfall(result: SavingsResult, title: str | None = None) -> go.Figure:
    """Waterfall from the monthly cost before to after, one step per cluster that moves calls (by id)."""
    t = _key_order(result.by_cluster.filter(pl.col("slm_calls") > 0), "cluster")
    eng = result.assumptions["self_hosted"]["engineering_usd_month"] if t.height else 0.0
    x = (
        ["before"]
        + [f"cluster {c}" for c in t["cluster"].to_list()]
        + (["engineering"] if eng else [])
        + ["after"]
    )
    y = (
        [result.total["monthly_before_usd"]]
        + [-v for v in t["monthly_saved_usd"].to_list()]
        + ([eng] if eng else [])
        + [0]
    )
    measure = ["absolute"] + ["relative"] * (len(x) - 2) + ["total"]
    fig = go.Figure(go.Waterfall(x=x, y=y, measure=measure))
    fig.update_layout(title=title or "Where the monthly savings come from", yaxis_title="USD / month")
    return fig


def plot_break_even(
    curve: pl.DataFrame,
    result: SavingsResult | None = None,
    scenario_calls_per_month: float | None = None,
) -> go.Figure:
    """Monthly cost vs monthly volume; where 'after' crosses 'before' the swap starts to pay.

    Marks the observed volume, the break-even volume and the production scenario where given. A curve
    whose volumes span more than 100x (`break_even_curve(..., min_calls=...)`) is drawn on a log axis.
    """
    fig = go.Figure()
    for col, name in (
        ("before_usd", "all LLM"),
        ("after_usd", "routed (at set utilization)"),
        ("after_dedicated_gpu_usd", "routed (dedicated GPU)"),
    ):
        fig.add_scatter(x=curve["calls_per_month"].to_list(), y=curve[col].to_list(), name=name, mode="lines")
    vol = curve["calls_per_month"]
    log_x = bool(vol.min() > 0 and vol.max() / vol.min() > 100)
    marks = []  # (x, label, colour, dash, anchor, height)
    if result is not None:
        marks.append((monthly_volume(result), "observed volume", "#444", "dot", "left", 1.0))
        be = result.break_even_calls_per_month
        if be and vol.min() <= be <= vol.max():
            marks.append((be, "break-even", "crimson", "solid", "left", 0.9))
    if scenario_calls_per_month:
        marks.append((scenario_calls_per_month, "production scenario", "green", "dash", "right", 1.0))
    for x, label, colour, dash, anchor, height in marks:
        fig.add_vline(x=x, line_color=colour, line_dash=dash)
        # Placed by hand: add_vline's own annotation lands off the plot on a log axis (plotly
        # positions annotations there by log10 of the value).
        fig.add_annotation(
            x=math.log10(x) if log_x else x,
            y=height,
            yref="paper",
            text=label,
            showarrow=False,
            xanchor="right" if anchor == "right" else "left",
            yanchor="bottom",
            font={"color": colour, "size": 11},
        )
    fig.update_layout(
        title="Break-even volume",
        xaxis_title="calls / month" + (" (log scale)" if log_x else ""),
        yaxis_title="USD / month",
        xaxis_type="log" if log_x else "linear",
        yaxis_type="log" if log_x else "linear",
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def plot_quality_cost_frontier(points: pl.DataFrame, random_points: pl.DataFrame | None = None) -> go.Figure:
    """Quality vs monthly cost for router thresholds (columns: monthly_cost_usd, quality), random router too."""
    fig = go.Figure()
    fig.add_scatter(
        x=points["monthly_cost_usd"].to_list(),
        y=points["quality"].to_list(),
        mode="lines+markers",
        name="cluster router",
    )
    if random_points is not None:
        fig.add_scatter(
            x=random_points["monthly_cost_usd"].to_list(),
            y=random_points["quality"].to_list(),
            mode="lines",
            name="random router",
            line_dash="dash",
        )
    fig.update_layout(
        title="Quality vs cost", xaxis_title="USD / month", yaxis_title="agreement with the LLM"
    )
    return fig
