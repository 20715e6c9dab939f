"""Step 8 "savings": what the heterogeneous agent costs compared with the all-LLM agent, and when it pays.

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
    >>> round(slm_cost_per_call(3600, 36, spec), 6)  # 0.1 s + 0.01 s of a $1/h GPU
    3.1e-05
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go
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
            .sort("monthly_saved_usd", descending=True)
        )

    before = float(per_call["cost_before"].sum()) * factor
    after_var = float(per_call["cost_after"].sum()) * factor
    after = after_var + (spec.engineering_usd_month if to_slm.any() else 0.0)
    n_slm = int(to_slm.sum())
    # Break-even: calls/month at which the per-call saving on swapped calls covers the fixed cost.
    if n_slm:
        moved = per_call.filter(pl.col("routed_to") == "slm")
        saving_per_call = float((moved["cost_before"] - moved["cost_after"]).mean())
        share_swapped = n_slm / per_call.height
        if saving_per_call <= 0:
            break_even = None
        else:
            break_even = spec.engineering_usd_month / (saving_per_call * share_swapped)
    else:
        break_even = None
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
    assumptions = {
        "monthly_factor": factor,
        "self_hosted": asdict(spec),
        "llm_energy": asdict(llm_energy),
        "slm_joules_per_flop": slm_j_per_flop,
        "energy_formula": "Wh = 2 x active_params x tokens x J/FLOP / 3600",
        "slm_cost_formula": "(input/prefill_tok_s + output/decode_tok_s) x usd_per_hour / 3600 / utilization",
    }
    return SavingsResult(per_call, table("cluster"), table("agent"), total, break_even, assumptions)


def _mean(s: pl.Series) -> float | None:
    v = s.drop_nulls()
    return float(v.mean()) if v.len() else None


def break_even_curve(
    result: SavingsResult, spec: SelfHostedSLM, max_calls: float | None = None, points: int = 60
) -> pl.DataFrame:
    """Monthly cost before/after as a function of monthly call volume, at the same mix of calls.

    Two after-curves: at the set `utilization`, and on one dedicated always-on GPU (billed 730 h/month
    whatever the volume; its utilization is what the volume implies, up to 100%, then more GPUs).
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


# ---- figures ------------------------------------------------------------------------------------


def plot_cost_before_after(result: SavingsResult, by: str = "agent") -> go.Figure:
    """Grouped bars: monthly cost before and after the swap, per agent or per cluster."""
    t = result.by_agent if by == "agent" else result.by_cluster
    x = [str(v) for v in t[by].to_list()]
    fig = go.Figure(
        [
            go.Bar(name="before (all LLM)", x=x, y=t["monthly_before_usd"].to_list()),
            go.Bar(name="after (routed)", x=x, y=t["monthly_after_usd"].to_list()),
        ]
    )
    fig.update_layout(
        barmode="group", title=f"Monthly cost by {by}", yaxis_title="USD / month", xaxis_title=by
    )
    return fig


def plot_savings_waterfall(result: SavingsResult) -> go.Figure:
    """Waterfall from the monthly cost before to after, one step per cluster that moves calls."""
    t = result.by_cluster.filter(pl.col("slm_calls") > 0)
    eng = result.assumptions["self_hosted"]["engineering_usd_month"] if t.height else 0.0
    x = (
        ["before"]
        + [f"cluster {c}" for c in t["cluster"].to_list()]
        + (["engineering"] if eng else [])
        + ["after"]
    )
    y = (
        [result.total["monthly_before_usd"]]
        + [-v for v in t["monthly_saved_usd"].to_list()]
        + ([eng] if eng else [])
        + [0]
    )
    measure = ["absolute"] + ["relative"] * (len(x) - 2) + ["total"]
    fig = go.Figure(go.Waterfall(x=x, y=y, measure=measure))
    fig.update_layout(title="Where the monthly savings come from", yaxis_title="USD / month")
    return fig


def plot_break_even(curve: pl.DataFrame, result: SavingsResult | None = None) -> go.Figure:
    """Monthly cost vs monthly volume; where 'after' crosses 'before' the swap starts to pay."""
    fig = go.Figure()
    for col, name in (
        ("before_usd", "all LLM"),
        ("after_usd", "routed (at set utilization)"),
        ("after_dedicated_gpu_usd", "routed (dedicated GPU)"),
    ):
        fig.add_scatter(x=curve["calls_per_month"].to_list(), y=curve[col].to_list(), name=name, mode="lines")
    if result is not None:
        fig.add_vline(x=result.total["monthly_calls"], line_dash="dot", annotation_text="observed volume")
    fig.update_layout(title="Break-even volume", xaxis_title="calls / month", yaxis_title="USD / month")
    return fig


def plot_quality_cost_frontier(points: pl.DataFrame, random_points: pl.DataFrame | None = None) -> go.Figure:
    """Quality vs monthly cost for router thresholds (columns: monthly_cost_usd, quality), random router too."""
    fig = go.Figure()
    fig.add_scatter(
        x=points["monthly_cost_usd"].to_list(),
        y=points["quality"].to_list(),
        mode="lines+markers",
        name="cluster router",
    )
    if random_points is not None:
        fig.add_scatter(
            x=random_points["monthly_cost_usd"].to_list(),
            y=random_points["quality"].to_list(),
            mode="lines",
            name="random router",
            line_dash="dash",
        )
    fig.update_layout(
        title="Quality vs cost", xaxis_title="USD / month", yaxis_title="agreement with the LLM"
    )
    return fig


class SavingsDashboard:
    """ipywidgets controls (GPU price, utilization, engineering cost, clusters to swap) over live figures.

    The state is plain: `spec`, `swap_clusters` and `result`; `refresh()` recomputes and updates the
    `FigureWidget`s in place. Tests drive it headless by setting `.value` on the controls.

    Example:
        >>> dash = SavingsDashboard(calls, clusters=[0, 1])  # doctest: +SKIP
        >>> dash.widget  # doctest: +SKIP
    """

    def __init__(
        self,
        calls: pl.DataFrame,
        clusters: list[int],
        spec: SelfHostedSLM | None = None,
        swap_clusters: list[int] | None = None,
        prices: pl.DataFrame | None = None,
        calls_per_month: float | None = None,
    ) -> None:
        import ipywidgets as w

        self.calls = calls.drop("routed_to") if "routed_to" in calls.columns else calls
        self.spec = spec or SelfHostedSLM()
        self.prices = prices
        self.calls_per_month = calls_per_month
        self.swap_clusters = list(swap_clusters if swap_clusters is not None else clusters)
        self.usd_per_hour = w.FloatSlider(
            value=self.spec.usd_per_hour, min=0.1, max=12.0, step=0.1, description="GPU $/h"
        )
        self.utilization = w.FloatSlider(
            value=self.spec.utilization, min=0.05, max=1.0, step=0.05, description="utilization"
        )
        self.engineering = w.FloatText(value=self.spec.engineering_usd_month, description="eng. $/month")
        self.cluster_boxes = {
            c: w.Checkbox(value=c in self.swap_clusters, description=f"cluster {c}") for c in clusters
        }
        self.summary = w.HTML()
        self.fig_before_after = go.FigureWidget()
        self.fig_waterfall = go.FigureWidget()
        self.fig_break_even = go.FigureWidget()
        for ctrl in (self.usd_per_hour, self.utilization, self.engineering, *self.cluster_boxes.values()):
            ctrl.observe(lambda _change: self.refresh(), names="value")
        self.widget = w.VBox(
            [
                w.HBox([self.usd_per_hour, self.utilization, self.engineering]),
                w.HBox(list(self.cluster_boxes.values())),
                self.summary,
                w.HBox([self.fig_before_after, self.fig_waterfall]),
                self.fig_break_even,
            ]
        )
        self.refresh()

    def refresh(self) -> SavingsResult:
        """Recompute the savings from the controls and redraw the figures."""
        self.spec = SelfHostedSLM(
            **{
                **asdict(self.spec),
                "usd_per_hour": self.usd_per_hour.value,
                "utilization": self.utilization.value,
                "engineering_usd_month": max(self.engineering.value, 0.0),
            }
        )
        self.swap_clusters = [c for c, box in self.cluster_boxes.items() if box.value]
        self.result = compute_savings(
            self.calls,
            self.spec,
            self.prices,
            swap_clusters=self.swap_clusters,
            calls_per_month=self.calls_per_month,
        )
        t = self.result.total
        be = self.result.break_even_calls_per_month
        self.summary.value = (
            f"<b>{t['monthly_before_usd']:,.2f} → {t['monthly_after_usd']:,.2f} USD/month</b> "
            f"(saved {t['saved_share']:.1%}; {t['slm_share']:.1%} of calls on the SLM; "
            f"break-even {'n/a' if be is None else f'{be:,.0f} calls/month'})"
        )
        for target, fig in (
            (self.fig_before_after, plot_cost_before_after(self.result, by="cluster")),
            (self.fig_waterfall, plot_savings_waterfall(self.result)),
            (self.fig_break_even, plot_break_even(break_even_curve(self.result, self.spec), self.result)),
        ):
            with target.batch_update():
                target.data = []
                target.add_traces(list(fig.data))
                target.layout = fig.layout
        return self.result


def save_savings(result: SavingsResult, run: str = "demo", quality: float | None = None) -> tuple[str, str]:
    """Write the per-call costs (`artefact("savings")`) and the totals with assumptions (`savings_total`).

    Args:
        result: from `compute_savings`.
        run: run folder name.
        quality: agreement with the LLM on the calls routed to SLMs, shown in the report's headline.
    """
    import json

    from slmlab.config import artefact

    per_call_path, total_path = artefact("savings", run), artefact("savings_total", run)
    result.per_call.write_parquet(per_call_path)
    payload = {
        "total": result.total,
        "break_even_calls_per_month": result.break_even_calls_per_month,
        "assumptions": result.assumptions,
    }
    if quality is not None:
        payload["quality"] = quality
    total_path.write_text(json.dumps(payload, indent=1, default=str))
    return str(per_call_path), str(total_path)


def load_routed_calls(run: str = "demo") -> pl.DataFrame:
    """The calls of a run with a `routed_to` column, ready for `compute_savings`.

    Uses the router replay of notebook 07 (`artefact("replay")`) joined to the clustered call table for
    tokens, costs, agents and timestamps, with the labeller's merges and splits applied as in notebook 07
    (so cluster ids agree with the replay's); without a replay, the clusters accepted in the labeller
    (`artefact("labels")`) go to the SLM.
    """
    from slmlab.config import artefact
    from slmlab.label.session import load_labelled_calls

    calls, session = load_labelled_calls(run)
    replay_path = artefact("replay", run)
    if replay_path.exists():
        replay = pl.read_parquet(replay_path)
        extra = [c for c in replay.columns if c == "call_id" or c not in calls.columns]
        return calls.join(replay.select(extra), on="call_id", how="inner")
    swap: list[int] = []
    if session is not None:
        swap = session.clusters.filter(pl.col("status") == "slm_candidate")["cluster"].to_list()
    return calls.with_columns(
        pl.when(pl.col("cluster").is_in(swap)).then(pl.lit("slm")).otherwise(pl.lit("llm")).alias("routed_to")
    )


def swapped_clusters(calls: pl.DataFrame) -> list[int]:
    """Clusters with at least one call routed to the SLM."""
    return sorted(calls.filter(pl.col("routed_to") == "slm")["cluster"].unique().to_list())


def routed_quality(calls: pl.DataFrame, column: str = "agreement") -> float | None:
    """Mean agreement with the LLM over the calls routed to the SLM, where the replay measured it."""
    if column not in calls.columns:
        return None
    vals = calls.filter(pl.col("routed_to") == "slm")[column].drop_nulls()
    return float(vals.mean()) if vals.len() else None
