"""The figures of the collect step (cost, latency, response types, template concentration, calls over time);
`slmlab.collect.profile` serves them under the same names. Each returns a plotly `go.Figure`.

Usage:
    >>> from slmlab.collect import profile
    >>> fig = profile.plot_cost(calls, by="agent")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from slmlab.collect.profile import _prepare, detect_templates, profile_calls

if TYPE_CHECKING:  # plotly is imported by the plot functions only
    import plotly.graph_objects as go

_METRICS = {
    "cost_usd": "cost (USD)",
    "calls": "calls",
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
}


def plot_cost(
    calls: pl.DataFrame, by: str = "agent", color: str = "model", metric: str = "cost_usd"
) -> go.Figure:
    """Stacked bars of cost (or calls, input or output tokens) per `by`, one colour per `color`.

    Example:
        >>> plot_cost(calls, by="agent", color="model", metric="input_tokens")  # doctest: +SKIP
    """
    go = _plotly()
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {list(_METRICS)}, got {metric!r}")
    table = profile_calls(calls, by=[by, color])
    order = (
        table.group_by(by).agg(pl.col(metric).sum()).sort(metric, descending=True).get_column(by).to_list()
    )
    fig = go.Figure()
    for key in sorted(table.get_column(color).unique().to_list(), key=str):
        part = table.filter(pl.col(color) == key)
        lookup = dict(zip(part.get_column(by).to_list(), part.get_column(metric).to_list(), strict=True))
        fig.add_bar(name=str(key), x=[str(b) for b in order], y=[lookup.get(b, 0) for b in order])
    fig.update_layout(barmode="stack", title=f"{_METRICS[metric]} by {by} and {color}", xaxis_title=by,
                      yaxis_title=_METRICS[metric], legend_title=color)  # fmt: skip
    return fig


def plot_latency(calls: pl.DataFrame, by: str = "model", max_points: int = 3000, seed: int = 0) -> go.Figure:
    """Box plots of latency (successful calls) per `by`; at most `max_points` sampled per group.

    Example:
        >>> plot_latency(calls, by="agent")  # doctest: +SKIP
    """
    go = _plotly()
    df = _prepare(calls, True).filter(~pl.col("_error") & pl.col("latency_ms").is_not_null())
    fig = go.Figure()
    for (key,), part in sorted(df.group_by(by), key=lambda kv: str(kv[0][0])):
        if part.height > max_points:
            part = part.sample(max_points, seed=seed)
        fig.add_box(y=part.get_column("latency_ms").to_list(), name=str(key), boxpoints="outliers")
    fig.update_layout(title=f"latency by {by} (successful calls)", yaxis_title="latency (ms)", yaxis_type="log",
                      showlegend=False)  # fmt: skip
    return fig


def plot_response_types(calls: pl.DataFrame, by: str = "agent") -> go.Figure:
    """Horizontal stacked bars: share of tool calls, text answers and failed calls per `by`.

    Example:
        >>> plot_response_types(calls, by="model")  # doctest: +SKIP
    """
    go = _plotly()
    table = profile_calls(calls, by=by).sort(by, descending=True)
    fig = go.Figure()
    ys = [str(v) for v in table.get_column(by).to_list()]
    for col, name in (("tool_call_share", "tool call"), ("text_share", "text"), ("error_share", "error")):
        fig.add_bar(name=name, y=ys, x=table.get_column(col).to_list(), orientation="h")
    fig.update_layout(barmode="stack", title=f"response types by {by}", xaxis_title="share of calls",
                      xaxis_tickformat=".0%")  # fmt: skip
    return fig


def plot_template_concentration(calls: pl.DataFrame, prefix_chars: int = 50, top: int = 50) -> go.Figure:
    """Cumulative share of calls covered by the k largest prompt templates (k = 1..`top`).

    A curve that reaches 80% within a handful of templates means a few recurring sub-tasks carry the
    workload: the case for specialised small models.

    Example:
        >>> plot_template_concentration(calls)  # doctest: +SKIP
    """
    go = _plotly()
    t = detect_templates(calls, min_share=0.0, prefix_chars=prefix_chars).head(top)
    k = list(range(1, t.height + 1))
    fig = go.Figure()
    fig.add_scatter(x=k, y=t.get_column("cum_share").to_list(), mode="lines+markers", name="templates",
                    text=[f"{a}: {', '.join(b)}" for a, b in zip(t["template"], t["agents"], strict=True)])  # fmt: skip
    fig.add_hline(y=0.8, line_dash="dot", annotation_text="80% of calls")
    fig.update_layout(title="share of calls covered by the top-k prompt templates", xaxis_title="top-k templates",
                      yaxis_title="cumulative share of calls", yaxis_tickformat=".0%", yaxis_range=[0, 1.02])  # fmt: skip
    return fig


def plot_calls_over_time(calls: pl.DataFrame, every: str = "1h", by: str = "agent") -> go.Figure:
    """Calls per time bucket (`every`, a polars duration such as "1h" or "1d"), one line per `by`.

    Example:
        >>> plot_calls_over_time(calls, every="1d")  # doctest: +SKIP
    """
    go = _plotly()
    df = calls.filter(pl.col("timestamp").is_not_null())
    counts = (
        df.with_columns(pl.col("timestamp").dt.truncate(every).alias("bucket"))
        .group_by(["bucket", by])
        .len()
        .sort("bucket")
    )
    fig = go.Figure()
    for key in sorted(counts.get_column(by).unique().to_list(), key=str):
        part = counts.filter(pl.col(by) == key)
        fig.add_scatter(x=part.get_column("bucket").to_list(), y=part.get_column("len").to_list(), mode="lines",
                        name=str(key), stackgroup="calls")  # fmt: skip
    fig.update_layout(title=f"calls per {every} by {by}", xaxis_title="time (UTC)", yaxis_title="calls")
    return fig


def _plotly():
    from slmlab.config import require

    return require("plotly.graph_objects", "core")
