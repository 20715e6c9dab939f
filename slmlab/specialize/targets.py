"""Which clusters to fine-tune, on which base model: read from the earlier steps' run artefacts.

Default order: the clusters accepted in the labeller (notebook 04) or, without labels, the most suitable
clusters (`slmlab.select.load_candidates`); without a cluster table, the largest tool-calling cluster of
the clustered call table. The base model is the ranking's first choice for the cluster (notebook 05),
else the bundled SmolLM2-135M.

Usage:
    >>> from slmlab.specialize import pick_targets
    >>> target = pick_targets("demo")[0]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from slmlab.runs import RunStore
from slmlab.runtime.models import BUNDLED_SLM
from slmlab.schema import TEXT_ACTION, action_expr


@dataclass(frozen=True)
class TuneTarget:
    """One cluster to specialize a model for."""

    cluster: int
    name: str
    base_model: str
    calls: pl.DataFrame  # the cluster's calls (canonical call table + `cluster`, labels applied)
    source: str  # "labels", "suitability", "largest tool cluster" or "given"


def _ranked_model(store: RunStore, cluster: int) -> str | None:
    if not store.exists("ranking"):
        return None
    ranking = store.read_ranking()
    best = ranking.filter((pl.col("cluster") == cluster) & (pl.col("rank") == 1))
    return best.get_column("hub_id")[0] if best.height else None


def pick_targets(
    run: str | RunStore = "demo",
    clusters: Sequence[int] | None = None,
    base_model: str | None = None,
    n: int = 1,
) -> list[TuneTarget]:
    """The clusters to fine-tune (best first) with their calls and base model.

    Args:
        run: run folder with notebooks 01-05's artefacts (`clustered` at least).
        clusters: cluster ids to tune; None picks the top `n` as described in the module docstring.
        base_model: force one base model for all; None takes the ranking's choice, else "smollm2-135m".
        n: how many clusters to return when `clusters` is None.

    Example:
        >>> [t.cluster for t in pick_targets("demo", n=2)]  # doctest: +SKIP
    """
    from slmlab.select import load_candidates

    store = run if isinstance(run, RunStore) else RunStore(run)
    cands = load_candidates(store)
    calls = cands.calls
    order = cands.clusters.get_column("cluster").to_list()
    names = dict(zip(order, cands.clusters.get_column("name").to_list(), strict=True))
    source = cands.source
    if not order or source == "suitability":
        # Fine-tuning pays off most on a large cluster that answers with tool calls.
        sizes = (
            calls.filter(pl.col("cluster") >= 0)
            .with_columns(action_expr())
            .group_by("cluster")
            .agg(pl.len().alias("n"), (pl.col("action") != TEXT_ACTION).mean().alias("tool_share"))
            .sort(["n"], descending=True)
        )
        tool = sizes.filter(pl.col("tool_share") >= 0.5).get_column("cluster").to_list()
        order = [c for c in order if c in tool] + [c for c in tool if c not in order] or order
        source = "largest tool cluster" if not names else source
    if clusters is not None:
        order, source = list(clusters), "given"
    out = []
    for cluster in order[: len(order) if clusters is not None else n]:
        model = base_model or _ranked_model(store, cluster) or BUNDLED_SLM
        out.append(
            TuneTarget(
                cluster=int(cluster),
                name=names.get(cluster) or f"cluster {cluster}",
                base_model=model,
                calls=calls.filter(pl.col("cluster") == cluster),
                source=source,
            )
        )
    if not out:
        raise ValueError(f"run {run!r} has no cluster to fine-tune")
    return out
