"""Step 8b, iterate: check new logs for drift against the clusters the SLMs were trained for.

New calls are assigned to the existing clusters (a fitted clusterer's `predict`, or the nearest centroid of
the reference embeddings). Drift shows as calls far from every centroid (beyond a quantile of the reference
calls' own distances), system prompts unlike any seen before (near-duplicate matching, so a changed date
or customer tier in a prompt is not a new template), tools never seen before, shifted cluster volumes, and a
rising fallback rate where router replays are given. `clusters_to_retrain` turns the report into a list.

Modules: `drift` (`detect_drift`, centroids, fallback rates), `report` (`DriftReport`, `clusters_to_retrain`,
`needs_reclustering`), `latest` (`split_by_time`, `drift_on_latest_sessions`: a run's latest sessions).

Usage:
    >>> from slmlab.iterate import detect_drift, clusters_to_retrain
    >>> # report = detect_drift(new_calls, None, reference_calls, new_embeddings=e_new,
    >>> #                       reference_embeddings=e_ref); clusters_to_retrain(report)
"""

from __future__ import annotations

from slmlab.cluster.templates import TemplateIndex, system_prompt
from slmlab.iterate.drift import cluster_centroids, detect_drift, fallback_rates
from slmlab.iterate.latest import drift_on_latest_sessions, split_by_time
from slmlab.iterate.report import DriftReport, clusters_to_retrain, needs_reclustering

__all__ = [
    "DriftReport",
    "TemplateIndex",
    "cluster_centroids",
    "clusters_to_retrain",
    "detect_drift",
    "drift_on_latest_sessions",
    "fallback_rates",
    "needs_reclustering",
    "split_by_time",
    "system_prompt",
]
