"""Step 7b, route: send each live call to a small model, or keep it on the LLM when unsure.

Two router families behind one `Router` interface and registry (`ROUTERS`, `register_router`,
`select_router`), with RouteLLM's `RandomRouter` baseline on every plot:

- `ClusterRouter` (`routers.py`) reads only the prompt: it assigns a call to a cluster and so to that
  cluster's SLM and adapter, when its confidence clears the threshold.
- `CascadeRouter` (`cascade.py`) lets the SLM answer every call first; a calibrated gate (`gate.py`) reads
  the SLM's own answer (token probability of the action and argument values, schema validity, id evidence
  in the prompt, agreement with a constrained decoding) and keeps it or escalates the call to the LLM.

`replay.py` pushes logged calls through a router with measured agreement, latency and cost, and traces
quality against the share of calls kept on the LLM (`threshold_sweep`, `apgr`, `share_at_agreement`);
The per-agent replay of a multi-agent log (cluster, route and price each agent's calls) is a whole
pipeline, so it lives with the main job: `slmlab.pipeline.per_agent`.

Usage:
    >>> from slmlab.route import ClusterRouter, replay, threshold_sweep
    >>> router = ClusterRouter().fit(train_calls, routes=verdicts_table)  # doctest: +SKIP
    >>> router.route(new_calls).select("call_id", "routed_to", "route_cluster", "adapter")  # doctest: +SKIP
    >>> router.save("runs/demo/router"); load_router("runs/demo/router")  # doctest: +SKIP
"""

from __future__ import annotations

from slmlab.route.cascade import CascadeRouter, cascade_sweep, specialist_clusters
from slmlab.route.gate import (
    GATE_FEATURES,
    CascadeGate,
    calibrate_threshold,
    gate_features,
    perfect_gate_share,
    text_agrees,
    wilson_interval,
)
from slmlab.route.replay import (
    apgr,
    call_share_for_quality,
    plot_quality_vs_llm_share,
    replay,
    share_at_agreement,
    threshold_sweep,
)
from slmlab.route.routers import (
    ROUTE_COLUMNS,
    ROUTERS,
    ClusterRouter,
    HashedTfidf,
    RandomRouter,
    Router,
    load_router,
    register_router,
    select_router,
)

__all__ = [
    "GATE_FEATURES",
    "ROUTERS",
    "ROUTE_COLUMNS",
    "CascadeGate",
    "CascadeRouter",
    "ClusterRouter",
    "HashedTfidf",
    "RandomRouter",
    "Router",
    "apgr",
    "calibrate_threshold",
    "call_share_for_quality",
    "cascade_sweep",
    "gate_features",
    "load_router",
    "observed_calls_per_month",
    "perfect_gate_share",
    "plot_quality_vs_llm_share",
    "register_router",
    "replay",
    "routed_calls",
    "select_router",
    "share_at_agreement",
    "specialist_clusters",
    "text_agrees",
    "threshold_sweep",
    "wilson_interval",
]

from slmlab.route.routed import observed_calls_per_month, routed_calls  # noqa: E402  (public API)
