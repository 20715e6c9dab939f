"""The 2-D cluster map: calls as points, coloured by cluster, with the action and last user turn on hover.

Usage:
    >>> fig = plot_cluster_map(clustered, map_coords(tc.vectors_))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from slmlab.config import require

NOISE_COLOR = "rgba(160,160,160,0.35)"


def map_coords(vectors: np.ndarray, method: str = "pca", random_state: int = 0) -> np.ndarray:
    """Project vectors to 2-D for plotting: "pca" (fast, default) or "umap" (needs `slmlab[embed]`).

    Example:
        >>> map_coords(np.eye(4, dtype=np.float32)).shape
        (4, 2)
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    if n == 0:
        return np.zeros((0, 2), np.float32)
    if method == "umap" and n > 15:
        umap = require("umap", "embed")
        reducer = umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, random_state=random_state)
        return np.asarray(reducer.fit_transform(vectors), dtype=np.float32)
    if method not in ("pca", "umap"):
        raise ValueError(f"method must be 'pca' or 'umap', not {method!r}")
    from sklearn.decomposition import PCA

    k = min(2, n, dim)
    out = np.zeros((n, 2), np.float32)
    out[:, :k] = PCA(n_components=k, random_state=random_state).fit_transform(vectors)
    return out


def plot_cluster_map(
    calls: pl.DataFrame,
    coords: np.ndarray,
    highlight: int | list[int] | None = None,
    max_points: int = 20_000,
) -> Any:
    """Scatter of the calls in 2-D, one colour per cluster, noise in grey.

    Args:
        calls: a call table with a `cluster` column (`assign_clusters`).
        coords: (n, 2) coordinates, e.g. `map_coords(clusterer.vectors_)`.
        highlight: a cluster id (or ids) to emphasise; the others are drawn faint.
        max_points: larger tables are subsampled (evenly, deterministically) to keep the figure light.

    Returns:
        A plotly `go.Figure`.

    Example:
        >>> fig = plot_cluster_map(clustered, map_coords(tc.vectors_), highlight=0)  # doctest: +SKIP
    """
    go = require("plotly.graph_objects", "core")
    if "cluster" not in calls.columns:
        raise ValueError("calls has no 'cluster' column; use assign_clusters(calls, clusterer) first")
    coords = np.asarray(coords)
    if coords.shape != (calls.height, 2):
        raise ValueError(f"coords must have shape ({calls.height}, 2), got {coords.shape}")
    from slmlab.cluster.features import call_states

    step = max(1, calls.height // max_points)
    idx = np.arange(0, calls.height, step)
    sub = calls[idx.tolist()]
    xy = coords[idx]
    states = call_states(sub, max_chars=120)
    action = sub.get_column("tool_name").fill_null("respond") if "tool_name" in sub.columns else None
    hover = [
        f"{cid}<br>{act}<br>{user}"
        for cid, act, user in zip(
            sub.get_column("call_id") if "call_id" in sub.columns else idx,
            action if action is not None else [""] * sub.height,
            states.get_column("last_user").str.slice(0, 120).str.replace_all("\n", " "),
            strict=True,
        )
    ]
    labels = sub.get_column("cluster").to_numpy()
    wanted = {highlight} if isinstance(highlight, int) else set(highlight or [])
    fig = go.Figure()
    for cid in sorted(set(labels.tolist())):
        mask = labels == cid
        faint = bool(wanted) and cid not in wanted
        marker: dict[str, Any] = {"size": 5 if cid >= 0 else 4, "opacity": 0.15 if faint else 0.8}
        if cid < 0:
            marker["color"] = NOISE_COLOR
        fig.add_trace(
            go.Scattergl(
                x=xy[mask, 0],
                y=xy[mask, 1],
                mode="markers",
                name="noise" if cid < 0 else f"cluster {cid}",
                marker=marker,
                text=[hover[i] for i in np.flatnonzero(mask)],
                hovertemplate="%{text}<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_layout(
        title=f"{calls.height:,} calls in {calls.filter(pl.col('cluster') >= 0)['cluster'].n_unique()} clusters",
        xaxis={"visible": False},
        yaxis={"visible": False},
        legend={"itemsizing": "constant"},
        template="plotly_white",
    )
    return fig
