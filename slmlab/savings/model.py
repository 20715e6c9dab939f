"""The savings cost model: what the heterogeneous agent costs compared with the all-LLM agent, and when it pays.

The cost model is explicit and editable:

* **LLM side**: the logged cost of each call where the log has it (tau2-bench), else the dated price table
  of `slmlab.collect.pricing` (input, cached input and output per million tokens). Agent calls are dominated by
  input tokens, so prefill and cached-input prices are part of the model, not only output tokens.
* **SLM side** (self-hosted): a GPU at `usd_per_hour` that processes `prefill_tok_s` prompt tokens and
  `decode_tok_s` generated tokens per second at the serving batch size. A call occupies the GPU for
  `input/prefill + output/decode` seconds. A GPU that is busy only `utilization` of the time costs
  `1 / utilization` more per token (a GPU busy 20% of the time costs 5x), plus a fixed monthly engineering
  cost. The **break-even volume** is the number of calls per month above which the swap pays.
* **Energy** ~ 2 x active params x tokens FLOPs, divided by the GPU's effective FLOP/J; every assumption is
  returned next to the figures.

Usage:
    >>> import polars as pl
    >>> from slmlab.savings import SelfHostedSLM, slm_cost_per_call
    >>> spec = SelfHostedSLM(usd_per_hour=1.0, prefill_tok_s=36000, decode_tok_s=3600, utilization=1.0)
    >>> round(float(slm_cost_per_call(3600, 36, spec)), 6)  # 0.1 s + 0.01 s of a $1/h GPU
    3.1e-05
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl

HOURS_PER_MONTH = 730.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600


@dataclass(frozen=True)
class SelfHostedSLM:
    """How the small model is served, and what that costs.

    Attributes:
        gpu: a name for the plots and the report.
        usd_per_hour: rental price of the GPU (on-demand cloud list price, or amortized purchase).
        prefill_tok_s: prompt tokens processed per second at the serving batch size (vLLM on an L4 runs a
            1B model's prefill at tens of thousands of tokens/s).
        decode_tok_s: generated tokens per second summed over the batch.
        utilization: share of the provisioned GPU time that is busy (0 < u <= 1); cost per token scales 1/u.
        engineering_usd_month: fixed monthly cost of running the SLM stack (people, monitoring).
        params_b: active parameters of the SLM, billions (energy estimate).
        gpu_watts: board power under load (energy estimate).
        gpu_flops: peak dense bf16 FLOP/s of the GPU (energy estimate).
        mfu: share of peak FLOP/s achieved in serving (energy estimate).
        latency_prefill_tok_s: single-request prefill speed, for per-call latency.
        latency_decode_tok_s: single-request decode speed, for per-call latency.
    """

    gpu: str = "L4 24GB"
    usd_per_hour: float = 0.80
    prefill_tok_s: float = 20000.0
    decode_tok_s: float = 2000.0
    utilization: float = 0.5
    engineering_usd_month: float = 0.0
    params_b: float = 1.0
    gpu_watts: float = 72.0
    gpu_flops: float = 121e12
    mfu: float = 0.3
    latency_prefill_tok_s: float = 8000.0
    latency_decode_tok_s: float = 80.0

    def __post_init__(self) -> None:
        if not 0 < self.utilization <= 1:
            raise ValueError(f"utilization must be in (0, 1], got {self.utilization}")
        for name in ("usd_per_hour", "prefill_tok_s", "decode_tok_s", "params_b", "gpu_flops", "mfu"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.engineering_usd_month < 0:
            raise ValueError("engineering_usd_month must be >= 0")


@dataclass(frozen=True)
class LLMEnergy:
    """Assumptions for the LLM side of the energy estimate (providers do not publish these).

    Attributes:
        active_params_b: active parameters per token of the hosted LLM, billions (an assumption).
        joules_per_flop: effective serving energy per FLOP of the provider's accelerators.
    """

    active_params_b: float = 200.0
    joules_per_flop: float = 700.0 / (989e12 * 0.3)  # an H100 at 700 W and 30% MFU


def gpu_seconds_per_call(input_tokens: Any, output_tokens: Any, spec: SelfHostedSLM) -> Any:
    """Busy GPU seconds one call occupies at the serving batch size (works on scalars and arrays)."""
    return (
        np.asarray(input_tokens, dtype=float) / spec.prefill_tok_s
        + np.asarray(output_tokens, dtype=float) / spec.decode_tok_s
    )


def slm_cost_per_call(input_tokens: Any, output_tokens: Any, spec: SelfHostedSLM) -> Any:
    """USD one call costs on the self-hosted SLM, idle time included via `utilization`."""
    busy = gpu_seconds_per_call(input_tokens, output_tokens, spec)
    return busy * spec.usd_per_hour / 3600.0 / spec.utilization


def slm_latency_ms(input_tokens: Any, output_tokens: Any, spec: SelfHostedSLM) -> Any:
    """Single-request latency on the SLM: prefill plus sequential decode, in milliseconds."""
    return 1000.0 * (
        np.asarray(input_tokens, dtype=float) / spec.latency_prefill_tok_s
        + np.asarray(output_tokens, dtype=float) / spec.latency_decode_tok_s
    )


def energy_wh(params_b: float, tokens: Any, joules_per_flop: float) -> Any:
    """Energy in Wh for `tokens` processed by a model with `params_b` active parameters (2 FLOPs/param/token)."""
    return 2.0 * params_b * 1e9 * np.asarray(tokens, dtype=float) * joules_per_flop / 3600.0


@dataclass
class SavingsResult:
    """Per-call costs, the tables by cluster and by agent, monthly totals and the break-even volume."""

    per_call: pl.DataFrame
    by_cluster: pl.DataFrame
    by_agent: pl.DataFrame
    total: dict[str, float]
    break_even_calls_per_month: float | None
    assumptions: dict[str, Any] = field(default_factory=dict)


def _monthly_factor(calls: pl.DataFrame, calls_per_month: float | None) -> float:
    """Scale from the logged window to a month: user volume if given, else the observed time span."""
    if calls_per_month:
        return calls_per_month / max(calls.height, 1)
    ts = calls.get_column("timestamp").drop_nulls() if "timestamp" in calls.columns else pl.Series([])
    if ts.len() >= 2:
        span_s = (ts.max() - ts.min()).total_seconds()
        if span_s >= 3600:  # a shorter window says little about a month's volume
            return SECONDS_PER_MONTH / span_s
    return 1.0


def compute_savings(
    calls: pl.DataFrame,
    spec: SelfHostedSLM | None = None,
    prices: pl.DataFrame | None = None,
    swap_clusters: list[int] | None = None,
    calls_per_month: float | None = None,
    llm_energy: LLMEnergy | None = None,
) -> SavingsResult:
    """Cost, latency and energy of the logged calls before (all LLM) and after (routed) the swap.

    Args:
        calls: the call table; `routed_to` ("slm"/"llm") from `slmlab.route.replay` decides which calls
            move, else `swap_clusters` with a `cluster` column. Optional `slm_output_tokens` (measured
            generation lengths) and `slm_latency_ms` replace the modelled values.
        spec: the self-hosted SLM cost model.
        prices: the LLM price table (`slmlab.collect.pricing.load_prices()`), used where a call has no logged cost.
        swap_clusters: clusters sent to the SLM when `calls` has no `routed_to` column.
        calls_per_month: monthly volume to scale to; default the rate observed in the timestamps.
        llm_energy: assumptions for the LLM energy estimate.

    Returns:
        A `SavingsResult`; `total` holds monthly USD before/after, saved, share saved, energy and latency.

    Example:
        >>> import polars as pl
        >>> calls = pl.DataFrame({"call_id": ["a", "b"], "agent": ["x", "x"], "cluster": [0, 1],
        ...     "model": ["gpt-4o"] * 2, "input_tokens": [1000, 1000], "output_tokens": [10, 10],
        ...     "cached_input_tokens": [0, 0], "cost_usd": [0.01, 0.01], "latency_ms": [900.0, 900.0]})
        >>> r = compute_savings(calls, SelfHostedSLM(utilization=1.0), swap_clusters=[0])
        >>> r.total["llm_calls"], r.total["slm_calls"]
        (1, 1)
    """
    spec = spec or SelfHostedSLM()
    llm_energy = llm_energy or LLMEnergy()
    df = calls
    if "cost_usd" not in df.columns or df.get_column("cost_usd").null_count():
        from slmlab.collect.pricing import estimate_cost, load_prices

        df = estimate_cost(df, prices if prices is not None else load_prices())
    if "routed_to" not in df.columns:
        swap = set(swap_clusters or [])
        df = df.with_columns(
            pl.when(pl.col("cluster").is_in(list(swap)))
            .then(pl.lit("slm"))
            .otherwise(pl.lit("llm"))
            .alias("routed_to")
            if "cluster" in df.columns
            else pl.lit("llm").alias("routed_to")
        )
    for col, default in (
        ("cached_input_tokens", 0),
        ("latency_ms", None),
        ("cluster", -1),
        ("agent", "agent"),
    ):
        if col not in df.columns:
            df = df.with_columns(pl.lit(default).alias(col))
    out_tok = pl.col("slm_output_tokens") if "slm_output_tokens" in df.columns else pl.col("output_tokens")
    df = df.with_columns(
        pl.col("input_tokens").fill_null(0).alias("_in"),
        out_tok.fill_null(pl.col("output_tokens")).fill_null(0).alias("_slm_out"),
        pl.col("output_tokens").fill_null(0).alias("_out"),
        pl.col("cost_usd").fill_null(0.0).alias("cost_before"),
    )
    slm_cost = slm_cost_per_call(df["_in"].to_numpy(), df["_slm_out"].to_numpy(), spec)
    slm_lat = (
        df["slm_latency_ms"].fill_null(strategy="zero").to_numpy()
        if "slm_latency_ms" in df.columns
        else slm_latency_ms(df["_in"].to_numpy(), df["_slm_out"].to_numpy(), spec)
    )
    slm_j_per_flop = spec.gpu_watts / (spec.gpu_flops * spec.mfu)
    to_slm = df["routed_to"].to_numpy() == "slm"
    df = df.with_columns(
        pl.Series("slm_cost", slm_cost),
        pl.Series("_slm_lat", slm_lat),
        pl.Series(
            "energy_before_wh",
            energy_wh(
                llm_energy.active_params_b, (df["_in"] + df["_out"]).to_numpy(), llm_energy.joules_per_flop
            ),
        ),
        pl.Series(
            "_slm_energy",
            energy_wh(spec.params_b, (df["_in"] + df["_slm_out"]).to_numpy(), slm_j_per_flop),
        ),
    ).with_columns(
        pl.when(pl.Series(to_slm))
        .then(pl.col("slm_cost"))
        .otherwise(pl.col("cost_before"))
        .alias("cost_after"),
        pl.when(pl.Series(to_slm))
        .then(pl.col("_slm_lat"))
        .otherwise(pl.col("latency_ms"))
        .alias("latency_after_ms"),
        pl.when(pl.Series(to_slm))
        .then(pl.col("_slm_energy"))
        .otherwise(pl.col("energy_before_wh"))
        .alias("energy_after_wh"),
    )
    factor = _monthly_factor(df, calls_per_month)
    per_call = df.select(
        "call_id", "agent", "cluster", "model", "routed_to", "input_tokens", "output_tokens",
        "cost_before", "cost_after", "latency_ms", "latency_after_ms", "energy_before_wh", "energy_after_wh",
    )  # fmt: skip
    assumptions = {
        "monthly_factor": factor,
        "self_hosted": asdict(spec),
        "llm_energy": asdict(llm_energy),
        "slm_joules_per_flop": slm_j_per_flop,
        "energy_formula": "Wh = 2 x active_params x tokens x J/FLOP / 3600",
        "slm_cost_formula": "(input/prefill_tok_s + output/decode_tok_s) x usd_per_hour / 3600 / utilization",
    }
    return _summarize(per_call, factor, spec.engineering_usd_month, assumptions)


def _summarize(
    per_call: pl.DataFrame, factor: float, engineering_usd_month: float, assumptions: dict[str, Any]
) -> SavingsResult:
    """Monthly tables and totals of per-call costs scaled by `factor` (logged window -> one month)."""

    def table(key: str) -> pl.DataFrame:
        return (
            per_call.group_by(key)
            .agg(
                pl.len().alias("calls"),
                (pl.col("routed_to") == "slm").sum().alias("slm_calls"),
                (pl.col("cost_before").sum() * factor).alias("monthly_before_usd"),
                (pl.col("cost_after").sum() * factor).alias("monthly_after_usd"),
                pl.col("latency_ms").mean().alias("mean_latency_before_ms"),
                pl.col("latency_after_ms").mean().alias("mean_latency_after_ms"),
            )
            .with_columns(
                (pl.col("monthly_before_usd") - pl.col("monthly_after_usd")).alias("monthly_saved_usd")
            )
            # the key breaks ties, so the order is the same on every refresh
            .sort(["monthly_saved_usd", key], descending=[True, False])
        )

    to_slm = per_call["routed_to"].to_numpy() == "slm"
    before = float(per_call["cost_before"].sum()) * factor
    after_var = float(per_call["cost_after"].sum()) * factor
    after = after_var + (engineering_usd_month if to_slm.any() else 0.0)
    n_slm = int(to_slm.sum())
    # Break-even: calls/month at which the per-call saving on swapped calls covers the fixed cost.
    break_even = None
    if n_slm:
        moved = per_call.filter(pl.col("routed_to") == "slm")
        saving_per_call = float((moved["cost_before"] - moved["cost_after"]).mean())
        if saving_per_call > 0:
            break_even = engineering_usd_month / (saving_per_call * n_slm / per_call.height)
    total = {
        "calls": per_call.height,
        "llm_calls": per_call.height - n_slm,
        "slm_calls": n_slm,
        "slm_share": n_slm / max(per_call.height, 1),
        "monthly_calls": per_call.height * factor,
        "monthly_before_usd": before,
        "monthly_after_usd": after,
        "monthly_saved_usd": before - after,
        "saved_share": (before - after) / before if before else 0.0,
        "logged_cost_usd": float(per_call["cost_before"].sum()),
        "mean_latency_before_ms": _mean(per_call["latency_ms"]),
        "mean_latency_after_ms": _mean(per_call["latency_after_ms"]),
        "monthly_energy_before_kwh": float(per_call["energy_before_wh"].sum()) * factor / 1000,
        "monthly_energy_after_kwh": float(per_call["energy_after_wh"].sum()) * factor / 1000,
    }
    return SavingsResult(per_call, table("cluster"), table("agent"), total, break_even, dict(assumptions))


def at_volume(result: SavingsResult, calls_per_month: float) -> SavingsResult:
    """The same swap at another monthly volume, with the same mix of calls (a production scenario).

    Per-call costs scale with the volume; the fixed engineering cost does not, which is why a swap that
    loses money on a demo's few thousand calls can pay at production volume. The break-even is unchanged.

    Example:
        >>> import polars as pl
        >>> calls = pl.DataFrame({"call_id": ["a", "b"], "agent": ["x", "x"], "cluster": [0, 1],
        ...     "model": ["gpt-4o"] * 2, "input_tokens": [1000, 1000], "output_tokens": [10, 10],
        ...     "cached_input_tokens": [0, 0], "cost_usd": [0.01, 0.01], "latency_ms": [900.0, 900.0]})
        >>> r = compute_savings(calls, SelfHostedSLM(utilization=1.0, engineering_usd_month=100.0), swap_clusters=[0])
        >>> round(at_volume(r, 1_000_000).total["monthly_before_usd"])
        10000
    """
    if calls_per_month <= 0:
        raise ValueError(f"calls_per_month must be positive, got {calls_per_month}")
    eng = float(result.assumptions.get("self_hosted", {}).get("engineering_usd_month", 0.0))
    factor = calls_per_month / max(result.per_call.height, 1)
    return _summarize(result.per_call, factor, eng, {**result.assumptions, "monthly_factor": factor})


def monthly_volume(result: SavingsResult) -> float:
    """The monthly volume `result` was computed at (the logs' own rate unless a volume was given)."""
    return float(result.total.get("monthly_calls", 0.0))


def default_scenario(result: SavingsResult) -> float:
    """A production volume to state the savings at when none is given: the 1-2-5 round number at or above
    10x the break-even volume (where the fixed cost has become small), else above 100x the observed volume.

    Example:
        >>> # default_scenario(result)  ->  1e6 for a break-even of 73,000 calls/month, 2e7 for 1.43 M
    """
    be = result.break_even_calls_per_month
    base = 10 * be if be else 100 * max(monthly_volume(result), 1.0)
    decade = 10.0 ** math.floor(math.log10(base))
    # the next stop of the 1-2-5 ladder (the dashboard's volume slider has the same stops)
    return float(next(m * decade for m in (1, 2, 5, 10) if m * decade >= base * (1 - 1e-9)))


def describe_change(before_usd: float, after_usd: float) -> str:
    """A monthly cost change in words: "saves $X/month (p%)" or "costs $X/month more", never a negative saving.

    Example:
        >>> describe_change(100.0, 40.0)
        'saves $60.00/month (60.0%)'
        >>> describe_change(8.0, 203.0)
        'costs $195.00/month more'
    """
    diff = before_usd - after_usd
    if diff >= 0:
        share = f" ({diff / before_usd:.1%})" if before_usd > 0 else ""
        return f"saves ${diff:,.2f}/month{share}"
    return f"costs ${-diff:,.2f}/month more"


def _volume(v: float) -> str:
    return f"{v / 1e6:,.2f} M" if v >= 1e6 else f"{v:,.0f}"


def headline(result: SavingsResult, scenario_calls_per_month: float | None = None) -> list[str]:
    """The savings headline in three sentences: break-even, the observed volume, the production scenario.

    Phrased around the break-even volume, because the fixed cost of running an SLM stack makes any
    percentage saved depend on the volume: below break-even the swap costs more, above it it saves.

    Args:
        result: from `compute_savings` at the observed volume.
        scenario_calls_per_month: the production volume to state the savings at (None: no scenario line).

    Example:
        >>> # headline(result, 1_000_000)[0]  ->  'Break-even at 950,000 calls/month ...'
    """
    t = result.total
    be = result.break_even_calls_per_month
    eng = float(result.assumptions.get("self_hosted", {}).get("engineering_usd_month", 0.0))
    share = f"{t['slm_share']:.1%} of calls on the SLM"
    if not t["slm_calls"]:
        lines = ["No call is routed to an SLM: nothing changes."]
    elif be is None:
        lines = [f"No break-even: at these prices the SLM costs more per call than the LLM ({share})."]
    elif be == 0:
        lines = [f"The swap pays at any volume: no fixed cost is set ({share})."]
    else:
        lines = [
            f"Break-even at {_volume(be)} calls/month: above it the swap pays for its "
            f"${eng:,.0f}/month fixed cost ({share})."
        ]
    obs = monthly_volume(result)
    lines.append(
        f"At the observed volume ({_volume(obs)} calls/month): ${t['monthly_before_usd']:,.2f} → "
        f"${t['monthly_after_usd']:,.2f}/month, {describe_change(t['monthly_before_usd'], t['monthly_after_usd'])}."
    )
    if scenario_calls_per_month:
        s = at_volume(result, scenario_calls_per_month).total
        lines.append(
            f"At {_volume(scenario_calls_per_month)} calls/month (production scenario): "
            f"${s['monthly_before_usd']:,.2f} → ${s['monthly_after_usd']:,.2f}/month, "
            f"{describe_change(s['monthly_before_usd'], s['monthly_after_usd'])}."
        )
    return lines


def _mean(s: pl.Series) -> float | None:
    v = s.drop_nulls()
    return float(v.mean()) if v.len() else None


def break_even_curve(
    result: SavingsResult,
    spec: SelfHostedSLM,
    max_calls: float | None = None,
    points: int = 60,
    min_calls: float | None = None,
) -> pl.DataFrame:
    """Monthly cost before/after as a function of monthly call volume, at the same mix of calls.

    Two after-curves: at the set `utilization`, and on one dedicated always-on GPU (billed 730 h/month
    whatever the volume; its utilization is what the volume implies, up to 100%, then more GPUs).

    Args:
        result: from `compute_savings`.
        spec: the cost model the result was computed with.
        max_calls: largest volume (default: 4x the observed volume or 3x the break-even, whichever is larger).
        points: number of volumes.
        min_calls: smallest volume; given, the volumes are spaced geometrically (for a log axis that shows
            a demo's thousands and a production's millions of calls on one chart), else linearly from 0.
    """
    pc = result.per_call
    n = max(pc.height, 1)
    before_per_call = float(pc["cost_before"].sum()) / n
    after_per_call = float(pc["cost_after"].sum()) / n
    moved = pc.filter(pc["routed_to"] == "slm")
    llm_part_per_call = float(pc.filter(pc["routed_to"] == "llm")["cost_before"].sum()) / n
    busy_s_per_call = (
        float(
            gpu_seconds_per_call(
                moved["input_tokens"].fill_null(0), moved["output_tokens"].fill_null(0), spec
            ).sum()
        )
        / n
    )
    top = max_calls or max(
        result.total["monthly_calls"] * 4, (result.break_even_calls_per_month or 0) * 3, 1000
    )
    if min_calls is not None and 0 < min_calls < top:
        volume = np.geomspace(min_calls, top, points)
    else:
        volume = np.linspace(0, top, points)
    gpus = np.maximum(1, np.ceil(volume * busy_s_per_call / SECONDS_PER_MONTH))
    dedicated = (
        volume * llm_part_per_call + gpus * spec.usd_per_hour * HOURS_PER_MONTH + spec.engineering_usd_month
    )
    return pl.DataFrame(
        {
            "calls_per_month": volume,
            "before_usd": volume * before_per_call,
            "after_usd": volume * after_per_call + (spec.engineering_usd_month if moved.height else 0.0),
            "after_dedicated_gpu_usd": dedicated if moved.height else volume * before_per_call,
        }
    )


def utilization_table(spec: SelfHostedSLM, input_tokens: float, output_tokens: float) -> pl.DataFrame:
    """SLM cost per 1,000 calls of a given shape at several utilizations: idle GPUs are expensive."""
    rows = []
    for u in (0.05, 0.1, 0.2, 0.5, 0.8, 1.0):
        s = SelfHostedSLM(**{**asdict(spec), "utilization": u})
        rows.append(
            {
                "utilization": u,
                "usd_per_1k_calls": float(slm_cost_per_call(input_tokens, output_tokens, s)) * 1000,
            }
        )
    return pl.DataFrame(rows)
