"""The labeller's operation log: how a merge or a split moves calls between clusters, the k-means split, and
a one-line summary of each operation.

An operation is a JSON-ready dict (`{"op": "merge", "clusters": [...], "into": 3}`, `{"op": "split",
"cluster": 2, "by": "action", "parts": {"refund": 7}}`, ...). `assign_op` is the one place that applies a
merge or split to a call -> cluster assignment: the session replays its log with it, and
`LabelSession.apply` maps other call tables with it.

Usage:
    >>> import numpy as np, polars as pl
    >>> assign = np.array([0, 1, 2])
    >>> assign_op({"op": "merge", "clusters": [0, 1], "into": 1}, assign, pl.DataFrame({"x": [1, 2, 3]}), {})
    >>> assign.tolist()
    [1, 1, 2]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from slmlab.label.keys import split_keys, template_keys
from slmlab.runtime.chat_format import call_prompt_texts

_CALL_INDEX = ("call_id index",)  # cache key of the call_id -> row index (a tuple: never a column name)


def op_keys(op: dict[str, Any], calls: pl.DataFrame) -> np.ndarray:
    """Split keys of `calls` for a by-value split (template splits match the prompts stored in the op)."""
    if op["by"] == "template":
        return template_keys(calls.get_column("messages").to_list(), op.get("examples", {}))[0]
    return split_keys(calls, op["by"]).to_numpy()


def part_label(op: dict[str, Any], key: str) -> str:
    """How a split part is named: its key, or the head of the template prompt that defines it."""
    example = op.get("examples", {}).get(key)
    return " ".join(example.split())[:40] + "…" if example else key


def assign_op(op: dict[str, Any], assign: np.ndarray, calls: pl.DataFrame, cache: dict[Any, Any]) -> None:
    """Move the calls of `assign` (the cluster id of each row of `calls`, changed in place) as `op` does.

    Merges move their members' calls into the kept id. By-value splits move each part's calls by their
    own split key, so calls never seen when the split was made follow it too; k-means splits move only
    the calls (by `call_id`) they were computed on. Other operations leave `assign` alone.

    Args:
        op: one operation of the log.
        assign: Int64 array, one cluster id per row of `calls`.
        calls: the call table the assignment belongs to.
        cache: reused across operations on the same `calls` (split keys per column, the call_id index).
    """
    if op["op"] == "merge":
        assign[np.isin(assign, op["clusters"])] = op["into"]
        return
    if op["op"] != "split":
        return
    mask = assign == op["cluster"]
    if "parts" in op:
        rows = np.flatnonzero(mask)
        if op["by"] == "template":
            keys = op_keys(op, calls[rows])
        else:
            if op["by"] not in cache:
                cache[op["by"]] = split_keys(calls, op["by"]).to_numpy()
            keys = cache[op["by"]][rows]
        for key, new in op["parts"].items():
            assign[rows[keys == key]] = new
    elif "call_id" in calls.columns:  # a k-means split needs ids; a frame without them keeps its clusters
        if _CALL_INDEX not in cache:
            cache[_CALL_INDEX] = {cid: i for i, cid in enumerate(calls.get_column("call_id").to_list())}
        index = cache[_CALL_INDEX]
        for cid, new in op["call_ids"].items():
            i = index.get(cid)
            if i is not None and mask[i]:
                assign[i] = new


def kmeans_split_op(
    calls: pl.DataFrame,
    rows: np.ndarray,
    cluster: int,
    first_id: int,
    k: int,
    seed: int,
    embeddings: np.ndarray | None = None,
) -> dict[str, Any]:
    """The operation that splits `cluster` (its calls are `rows` of `calls`) into `k` parts by k-means.

    On `embeddings` rows when given, else on TF-IDF of the calls' prompt texts. The largest part keeps the
    old id; the others get `first_id`, `first_id + 1`, ...

    Raises:
        ValueError: fewer calls than `k`, no words to split on, or a single group found.
    """
    from sklearn.cluster import KMeans

    if len(rows) < max(k, 2):
        raise ValueError(f"cluster {cluster} has {len(rows)} calls; k-means needs at least {k}")
    if embeddings is not None:
        x = embeddings[rows]
    else:
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = call_prompt_texts(calls[rows])
        try:
            x = TfidfVectorizer(max_features=2000, sublinear_tf=True).fit_transform(texts)
        except ValueError as exc:  # empty vocabulary: nothing to tell the calls apart
            raise ValueError(f"cluster {cluster}: its prompts have no words to split on") from exc
    labels = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(x)
    sizes = np.bincount(labels, minlength=k)
    if (sizes > 0).sum() < 2:
        raise ValueError(f"k-means found a single group in cluster {cluster}")
    order = [int(j) for j in np.argsort(-sizes, kind="stable") if sizes[j] > 0]
    new = {lab: first_id + i for i, lab in enumerate(order[1:])}
    ids = calls.get_column("call_id").to_numpy()[rows]
    moved = {str(cid): new[int(lab)] for cid, lab in zip(ids, labels, strict=True) if int(lab) in new}
    return {"op": "split", "cluster": cluster, "by": "kmeans", "new": list(new.values()), "call_ids": moved}


def split_parts(op: dict[str, Any]) -> list[int]:
    """The new cluster ids a split operation made (the parent keeps its own id)."""
    return list(op["parts"].values()) if "parts" in op else list(op["new"])


def describe_op(op: dict[str, Any]) -> str:
    """One line saying what an operation did (the session's `history`).

    Example:
        >>> describe_op({"op": "merge", "clusters": [1, 2], "into": 1})
        'merged 1, 2 into 1'
    """
    kind = op["op"]
    if kind == "rename":
        return f"cluster {op['cluster']} renamed to {op['name']!r}"
    if kind == "note":
        return f"note on cluster {op['cluster']}"
    if kind == "status":
        why = f" ({op['reason']})" if op.get("reason") else ""
        return f"{', '.join(map(str, op['clusters']))} -> {op['status']}{why}"
    if kind == "merge":
        return f"merged {', '.join(map(str, op['clusters']))} into {op['into']}"
    if kind == "split":
        parts = [op["cluster"], *split_parts(op)]
        return f"split {op['cluster']} by {op['by']} into {', '.join(map(str, parts))}"
    return kind
