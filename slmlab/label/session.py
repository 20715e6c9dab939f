"""The labelling state: a cluster table plus a log of edits (rename, merge, split, status, note, accept).

A `LabelSession` is a plain object with no widgets. Every edit is appended to an operation log; the
current state is the base cluster table of step 3 with the log replayed over it, so `undo()` drops the
last operation and replays the rest, and `save()` / `load()` store the log as JSON, which keeps the labels
across kernel restarts and lets later steps (`slmlab.savings`, the report) map calls through merges and
splits with `apply(calls)`. Merged and split clusters are described by the cluster step's
`describe_clusters` on their calls, so their numbers mean what step 3's do.

Usage:
    >>> import polars as pl
    >>> from slmlab.label import LabelSession
    >>> clusters = pl.DataFrame({"cluster": [0, 1], "name": ["a", "b"], "size": [3, 1]})
    >>> s = LabelSession(clusters)
    >>> s.merge([0, 1])
    0
    >>> s.clusters["size"].to_list()
    [4]
"""

from __future__ import annotations

import datetime as _dt
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from slmlab.label.keys import (
    NONE_KEY,
    split_keys,
    system_prompt_hash,
    system_prompt_head,
    template_keys,
)
from slmlab.label.ops import assign_op, describe_op, kmeans_split_op, part_label, split_parts
from slmlab.label.state import LabelState
from slmlab.label.table import (
    LABEL_COLUMNS,
    NOISE,
    StaleLabelsError,
    check_same,
    conform_label_clusters,
)
from slmlab.runtime.chat_format import call_prompt_texts, last_user_text
from slmlab.schema import CLUSTER_STATUSES

FORMAT_VERSION = 1


class LabelSession(LabelState):
    """Review state over the clusters of step 3: edits, undo, save/load, and mapping of calls.

    Args:
        clusters: the cluster table (`slmlab.schema.CLUSTER_SCHEMA`; missing columns are filled).
        calls: the clustered call table (canonical columns + `cluster`); needed for `split`, and to describe
            merged and split clusters with the cluster step's own definition (`describe_clusters` on their
            calls: size, shares, dominant action, output shape, template, tokens, suitability, exemplars;
            split parts also get the c-TF-IDF keywords that tell them apart). Without it, merges combine
            the table's own numbers (p90 becomes the members' maximum) and `split` is unavailable.
        embeddings: optional float matrix, one row per row of `calls`, used by `split(by="kmeans")` and for
            the exemplars of edited clusters; without it both use TF-IDF vectors of the calls' prompts.
        max_exemplars: exemplar call ids kept per edited cluster (at most `describe_clusters`' five).

    Example:
        >>> s = LabelSession(pl.DataFrame({"cluster": [0], "suitability": [0.9]}))
        >>> s.accept_suggested(0.5)
        [0]
        >>> s.undo()["op"]
        'status'
    """

    # ------------------------------------------------------------------------------------- operations
    def rename(self, cluster: int, name: str) -> None:
        """Give a cluster a human name.

        Example:
            >>> s = LabelSession(pl.DataFrame({"cluster": [0]})); s.rename(0, "seat lookup")
            >>> s.clusters["name"][0]
            'seat lookup'
        """
        name = str(name).strip()
        if not name:
            raise ValueError("a cluster name cannot be empty")
        self._do({"op": "rename", "cluster": self._check(cluster), "name": name})

    def set_status(self, cluster: int | Sequence[int], status: str) -> None:
        """Mark one or more clusters "slm_candidate", "keep_llm", "ignore" or "unreviewed".

        Example:
            >>> s = LabelSession(pl.DataFrame({"cluster": [0, 1]})); s.set_status([0, 1], "keep_llm")
            >>> s.clusters["status"].to_list()
            ['keep_llm', 'keep_llm']
        """
        if status not in CLUSTER_STATUSES:
            raise ValueError(f"unknown status {status!r}; use one of {CLUSTER_STATUSES}")
        ids = [cluster] if isinstance(cluster, int | np.integer) else list(cluster)
        if not ids:
            raise ValueError("no cluster given")
        self._do({"op": "status", "clusters": [self._check(c) for c in ids], "status": status})

    def note(self, cluster: int, text: str) -> None:
        """Attach a free-text note to a cluster (replaces the previous note).

        Example:
            >>> s = LabelSession(pl.DataFrame({"cluster": [0]})); s.note(0, "PII in the args")
            >>> s.clusters["note"][0]
            'PII in the args'
        """
        self._do({"op": "note", "cluster": self._check(cluster), "text": str(text)})

    def merge(self, clusters: Sequence[int], into: int | None = None, name: str | None = None) -> int:
        """Merge clusters into one; returns the id kept.

        Args:
            clusters: two or more cluster ids.
            into: the id to keep (one of `clusters`); default the largest cluster's.
            name: a name for the merged cluster; default the kept cluster's name.

        Example:
            >>> s = LabelSession(pl.DataFrame({"cluster": [0, 1, 2], "size": [1, 5, 2]}))
            >>> s.merge([0, 1])
            1
            >>> sorted(s.clusters["cluster"].to_list())
            [1, 2]
        """
        ids = list(dict.fromkeys(self._check(c) for c in clusters))
        if len(ids) < 2:
            raise ValueError("merge needs at least two different clusters")
        if into is None:
            into = max(ids, key=lambda c: (self._meta[c]["size"] or 0, -c))
        elif int(into) not in ids:
            raise ValueError(f"`into` ({into}) must be one of the merged clusters {ids}")
        op = {"op": "merge", "clusters": ids, "into": int(into)}
        if name:
            op["name"] = str(name).strip()
        self._do(op)
        return int(into)

    def split(
        self,
        cluster: int,
        by: str = "action",
        *,
        k: int = 2,
        min_size: int = 1,
        max_parts: int | None = None,
        seed: int = 0,
    ) -> list[int]:
        """Split a cluster; returns the ids of its parts (the largest part keeps the old id, first).

        Args:
            cluster: the cluster to split.
            by: `"action"` (one part per tool called, or "respond"), `"template"` (one part per system
                prompt), any column of the call table (`agent`, `model`, ...), or `"kmeans"` (k parts by
                k-means on the session's embeddings, else on TF-IDF of the last user turns).
            k: parts for `"kmeans"`.
            min_size: values with fewer calls than this stay in the old cluster (by-value splits).
            max_parts: at most this many parts, the largest values first (by-value splits).
            seed: k-means seed.

        Raises:
            ValueError: without a call table, or when the cluster does not divide (one value only).

        Example:
            >>> calls = pl.DataFrame({"call_id": ["a", "b", "c"], "cluster": [0, 0, 0],
            ...     "tool_name": ["x", "x", None], "messages": ["[]"] * 3})
            >>> LabelSession(pl.DataFrame({"cluster": [0]}), calls).split(0)
            [0, 1]
        """
        if self._calls is None:
            raise ValueError("split needs the clustered call table: LabelSession(clusters, calls)")
        cluster = self._check(cluster)
        mask = self._assign == cluster
        if by == "kmeans":
            op = kmeans_split_op(
                self._calls, np.flatnonzero(mask), cluster, self._next_id, k, seed, self._embeddings
            )
        else:
            examples = None
            if by == "template":
                keys, examples = template_keys(
                    self._calls.filter(pl.Series(mask)).get_column("messages").to_list()
                )
            else:
                keys = self._keys(by)[mask]
            values, counts = np.unique(keys, return_counts=True)
            order = sorted(zip(counts.tolist(), values.tolist(), strict=True), key=lambda t: (-t[0], t[1]))
            order = [(n, v) for n, v in order if n >= min_size]
            if max_parts is not None:
                order = order[:max_parts]
            if len(order) < 2:
                raise ValueError(f"cluster {cluster} has a single {by!r} value with >= {min_size} calls")
            base_name = self._meta[cluster]["name"]
            parts = {v: self._next_id + i for i, (_, v) in enumerate(order[1:])}
            op = {
                "op": "split",
                "cluster": cluster,
                "by": by,
                "parts": parts,
            }
            if examples is not None:  # the prompts that define each template, so replay and apply match them
                op["examples"] = {str(v): examples[v] for _, v in order if v in examples}
            op["parent_name"] = f"{base_name} · {part_label(op, order[0][1])}"
        self._do(op)
        return [cluster, *split_parts(op)]

    def accept_suggested(
        self, min_suitability: float = 0.6, *, if_unlabelled: bool = False, at_least: int = 0
    ) -> list[int]:
        """Mark unreviewed clusters with `suitability >= min_suitability` as SLM candidates (one undo step).

        This is what the main job does when nobody labels: the cluster step's suitability score decides.
        The noise cluster (-1) is never accepted.

        Args:
            min_suitability: threshold on the cluster table's `suitability` (0..1).
            if_unlabelled: do nothing if any cluster already has a status other than "unreviewed" (a person
                has labelled; their decisions stand).
            at_least: if fewer clusters pass the threshold, accept the most suitable unreviewed ones up to this
                many (so an unattended run always has something to specialize).

        Returns:
            the accepted cluster ids (largest first); empty if none qualified.

        Example:
            >>> s = LabelSession(pl.DataFrame({"cluster": [0, 1], "suitability": [0.9, 0.2]}))
            >>> s.accept_suggested(0.5)
            [0]
        """
        if if_unlabelled and any(m["status"] != "unreviewed" for m in self._meta.values()):
            return []
        open_ = {c: m for c, m in self._meta.items() if c != NOISE and m["status"] == "unreviewed"}
        scored = {c: m["suitability"] for c, m in open_.items() if m["suitability"] is not None}
        chosen = {c for c, v in scored.items() if v >= min_suitability}
        for c in sorted(scored, key=lambda c: (-scored[c], c)):
            if len(chosen) >= at_least:
                break
            chosen.add(c)
        chosen = sorted(chosen, key=lambda c: (-(open_[c]["size"] or 0), c))
        if chosen:
            self._do(
                {
                    "op": "status",
                    "clusters": chosen,
                    "status": "slm_candidate",
                    "reason": f"suitability >= {min_suitability}"
                    + (f", at least {at_least}" if at_least else ""),
                }
            )
        return chosen

    def undo(self, steps: int = 1) -> dict[str, Any] | None:
        """Undo the last `steps` operations; returns the last one undone (None if the log was empty).

        Example:
            >>> s = LabelSession(pl.DataFrame({"cluster": [0]})); s.rename(0, "x"); _ = s.undo()
            >>> s.clusters["name"][0]
            'cluster 0'
        """
        undone = None
        for _ in range(steps):
            if not self._ops:
                break
            undone = self._ops.pop()
        if undone is not None:
            self._rebuild()
        return undone

    # ------------------------------------------------------------------------------------------ views
    @property
    def clusters(self) -> pl.DataFrame:
        """The current cluster table (`CLUSTER_SCHEMA` + `note`), largest cluster first."""
        rows = sorted(self._meta.values(), key=lambda m: (-(m["size"] or 0), m["cluster"]))
        return pl.DataFrame(rows, schema=LABEL_COLUMNS) if rows else pl.DataFrame(schema=LABEL_COLUMNS)

    @property
    def operations(self) -> list[dict[str, Any]]:
        """A copy of the operation log (JSON-ready dicts)."""
        return json.loads(json.dumps(self._ops))

    @property
    def history(self) -> pl.DataFrame:
        """The operation log as a table: step, op, summary."""
        rows = [{"step": i + 1, "op": op["op"], "summary": describe_op(op)} for i, op in enumerate(self._ops)]
        return pl.DataFrame(rows, schema={"step": pl.Int64, "op": pl.String, "summary": pl.String})

    @property
    def n_labelled(self) -> int:
        """Clusters whose status is not "unreviewed"."""
        return sum(m["status"] != "unreviewed" for m in self._meta.values())

    def accepted(self) -> list[int]:
        """Ids of the clusters marked "slm_candidate", largest first."""
        return self.clusters.filter(pl.col("status") == "slm_candidate").get_column("cluster").to_list()

    @property
    def call_clusters(self) -> pl.Series:
        """The current cluster of every call of the session's call table, in row order (Int64)."""
        if self._assign is None:
            raise ValueError("this session has no call table")
        return pl.Series("cluster", self._assign.copy(), pl.Int64)

    def cluster_calls(self, cluster: int) -> pl.DataFrame:
        """The calls currently in `cluster` (with the `cluster` column as the session sees it)."""
        if self._calls is None:
            raise ValueError("this session has no call table")
        return self._calls.with_columns(self.call_clusters).filter(pl.col("cluster") == self._check(cluster))

    def apply(self, calls: pl.DataFrame) -> pl.DataFrame:
        """Map the `cluster` column of `calls` (ids of step 3) through the merges and splits.

        Calls the session has not seen follow by-value splits by their own value; k-means splits move only
        the calls they were computed on (others stay in the old cluster).

        Example:
            >>> s = LabelSession(pl.DataFrame({"cluster": [0, 1]})); _ = s.merge([0, 1], into=0)
            >>> s.apply(pl.DataFrame({"cluster": [0, 1, -1]}))["cluster"].to_list()
            [0, 0, -1]
        """
        if "cluster" not in calls.columns:
            raise ValueError("apply needs a call table with the 'cluster' column of step 3")
        dtype = calls.schema["cluster"]
        assign = calls.get_column("cluster").fill_null(NOISE).cast(pl.Int64).to_numpy().copy()
        cache: dict[Any, Any] = {}
        for op in self._ops:
            assign_op(op, assign, calls, cache)
        null = calls.get_column("cluster").is_null().to_numpy()
        out = pl.Series("cluster", assign, pl.Int64)
        if null.any():
            out = pl.Series("cluster", [None if n else int(a) for a, n in zip(assign, null, strict=True)])
        return calls.with_columns(out.cast(dtype))

    # -------------------------------------------------------------------------------------- save/load
    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready state: base cluster table, operation log, and a snapshot of names/statuses."""
        snap = self.clusters.select("cluster", "name", "status", "note", "size", "share_calls", "share_cost")
        return {
            "format": "slmlab.labels",
            "version": FORMAT_VERSION,
            "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "base_clusters": self._base.to_dicts(),
            "operations": self._ops,
            "snapshot": snap.to_dicts(),
        }

    def save(self, path: str | Path) -> Path:
        """Write the session as JSON (atomically: a crash never leaves half a file); returns the path.

        Example:
            >>> import tempfile
            >>> s = LabelSession(pl.DataFrame({"cluster": [0]})); s.rename(0, "x")
            >>> p = s.save(Path(tempfile.mkdtemp()) / "labels.json")
            >>> LabelSession.load(p).clusters["name"][0]
            'x'
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, default=str))
        tmp.replace(path)
        return path

    @classmethod
    def load(
        cls,
        path: str | Path,
        calls: pl.DataFrame | None = None,
        *,
        clusters: pl.DataFrame | None = None,
        embeddings: np.ndarray | None = None,
    ) -> LabelSession:
        """Rebuild a saved session by replaying its operation log over its base cluster table.

        Args:
            path: a file written by `save`.
            calls: the clustered call table (needed for splits and recomputed statistics).
            clusters: the current cluster table of step 3; if it differs from the saved base (cluster ids or
                sizes), the labels belong to an older clustering and `StaleLabelsError` is raised.
            embeddings: as in the constructor.

        Raises:
            StaleLabelsError: the saved labels do not match `clusters` or `calls`.
        """
        data = json.loads(Path(path).read_text())
        if data.get("format") != "slmlab.labels":
            raise ValueError(f"{path} is not an slmlab label file")
        if data.get("version", 0) > FORMAT_VERSION:
            raise ValueError(f"{path} was written by a newer slmlab (format {data['version']})")
        base = pl.DataFrame(data["base_clusters"], schema=LABEL_COLUMNS)
        if clusters is not None:
            check_same(base, conform_label_clusters(clusters), "the cluster table")
        if calls is not None:
            counts = calls.group_by("cluster").len()
            sizes = base.select("cluster", "size").join(counts, on="cluster", how="left")
            if sizes.filter(
                pl.col("size").is_not_null() & (pl.col("size") != pl.col("len").fill_null(0))
            ).height:
                raise StaleLabelsError(
                    f"{path}: cluster sizes differ from the call table (step 3 was re-run)"
                )
        session = cls(base, calls, embeddings=embeddings)
        for op in data.get("operations", []):
            if op["op"] == "split" and "parts" in op:
                op["parts"] = {str(k): int(v) for k, v in op["parts"].items()}
            session._ops.append(op)
        session._rebuild()
        if calls is None:  # no call table to recompute from: the numbers saved with the snapshot stand
            for r in data.get("snapshot", []):
                if r["cluster"] in session._meta:
                    session._meta[r["cluster"]].update(
                        {k: r[k] for k in ("size", "share_calls", "share_cost") if k in r}
                    )
        snap = {r["cluster"]: (r["name"], r["status"]) for r in data.get("snapshot", [])}
        now = {r["cluster"]: (r["name"], r["status"]) for r in session.clusters.to_dicts()}
        if snap and snap != now:
            warnings.warn(f"{path}: replaying the log did not reproduce the saved snapshot", stacklevel=2)
        return session

    @classmethod
    def load_or_new(
        cls,
        path: str | Path,
        clusters: pl.DataFrame,
        calls: pl.DataFrame | None = None,
        *,
        embeddings: np.ndarray | None = None,
    ) -> LabelSession:
        """The saved session at `path` if it belongs to these clusters, else a fresh one (with a warning
        when a stale file is set aside: it is kept as `<path>.stale`)."""
        path = Path(path)
        if path.exists():
            try:
                return cls.load(path, calls, clusters=clusters, embeddings=embeddings)
            except StaleLabelsError as exc:
                warnings.warn(f"{exc}; starting fresh labels (old file kept as .stale)", stacklevel=2)
                path.replace(path.with_name(path.name + ".stale"))
        return cls(clusters, calls, embeddings=embeddings)

    def __repr__(self) -> str:
        return f"LabelSession({len(self._meta)} clusters, {len(self._ops)} operations, {self.n_labelled} labelled)"


__all__ = [
    "FORMAT_VERSION",
    "LABEL_COLUMNS",
    "NONE_KEY",
    "NOISE",
    "LabelSession",
    "StaleLabelsError",
    "call_prompt_texts",
    "last_user_text",
    "split_keys",
    "system_prompt_hash",
    "system_prompt_head",
    "template_keys",
]
