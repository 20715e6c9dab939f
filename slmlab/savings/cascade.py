"""Cost and latency of a cascade: the SLM runs on every call, the LLM on the escalated ones as well.

A prompt router sends a call to one model; a cascade always pays the SLM first and, when its gate
escalates, the LLM on top (its logged cost and latency, plus the SLM's). So a cascade saves only while
the escalation share stays below `1 - slm_cost / llm_cost` per call (`max_escalation_share`), and adds
the SLM's latency to every escalated call.

`cascade_costs(calls, escalated, spec)` prices each call both ways; `cascade_summary` gives the totals:
cost per call before (all LLM: the logged cost) and after, saved share, latency before/after (mean and
p95), the escalation share and the break-even escalation share; `cascade_break_even_volume` the monthly
volume above which the cascade pays once a fixed monthly cost (`SelfHostedSLM.engineering_usd_month`) is
counted.

Usage:
    >>> import polars as pl
    >>> from slmlab.savings.cascade import cascade_costs, cascade_summary
    >>> from slmlab.savings.model import SelfHostedSLM
    >>> calls = pl.DataFrame({"call_id": ["a", "b"], "input_tokens": [1000, 1000], "output_tokens": [50, 50],
    ...                       "cost_usd": [0.01, 0.01], "latency_ms": [900.0, 1100.0]})
    >>> per_call = cascade_costs(calls, escalated=[False, True], spec=SelfHostedSLM())
    >>> s = cascade_summary(per_call)
    >>> s["escalation_share"], round(s["cost_before_usd"], 2)
    (0.5, 0.02)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from slmlab.savings.model import SECONDS_PER_MONTH, SelfHostedSLM, slm_cost_per_call, slm_latency_ms

CASCADE_COST_COLUMNS = (
    "call_id", "escalated", "reason", "cost_before_usd", "slm_cost_usd", "cost_after_usd",
    "latency_before_ms", "slm_latency_ms", "latency_after_ms",
)  # fmt: skip


def cascade_costs(
    calls: pl.DataFrame,
    escalated: Sequence[bool] | pl.Series,
    spec: SelfHostedSLM | None = None,
    slm_output_tokens: Sequence[int] | None = None,
    slm_latency: Sequence[float] | None = None,
    reasons: Sequence[str | None] | None = None,
) -> pl.DataFrame:
    """Per call: cost and latency before (LLM only, as logged) and after (SLM always, LLM when escalated).

    Args:
        calls: call table rows (`call_id`, `input_tokens`, `output_tokens`, `cost_usd`, `latency_ms`).
        escalated: per call, whether the gate sent it on to the LLM.
        spec: how the SLM is served (`SelfHostedSLM`); its cost per call is GPU time at `utilization`.
        slm_output_tokens: the SLM's measured answer lengths (default: the LLM's logged ones).
        slm_latency: measured SLM latencies in ms (default: `slm_latency_ms` of the spec).
        reasons: why each call escalated (the gate's weakest signal), shown in the replay.

    Returns:
        `CASCADE_COST_COLUMNS`; calls without a logged cost have null before/after costs (kept out of
        both sums, like with like).
    """
    spec = spec or SelfHostedSLM()
    esc = np.asarray(list(escalated), dtype=bool)
    if len(esc) != calls.height:
        raise ValueError(f"escalated has {len(esc)} entries for {calls.height} calls")
    n_in = (
        calls.get_column("input_tokens").fill_null(0).to_numpy()
        if "input_tokens" in calls.columns
        else np.zeros(calls.height)
    )
    logged_out = (
        calls.get_column("output_tokens").fill_null(0).to_numpy()
        if "output_tokens" in calls.columns
        else np.zeros(calls.height)
    )
    n_out = np.asarray(slm_output_tokens, dtype=float) if slm_output_tokens is not None else logged_out
    slm_cost = np.asarray(slm_cost_per_call(n_in, n_out, spec), dtype=float)
    slm_lat = (
        np.asarray(slm_latency, dtype=float)
        if slm_latency is not None
        else np.asarray(slm_latency_ms(n_in, n_out, spec))
    )
    before = (
        calls.get_column("cost_usd").cast(pl.Float64)
        if "cost_usd" in calls.columns
        else pl.Series([None] * calls.height, dtype=pl.Float64)
    )
    lat = (
        calls.get_column("latency_ms").cast(pl.Float64)
        if "latency_ms" in calls.columns
        else pl.Series([None] * calls.height, dtype=pl.Float64)
    )
    out = pl.DataFrame(
        {
            "call_id": calls.get_column("call_id"),
            "escalated": pl.Series(esc, dtype=pl.Boolean),
            "reason": pl.Series(
                list(reasons) if reasons is not None else [None] * calls.height, dtype=pl.String
            ),
            "cost_before_usd": before,
            "slm_cost_usd": pl.Series(slm_cost, dtype=pl.Float64),
            "latency_before_ms": lat,
            "slm_latency_ms": pl.Series(slm_lat, dtype=pl.Float64),
        }
    )
    return out.with_columns(
        pl.when(pl.col("cost_before_usd").is_null())
        .then(None)
        .when(pl.col("escalated"))
        .then(pl.col("slm_cost_usd") + pl.col("cost_before_usd"))
        .otherwise(pl.col("slm_cost_usd"))
        .alias("cost_after_usd"),
        pl.when(pl.col("escalated"))
        .then(pl.col("slm_latency_ms") + pl.col("latency_before_ms"))
        .otherwise(pl.col("slm_latency_ms"))
        .alias("latency_after_ms"),
    ).select(CASCADE_COST_COLUMNS)


def max_escalation_share(slm_cost_per_call_usd: float, llm_cost_per_call_usd: float) -> float | None:
    """The escalation share at which a cascade costs what the LLM alone does: 1 - slm / llm per call.

    Below it the cascade saves; above it (or when the SLM costs more than the LLM) it loses.

    Example:
        >>> max_escalation_share(0.001, 0.01)
        0.9
    """
    if llm_cost_per_call_usd <= 0:
        return None
    return max(0.0, 1.0 - slm_cost_per_call_usd / llm_cost_per_call_usd)


def cascade_summary(per_call: pl.DataFrame) -> dict[str, Any]:
    """Totals of `cascade_costs`: cost per call before / after, saved share, latency, break-even.

    Returns:
        calls, priced_calls, escalated, escalation_share, cost_before_usd, cost_after_usd, saved_usd,
        saved_share, cost_per_call_before_usd, cost_per_call_after_usd, slm_cost_per_call_usd,
        break_even_escalation_share, latency_before_ms / latency_after_ms (mean), latency_before_p95_ms /
        latency_after_p95_ms.
    """
    priced = per_call.filter(pl.col("cost_before_usd").is_not_null())
    n, m = per_call.height, priced.height
    before = float(priced.get_column("cost_before_usd").sum()) if m else 0.0
    after = float(priced.get_column("cost_after_usd").sum()) if m else 0.0
    slm_pc = float(priced.get_column("slm_cost_usd").mean()) if m else None
    llm_pc = before / m if m else None

    def q(col: str, fn: str) -> float | None:
        s = per_call.get_column(col).drop_nulls()
        if s.is_empty():
            return None
        return float(s.mean()) if fn == "mean" else float(s.quantile(0.95, "linear"))

    esc = int(per_call.get_column("escalated").sum()) if n else 0
    return {
        "calls": n, "priced_calls": m, "escalated": esc, "escalation_share": esc / n if n else None,
        "cost_before_usd": before, "cost_after_usd": after, "saved_usd": before - after,
        "saved_share": (before - after) / before if before > 0 else None,
        "cost_per_call_before_usd": llm_pc, "cost_per_call_after_usd": after / m if m else None,
        "slm_cost_per_call_usd": slm_pc,
        "break_even_escalation_share": max_escalation_share(slm_pc, llm_pc) if m and slm_pc is not None else None,
        "latency_before_ms": q("latency_before_ms", "mean"), "latency_after_ms": q("latency_after_ms", "mean"),
        "latency_before_p95_ms": q("latency_before_ms", "p95"), "latency_after_p95_ms": q("latency_after_ms", "p95"),
    }  # fmt: skip


def cascade_break_even_volume(
    per_call: pl.DataFrame, spec: SelfHostedSLM, dedicated_gpu: bool = False
) -> float | None:
    """Monthly calls above which the cascade pays, counting the fixed monthly cost of the SLM stack.

    Savings per call = before - after (variable); the cascade pays from `engineering_usd_month` (plus,
    with `dedicated_gpu`, one always-on GPU instead of cost at utilization) divided by that. None when a
    call saves nothing (escalation above break-even): no volume makes it pay.

    Example:
        >>> pc = pl.DataFrame({"cost_before_usd": [0.01], "cost_after_usd": [0.002], "slm_cost_usd": [0.002]})
        >>> round(cascade_break_even_volume(pc, SelfHostedSLM(engineering_usd_month=800.0)))
        100000
    """
    priced = per_call.filter(pl.col("cost_before_usd").is_not_null())
    if priced.is_empty():
        return None
    before = float(priced.get_column("cost_before_usd").mean())
    after = float(priced.get_column("cost_after_usd").mean())
    fixed = spec.engineering_usd_month
    if dedicated_gpu:  # the GPU is paid whatever the volume, so the SLM's per-call cost leaves the sum
        after -= float(priced.get_column("slm_cost_usd").mean())
        fixed += spec.usd_per_hour * SECONDS_PER_MONTH / 3600.0
    saved = before - after
    if saved <= 0:
        return None
    return fixed / saved if fixed > 0 else 0.0


__all__ = [
    "CASCADE_COST_COLUMNS",
    "cascade_break_even_volume",
    "cascade_costs",
    "cascade_summary",
    "max_escalation_share",
]
