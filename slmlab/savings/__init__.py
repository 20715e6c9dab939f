"""Step 8 "savings": what the heterogeneous agent costs compared with the all-LLM agent, and when it pays.

The cost model (`slmlab.savings.model`) is explicit and editable: the LLM side at logged costs or the
dated price table, the SLM side as GPU time inflated by idle time plus a fixed monthly engineering cost,
and the break-even volume above which the swap pays. Because of that fixed cost, savings are stated at
a volume: the observed one and a production scenario (`at_volume`, `headline`). Figures are in
`slmlab.savings.plots`, the ipywidgets dashboard in `slmlab.savings.dashboard`, the run's artefacts in
`slmlab.savings.artefacts`; every name is importable from `slmlab.savings`.

Usage:
    >>> import polars as pl
    >>> from slmlab.savings import SelfHostedSLM, slm_cost_per_call
    >>> spec = SelfHostedSLM(usd_per_hour=1.0, prefill_tok_s=36000, decode_tok_s=3600, utilization=1.0)
    >>> round(float(slm_cost_per_call(3600, 36, spec)), 6)  # 0.1 s + 0.01 s of a $1/h GPU
    3.1e-05
"""

from __future__ import annotations

from slmlab.savings.artefacts import load_routed_calls, routed_quality, save_savings, swapped_clusters
from slmlab.savings.dashboard import SavingsDashboard
from slmlab.savings.model import (
    HOURS_PER_MONTH,
    SECONDS_PER_MONTH,
    LLMEnergy,
    SavingsResult,
    SelfHostedSLM,
    at_volume,
    break_even_curve,
    compute_savings,
    default_scenario,
    describe_change,
    energy_wh,
    gpu_seconds_per_call,
    headline,
    monthly_volume,
    slm_cost_per_call,
    slm_latency_ms,
    utilization_table,
)
from slmlab.savings.plots import (
    cost_table,
    plot_break_even,
    plot_cost_before_after,
    plot_quality_cost_frontier,
    plot_savings_waterfall,
)

__all__ = [
    "HOURS_PER_MONTH",
    "LLMEnergy",
    "SECONDS_PER_MONTH",
    "SavingsDashboard",
    "SavingsResult",
    "SelfHostedSLM",
    "at_volume",
    "break_even_curve",
    "compute_savings",
    "cost_table",
    "default_scenario",
    "describe_change",
    "energy_wh",
    "gpu_seconds_per_call",
    "headline",
    "load_routed_calls",
    "monthly_volume",
    "plot_break_even",
    "plot_cost_before_after",
    "plot_quality_cost_frontier",
    "plot_savings_waterfall",
    "routed_quality",
    "save_savings",
    "slm_cost_per_call",
    "slm_latency_ms",
    "swapped_clusters",
    "utilization_table",
]
