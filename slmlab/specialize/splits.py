"""Train / validation / test splits of a call table by whole sessions, stratified by the action taken.

Fine-tuning on the LLM's answers and evaluating against them is only honest when no conversation sits on
both sides: calls of one session share most of their prompt, so a random row split leaks the test set into
training. `split_by_session` assigns whole sessions (and sessions that share an identical prompt, e.g. two
trials opening with the same user turn) to one split, greedily, so that every action (tool name or
"respond") reaches its share in each split where the data allows it: rare tools land in train *and* test.
`check_leakage` verifies a split loudly.

Usage:
    >>> from slmlab.specialize.splits import split_by_session, check_leakage
    >>> split = split_by_session(calls, test_size=0.2, val_size=0.1)  # doctest: +SKIP
    >>> check_leakage(split)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from typing import Any

import polars as pl

from slmlab.runs import RunStore, StaleArtefactError
from slmlab.schema import TEXT_ACTION, action_expr, parse_messages

SPLITS = ("train", "val", "test")
_WS = re.compile(r"\s+")


class LeakageError(AssertionError):
    """An evaluation prompt also occurs in training data, or a session spans several splits."""


def _normalize(obj: Any) -> Any:
    if isinstance(obj, str):
        return _WS.sub(" ", obj).strip()
    if isinstance(obj, list):
        return [_normalize(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _normalize(v) for k, v in obj.items() if k not in ("id", "tool_call_id") and v is not None}
    return obj


def prompt_hash(messages_json: str | None) -> str:
    """A hash of a prompt that ignores whitespace, key order and call ids (which differ between runs).

    Example:
        >>> a = '[{"role": "user", "content": "Hi  there"}]'
        >>> b = '[{"content": "Hi there", "role": "user"}]'
        >>> prompt_hash(a) == prompt_hash(b)
        True
    """
    norm = _normalize(parse_messages(messages_json))
    return hashlib.sha1(json.dumps(norm, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _with_hash(calls: pl.DataFrame) -> pl.DataFrame:
    if "prompt_hash" in calls.columns:
        return calls
    return calls.with_columns(
        pl.col("messages").map_elements(prompt_hash, return_dtype=pl.String).alias("prompt_hash")
    )


def deduplicate(calls: pl.DataFrame) -> pl.DataFrame:
    """Drop exact duplicate calls (same normalized prompt and same response), keeping the first.

    Example:
        >>> df = pl.DataFrame({"messages": ['[{"role":"user","content":"a"}]'] * 2,
        ...                    "response_text": ["x", "x"], "response_tool_calls": [None, None]})
        >>> deduplicate(df).height
        1
    """
    hashed = _with_hash(calls)
    keys = ["prompt_hash", "response_text", "response_tool_calls"]
    out = hashed.unique(subset=keys, keep="first", maintain_order=True)
    return out if "prompt_hash" in calls.columns else out.drop("prompt_hash")


def _session_groups(calls: pl.DataFrame, group_col: str | None) -> dict[str, str]:
    """Map each session to a group: sessions sharing a prompt hash (or a `group_col` value) are merged."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    for s in calls.get_column("session_id").unique().to_list():
        find(s)
    link_cols = ["prompt_hash"] + ([group_col] if group_col else [])
    for col in link_cols:
        linked = (
            calls.filter(pl.col(col).is_not_null())
            .group_by(col)
            .agg(pl.col("session_id").unique())
            .filter(pl.col("session_id").list.len() > 1)
        )
        for sessions in linked.get_column("session_id").to_list():
            for other in sessions[1:]:
                union(sessions[0], other)
    return {s: find(s) for s in parent}


def _assign_stratified(
    groups: pl.DataFrame, fractions: dict[str, float], rng: random.Random
) -> dict[str, str]:
    """Greedy group assignment: rarest actions first, each group to the split missing most of its targets.

    `groups` has one row per group with `n` (calls) and `actions` (list of actions, one entry per call).
    """
    total_calls = int(groups.get_column("n").sum())
    action_groups: dict[str, int] = {}
    rows = []
    for gid, n, actions in groups.select("group", "n", "actions").iter_rows():
        present = sorted(set(actions))
        for a in present:
            action_groups[a] = action_groups.get(a, 0) + 1
        rows.append((gid, n, present))
    rng.shuffle(rows)
    # Rarest action first, so the few groups holding a rare tool are spread before common ones fill splits.
    rows.sort(key=lambda r: min(action_groups[a] for a in r[2]) if r[2] else 10**9)
    active = [s for s in SPLITS if fractions[s] > 0]
    # Ties go to the split with the larger share (train, then test, then val): a rare tool seen in two
    # sessions lands in train and test rather than in val.
    order = sorted(active, key=lambda s: -fractions[s])
    size = dict.fromkeys(active, 0)
    seen = {s: {} for s in active}
    out = {}
    for gid, n, present in rows:
        best, best_score = None, None
        for s in order:
            size_missing = (fractions[s] * total_calls - size[s]) / max(fractions[s] * total_calls, 1)
            act_missing = 0.0
            for a in present:
                target = fractions[s] * action_groups[a]
                act_missing += (target - seen[s].get(a, 0)) / max(target, 1e-9) / action_groups[a]
            score = size_missing + act_missing / max(len(present), 1)
            if best_score is None or score > best_score + 1e-12:
                best, best_score = s, score
        out[gid] = best
        size[best] += n
        for a in present:
            seen[best][a] = seen[best].get(a, 0) + 1
    return out


def _assign_random(groups: pl.DataFrame, fractions: dict[str, float], rng: random.Random) -> dict[str, str]:
    rows = list(groups.select("group", "n").iter_rows())
    rng.shuffle(rows)
    total = sum(n for _, n in rows)
    out, done = {}, 0
    bounds = [("test", fractions["test"]), ("val", fractions["test"] + fractions["val"])]
    for gid, n in rows:
        frac = done / max(total, 1)
        out[gid] = next((s for s, b in bounds if frac < b), "train")
        done += n
    return out


def split_by_session(
    calls: pl.DataFrame,
    test_size: float = 0.2,
    val_size: float = 0.1,
    seed: int = 0,
    stratify: bool = True,
    dedupe: bool = True,
    successful_only: bool = False,
    group_col: str | None = None,
) -> pl.DataFrame:
    """Add a `split` column ("train" / "val" / "test") assigning whole sessions to one side.

    Args:
        calls: a call table (needs `session_id`, `messages`, `tool_name`, `response_text`,
            `response_tool_calls`; `reward` for `successful_only`).
        test_size: share of calls for the test split (approximate: sessions are not cut).
        val_size: share of calls for the validation split.
        seed: shuffles sessions before assignment; the same seed gives the same split.
        stratify: spread each action (tool name or "respond") over the splits in proportion; rare tools
            go to train and test first. False gives a plain random session split.
        dedupe: drop exact duplicate calls (same normalized prompt and response) first, keeping the first.
        successful_only: drop *training* calls of sessions whose `reward` is known and below 1, so the
            model imitates successful conversations only. Val and test keep every session, so the test set
            does not depend on this flag.
        group_col: a column whose equal values must stay on one side too (e.g. "task_label" to keep all
            trials of a task together). Sessions that share an identical prompt always stay together.

    Returns:
        `calls` (deduplicated) with a `split` column and a `prompt_hash` column (normalized prompt hash).

    Example:
        >>> split = split_by_session(calls, test_size=0.2, val_size=0.1, seed=0)  # doctest: +SKIP
        >>> split.group_by("split").len()  # doctest: +SKIP
    """
    if not 0 <= test_size < 1 or not 0 <= val_size < 1 or test_size + val_size >= 1:
        raise ValueError(
            f"need 0 <= test_size, val_size and test_size + val_size < 1, got {test_size}, {val_size}"
        )
    df = _with_hash(calls)
    if dedupe:
        df = deduplicate(df)
    if df.is_empty():
        return df.with_columns(pl.lit(None, dtype=pl.String).alias("split"))
    group_of = _session_groups(df, group_col)
    df = df.with_columns(
        pl.col("session_id").replace_strict(group_of, return_dtype=pl.String).alias("_group"),
        action_expr().alias("_action"),
    )
    groups = (
        df.group_by("_group")
        .agg(pl.len().alias("n"), pl.col("_action").alias("actions"))
        .rename({"_group": "group"})
        .sort("group")
    )
    fractions = {"train": 1 - test_size - val_size, "val": val_size, "test": test_size}
    rng = random.Random(seed)
    assign = (
        _assign_stratified(groups, fractions, rng) if stratify else _assign_random(groups, fractions, rng)
    )
    df = df.with_columns(pl.col("_group").replace_strict(assign, return_dtype=pl.String).alias("split"))
    if successful_only:
        if "reward" not in df.columns:
            raise ValueError("successful_only needs a `reward` column")
        failed = (pl.col("split") == "train") & pl.col("reward").is_not_null() & (pl.col("reward") < 1)
        df = df.filter(~failed)
    return df.drop("_group", "_action")


def check_leakage(calls: pl.DataFrame) -> pl.DataFrame:
    """Raise `LeakageError` if a session spans splits or an eval prompt also occurs in training.

    Returns `calls` unchanged so it can sit in a chain.

    Example:
        >>> df = pl.DataFrame({"session_id": ["a", "b"], "split": ["train", "test"],
        ...                    "messages": ['[{"role":"user","content":"hi"}]'] * 2})
        >>> try:
        ...     check_leakage(df)
        ... except LeakageError as err:
        ...     print(err)
        1 test prompt(s) also occur in training data (e.g. session 'b')
    """
    if "split" not in calls.columns:
        raise ValueError("the call table has no `split` column; run split_by_session first")
    df = _with_hash(calls)
    spanning = df.group_by("session_id").agg(pl.col("split").n_unique().alias("k")).filter(pl.col("k") > 1)
    if spanning.height:
        ids = spanning.get_column("session_id").sort().to_list()[:3]
        raise LeakageError(f"{spanning.height} session(s) span several splits (e.g. {ids})")
    train_hashes = df.filter(pl.col("split") == "train").get_column("prompt_hash").unique()
    for split in ("val", "test"):
        leaked = df.filter((pl.col("split") == split) & pl.col("prompt_hash").is_in(train_hashes.implode()))
        if leaked.height:
            raise LeakageError(
                f"{leaked.height} {split} prompt(s) also occur in training data "
                f"(e.g. session {leaked.get_column('session_id')[0]!r})"
            )
    return calls


def split_summary(calls: pl.DataFrame) -> pl.DataFrame:
    """Calls per action and split (columns action, train, val, test), most frequent action first.

    Example:
        >>> split_summary(split_by_session(calls))  # doctest: +SKIP
    """
    counts = calls.with_columns(action_expr()).group_by("action", "split").len()
    wide = counts.pivot(on="split", index="action", values="len").fill_null(0)
    for s in SPLITS:
        if s not in wide.columns:
            wide = wide.with_columns(pl.lit(0, dtype=pl.UInt32).alias(s))
    return wide.select("action", *SPLITS).sort(pl.sum_horizontal(*SPLITS), descending=True)


__all__ = [
    "LeakageError",
    "apply_split",
    "make_run_split",
    "split_table",
    "SPLITS",
    "TEXT_ACTION",
    "check_leakage",
    "deduplicate",
    "prompt_hash",
    "split_by_session",
    "split_summary",
]


# ------------------------------------------------------------------------------------------ the run's split


def split_table(split_calls: pl.DataFrame) -> pl.DataFrame:
    """The saved form of a split: call_id, session_id, split (one row per call that is in a split)."""
    return split_calls.filter(pl.col("split").is_not_null()).select("call_id", "session_id", "split")


def apply_split(calls: pl.DataFrame, split: pl.DataFrame) -> pl.DataFrame:
    """`calls` with the saved split's `split` column; calls the split left out (exact duplicates) are dropped.

    A cluster's split is this filter of the run's one split: nothing is re-split.

    Example:
        >>> calls = pl.DataFrame({"call_id": ["a", "b", "c"], "cluster": [0, 0, 1]})
        >>> split = pl.DataFrame({"call_id": ["a", "b"], "session_id": ["s", "t"], "split": ["train", "test"]})
        >>> apply_split(calls, split)["split"].to_list()
        ['train', 'test']
    """
    calls = calls.drop("split") if "split" in calls.columns else calls
    return calls.join(split.select("call_id", "split"), on="call_id", how="inner", maintain_order="left")


def make_run_split(
    store: RunStore,
    test_size: float = 0.2,
    val_size: float = 0.1,
    seed: int = 0,
    group_col: str | None = None,
) -> pl.DataFrame:
    """The run's one split (call_id -> train / val / test), made from the curated calls once and saved.

    If the run already has a split made with the same settings from the current curated table, that one
    is returned unchanged; a split made with other settings is an error (adapters and scores depend on
    it); a split whose curated table was rewritten since is made anew (its adapters are then refused).

    Example:
        >>> split = make_run_split(RunStore("demo"), seed=0)  # doctest: +SKIP
    """
    settings = {"test_size": test_size, "val_size": val_size, "seed": seed, "group_col": group_col}
    if store.exists("split"):
        prov = store.provenance("split") or {}
        saved = prov.get("settings")
        try:
            store.check_fresh("split")
            fresh = True
        except StaleArtefactError as err:
            print(f"{err}\nmaking the split anew")
            fresh = False
        if fresh and saved is not None and saved != settings:
            raise ValueError(
                f"run {store.run!r} already has a split made with {saved}, not {settings}: use the same "
                f"settings, or delete {store.path('split')} (its adapters and scores then need re-running)"
            )
        if fresh:
            return store.read_split()
    curated = store.read_curated()
    split = split_table(
        check_leakage(split_by_session(curated, test_size, val_size, seed=seed, group_col=group_col))
    )
    store.write_split(split, **settings)
    return store.read_split()
