"""The labelling state: a cluster table plus a log of edits (rename, merge, split, status, note, accept).

A `LabelSession` is a plain object with no widgets. Every edit is appended to an operation log; the
current state is the base cluster table of step 3 with the log replayed over it, so `undo()` drops the
last operation and replays the rest, and `save()` / `load()` store the log as JSON, which keeps the labels
across kernel restarts and lets later steps (`slmlab.savings`, the report) map calls through merges and
splits with `apply(calls)`.

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
import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from slmlab.cluster.templates import TemplateIndex, system_prompt
from slmlab.runs import RunStore
from slmlab.runtime.chat_format import call_prompt_texts, last_user_text
from slmlab.schema import (
    CLUSTER_SCHEMA,
    CLUSTER_STATUSES,
    action_expr,
    conform,
    message_text,
    parse_messages,
)

FORMAT_VERSION = 1
NOISE = -1  # cluster id of unassigned calls in the call table
NONE_KEY = "(none)"  # split key of calls whose split column is null
LABEL_COLUMNS = {**CLUSTER_SCHEMA, "note": pl.String()}
_STAT_COLUMNS = ("call_id", "messages", "tool_name", "n_tool_calls", "response_text", "input_tokens",
                 "output_tokens", "cost_usd")  # fmt: skip


class StaleLabelsError(ValueError):
    """A saved label file describes other clusters than the ones given (step 3 was re-run)."""


# ---------------------------------------------------------------------------------------------- call helpers


def system_prompt_hash(messages_json: str | None) -> str | None:
    """A short hash of a call's system prompt (its first system/developer message), or None without one.

    Whitespace is collapsed first, so re-wrapped prompts hash the same; any other edit makes a new
    template.

    Example:
        >>> system_prompt_hash('[{"role": "system", "content": "You book flights."}]')
        'a6e00d9b9cac'
    """
    for msg in parse_messages(messages_json):
        if msg.get("role") in ("system", "developer"):
            text = " ".join(message_text(msg).split())
            return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return None


def system_prompt_head(messages_json: str | None, max_chars: int = 160) -> str:
    """The first `max_chars` characters of a call's system prompt ("" without one)."""
    for msg in parse_messages(messages_json):
        if msg.get("role") in ("system", "developer"):
            return " ".join(message_text(msg).split())[:max_chars]
    return ""


def template_keys(
    messages: Sequence[str | None], examples: dict[str, str] | None = None
) -> tuple[np.ndarray, dict[str, str]]:
    """Template id of each call's system prompt, by near-duplicate matching (`slmlab.cluster.templates.TemplateIndex`),
    so per-call fillers (dates, tiers) do not make a template each. With `examples` (id -> prompt, as returned
    before) calls are matched to those templates; otherwise templates are learnt from `messages`.

    Returns:
        (keys, examples): keys are template ids, "(none)" without a system prompt or a match.
    """
    prompts = [system_prompt(m) for m in messages]
    idx = TemplateIndex.from_examples(examples) if examples is not None else TemplateIndex().fit(prompts)
    keys = [k if k is not None else NONE_KEY for k in idx.match(prompts)]
    return np.array(keys, dtype=object), dict(idx.templates_)


def split_keys(calls: pl.DataFrame, by: str) -> pl.Series:
    """The value each call is split by: `"action"` (tool called or "respond"), `"template"` (system-prompt
    template, see `template_keys`) or any column of the call table; nulls become `"(none)"`.

    Example:
        >>> split_keys(pl.DataFrame({"tool_name": ["x", None]}), "action").to_list()
        ['x', 'respond']
    """
    if by == "action":
        s = calls.select(action_expr()).to_series()
    elif by == "template":
        s = pl.Series(
            "template", template_keys(calls.get_column("messages").to_list())[0].tolist(), pl.String
        )
    elif by in calls.columns:
        s = calls.get_column(by).cast(pl.String)
    else:
        raise ValueError(f"cannot split by {by!r}: use 'action', 'template', 'kmeans' or a call column")
    return s.fill_null(NONE_KEY).alias("key")


def _op_keys(op: dict[str, Any], calls: pl.DataFrame) -> np.ndarray:
    """Split keys of `calls` for a by-value split (template splits match the prompts stored in the op)."""
    if op["by"] == "template":
        return template_keys(calls.get_column("messages").to_list(), op.get("examples", {}))[0]
    return split_keys(calls, op["by"]).to_numpy()


def _part_label(op: dict[str, Any], key: str) -> str:
    example = op.get("examples", {}).get(key)
    return " ".join(example.split())[:40] + "…" if example else key


def _output_shape(n_tool_calls: int | None, response_text: str | None) -> str:
    if n_tool_calls:
        return "tool_call"
    text = (response_text or "").strip()
    if text[:1] in ("{", "["):
        try:
            json.loads(text)
            return "json"
        except ValueError:
            pass
    return "text"


def _common_template(templates: Sequence[str]) -> str:
    texts = [t for t in templates if t]
    if not texts:
        return ""
    prefix = os.path.commonprefix(texts)
    # A prefix of a few characters ("You are a") says nothing; keep it only if it is a real shared part.
    return prefix if len(prefix) >= min(40, min(len(t) for t in texts)) else ""


def _conform_clusters(clusters: pl.DataFrame) -> pl.DataFrame:
    if "cluster" not in clusters.columns:
        raise ValueError("the cluster table needs a 'cluster' column (see slmlab.schema.CLUSTER_SCHEMA)")
    cols = []
    for name, dtype in LABEL_COLUMNS.items():
        if name in clusters.columns:
            cols.append(pl.col(name).cast(dtype))
        elif name == "name":
            cols.append(pl.format("cluster {}", pl.col("cluster")).alias(name))
        elif name == "status":
            cols.append(pl.lit("unreviewed", dtype=dtype).alias(name))
        elif name == "note":
            cols.append(pl.lit("", dtype=dtype).alias(name))
        elif name in ("keywords", "exemplars"):
            cols.append(pl.lit([], dtype=dtype).alias(name))
        elif name == "template":
            cols.append(pl.lit("", dtype=dtype).alias(name))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    out = clusters.select(cols).with_columns(
        pl.col("status").fill_null("unreviewed"),
        pl.col("note").fill_null(""),
        pl.col("keywords").fill_null([]),
        pl.col("exemplars").fill_null([]),
        pl.col("template").fill_null(""),
    )
    if out.get_column("cluster").is_duplicated().any():
        raise ValueError("the cluster table has duplicate cluster ids")
    bad = set(out.get_column("status").to_list()) - set(CLUSTER_STATUSES)
    if bad:
        raise ValueError(f"unknown status {sorted(bad)}; use one of {CLUSTER_STATUSES}")
    return out


# -------------------------------------------------------------------------------------------------- session


class LabelSession:
    """Review state over the clusters of step 3: edits, undo, save/load, and mapping of calls.

    Args:
        clusters: the cluster table (`slmlab.schema.CLUSTER_SCHEMA`; missing columns are filled).
        calls: the clustered call table (canonical columns + `cluster`); needed to recompute sizes, shares and
            token statistics after merges and splits, and for `split`. Without it, merges combine the
            table's own numbers (p90 becomes the members' maximum) and `split` is unavailable.
        embeddings: optional float matrix, one row per row of `calls`, used by `split(by="kmeans")`; without
            it k-means runs on TF-IDF vectors of the calls' last user turns.
        max_exemplars: exemplar call ids kept per cluster after merges and splits.

    Example:
        >>> s = LabelSession(pl.DataFrame({"cluster": [0], "suitability": [0.9]}))
        >>> s.accept_suggested(0.5)
        [0]
        >>> s.undo()["op"]
        'status'
    """

    def __init__(
        self,
        clusters: pl.DataFrame,
        calls: pl.DataFrame | None = None,
        *,
        embeddings: np.ndarray | None = None,
        max_exemplars: int = 5,
    ) -> None:
        self._base = _conform_clusters(clusters)
        if calls is not None and "cluster" not in calls.columns:
            raise ValueError("the call table needs the 'cluster' column written by step 3")
        if embeddings is not None:
            if calls is None or len(embeddings) != calls.height:
                raise ValueError("embeddings need one row per row of `calls`")
            embeddings = np.asarray(embeddings, dtype=np.float32)
        if calls is not None and any(c not in calls.columns for c in _STAT_COLUMNS):
            calls = conform(calls)  # hand-built frames: add the canonical columns the statistics read
        self._calls = calls
        self._embeddings = embeddings
        self.max_exemplars = max_exemplars
        self._ops: list[dict[str, Any]] = []
        self._key_cache: dict[str, np.ndarray] = {}
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
        into = op["into"]
        merged = _merge_meta(members, into, self.max_exemplars)
        if op.get("name"):
            merged["name"] = op["name"]
        for c in op["clusters"]:
            del self._meta[c]
        self._meta[into] = merged
        if self._assign is not None:
            self._assign[np.isin(self._assign, op["clusters"])] = into
            self._recompute([into])

    def _step_split(self, op: dict[str, Any]) -> None:
        parent = op["cluster"]
        if (
            self._assign is None
        ):  # loaded without calls: the parts exist, their numbers come from the snapshot
            new_ids = list(op["parts"].values()) if "parts" in op else op["new"]
            for new in new_ids:
                self._meta[new] = {**self._meta[parent], "cluster": new, "name": f"cluster {new}", "note": ""}
                self._meta[new].update(size=None, share_calls=None, share_cost=None)
                self._next_id = max(self._next_id, new + 1)
            if op.get("parent_name"):
                self._meta[parent]["name"] = op["parent_name"]
            return
        mask = self._assign == parent
        if "parts" in op:
            rows = np.flatnonzero(mask)
            if op["by"] == "template":
                keys = _op_keys(op, self._calls[rows])
            else:
                keys = self._keys(op["by"])[rows]
            for key, new in op["parts"].items():
                self._assign[rows[keys == key]] = new
            labels = {
                new: f"{self._meta[parent]['name']} · {_part_label(op, k)}" for k, new in op["parts"].items()
            }
        else:
            index = {cid: i for i, cid in enumerate(self._calls.get_column("call_id").to_list())}
            for cid, new in op["call_ids"].items():
                i = index.get(cid)
                if i is not None and mask[i]:
                    self._assign[i] = new
            labels = {new: f"{self._meta[parent]['name']} · part {j + 2}" for j, new in enumerate(op["new"])}
        for new, name in labels.items():
            self._meta[new] = {**self._meta[parent], "cluster": new, "name": name, "note": ""}
            self._next_id = max(self._next_id, new + 1)
        if op.get("parent_name"):
            self._meta[parent]["name"] = op["parent_name"]
        self._recompute([parent, *labels])

    def _recompute(self, ids: Iterable[int]) -> None:
        """Refresh size, shares, action, shape, tokens and exemplars of `ids` from the call table."""
        ids = list(ids)
        calls = self._calls.with_columns(pl.Series("cluster", self._assign, pl.Int64))
        total_calls = calls.height
        total_cost = float(calls.get_column("cost_usd").fill_null(0).sum()) if "cost_usd" in calls else 0.0
        sub = calls.filter(pl.col("cluster").is_in(ids))
        acts = (
            sub.group_by("cluster", action_expr())
            .len()
            .sort(["cluster", "len", "action"], descending=[False, True, False])
        )
        stats = sub.group_by("cluster").agg(
            pl.len().alias("size"),
            pl.col("cost_usd").fill_null(0).sum().alias("cost"),
            pl.col("input_tokens").cast(pl.Float64).mean().alias("mean_input_tokens"),
            pl.col("input_tokens").cast(pl.Float64).quantile(0.9, "linear").alias("p90_input_tokens"),
            pl.col("output_tokens").cast(pl.Float64).mean().alias("mean_output_tokens"),
            pl.col("call_id"),
            pl.col("n_tool_calls"),
            pl.col("response_text"),
        )
        by_id = {r["cluster"]: r for r in stats.to_dicts()}
        top = {r["cluster"]: r for r in acts.unique("cluster", keep="first", maintain_order=True).to_dicts()}
        for c in ids:
            meta = self._meta[c]
            row = by_id.get(c)
            if row is None:  # every call left (a split can empty nothing, but stay safe)
                meta.update(
                    size=0, share_calls=0.0, share_cost=0.0 if total_cost else None, action_share=None
                )
                continue
            size = row["size"]
            shapes = [
                _output_shape(n, t) for n, t in zip(row["n_tool_calls"], row["response_text"], strict=True)
            ]
            members = set(row["call_id"])
            keep = [e for e in meta["exemplars"] if e in members]
            keep += [cid for cid in row["call_id"] if cid not in keep][
                : max(0, self.max_exemplars - len(keep))
            ]
            meta.update(
                size=size,
                share_calls=size / total_calls if total_calls else 0.0,
                share_cost=row["cost"] / total_cost if total_cost else None,
                dominant_action=top[c]["action"],
                action_share=top[c]["len"] / size,
                output_shape=max(set(shapes), key=lambda s, sh=shapes: (sh.count(s), s)),
                mean_input_tokens=row["mean_input_tokens"],
                p90_input_tokens=row["p90_input_tokens"],
                mean_output_tokens=row["mean_output_tokens"],
                exemplars=keep[: self.max_exemplars],
            )

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
            op = self._kmeans_split(cluster, mask, k, seed)
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
            op["parent_name"] = f"{base_name} · {_part_label(op, order[0][1])}"
        self._do(op)
        return [cluster, *(op["parts"].values() if "parts" in op else op["new"])]

    def _kmeans_split(self, cluster: int, mask: np.ndarray, k: int, seed: int) -> dict[str, Any]:
        from sklearn.cluster import KMeans

        rows = np.flatnonzero(mask)
        if len(rows) < max(k, 2):
            raise ValueError(f"cluster {cluster} has {len(rows)} calls; k-means needs at least {k}")
        if self._embeddings is not None:
            x = self._embeddings[rows]
        else:
            from sklearn.feature_extraction.text import TfidfVectorizer

            texts = call_prompt_texts(self._calls[rows])
            try:
                x = TfidfVectorizer(max_features=2000, sublinear_tf=True).fit_transform(texts)
            except ValueError as exc:  # empty vocabulary: nothing to tell the calls apart
                raise ValueError(f"cluster {cluster}: its prompts have no words to split on") from exc
        labels = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(x)
        sizes = np.bincount(labels, minlength=k)
        if (sizes > 0).sum() < 2:
            raise ValueError(f"k-means found a single group in cluster {cluster}")
        order = [int(j) for j in np.argsort(-sizes, kind="stable") if sizes[j] > 0]
        new = {lab: self._next_id + i for i, lab in enumerate(order[1:])}
        ids = self._calls.get_column("call_id").to_numpy()[rows]
        moved = {str(cid): new[int(lab)] for cid, lab in zip(ids, labels, strict=True) if int(lab) in new}
        return {
            "op": "split",
            "cluster": cluster,
            "by": "kmeans",
            "new": list(new.values()),
            "call_ids": moved,
        }

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
        rows = [{"step": i + 1, "op": op["op"], "summary": _describe(op)} for i, op in enumerate(self._ops)]
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
        keys: dict[str, np.ndarray] = {}
        index: dict[str, int] | None = None
        for op in self._ops:
            if op["op"] == "merge":
                assign[np.isin(assign, op["clusters"])] = op["into"]
            elif op["op"] == "split":
                mask = assign == op["cluster"]
                if "parts" in op:
                    rows = np.flatnonzero(mask)
                    if op["by"] != "template" and op["by"] not in keys:
                        keys[op["by"]] = split_keys(calls, op["by"]).to_numpy()
                    sub = _op_keys(op, calls[rows]) if op["by"] == "template" else keys[op["by"]][rows]
                    for key, new in op["parts"].items():
                        assign[rows[sub == key]] = new
                elif "call_id" in calls.columns:
                    if index is None:
                        index = {cid: i for i, cid in enumerate(calls.get_column("call_id").to_list())}
                    for cid, new in op["call_ids"].items():
                        i = index.get(cid)
                        if i is not None and mask[i]:
                            assign[i] = new
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
            _check_same(base, _conform_clusters(clusters), "the cluster table")
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


def load_labelled_calls(run: str | RunStore = "demo") -> tuple[pl.DataFrame, LabelSession | None]:
    """A run's clustered calls (step 3) mapped through the labeller's merges and splits, and the session.

    The one reader of a run's labelled state: every later step reads the calls and the cluster table
    this way, so cluster ids agree across notebooks 05-08. Without a saved `labels.json` the calls come
    back as step 3 wrote them and the session is None.

    Raises:
        slmlab.runs.MissingArtefactError: step 3's `clustered.parquet` is missing (names what to run).
        slmlab.runs.StaleArtefactError: step 3's output was made from an older curated table.

    Example:
        >>> calls, session = load_labelled_calls("demo")  # doctest: +SKIP
    """
    store = run if isinstance(run, RunStore) else RunStore(run)
    calls = store.read_clustered()
    labels = store.labels_path()
    if not labels.exists():
        return calls, None
    session = LabelSession.load(labels, calls, clusters=store.read_clusters())
    return session.apply(calls), session


def load_labelled_clusters(run: str | RunStore = "demo") -> tuple[pl.DataFrame, pl.DataFrame]:
    """The labelled calls and the cluster table they belong to (the labeller's, else step 3's).

    Example:
        >>> calls, clusters = load_labelled_clusters("demo")  # doctest: +SKIP
    """
    store = run if isinstance(run, RunStore) else RunStore(run)
    calls, session = load_labelled_calls(store)
    return calls, session.clusters if session is not None else store.read_clusters()


# ----------------------------------------------------------------------------------------------- helpers


def _check_same(saved: pl.DataFrame, current: pl.DataFrame, what: str) -> None:
    a = dict(saved.select("cluster", "size").iter_rows())
    b = dict(current.select("cluster", "size").iter_rows())
    if a != b:
        raise StaleLabelsError(f"the saved labels describe other clusters than {what} (step 3 was re-run)")


def _merge_meta(members: list[dict[str, Any]], into: int, max_exemplars: int) -> dict[str, Any]:
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
        "template": _common_template([m["template"] for m in members]),
        "mean_input_tokens": wmean("mean_input_tokens"),
        "p90_input_tokens": max(p90) if p90 else None,
        "mean_output_tokens": wmean("mean_output_tokens"),
        "suitability": wmean("suitability"),
        "note": "\n".join(notes),
    }


def _describe(op: dict[str, Any]) -> str:
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
        new = list(op["parts"].values()) if "parts" in op else op["new"]
        return f"split {op['cluster']} by {op['by']} into {', '.join(map(str, [op['cluster'], *new]))}"
    return kind


__all__ = [
    "LABEL_COLUMNS",
    "LabelSession",
    "StaleLabelsError",
    "call_prompt_texts",
    "last_user_text",
    "split_keys",
    "system_prompt_hash",
    "system_prompt_head",
    "template_keys",
]
