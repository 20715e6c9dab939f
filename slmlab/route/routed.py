"""A run's held-out calls as notebook 07 replayed them through the router: the one join of the replay to
the calls, read by the savings step, the drift check and the report.

Usage:
    >>> from slmlab.route.routed import routed_calls, observed_calls_per_month
    >>> calls = routed_calls("demo")  # doctest: +SKIP
"""

from __future__ import annotations

import polars as pl

from slmlab.runs import RunStore

SECONDS_PER_MONTH = 30.44 * 24 * 3600


def routed_calls(run: str | RunStore = "demo") -> pl.DataFrame:
    """The replayed (held-out, test-split) calls of a run: the labelled call table (tokens, costs, agents,
    timestamps, cluster ids as notebook 07 saw them) joined to the replay's routing and scores.

    Raises:
        slmlab.runs.MissingArtefactError: notebook 07 has not written `replay.parquet`.
    """
    from slmlab.label import load_labelled_calls

    store = run if isinstance(run, RunStore) else RunStore(run)
    replay = store.read_replay()
    calls, _ = load_labelled_calls(store)
    extra = [c for c in replay.columns if c == "call_id" or c not in calls.columns]
    return calls.join(replay.select(extra), on="call_id", how="inner", maintain_order="left")


def observed_calls_per_month(run: str | RunStore = "demo") -> float | None:
    """The monthly call volume the whole log shows (all its calls over its time span), or None when the
    log spans under an hour or has no timestamps. The replay holds the test split only, so savings are
    scaled to this volume rather than to the replayed calls' own span."""
    store = run if isinstance(run, RunStore) else RunStore(run)
    ts = store.read_clustered().get_column("timestamp").drop_nulls()
    if ts.len() < 2:
        return None
    span_s = (ts.max() - ts.min()).total_seconds()
    return ts.len() * SECONDS_PER_MONTH / span_s if span_s >= 3600 else None


__all__ = ["observed_calls_per_month", "routed_calls"]
