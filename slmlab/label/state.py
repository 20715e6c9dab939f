"""The replayed labelling state under `LabelSession`: step 3's cluster table and call assignment with the
operation log replayed over them, merged and split clusters described by `describe_clusters`.

Usage:
    >>> import polars as pl
    >>> from slmlab.label.state import LabelState
    >>> LabelState(pl.DataFrame({"cluster": [0, 1]}))._next_id
    2
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from slmlab.cluster.describe import describe_clusters
from slmlab.label.keys import split_keys
from slmlab.label.ops import assign_op, part_label, split_parts
from slmlab.label.table import NOISE, conform_label_clusters, merge_meta, part_statistics
from slmlab.schema import conform


class LabelState:
    """A base cluster table and call table, an operation log, and the state the log produces (see
    `LabelSession` for the arguments and the public operations)."""

    def __init__(
        self,
        clusters: pl.DataFrame,
        calls: pl.DataFrame | None = None,
        *,
        embeddings: np.ndarray | None = None,
        max_exemplars: int = 5,
    ) -> None:
        self._base = conform_label_clusters(clusters)
        if calls is not None and "cluster" not in calls.columns:
            raise ValueError("the call table needs the 'cluster' column written by step 3")
        if embeddings is not None:
            if calls is None or len(embeddings) != calls.height:
                raise ValueError("embeddings need one row per row of `calls`")
            embeddings = np.asarray(embeddings, dtype=np.float32)
        # The call schema's columns (a no-op on the run store's tables; fills a hand-built frame's gaps).
        self._calls = conform(calls) if calls is not None else None
        self._embeddings = embeddings
        self.max_exemplars = max_exemplars
        self._ops: list[dict[str, Any]] = []
        self._key_cache: dict[Any, Any] = {}
        # share_cost of each step-3 cluster, computed once when the cluster table lacks it
        self._base_cost: dict[int, float] | None = None
        self._rebuild()

    # ---------------------------------------------------------------------------------------- state
    def _rebuild(self) -> None:
        self._meta: dict[int, dict[str, Any]] = {r["cluster"]: r for r in self._base.to_dicts()}
        ids = set(self._meta)
        if self._calls is not None:
            self._assign = self._calls.get_column("cluster").fill_null(NOISE).cast(pl.Int64).to_numpy().copy()
            ids |= set(np.unique(self._assign).tolist())
        else:
            self._assign = None
        self._next_id = max(ids, default=-1) + 1
        for op in self._ops:
            self._step(op)

    def _check(self, cluster: int) -> int:
        cluster = int(cluster)
        if cluster not in self._meta:
            raise ValueError(f"no cluster {cluster}; current clusters: {sorted(self._meta)}")
        return cluster

    def _keys(self, by: str) -> np.ndarray:
        # the cache `assign_op` fills too: a split and its replays read the same keys
        if by not in self._key_cache:
            self._key_cache[by] = split_keys(self._calls, by).to_numpy()
        return self._key_cache[by]

    def _do(self, op: dict[str, Any]) -> None:
        self._step(op)
        self._ops.append(op)

    def _step(self, op: dict[str, Any]) -> None:
        kind = op["op"]
        if kind == "rename":
            self._meta[op["cluster"]]["name"] = op["name"]
        elif kind == "note":
            self._meta[op["cluster"]]["note"] = op["text"]
        elif kind == "status":
            for c in op["clusters"]:
                self._meta[c]["status"] = op["status"]
        elif kind == "merge":
            self._step_merge(op)
        elif kind == "split":
            self._step_split(op)
        else:
            raise ValueError(f"unknown operation {kind!r} in the label log")

    def _step_merge(self, op: dict[str, Any]) -> None:
        members = [self._meta[c] for c in op["clusters"]]
        cost = self._cost_share(op["clusters"]) if self._assign is not None else None
        into = op["into"]
        merged = merge_meta(members, into, self.max_exemplars)
        if op.get("name"):
            merged["name"] = op["name"]
        for c in op["clusters"]:
            del self._meta[c]
        self._meta[into] = merged
        if self._assign is not None:
            assign_op(op, self._assign, self._calls, self._key_cache)
            # c-TF-IDF over the merged calls alone has nothing to contrast them with: the members'
            # keywords (each distinctive against the whole clustering) stand.
            self._describe([into], cost, keywords=False)

    def _step_split(self, op: dict[str, Any]) -> None:
        parent = op["cluster"]
        if self._assign is None:
            # loaded without calls: the parts exist, their numbers come from the saved snapshot
            for new in split_parts(op):
                self._meta[new] = {**self._meta[parent], "cluster": new, "name": f"cluster {new}", "note": ""}
                self._meta[new].update(size=None, share_calls=None, share_cost=None)
                self._next_id = max(self._next_id, new + 1)
            if op.get("parent_name"):
                self._meta[parent]["name"] = op["parent_name"]
            return
        cost = self._cost_share([parent])
        assign_op(op, self._assign, self._calls, self._key_cache)
        name = self._meta[parent]["name"]
        if "parts" in op:
            labels = {new: f"{name} · {part_label(op, k)}" for k, new in op["parts"].items()}
        else:
            labels = {new: f"{name} · part {j + 2}" for j, new in enumerate(op["new"])}
        for new, label in labels.items():
            self._meta[new] = {**self._meta[parent], "cluster": new, "name": label, "note": ""}
            self._next_id = max(self._next_id, new + 1)
        if op.get("parent_name"):
            self._meta[parent]["name"] = op["parent_name"]
        self._describe([parent, *labels], cost)

    def _cost_share(self, ids: Sequence[int]) -> float | None:
        """The clusters' share of the call table's cost, as `describe_clusters` counts it, before an edit."""
        shares = [self._meta[c]["share_cost"] for c in ids]
        if any(s is None for s in shares):
            # a hand-built cluster table without shares: step 3's clusters are described once for them
            if self._base_cost is None:
                table = describe_clusters(self._calls)
                self._base_cost = dict(
                    zip(table["cluster"].to_list(), table["share_cost"].to_list(), strict=True)
                )
            shares = [self._base_cost.get(c) if s is None else s for c, s in zip(ids, shares, strict=True)]
        return None if any(s is None for s in shares) else float(sum(shares))

    def _describe(self, ids: Sequence[int], share_cost: float | None, *, keywords: bool = True) -> None:
        """Refresh the statistics of `ids` from their calls with `describe_clusters` (`part_statistics`)."""
        stats = part_statistics(self._calls, self._assign, ids, share_cost, self._embeddings)
        for c, row in stats.items():
            if not keywords:
                row.pop("keywords", None)
            if "exemplars" in row:  # describe_clusters keeps N_EXEMPLARS (5); keep at most max_exemplars
                row["exemplars"] = row["exemplars"][: self.max_exemplars]
            self._meta[c].update(row)
