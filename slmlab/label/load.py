"""The one reader of a run's labelled state: step 3's calls mapped through the labeller's merges and splits.

Usage:
    >>> from slmlab.label import load_labelled_clusters
    >>> calls, clusters = load_labelled_clusters("demo")  # doctest: +SKIP
"""

from __future__ import annotations

import polars as pl

from slmlab.label.session import LabelSession
from slmlab.runs import RunStore


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
