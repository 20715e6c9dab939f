"""Reading and writing the savings step's artefacts: the routed calls in, per-call costs and totals out.

Usage:
    >>> from slmlab.savings import load_routed_calls, save_savings  # save_savings(result, RUN)
"""

from __future__ import annotations

import polars as pl

from slmlab.savings.model import SavingsResult, at_volume, default_scenario, headline


def save_savings(
    result: SavingsResult,
    run: str = "demo",
    quality: float | None = None,
    scenario_calls_per_month: float | None = None,
) -> tuple[str, str]:
    """Write the per-call costs (`savings.parquet`) and the totals with assumptions (`savings.json`) through the run store.

    Args:
        result: from `compute_savings`, at the observed volume.
        run: run folder name.
        quality: agreement with the LLM on the calls routed to SLMs, shown in the report's headline.
        scenario_calls_per_month: the production volume to state the savings at (default
            `default_scenario(result)` when calls are routed); the totals at that volume are saved as
            `scenario` and the report's headline quotes them.
    """
    from slmlab.runs import RunStore

    payload = {
        "total": result.total,
        "break_even_calls_per_month": result.break_even_calls_per_month,
        "assumptions": result.assumptions,
    }
    if scenario_calls_per_month is None and result.total.get("slm_calls"):
        scenario_calls_per_month = default_scenario(result)
    if scenario_calls_per_month:
        payload["scenario"] = {
            "calls_per_month": float(scenario_calls_per_month),
            **at_volume(result, scenario_calls_per_month).total,
        }
    payload["headline"] = headline(result, scenario_calls_per_month)
    if quality is not None:
        payload["quality"] = quality
    per_call_path, total_path = RunStore(run).write_savings(result.per_call, payload)
    return str(per_call_path), str(total_path)


def load_routed_calls(run: str = "demo") -> pl.DataFrame:
    """The held-out calls of a run with a `routed_to` column, ready for `compute_savings`: notebook 07's
    replay (`slmlab.route.routed_calls`). Scale them to a month with `slmlab.route.observed_calls_per_month(run)` (the
    whole log's volume), since the replay covers the test split only."""
    from slmlab.route.routed import routed_calls

    return routed_calls(run)


def swapped_clusters(calls: pl.DataFrame) -> list[int]:
    """Clusters with at least one call routed to the SLM."""
    return sorted(calls.filter(pl.col("routed_to") == "slm")["cluster"].unique().to_list())


def routed_quality(calls: pl.DataFrame, column: str = "agreement") -> float | None:
    """Mean agreement with the LLM over the calls routed to the SLM, where the replay measured it."""
    if column not in calls.columns:
        return None
    vals = calls.filter(pl.col("routed_to") == "slm")[column].drop_nulls()
    return float(vals.mean()) if vals.len() else None
