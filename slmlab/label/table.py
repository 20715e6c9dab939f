"""The labelled cluster table: its columns, rows combined without the call table, and the statistics of
merged or split clusters, which come from the cluster step's own definition (`describe_clusters`).

Usage:
    >>> import polars as pl
    >>> from slmlab.label.table import conform_label_clusters
    >>> conform_label_clusters(pl.DataFrame({"cluster": [0]})).row(0, named=True)["status"]
    'unreviewed'
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from slmlab.cluster.describe import describe_clusters
from slmlab.runs import conform_clusters
from slmlab.schema import CLUSTER_SCHEMA, CLUSTER_STATUSES

NOISE = -1  # cluster id of unassigned calls in the call table
LABEL_COLUMNS = {**CLUSTER_SCHEMA, "note": pl.String()}
# What `describe_clusters` decides about a cluster from its calls; a merged or split cluster takes these
# from it. Name, status and note are the labeller's; shares are taken relative to the whole call table.
DESCRIBED = ("dominant_action", "action_share", "output_shape", "template", "mean_input_tokens",
             "p90_input_tokens", "mean_output_tokens", "suitability")  # fmt: skip


class StaleLabelsError(ValueError):
    """A saved label file describes other clusters than the ones given (step 3 was re-run)."""


def conform_label_clusters(clusters: pl.DataFrame) -> pl.DataFrame:
    """A cluster table with exactly `LABEL_COLUMNS` (`CLUSTER_SCHEMA` + note), nulls filled where a value
    has a neutral default, ids unique and statuses known.

    Raises:
        ValueError: no `cluster` column, duplicate ids or an unknown status.
    """
    out = (
        conform_clusters(clusters)
        .with_columns(
            (pl.col("note") if "note" in clusters.columns else pl.lit("")).cast(pl.String).alias("note")
        )
        .select(list(LABEL_COLUMNS))
        .with_columns(
            pl.col("status").fill_null("unreviewed"),
            pl.col("note").fill_null(""),
            pl.col("keywords").fill_null([]),
            pl.col("exemplars").fill_null([]),
            pl.col("template").fill_null(""),
        )
    )
    if out.get_column("cluster").is_duplicated().any():
        raise ValueError("the cluster table has duplicate cluster ids")
    bad = set(out.get_column("status").to_list()) - set(CLUSTER_STATUSES)
    if bad:
        raise ValueError(f"unknown status {sorted(bad)}; use one of {CLUSTER_STATUSES}")
    return out


def part_statistics(
    calls: pl.DataFrame,
    assign: np.ndarray,
    ids: Sequence[int],
    share_cost: float | None,
    embeddings: np.ndarray | None = None,
) -> dict[int, dict[str, Any]]:
    """The statistics of clusters `ids` (the result of one merge or split), by `describe_clusters`.

    `describe_clusters` runs on the calls of `ids` only (so an edit costs the size of the clusters it
    touches, not of the whole log): everything it decides from a cluster's own calls (`DESCRIBED`, and the
    size) is what it gives for the whole table. Shares are rescaled to the whole table: `share_calls` =
    size / all calls; `share_cost` = the part's share of the edited calls' cost times `share_cost`, the
    edited clusters' share of the whole table's cost before the edit (cost weights add up, so this is
    the share `describe_clusters` gives on the whole table). Keywords and exemplars are those
    `describe_clusters` finds among these clusters: for split parts, the terms and calls that tell them apart.

    Args:
        calls: the session's call table (canonical columns).
        assign: the current cluster id of each row of `calls`.
        ids: the clusters to describe.
        share_cost: the edited clusters' share of cost before the edit; None when unknown.
        embeddings: per-call vectors (rows of `calls`) for the exemplars; default TF-IDF.

    Returns:
        {cluster: {column: value}} for every id in `ids` (an id with no calls left gets size 0).
    """
    rows = np.flatnonzero(np.isin(assign, list(ids)))
    part = calls[rows].with_columns(pl.Series("cluster", assign[rows], pl.Int32))
    table = describe_clusters(part, None if embeddings is None else embeddings[rows])
    total = len(assign)
    out: dict[int, dict[str, Any]] = {
        int(c): {"size": 0, "share_calls": 0.0, "share_cost": 0.0 if share_cost is not None else None}
        for c in ids
    }
    for r in table.iter_rows(named=True):
        out[int(r["cluster"])] = {
            "size": r["size"],
            "share_calls": r["size"] / total if total else 0.0,
            "share_cost": None if share_cost is None else r["share_cost"] * share_cost,
            "keywords": r["keywords"],
            "exemplars": r["exemplars"],
            **{k: r[k] for k in DESCRIBED},
        }
    return out


def check_same(saved: pl.DataFrame, current: pl.DataFrame, what: str) -> None:
    """Raise `StaleLabelsError` when two cluster tables do not have the same ids and sizes."""
    a = dict(saved.select("cluster", "size").iter_rows())
    b = dict(current.select("cluster", "size").iter_rows())
    if a != b:
        raise StaleLabelsError(f"the saved labels describe other clusters than {what} (step 3 was re-run)")


def common_template(templates: Sequence[str]) -> str:
    """The prefix the templates share when it is a real shared part (40+ characters), else ""."""
    texts = [t for t in templates if t]
    if not texts:
        return ""
    prefix = os.path.commonprefix(texts)
    # A prefix of a few characters ("You are a") says nothing; keep it only if it is a real shared part.
    return prefix if len(prefix) >= min(40, min(len(t) for t in texts)) else ""


def merge_meta(members: list[dict[str, Any]], into: int, max_exemplars: int) -> dict[str, Any]:
    """Combine cluster rows without the call table (the numbers are size-weighted where that is exact)."""
    members = sorted(members, key=lambda m: (-(m["size"] or 0), m["cluster"]))
    keep = next(m for m in members if m["cluster"] == into)
    sizes = [m["size"] or 0 for m in members]
    total = sum(sizes)

    def wmean(col: str) -> float | None:
        pairs = [(m[col], s) for m, s in zip(members, sizes, strict=True) if m[col] is not None]
        w = sum(s for _, s in pairs)
        return sum(v * s for v, s in pairs) / w if pairs and w else None

    def ssum(col: str) -> float | None:
        vals = [m[col] for m in members if m[col] is not None]
        return sum(vals) if vals else None

    dominant = members[0]["dominant_action"]
    same = [
        (m["action_share"], s)
        for m, s in zip(members, sizes, strict=True)
        if m["dominant_action"] == dominant
    ]
    action_share = (
        sum((a or 0) * s for a, s in same) / total
        if total and dominant is not None
        else members[0]["action_share"]
    )
    keywords: list[str] = []
    for group in zip(*[m["keywords"] or [] for m in members] or [[]], strict=False):
        keywords += [w for w in group if w not in keywords]
    for m in members:  # zip stops at the shortest list; append the rest in order
        keywords += [w for w in (m["keywords"] or []) if w not in keywords]
    exemplars: list[str] = []
    for m in members:
        exemplars += [e for e in (m["exemplars"] or []) if e not in exemplars]
    p90 = [m["p90_input_tokens"] for m in members if m["p90_input_tokens"] is not None]
    notes = [m["note"] for m in members if m["note"]]
    return {
        **keep,
        "cluster": into,
        "size": total,
        "share_calls": ssum("share_calls"),
        "share_cost": ssum("share_cost"),
        "keywords": keywords[: max(10, *(len(m["keywords"] or []) for m in members))],
        "exemplars": exemplars[:max_exemplars],
        "dominant_action": dominant,
        "action_share": action_share,
        "template": common_template([m["template"] for m in members]),
        "mean_input_tokens": wmean("mean_input_tokens"),
        "p90_input_tokens": max(p90) if p90 else None,
        "mean_output_tokens": wmean("mean_output_tokens"),
        "suitability": wmean("suitability"),
        "note": "\n".join(notes),
    }
