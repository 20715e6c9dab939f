"""Drift on a run's own logs (step 8b): its latest sessions play the new logs, the earlier ones the reference.

Usage:
    >>> from slmlab.iterate.latest import drift_on_latest_sessions
    >>> report = drift_on_latest_sessions("demo")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import polars as pl

from slmlab.cluster.features import EMBED_MAX_CHARS
from slmlab.iterate.drift import detect_drift
from slmlab.iterate.report import DriftReport


def split_by_time(calls: pl.DataFrame, n_new: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split calls into (reference, new) by session start time: the latest whole sessions, about `n_new`
    calls and at most half of all calls, play the new logs.

    Example:
        >>> c = pl.DataFrame({"session_id": ["a", "a", "b"], "timestamp": [1, 2, 3]})
        >>> [f.height for f in split_by_time(c, 1)]
        [2, 1]
    """
    if calls.height < 2:
        raise ValueError("need at least two calls to split")
    order = (
        calls.group_by("session_id")
        .agg(pl.col("timestamp").min().alias("start"), pl.len().alias("n"))
        .sort(["start", "session_id"], descending=[True, False], nulls_last=True)
    )
    cap = min(n_new, calls.height // 2)
    take, total = [], 0
    for sid, _, n in order.iter_rows():
        if total >= cap or (take and total + n > calls.height // 2):
            break
        take.append(sid)
        total += n
    is_new = pl.col("session_id").is_in(take)
    return calls.filter(~is_new), calls.filter(is_new)


def drift_on_latest_sessions(
    run: str | Any = "demo",
    n_calls: int = 1500,
    seed: int = 0,
    embedder: Any = None,
    max_reference: int = 2000,
    max_chars: int = EMBED_MAX_CHARS,
) -> DriftReport:
    """Drift check on a run's own logs: the latest sessions (about `n_calls` calls) play next month's logs
    and the earlier ones the reference, assigned to the run's clusters (through the labeller's merges and
    splits when `labels.json` exists). In the bundled demo logs the system prompts change mid-period, which
    this must find as new templates.

    Args:
        run: run folder with `clustered.parquet` (and optionally `labels.json`, `replay.parquet`).
        n_calls: new calls, at most half of the run's calls.
        seed: seed of the reference sample when it exceeds `max_reference` calls.
        embedder: name or `slmlab.cluster.embed.Embedder` for the prompt embeddings (default: the bundled MiniLM).
        max_reference: reference calls embedded at most (a uniform sample beyond that).
        max_chars: prompt text embedded per call; the clusterer's cut (`EMBED_MAX_CHARS`) reuses step 3's
            cached embeddings of the last user turns (any other cut embeds every call again).
    """
    from slmlab.cluster.embed import select_embedder
    from slmlab.label import load_labelled_calls
    from slmlab.runs import RunStore
    from slmlab.runtime.chat_format import call_prompt_texts

    calls, _ = load_labelled_calls(run)
    reference, new = split_by_time(calls, n_calls)
    if reference.height > max_reference:
        reference = reference.sample(max_reference, seed=seed)
    emb = select_embedder(embedder, max_chars=max_chars)
    ref_texts, new_texts = call_prompt_texts(reference, max_chars), call_prompt_texts(new, max_chars)
    emb.fit(ref_texts)
    replay_ref = replay_new = None
    store = RunStore(run) if isinstance(run, str) else run
    if store.exists("replay"):
        replay = store.read_replay()
        replay_ref = replay.filter(pl.col("call_id").is_in(reference["call_id"].implode()))
        replay_new = replay.filter(pl.col("call_id").is_in(new["call_id"].implode()))
        if not (replay_ref.height and replay_new.height):
            replay_ref = replay_new = None
    return detect_drift(
        new,
        None,
        reference,
        new_embeddings=emb.embed(new_texts),
        reference_embeddings=emb.embed(ref_texts),
        new_replay=replay_new,
        reference_replay=replay_ref,
    )
