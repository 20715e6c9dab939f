"""Reading the experiment matrix: the heat map of agreement per cluster x (model, experiment) and the
verdict per cluster (swap to an SLM, keep on the LLM, or needs more data).

Usage:
    >>> from slmlab.evaluate.verdicts import verdicts
    >>> verdicts(summarize_scores(scores), swap_at=0.9, min_eval=20)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import plotly.graph_objects as go
import polars as pl

VERDICTS = ("swap", "keep_llm", "needs_more_data")


def _value_col(summary: pl.DataFrame, metric: str) -> pl.Expr:
    """The metric where defined for the group, else `agreement` (text clusters have no tool metrics)."""
    fallback = "agreement" if "agreement" in summary.columns else metric
    return pl.coalesce(pl.col(metric), pl.col(fallback))


def plot_experiment_heatmap(
    summary: pl.DataFrame, metric: str = "name_args_exact", cluster_names: Mapping[int, str] | None = None
) -> go.Figure:
    """Heat map of `metric` (falling back to agreement for text clusters): clusters x (model · experiment).

    Each cell shows the mean, its bootstrap interval and the number of evaluated calls.

    Example:
        >>> plot_experiment_heatmap(summarize_scores(scores))  # doctest: +SKIP
    """
    lo = (
        pl.coalesce(pl.col(f"{metric}_lo"), pl.col("agreement_lo"))
        if "agreement_lo" in summary.columns
        else pl.col(f"{metric}_lo")
    )
    hi = (
        pl.coalesce(pl.col(f"{metric}_hi"), pl.col("agreement_hi"))
        if "agreement_hi" in summary.columns
        else pl.col(f"{metric}_hi")
    )
    df = summary.with_columns(
        _value_col(summary, metric).alias("_v"),
        lo.alias("_lo"),
        hi.alias("_hi"),
        (pl.col("model") + " · " + pl.col("experiment")).alias("_x"),
    )
    xs = df.get_column("_x").unique(maintain_order=True).to_list()
    ys = sorted(df.get_column("cluster").unique().to_list())
    z = [[None] * len(xs) for _ in ys]
    text = [[""] * len(xs) for _ in ys]
    for r in df.iter_rows(named=True):
        i, j = ys.index(r["cluster"]), xs.index(r["_x"])
        z[i][j] = r["_v"]
        if r["_v"] is not None:
            text[i][j] = f"{r['_v']:.2f}<br>[{r['_lo'] or 0:.2f}, {r['_hi'] or 0:.2f}]<br>n={r['n']}"
    names = cluster_names or {}
    labels = [f"{c}: {names[c]}" if c in names else str(c) for c in ys]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=xs, y=labels, text=text, texttemplate="%{text}", colorscale="RdYlGn", zmin=0, zmax=1,
            colorbar={"title": metric},
        )
    )  # fmt: skip
    fig.update_layout(
        title=f"Agreement with the LLM on held-out calls ({metric}; agreement for text clusters)",
        xaxis_title="model · experiment",
        yaxis_title="cluster",
        yaxis_type="category",
        height=max(300, 60 * len(ys) + 150),
    )
    return fig


def verdicts(
    summary: pl.DataFrame,
    swap_at: float = 0.9,
    min_eval: int = 20,
    metric: str = "name_args_exact",
    adapters: Mapping[int, str | Path] | None = None,
) -> pl.DataFrame:
    """Per cluster, the best model/experiment and a verdict: swap, keep on the LLM, or needs more data.

    A cluster is "swap" when its best mean `metric` (agreement for text clusters) reaches `swap_at` on at
    least `min_eval` held-out calls; "needs_more_data" when fewer calls were evaluated; else "keep_llm".
    Ties go to the cheaper experiment (base, then tuned, then ICL, whose prompts are longer).

    Returns:
        cluster, verdict, model, experiment, adapter, value, lo, hi, n.

    Example:
        >>> s = pl.DataFrame({"cluster": [0, 0], "model": ["m", "m"], "experiment": ["base", "tuned"], "n": [30, 30],
        ...     "name_args_exact": [0.5, 0.95], "name_args_exact_lo": [0.3, 0.9], "name_args_exact_hi": [0.7, 1.0]})
        >>> verdicts(s).select("verdict", "experiment").row(0)
        ('swap', 'tuned')
    """
    cost_rank = {"base": 0, "tuned": 1, "icl": 2}
    lo = f"{metric}_lo" if f"{metric}_lo" in summary.columns else None
    hi = f"{metric}_hi" if f"{metric}_hi" in summary.columns else None
    has_agree = "agreement" in summary.columns
    df = summary.with_columns(
        _value_col(summary, metric).alias("value"),
        (
            pl.coalesce(pl.col(lo), pl.col("agreement_lo"))
            if lo and has_agree
            else pl.col(lo)
            if lo
            else pl.lit(None)
        ).alias("lo"),
        (
            pl.coalesce(pl.col(hi), pl.col("agreement_hi"))
            if hi and has_agree
            else pl.col(hi)
            if hi
            else pl.lit(None)
        ).alias("hi"),
        pl.col("experiment").replace_strict(cost_rank, default=9, return_dtype=pl.Int32).alias("_rank"),
    )
    best = (
        df.sort(["cluster", "value", "_rank"], descending=[False, True, False], nulls_last=True)
        .group_by("cluster", maintain_order=True)
        .first()
    )
    adapters = {int(k): str(v) for k, v in (adapters or {}).items()}
    verdict = (
        pl.when(pl.col("n") < min_eval)
        .then(pl.lit("needs_more_data"))
        .when(pl.col("value") >= swap_at)
        .then(pl.lit("swap"))
        .otherwise(pl.lit("keep_llm"))
    )
    out = best.with_columns(
        verdict.alias("verdict"),
        pl.struct("cluster", "experiment")
        .map_elements(
            lambda s: adapters.get(s["cluster"]) if s["experiment"] == "tuned" else None,
            return_dtype=pl.String,
        )
        .alias("adapter"),
    )
    return out.select("cluster", "verdict", "model", "experiment", "adapter", "value", "lo", "hi", "n")
