"""Replay and threshold sweeps: logged calls through a router, with measured agreement, latency and cost.

`replay` pushes logged calls through a router and attaches the measured agreement, latency and cost per
call; `threshold_sweep` traces quality against the share of calls kept on the LLM, summarized by
`call_share_for_quality` and `apgr` (average performance gap recovered), as in RouteLLM, and
`share_at_agreement` (the share of calls an SLM takes at a given agreement).

Usage:
    >>> from slmlab.route.replay import threshold_sweep, apgr
    >>> apgr(threshold_sweep(test_calls, router, scores))  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import polars as pl

from slmlab.route.routers import ROUTE_COLUMNS, Router


def _slm_outcomes(
    calls: pl.DataFrame, router: Router, scores: pl.DataFrame, clusters: np.ndarray
) -> pl.DataFrame:
    """Per call, the measured agreement / tokens / latency of the SLM configuration its cluster routes to."""
    info = router.routes.select(
        pl.col("cluster").cast(pl.Int64).alias("route_cluster"), pl.col("model").alias("_model"),
        pl.col("experiment").alias("_experiment"), pl.col("adapter").alias("_adapter"),
    )  # fmt: skip
    base = pl.DataFrame(
        {"call_id": calls.get_column("call_id"), "route_cluster": pl.Series(clusters, dtype=pl.Int64)}
    )
    base = base.with_row_index("_i").join(info, on="route_cluster", how="left")
    sc = scores.select(
        "call_id",
        *[
            pl.col(c) if c in scores.columns else pl.lit(None, dtype=pl.String).alias(c)
            for c in ("model", "experiment", "adapter")
        ],
        pl.col("agreement").alias("slm_agreement"),
        pl.col("output_tokens").alias("slm_output_tokens")
        if "output_tokens" in scores.columns
        else pl.lit(None, dtype=pl.Int64).alias("slm_output_tokens"),
        pl.col("latency_ms").alias("slm_latency_ms")
        if "latency_ms" in scores.columns
        else pl.lit(None, dtype=pl.Float64).alias("slm_latency_ms"),
    )
    # Match the route's model/experiment (and adapter for "tuned") where the routes name them.
    joined = base.join(sc, on="call_id", how="left").filter(
        (pl.col("_model").is_null() | (pl.col("model") == pl.col("_model")))
        & (pl.col("_experiment").is_null() | (pl.col("experiment") == pl.col("_experiment")))
        & (
            (pl.col("_experiment") != "tuned")
            | pl.col("_adapter").is_null()
            | (pl.col("adapter") == pl.col("_adapter"))
        )
    )
    best = joined.sort("slm_agreement", descending=True, nulls_last=True).unique("_i", keep="first")
    out = base.select("_i").join(
        best.select("_i", "slm_agreement", "slm_output_tokens", "slm_latency_ms"), on="_i", how="left"
    )
    return out.sort("_i").drop("_i")


def replay(
    calls: pl.DataFrame,
    router: Router,
    scores: pl.DataFrame,
    prices: pl.DataFrame | None = None,
    threshold: float | None = None,
    slm_cost_per_mtok: float | None = None,
) -> pl.DataFrame:
    """Held-out logged calls through the router, with what each decision would have cost and scored.

    Args:
        calls: logged calls (call table; prompt columns are all the router reads).
        router: a fitted router.
        scores: per-call evaluation scores (`slmlab.evaluate.score_calls` / `run_experiments`); the row of
            the route's model and experiment gives an SLM-routed call its measured agreement.
        prices: LLM price table (`slmlab.collect.pricing.load_prices()`) for calls without a logged cost.
        threshold: routing threshold (default: the router's).
        slm_cost_per_mtok: a simple USD per million tokens (prompt + output) for SLM calls; None leaves
            SLM cost to the savings step (`slmlab.savings`).

    Returns:
        call_id, cluster (when logged), route_cluster, route_score, routed_to, slm_model, experiment, adapter,
        agreement (1.0 for calls kept on the LLM by definition; the measured score for SLM calls, null where
        that call was not evaluated), measured (bool), slm_output_tokens, slm_latency_ms, llm_cost_usd,
        replay_cost_usd, replay_latency_ms.
    """
    routed = router.route(calls, threshold)
    outcome = _slm_outcomes(calls, router, scores, routed.get_column("route_cluster").to_numpy())
    df = pl.concat([routed, outcome], how="horizontal")
    if prices is not None and ("cost_usd" not in df.columns or df.get_column("cost_usd").null_count()):
        from slmlab.collect.pricing import estimate_cost

        df = estimate_cost(df, prices)
    for col, dtype in (
        ("cost_usd", pl.Float64),
        ("latency_ms", pl.Float64),
        ("input_tokens", pl.Int64),
        ("output_tokens", pl.Int64),
    ):
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=dtype).alias(col))
    slm = pl.col("routed_to") == "slm"
    slm_tokens = pl.col("input_tokens").fill_null(0) + pl.coalesce(
        pl.col("slm_output_tokens"), pl.col("output_tokens")
    ).fill_null(0)
    slm_cost = (
        slm_tokens * slm_cost_per_mtok / 1e6
        if slm_cost_per_mtok is not None
        else pl.lit(None, dtype=pl.Float64)
    )
    df = df.with_columns(
        pl.when(slm).then(pl.col("slm_agreement")).otherwise(1.0).alias("agreement"),
        (~slm | pl.col("slm_agreement").is_not_null()).alias("measured"),
        pl.col("cost_usd").alias("llm_cost_usd"),
        pl.when(slm).then(slm_cost).otherwise(pl.col("cost_usd")).alias("replay_cost_usd"),
        pl.when(slm)
        .then(pl.col("slm_latency_ms"))
        .otherwise(pl.col("latency_ms"))
        .alias("replay_latency_ms"),
    )
    keep = ["call_id"] + (["cluster"] if "cluster" in df.columns else []) + list(ROUTE_COLUMNS)
    keep += [
        "agreement",
        "measured",
        "slm_output_tokens",
        "slm_latency_ms",
        "llm_cost_usd",
        "replay_cost_usd",
        "replay_latency_ms",
    ]
    return df.select(keep)


def threshold_sweep(
    calls: pl.DataFrame,
    router: Router,
    scores: pl.DataFrame,
    thresholds: Sequence[float] | None = None,
    missing_agreement: float = 0.0,
) -> pl.DataFrame:
    """Quality (mean agreement with the LLM) against the share of calls kept on the LLM, per threshold.

    The router scores the calls once; each threshold is then a numpy comparison. An SLM-routed call that
    was not evaluated counts as `missing_agreement` (0.0: an unmeasured answer is assumed wrong).

    Returns:
        threshold, llm_share, slm_share, quality, slm_agreement (mean agreement of the SLM-routed calls
        alone), n, plus quality_all_llm (1.0) and quality_all_slm (every call on its SLM route), which
        `apgr` and `call_share_for_quality` use.
    """
    clusters, s, ok = router.decide(calls)
    outcome = _slm_outcomes(calls, router, scores, clusters)
    a = outcome.get_column("slm_agreement").cast(pl.Float64).fill_null(missing_agreement).to_numpy()
    if thresholds is None:
        finite = s[ok & np.isfinite(s)]
        qs = np.unique(np.quantile(finite, np.linspace(0, 1, 41))) if finite.size else np.array([])
        thresholds = np.concatenate([[-np.inf], qs, [np.inf]])
    rows = []
    n = len(s)
    for t in thresholds:
        to_slm = ok & (s >= t)
        q = float(np.where(to_slm, a, 1.0).mean()) if n else float("nan")
        rows.append(
            {
                "threshold": float(t),
                "llm_share": 1 - to_slm.mean() if n else 1.0,
                "slm_share": to_slm.mean() if n else 0.0,
                "quality": q,
                "slm_agreement": float(a[to_slm].mean()) if to_slm.any() else None,
                "n": n,
            }
        )
    out = pl.DataFrame(rows).with_columns(
        pl.lit(1.0).alias("quality_all_llm"),
        pl.lit(float(a.mean()) if n else float("nan")).alias("quality_all_slm"),
    )
    return out.sort("llm_share", "quality")


def _curve(sweep: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(llm_share, PGR) points with the all-SLM (0, 0) and all-LLM (1, 1) endpoints, sorted by share."""
    weak, strong = float(sweep["quality_all_slm"][0]), float(sweep["quality_all_llm"][0])
    gap = strong - weak
    share = np.concatenate([[0.0], sweep["llm_share"].to_numpy(), [1.0]])
    qual = np.concatenate([[weak], sweep["quality"].to_numpy(), [strong]])
    pgr = (qual - weak) / gap if gap > 0 else np.ones_like(qual)
    order = np.lexsort((pgr, share))
    return share[order], pgr[order], weak, strong


def apgr(sweep: pl.DataFrame) -> float:
    """Average performance gap recovered (RouteLLM): area under PGR vs share of calls kept on the LLM.

    PGR = (quality - quality_all_slm) / (quality_all_llm - quality_all_slm). The curve runs from all-SLM
    (share 0, PGR 0) to all-LLM (share 1, PGR 1); between swept points it is linear. A random router
    scores about 0.5; a perfect one close to 1.

    Example:
        >>> sw = pl.DataFrame({"llm_share": [0.5], "quality": [0.75], "quality_all_llm": [1.0], "quality_all_slm": [0.5]})
        >>> apgr(sw)
        0.5
    """
    share, pgr, _, _ = _curve(sweep)
    # Upper envelope: at one share a router can always pick its best threshold.
    xs, ys = [], []
    for x, y in zip(share, pgr, strict=True):
        if xs and x == xs[-1]:
            ys[-1] = max(ys[-1], y)
        else:
            xs.append(x)
            ys.append(y)
    return float(np.trapezoid(ys, xs))


def share_at_agreement(sweep: pl.DataFrame, level: float = 0.9) -> dict[str, float | None]:
    """The largest share of calls an SLM takes while its routed calls agree with the LLM at >= `level`.

    Example:
        >>> sweep = pl.DataFrame({"threshold": [0.0, 0.5, 0.9], "slm_share": [0.4, 0.25, 0.1],
        ...                       "slm_agreement": [0.7, 0.92, 1.0]})
        >>> share_at_agreement(sweep, 0.9)
        {'level': 0.9, 'slm_share': 0.25, 'slm_agreement': 0.92, 'threshold': 0.5}
    """
    ok = sweep.filter(pl.col("slm_agreement") >= level).sort("slm_share", descending=True)
    if ok.is_empty():
        return {"level": level, "slm_share": 0.0, "slm_agreement": None, "threshold": None}
    row = ok.row(0, named=True)
    return {
        "level": level,
        "slm_share": float(row["slm_share"]),
        "slm_agreement": float(row["slm_agreement"]),
        "threshold": float(row["threshold"]),
    }


def call_share_for_quality(
    sweep: pl.DataFrame, levels: Sequence[float] = (0.5, 0.8, 0.95), relative_to: str = "gap"
) -> pl.DataFrame:
    """The smallest share of calls kept on the LLM that reaches each quality level (RouteLLM's CPT).

    Args:
        levels: targets as fractions.
        relative_to: "gap" (RouteLLM: a level of the performance gap recovered between all-SLM and
            all-LLM) or "llm" (a level of the LLM's own quality, agreement 1.0).

    Returns:
        level, llm_share (null when no swept threshold reaches the level), threshold, quality.

    Example:
        >>> sw = pl.DataFrame({"threshold": [0.9, 0.5], "llm_share": [0.2, 0.6], "quality": [0.7, 0.9],
        ...                    "quality_all_llm": [1.0, 1.0], "quality_all_slm": [0.5, 0.5]})
        >>> call_share_for_quality(sw, [0.5])["llm_share"].to_list()
        [0.6]
    """
    weak, strong = float(sweep["quality_all_slm"][0]), float(sweep["quality_all_llm"][0])
    rows = []
    ordered = sweep.sort("llm_share")
    for level in levels:
        target = weak + level * (strong - weak) if relative_to == "gap" else level * strong
        hit = ordered.filter(pl.col("quality") >= target - 1e-12)
        if hit.height:
            r = hit.row(0, named=True)
            rows.append(
                {
                    "level": level,
                    "llm_share": r["llm_share"],
                    "threshold": r.get("threshold"),
                    "quality": r["quality"],
                }
            )
        else:
            rows.append({"level": level, "llm_share": None, "threshold": None, "quality": None})
    return pl.DataFrame(
        rows,
        schema={"level": pl.Float64, "llm_share": pl.Float64, "threshold": pl.Float64, "quality": pl.Float64},
    )


def plot_quality_vs_llm_share(sweep: pl.DataFrame, random_sweep: pl.DataFrame | None = None) -> go.Figure:
    """Quality (agreement with the LLM) vs share of calls kept on the LLM, with the random router.

    Example:
        >>> plot_quality_vs_llm_share(threshold_sweep(test, router, scores), threshold_sweep(test, RandomRouter(), scores))  # doctest: +SKIP
    """
    fig = go.Figure()
    fig.add_scatter(
        x=sweep["llm_share"].to_list(), y=sweep["quality"].to_list(), mode="lines+markers",
        name=f"cluster router (APGR {apgr(sweep):.2f})",
        customdata=sweep["threshold"].to_list() if "threshold" in sweep.columns else None,
        hovertemplate="LLM share %{x:.1%}<br>quality %{y:.3f}<br>threshold %{customdata:.3f}<extra></extra>",
    )  # fmt: skip
    if random_sweep is not None:
        fig.add_scatter(
            x=random_sweep["llm_share"].to_list(), y=random_sweep["quality"].to_list(), mode="lines",
            name=f"random router (APGR {apgr(random_sweep):.2f})", line_dash="dash",
        )  # fmt: skip
    fig.update_layout(
        title="Quality vs share of calls kept on the LLM",
        xaxis_title="share of calls kept on the LLM",
        yaxis_title="agreement with the LLM",
        xaxis_tickformat=".0%",
    )
    return fig
