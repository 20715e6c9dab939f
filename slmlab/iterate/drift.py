"""Drift detection of step 8b: new calls against the clusters (and the SLMs) built on the reference calls.

New calls are assigned to the existing clusters (a fitted clusterer's `predict`, or the nearest centroid of
the reference embeddings); far calls, unseen prompt templates, unseen tools, volume shifts and fallback
rates make the `DriftReport`.

Usage:
    >>> from slmlab.iterate.drift import detect_drift
    >>> # report = detect_drift(new_calls, None, reference_calls, new_embeddings=e_new, reference_embeddings=e_ref)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from slmlab.cluster.templates import TemplateIndex, system_prompt
from slmlab.iterate.report import NOISE, DriftReport
from slmlab.schema import conform

# ----------------------------------------------------------------------------------------------------- tools


def _called_tools(calls: pl.DataFrame) -> list[set[str]]:
    out = []
    for name, tcs in calls.select("tool_name", "response_tool_calls").iter_rows():
        names = {name} if name else set()
        if tcs:
            names |= {str(tc.get("name")) for tc in json.loads(tcs) if tc.get("name")}
        out.append(names)
    return out


def _offered_tools(calls: pl.DataFrame) -> list[set[str]]:
    memo: dict[str | None, set[str]] = {None: set()}
    out = []
    for tools in calls.get_column("tools").to_list():
        if tools not in memo:
            names = set()
            for t in json.loads(tools) or []:
                fn = t.get("function", t) if isinstance(t, dict) else {}
                if isinstance(fn, dict) and fn.get("name"):
                    names.add(str(fn["name"]))
            memo[tools] = names
        out.append(memo[tools])
    return out


# ------------------------------------------------------------------------------------------------- geometry


def _distances(x: np.ndarray, centroids: np.ndarray, metric: str) -> np.ndarray:
    if metric == "cosine":
        xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        cn = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        return np.clip(1.0 - xn @ cn.T, 0.0, 2.0)
    if metric == "euclidean":
        d2 = (x**2).sum(1)[:, None] - 2 * x @ centroids.T + (centroids**2).sum(1)[None, :]
        return np.sqrt(np.maximum(d2, 0.0))
    raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")


def cluster_centroids(calls: pl.DataFrame, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean embedding per cluster of `calls` (noise, -1, left out): returns (cluster ids, centroid matrix).

    Example:
        >>> ids, c = cluster_centroids(pl.DataFrame({"cluster": [0, 0, 1]}), np.array([[1., 0], [3, 0], [0, 1]]))
        >>> ids.tolist(), c.tolist()
        ([0, 1], [[2.0, 0.0], [0.0, 1.0]])
    """
    labels = calls.get_column("cluster").fill_null(NOISE).to_numpy()
    x = np.asarray(embeddings, dtype=np.float64)
    ids = np.array(sorted(set(labels.tolist()) - {NOISE}), dtype=np.int64)
    if not len(ids):
        raise ValueError("the reference calls have no clusters (all noise)")
    return ids, np.stack([x[labels == c].mean(axis=0) for c in ids])


def _as_centroids(obj: Any) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(obj, dict):
        ids = np.array(sorted(obj), dtype=np.int64)
        return ids, np.stack([np.asarray(obj[int(c)], dtype=np.float64) for c in ids])
    if isinstance(obj, pl.DataFrame):
        if not {"cluster", "centroid"} <= set(obj.columns):
            raise ValueError("a centroid frame needs the columns cluster and centroid (a list of floats)")
        return obj.get_column("cluster").to_numpy().astype(np.int64), np.stack(
            [np.asarray(v, dtype=np.float64) for v in obj.get_column("centroid").to_list()]
        )
    arr = np.asarray(obj, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError("centroids must be a dict {cluster: vector}, a (k, d) array or a frame")
    return np.arange(len(arr), dtype=np.int64), arr


# ---------------------------------------------------------------------------------------------- fallbacks


def fallback_rates(replay: pl.DataFrame, swapped: Sequence[int] | None = None) -> pl.DataFrame:
    """Per cluster, the share of calls that fell back to the LLM in a router replay (`REPLAY_SCHEMA`).

    A call "fell back" when its cluster (`route_cluster`) was swapped to an SLM but the router sent it to
    the LLM (`routed_to == "llm"`). Swapped clusters are `swapped`, else those with any call routed to the
    SLM.

    Returns:
        cluster, n, fallback_rate (only clusters with a defined rate).

    Raises:
        ValueError: the replay lacks `route_cluster` or `routed_to` (names step 7's artefact).

    Example:
        >>> fallback_rates(pl.DataFrame({"route_cluster": [1, 1, 2], "routed_to": ["slm", "llm", "llm"]}))["fallback_rate"].to_list()
        [0.5]
    """
    missing = [c for c in ("route_cluster", "routed_to") if c not in replay.columns]
    if missing:
        raise ValueError(f"a router replay (step 7's replay.parquet, REPLAY_SCHEMA) needs {missing}")
    if swapped is None:
        swapped = _swapped(replay)
    return (
        replay.filter(pl.col("route_cluster").is_in(list(swapped)))
        .group_by(pl.col("route_cluster").cast(pl.Int64).alias("cluster"))
        .agg(
            pl.len().alias("n"), (pl.col("routed_to") == "llm").cast(pl.Float64).mean().alias("fallback_rate")
        )
        .sort("cluster")
    )


def _swapped(replay: pl.DataFrame) -> list[int]:
    """The clusters a replay sends to an SLM (any call routed to it)."""
    return replay.filter(pl.col("routed_to") == "slm").get_column("route_cluster").unique().to_list()


def detect_drift(
    new_calls: pl.DataFrame,
    clusterer_or_centroids: Any,
    reference_calls: pl.DataFrame,
    *,
    new_embeddings: np.ndarray | None = None,
    reference_embeddings: np.ndarray | None = None,
    quantile: float = 0.95,
    threshold: float | None = None,
    metric: str = "cosine",
    template_threshold: float = 0.6,
    new_replay: pl.DataFrame | None = None,
    reference_replay: pl.DataFrame | None = None,
) -> DriftReport:
    """Compare new logs with the reference logs the clusters (and the SLMs) were built on.

    Args:
        new_calls: the new call table (canonical columns; `call_id` and `messages` at least).
        clusterer_or_centroids: how new calls get a cluster: an object with `predict` (called on
            `new_embeddings` when given, else on `new_calls`), centroids (dict {cluster: vector}, a (k, d)
            array whose row i is cluster i, or a frame cluster + centroid), or None: the mean reference
            embedding of each reference cluster.
        reference_calls: the reference call table with its `cluster` column.
        new_embeddings, reference_embeddings: one row per call; distances (and nearest-centroid assignment)
            need them.
        quantile: the threshold is this quantile of the reference calls' distances to their nearest centroid.
        threshold: a fixed distance threshold instead.
        metric: "cosine" (for normalized text embeddings) or "euclidean".
        template_threshold: Jaccard similarity for two system prompts to count as one template.
        new_replay, reference_replay: router replays (`slmlab.route.replay`) of the new and reference calls,
            for the fallback rate.

    Returns:
        a `DriftReport`.

    Example:
        >>> ref = pl.DataFrame({"call_id": ["a", "b"], "cluster": [0, 1], "messages": ["[]", "[]"]})
        >>> new = pl.DataFrame({"call_id": ["c"], "messages": ["[]"]})
        >>> r = detect_drift(new, None, ref, new_embeddings=np.array([[0., 1.]]),
        ...                  reference_embeddings=np.array([[1., 0.], [0., 1.]]))
        >>> r.assignments["nearest"].to_list()
        [1]
    """
    if "cluster" not in reference_calls.columns:
        raise ValueError("reference_calls need their 'cluster' column")
    if new_embeddings is not None and len(new_embeddings) != new_calls.height:
        raise ValueError("new_embeddings need one row per new call")
    if reference_embeddings is not None and len(reference_embeddings) != reference_calls.height:
        raise ValueError("reference_embeddings need one row per reference call")
    n_new, n_ref = new_calls.height, reference_calls.height
    # The call schema's optional columns (tool_name, response_tool_calls, tools) as nulls where a
    # hand-built frame lacks them, so what follows reads them without guessing.
    new_calls, reference_calls = conform(new_calls), conform(reference_calls)

    # -- assignment and distances
    ids = cent = None
    if clusterer_or_centroids is None:
        if reference_embeddings is None:
            raise ValueError("without a clusterer or centroids, reference_embeddings are needed")
        ids, cent = cluster_centroids(reference_calls, reference_embeddings)
    elif not hasattr(clusterer_or_centroids, "predict"):
        ids, cent = _as_centroids(clusterer_or_centroids)
    elif reference_embeddings is not None:
        ids, cent = cluster_centroids(reference_calls, reference_embeddings)  # for distances only

    dist = ref_dist = None
    if cent is not None and new_embeddings is not None:
        d = _distances(np.asarray(new_embeddings, dtype=np.float64), cent, metric)
        dist = d.min(axis=1) if n_new else np.zeros(0)
        nearest = ids[d.argmin(axis=1)] if n_new else np.zeros(0, dtype=np.int64)
    if hasattr(clusterer_or_centroids, "predict"):
        x = new_embeddings if new_embeddings is not None else new_calls
        nearest = np.asarray(clusterer_or_centroids.predict(x), dtype=np.int64)
    elif new_embeddings is None:
        raise ValueError("assigning new calls to centroids needs new_embeddings")
    if cent is not None and reference_embeddings is not None and n_ref:
        ref_dist = _distances(np.asarray(reference_embeddings, dtype=np.float64), cent, metric).min(axis=1)
    if threshold is None and ref_dist is not None:
        threshold = float(np.quantile(ref_dist, quantile))
    far = (dist > threshold) if (dist is not None and threshold is not None) else np.zeros(n_new, dtype=bool)
    far_share = float(far.mean()) if (dist is not None and threshold is not None and n_new) else None
    ref_far = (
        float((ref_dist > threshold).mean()) if (ref_dist is not None and threshold is not None) else None
    )

    # -- templates
    ref_prompts = [system_prompt(m) for m in reference_calls.get_column("messages").to_list()]
    new_prompts = [system_prompt(m) for m in new_calls.get_column("messages").to_list()]
    known = TemplateIndex(threshold=template_threshold).fit(ref_prompts).match(new_prompts)
    is_new_tpl = np.array([p is not None and k is None for p, k in zip(new_prompts, known, strict=True)])
    unseen = [p for p, n in zip(new_prompts, is_new_tpl, strict=True) if n]
    groups = TemplateIndex(threshold=template_threshold).fit(unseen)
    new_tpl_ids = groups.match(unseen)
    tpl_col: list[str | None] = list(known)
    it = iter(new_tpl_ids)
    for i, n in enumerate(is_new_tpl):
        if n:
            tpl_col[i] = next(it)
    new_templates = (
        pl.DataFrame({"template": [t for t, n in zip(tpl_col, is_new_tpl, strict=True) if n]}, schema={"template": pl.String})
        .group_by("template")
        .len("n_calls")
        .with_columns((pl.col("n_calls") / max(n_new, 1)).alias("share"))
        .with_columns(
            pl.col("template")
            .replace_strict(
                {t: " ".join(ex.split())[:160] for t, ex in groups.templates_.items()}, default="", return_dtype=pl.String
            )
            .alias("example")
        )
        .sort(["n_calls", "template"], descending=[True, False])
    )  # fmt: skip

    # -- tools
    seen = set().union(*_called_tools(reference_calls), *_offered_tools(reference_calls))
    called_new, offered_new = _called_tools(new_calls), _offered_tools(new_calls)
    unseen_tools = sorted(set().union(*called_new, *offered_new) - seen)
    new_tools = pl.DataFrame(
        {
            "tool": unseen_tools,
            "n_calls": [sum(t in c for c in called_new) for t in unseen_tools],
            "n_offered": [sum(t in o for o in offered_new) for t in unseen_tools],
        },
        schema={"tool": pl.String, "n_calls": pl.Int64, "n_offered": pl.Int64},
    ).sort(["n_calls", "tool"], descending=[True, False])
    call_new_tools = [sorted(c - seen) for c in called_new]

    # -- per call
    assignments = pl.DataFrame(
        {
            "call_id": new_calls.get_column("call_id"),
            "nearest": pl.Series(nearest, dtype=pl.Int64),
            "distance": pl.Series(dist if dist is not None else [None] * n_new, dtype=pl.Float64),
            "far": pl.Series(far, dtype=pl.Boolean),
            "template": pl.Series(tpl_col, dtype=pl.String),
            "new_template": pl.Series(is_new_tpl, dtype=pl.Boolean),
            "new_tools": pl.Series(call_new_tools, dtype=pl.List(pl.String)),
        }
    ).with_columns(
        pl.when(pl.col("far")).then(NOISE).otherwise(pl.col("nearest")).cast(pl.Int64).alias("cluster")
    )

    # -- per cluster
    ref = reference_calls.select(pl.col("cluster").fill_null(NOISE).cast(pl.Int64))
    if ref_dist is not None:
        ref = ref.with_columns(pl.Series("distance", ref_dist, pl.Float64))
    else:
        ref = ref.with_columns(pl.lit(None, pl.Float64).alias("distance"))
    ref_stats = ref.group_by("cluster").agg(
        pl.len().alias("reference_calls"), pl.col("distance").mean().alias("reference_mean_distance")
    )
    new_stats = assignments.group_by("nearest").agg(
        pl.len().alias("new_calls_nearest"),
        pl.col("distance").mean().alias("new_mean_distance"),
        pl.col("far").mean().alias("far_share"),
        pl.col("new_template").mean().alias("new_template_share"),
        (pl.col("new_tools").list.len() > 0).sum().alias("new_tool_calls"),
    )
    kept = assignments.group_by("cluster").len("new_calls")
    per = (
        ref_stats.join(kept, on="cluster", how="full", coalesce=True)
        .join(new_stats.rename({"nearest": "cluster"}), on="cluster", how="full", coalesce=True)
        .with_columns(
            pl.col("reference_calls").fill_null(0),
            pl.col("new_calls").fill_null(0),
            pl.col("new_calls_nearest").fill_null(0),
            pl.col("new_tool_calls").fill_null(0).cast(pl.Int64),
        )
        .with_columns(
            (pl.col("reference_calls") / max(n_ref, 1)).alias("reference_share"),
            (pl.col("new_calls") / max(n_new, 1)).alias("new_share"),
        )
        .with_columns(
            (pl.col("new_share") - pl.col("reference_share")).alias("share_change"),
            pl.when(pl.col("reference_share") > 0)
            .then(pl.col("new_share") / pl.col("reference_share"))
            .otherwise(None)
            .alias("volume_ratio"),
        )
    )
    fb_new = fb_ref = None
    if reference_replay is not None or new_replay is not None:
        # the clusters the reference replay swapped are the ones whose fallbacks count, in both replays
        swapped = _swapped(reference_replay) if reference_replay is not None else None
        for name, rep in (("reference_fallback_rate", reference_replay), ("new_fallback_rate", new_replay)):
            if rep is None:
                per = per.with_columns(pl.lit(None, pl.Float64).alias(name))
                continue
            rates = fallback_rates(rep, swapped)
            per = per.join(
                rates.select("cluster", pl.col("fallback_rate").alias(name)), on="cluster", how="left"
            )
            total = (
                float((rates["fallback_rate"] * rates["n"]).sum() / rates["n"].sum())
                if rates.height
                else None
            )
            if name == "new_fallback_rate":
                fb_new = total
            else:
                fb_ref = total
        per = per.with_columns(
            (pl.col("new_fallback_rate") - pl.col("reference_fallback_rate")).alias("fallback_change")
        )
    else:
        per = per.with_columns(
            pl.lit(None, pl.Float64).alias(c)
            for c in ("reference_fallback_rate", "new_fallback_rate", "fallback_change")
        )
    per = per.select(
        "cluster", "reference_calls", "new_calls", "new_calls_nearest", "reference_share", "new_share",
        "share_change", "volume_ratio", "reference_mean_distance", "new_mean_distance", "far_share",
        "new_template_share", "new_tool_calls", "reference_fallback_rate", "new_fallback_rate", "fallback_change",
    ).sort("cluster")  # fmt: skip
    return DriftReport(
        per_cluster=per,
        assignments=assignments,
        new_templates=new_templates,
        new_tools=new_tools,
        threshold=threshold,
        reference_far_share=ref_far,
        far_share=far_share,
        n_reference=n_ref,
        n_new=n_new,
        fallback_rate=fb_new,
        reference_fallback_rate=fb_ref,
    )
