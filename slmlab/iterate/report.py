"""The drift report of step 8b and the decisions read from it: which clusters to re-train, whether to re-cluster.

Usage:
    >>> from slmlab.iterate.report import clusters_to_retrain, needs_reclustering
    >>> # clusters_to_retrain(report), needs_reclustering(report)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

NOISE = -1


@dataclass(frozen=True)
class DriftReport:
    """What changed between the reference logs and new logs.

    Attributes:
        per_cluster: one row per cluster: reference_calls, new_calls, their shares, share_change,
            volume_ratio (new share / reference share), mean distances, far_share (new calls nearest to it
            but beyond the threshold), new_template_share, new_tool_calls, reference/new fallback rates,
            fallback_change. The row of cluster -1 counts far (unassigned) new calls.
        assignments: per new call: call_id, nearest (cluster), distance, far, cluster (-1 if far),
            template (None if new), new_template, new_tools.
        new_templates: template groups of system prompts not seen before: template, n_calls, share, example.
        new_tools: tool names not seen before: tool, n_calls (new calls calling it), n_offered.
        threshold: distance beyond which a call is far from every centroid (None without embeddings).
        reference_far_share: share of reference calls beyond it (about 1 - quantile by construction).
        far_share: share of new calls beyond it.
        n_reference, n_new: call counts.
        fallback_rate, reference_fallback_rate: overall fallback rates where replays were given.
    """

    per_cluster: pl.DataFrame
    assignments: pl.DataFrame
    new_templates: pl.DataFrame
    new_tools: pl.DataFrame
    threshold: float | None
    reference_far_share: float | None
    far_share: float | None
    n_reference: int
    n_new: int
    fallback_rate: float | None = None
    reference_fallback_rate: float | None = None

    @property
    def summary(self) -> pl.DataFrame:
        """The headline numbers as a two-column table (metric, value)."""

        def pct(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.1%}"

        new_tpl = int(self.new_templates.get_column("n_calls").sum()) if self.new_templates.height else 0
        rows = [
            ("reference calls", f"{self.n_reference:,}"),
            ("new calls", f"{self.n_new:,}"),
            ("distance threshold", "n/a" if self.threshold is None else f"{self.threshold:.3f}"),
            ("far from every cluster: reference", pct(self.reference_far_share)),
            ("far from every cluster: new", pct(self.far_share)),
            ("new prompt templates", f"{self.new_templates.height} ({pct(new_tpl / self.n_new if self.n_new else None)} of new calls)"),
            ("new tools", ", ".join(self.new_tools.get_column("tool").to_list()[:8]) or "none"),
            ("fallback rate: reference -> new", f"{pct(self.reference_fallback_rate)} -> {pct(self.fallback_rate)}"),
            ("clusters to re-train", ", ".join(map(str, clusters_to_retrain(self))) or "none"),
            ("re-cluster?", "yes" if needs_reclustering(self) else "no"),
        ]  # fmt: skip
        return pl.DataFrame(rows, schema={"metric": pl.String, "value": pl.String}, orient="row")


def clusters_to_retrain(
    report: DriftReport,
    *,
    clusters: Sequence[int] | None = None,
    min_calls: int = 5,
    max_far_share: float = 0.2,
    max_new_template_share: float = 0.2,
    max_new_tool_share: float = 0.05,
    max_fallback_rise: float = 0.1,
) -> list[int]:
    """Clusters whose new calls no longer look like what their SLM was trained on, most new calls first.

    A cluster (with at least `min_calls` new calls nearest to it) is listed when any of: the share of its
    nearest new calls that are far from every centroid exceeds `max_far_share`; the share under a prompt
    template never seen before exceeds `max_new_template_share`; the share calling a tool never seen before
    exceeds `max_new_tool_share`; its fallback rate rose by more than `max_fallback_rise`.

    Args:
        report: from `detect_drift`.
        clusters: only consider these (e.g. the clusters served by an SLM).

    Example:
        >>> # clusters_to_retrain(report, clusters=savings.swapped_clusters(replay))
    """
    per = report.per_cluster.filter((pl.col("cluster") != NOISE) & (pl.col("new_calls_nearest") >= min_calls))
    if clusters is not None:
        per = per.filter(pl.col("cluster").is_in(list(clusters)))
    hit = (
        (pl.col("far_share").fill_null(0) > max_far_share)
        | (pl.col("new_template_share").fill_null(0) > max_new_template_share)
        | ((pl.col("new_tool_calls") / pl.col("new_calls_nearest")) > max_new_tool_share)
        | (pl.col("fallback_change").fill_null(0) > max_fallback_rise)
    )
    out = per.filter(hit).sort(["new_calls_nearest", "cluster"], descending=[True, False])
    return out.get_column("cluster").to_list()


def needs_reclustering(report: DriftReport, factor: float = 2.0, min_share: float = 0.1) -> bool:
    """True when far calls are at least `min_share` of the new calls and `factor` times the reference's
    share: a new sub-task has appeared that no cluster (and no SLM) covers."""
    if report.far_share is None:
        return False
    base = report.reference_far_share or 0.0
    return report.far_share >= min_share and report.far_share >= factor * base
