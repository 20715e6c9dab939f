"""The cluster table (`slmlab.schema.CLUSTER_SCHEMA`): what each cluster is and whether an SLM could take it.

Usage:
    >>> from slmlab.cluster import describe_clusters
    >>> table = describe_clusters(assign_clusters(calls, TaskClusterer()))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import polars as pl

from slmlab.cluster.features import call_states
from slmlab.schema import CLUSTER_SCHEMA, TEXT_ACTION

N_KEYWORDS = 8
N_EXEMPLARS = 5
TEMPLATE_CHARS = 300

# Suitability: a weighted mean of four 0..1 signals (weights sum to 1).
SUITABILITY_WEIGHTS = {"repetitive": 0.35, "structured": 0.25, "short_context": 0.2, "examples": 0.2}
SHAPE_SCORE = {"tool_call": 1.0, "json": 0.9, "text": 0.4}
SHORT_CONTEXT_TOKENS = 4000  # p90 prompt tokens at which short_context = 0.5
ENOUGH_EXAMPLES = 200  # calls at which examples = 1 (a LoRA run wants a few hundred)


def suitability(action_share: float, output_shape: str, p90_input_tokens: float, size: int) -> float:
    """0..1 signal that a cluster is a good SLM candidate.

    suitability = 0.35 * repetitive + 0.25 * structured + 0.2 * short_context + 0.2 * examples, where
    repetitive = share of the cluster's calls taking its dominant action; structured = 1.0 for tool calls,
    0.9 for JSON, 0.4 for free text; short_context = 1 / (1 + p90_input_tokens / 4000) (1 for tiny prompts,
    0.5 at 4k tokens, small past 16k, where SLM context and cost advantages fade); examples =
    log(1 + size) / log(1 + 200), capped at 1 (enough calls to fine-tune and to evaluate on).

    Example:
        >>> round(suitability(1.0, "tool_call", 0.0, 200), 2)
        1.0
    """
    w = SUITABILITY_WEIGHTS
    p90 = 0.0 if p90_input_tokens is None or np.isnan(p90_input_tokens) else float(p90_input_tokens)
    score = (
        w["repetitive"] * float(action_share)
        + w["structured"] * SHAPE_SCORE.get(output_shape, 0.4)
        + w["short_context"] / (1.0 + p90 / SHORT_CONTEXT_TOKENS)
        + w["examples"] * min(1.0, np.log1p(size) / np.log1p(ENOUGH_EXAMPLES))
    )
    return float(np.clip(score, 0.0, 1.0))


def c_tf_idf_keywords(docs_by_cluster: dict[int, str], top_n: int = N_KEYWORDS) -> dict[int, list[str]]:
    """Top terms per cluster by class-based TF-IDF (BERTopic's c-TF-IDF).

    Each cluster's calls are joined into one document; weight(t, c) = tf(t, c) / words(c) *
    log(1 + mean words per cluster / frequency of t over all clusters).

    Example:
        >>> c_tf_idf_keywords({0: "cancel flight cancel", 1: "refund order refund"}, 1)
        {0: ['cancel'], 1: ['refund']}
    """
    from sklearn.feature_extraction.text import CountVectorizer

    ids = list(docs_by_cluster)
    docs = [docs_by_cluster[i] for i in ids]
    vec = CountVectorizer(
        stop_words="english", token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z_]{2,}\b", max_features=20000
    )
    try:
        counts = vec.fit_transform(docs)
    except ValueError:  # no terms at all
        return {i: [] for i in ids}
    tf = np.asarray(counts.todense(), dtype=np.float64)
    words = tf.sum(axis=1, keepdims=True)
    freq = tf.sum(axis=0)
    idf = np.log1p(words.mean() / np.maximum(freq, 1.0))
    weights = tf / np.maximum(words, 1.0) * idf
    terms = vec.get_feature_names_out()
    out = {}
    for row, cid in enumerate(ids):
        order = np.argsort(-weights[row])[:top_n]
        out[cid] = [str(terms[j]) for j in order if weights[row, j] > 0]
    return out


def _template(systems: list[str], users: list[str]) -> str:
    """The most common system prompt, else the longest common prefix of the last user turns."""
    systems = [s for s in systems if s]
    if systems:
        values, counts = np.unique(np.array(systems, dtype=object), return_counts=True)
        return str(values[int(np.argmax(counts))])[:TEMPLATE_CHARS]
    prefix = os.path.commonprefix([u for u in users if u]) if users else ""
    return prefix[:TEMPLATE_CHARS] if len(prefix) >= 20 else ""


def _exemplars(vectors: Any, call_ids: list[str], n: int = N_EXEMPLARS) -> list[str]:
    """The `n` calls nearest the centroid (euclidean for dense vectors, dot product for sparse TF-IDF)."""
    if isinstance(vectors, np.ndarray):
        dist = np.linalg.norm(vectors - vectors.mean(axis=0), axis=1)
    else:
        dist = -np.asarray(vectors @ np.asarray(vectors.mean(axis=0)).ravel()).ravel()
    return [call_ids[i] for i in np.argsort(dist, kind="stable")[:n]]


def describe_clusters(calls: pl.DataFrame, vectors: np.ndarray | None = None) -> pl.DataFrame:
    """One row per cluster (noise, -1, included when present) with exactly `CLUSTER_SCHEMA`'s columns.

    Args:
        calls: a call table with a `cluster` column (`assign_clusters`).
        vectors: optional per-call vectors (dense array) (e.g. `TaskClusterer.vectors_`) to pick exemplars nearest the
            centroid; by default the TF-IDF vectors of the calls' last user turn and action are used.

    `share_cost` uses `cost_usd`; where no cost is logged or estimated it falls back to the share of
    input + output tokens. Token columns fall back to len(messages) / 4 where counts are null. The noise row
    is named "noise" with suitability 0. Names are "<dominant action>: <top keywords>"; status "unreviewed".

    Example:
        >>> table = describe_clusters(assign_clusters(calls, TaskClusterer()))  # doctest: +SKIP
        >>> table.columns == list(CLUSTER_SCHEMA)  # doctest: +SKIP
        True
    """
    if "cluster" not in calls.columns:
        raise ValueError("calls has no 'cluster' column; use assign_clusters(calls, clusterer) first")
    if calls.height == 0:
        return pl.DataFrame(schema=CLUSTER_SCHEMA)
    states = call_states(calls)
    est_in = (pl.col("messages").str.len_chars() / 4).cast(pl.Float64)
    df = calls.select(
        "call_id",
        pl.col("cluster").cast(pl.Int32),
        (pl.col("tool_name") if "tool_name" in calls.columns else pl.lit(None, pl.String))
        .fill_null(TEXT_ACTION)
        .alias("action"),
        pl.col("input_tokens").cast(pl.Float64).fill_null(est_in).alias("in_tok")
        if "input_tokens" in calls.columns
        else est_in.alias("in_tok"),
        pl.col("output_tokens").cast(pl.Float64).fill_null(0.0).alias("out_tok")
        if "output_tokens" in calls.columns
        else pl.lit(0.0).alias("out_tok"),
        (pl.col("cost_usd") if "cost_usd" in calls.columns else pl.lit(None, pl.Float64)).alias("cost"),
    ).with_columns(
        states.get_column("system"),
        states.get_column("last_user"),
        states.get_column("output_shape")
        if "output_shape" in states.columns
        else pl.lit("text").alias("output_shape"),
    )
    total_cost = df.get_column("cost").fill_null(0.0).sum()
    use_cost = df.get_column("cost").null_count() < df.height and total_cost > 0
    df = df.with_columns(
        (pl.col("cost").fill_null(0.0) if use_cost else pl.col("in_tok") + pl.col("out_tok")).alias("weight")
    )
    total_weight = float(df.get_column("weight").sum()) or 1.0
    docs = (
        df.group_by("cluster")
        .agg(pl.col("last_user").str.slice(0, 500).str.join(" ").alias("doc"))
        .sort("cluster")
    )
    keywords = c_tf_idf_keywords(dict(zip(docs["cluster"].to_list(), docs["doc"].to_list(), strict=True)))
    if vectors is None:
        vectors = _tfidf_vectors((df["action"] + " " + df["last_user"]).to_list())
    rows: list[dict[str, Any]] = []
    for cid in sorted(df.get_column("cluster").unique().to_list()):
        mask = (df.get_column("cluster") == cid).to_numpy()
        part = df.filter(pl.Series(mask))
        actions = part.get_column("action").value_counts(sort=True)
        dominant, n_dom = actions.row(0)
        shapes = part.get_column("output_shape").value_counts(sort=True)
        shape = shapes.row(0)[0]
        in_tok = part.get_column("in_tok")
        p90 = float(in_tok.quantile(0.9, "linear") or 0.0)
        size = part.height
        action_share = n_dom / size
        kw = keywords.get(cid, [])
        rows.append(
            {
                "cluster": cid,
                "name": "noise" if cid < 0 else f"{dominant}: {' '.join(kw[:3])}".strip(),
                "size": size,
                "share_calls": size / df.height,
                "share_cost": float(part.get_column("weight").sum()) / total_weight,
                "keywords": kw,
                "exemplars": _exemplars(vectors[mask], part.get_column("call_id").to_list()),
                "dominant_action": dominant,
                "action_share": action_share,
                "output_shape": shape,
                "template": _template(
                    part.get_column("system").to_list(), part.get_column("last_user").to_list()
                ),
                "mean_input_tokens": float(in_tok.mean()),
                "p90_input_tokens": p90,
                "mean_output_tokens": float(part.get_column("out_tok").mean()),
                "suitability": 0.0 if cid < 0 else suitability(action_share, shape, p90, size),
                "status": "unreviewed",
            }
        )
    return pl.DataFrame(rows, schema=CLUSTER_SCHEMA)


def _tfidf_vectors(texts: list[str]) -> Any:
    """Sparse, L2-normalized TF-IDF rows (dense would not fit for 100k+ calls)."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    try:
        return TfidfVectorizer(max_features=5000).fit_transform(texts).tocsr()
    except ValueError:
        return sparse.csr_matrix((len(texts), 1), dtype=np.float32)
