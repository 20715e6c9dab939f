"""Step 1, profile: where an agent's LLM calls, tokens, money and time go, and which prompts repeat.

Every function takes the canonical call table (`slmlab.schema.CALL_SCHEMA`) and returns a polars frame, a
frozen dataclass or a plotly figure; all of it is polars expressions (no Python loops over rows), so a
million calls profile in seconds.

* `summary` - totals, time span, calls per day and the **estimated monthly cost at the observed rate**.
* `profile_calls` - calls, tokens, cost, latency percentiles and response types per model and agent.
* `by_tool`, `latency_table` - per action (tool name or "respond") and per-model latency.
* `detect_templates` - calls sharing a system prompt (or a long first-prompt prefix): the first evidence
  of repetitive sub-tasks that a small model could take over.
* `plot_*` - figures (never shown here; a notebook shows the returned `go.Figure`).

Usage:
    >>> from slmlab.collect.profile import summary, profile_calls
    >>> print(summary(calls))  # doctest: +SKIP
    >>> profile_calls(calls, by=("model", "agent"))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import polars as pl

from slmlab.collect.distinct import distinct_counts
from slmlab.schema import TEXT_ACTION, action_expr

if TYPE_CHECKING:  # plotly is imported by the plot functions only
    pass

Frame = pl.DataFrame | pl.LazyFrame  # the profile functions take a table in memory or a lazy scan
DAYS_PER_MONTH = 365.25 / 12  # 30.4375: the average month, so "monthly" does not depend on which month
# Providers echo dated snapshots ("gpt-4o-2024-08-06") while requests name the alias ("gpt-4o").
SNAPSHOT_SUFFIX = r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$"


def usd(x: float | None, digits: int = 2) -> str:
    """Dollars as text with the sign first: `usd(-3.5)` is "-$3.50" (not "$-3.50").

    Example:
        >>> usd(-3.5), usd(1234.5)
        ('-$3.50', '$1,234.50')
    """
    if x is None:
        return "n/a"
    return f"{'-' if x < 0 else ''}${abs(x):,.{digits}f}"


def nonnegative(col: str) -> pl.Expr:
    """`col` with negative values (a broken log's counts or costs) as null, so sums leave them out."""
    return pl.when(pl.col(col) >= 0).then(pl.col(col)).alias(col)


def model_family() -> pl.Expr:
    """Expression for the model without its dated snapshot suffix (`gpt-4o-2024-08-06` -> `gpt-4o`).

    Example:
        >>> pl.DataFrame({"model": ["gpt-4o-2024-08-06", "gpt-4.1"]}).select(model_family())["model"].to_list()
        ['gpt-4o', 'gpt-4.1']
    """
    return pl.col("model").str.replace(SNAPSHOT_SUFFIX, "").alias("model")


def _prepare(calls: Frame, collapse_snapshots: bool, action: bool = True) -> Frame:
    """Add the flags every table aggregates: action, response type, error; negative counts as null.

    `action=False` leaves the action out: it is computed in Python per row (a text can name its action),
    which a lazy scan cannot stream, so a profile not grouped by action does not pay for it.
    """
    df = calls.with_columns(model_family()) if collapse_snapshots else calls
    names = df.collect_schema().names()
    df = df.with_columns(
        nonnegative(c)
        for c in ("input_tokens", "cached_input_tokens", "output_tokens", "cost_usd", "latency_ms")
        if c in names
    )
    is_error = pl.col("status") != "ok"
    is_tool = ~is_error & (pl.col("n_tool_calls") > 0)
    return df.with_columns(
        *([action_expr()] if action else []),
        is_error.alias("_error"),
        is_tool.alias("_tool"),
        (~is_error & ~is_tool & pl.col("response_text").is_not_null()).alias("_text"),
    )


def _quantile(col: str, q: float) -> pl.Expr:
    # Linear interpolation, as numpy.percentile does, so numbers match what people compute by hand.
    return pl.col(col).quantile(q, interpolation="linear")


def _collect(frame: Frame) -> pl.DataFrame:
    # A lazy frame goes to polars' streaming engine (grouped distinct counts and quantiles: `_lean_aggs`).
    return frame.collect(engine="streaming") if isinstance(frame, pl.LazyFrame) else frame


def profile_calls(
    calls: Frame, by: str | Sequence[str] = ("model", "agent"), collapse_snapshots: bool = True
) -> pl.DataFrame:
    """Calls, tokens, cost, latency and response types per group, most expensive group first.

    Args:
        calls: the canonical call table, in memory or lazily scanned (`pl.LazyFrame`).
        by: grouping columns (any column of the table, or "action").
        collapse_snapshots: group "gpt-4o-2024-08-06" with "gpt-4o" (see `model_family`).

    Returns:
        One row per group: `calls`, `share_calls`, `sessions`, `input_tokens`, `cached_input_tokens`,
        `output_tokens`, `mean_input_tokens`, `mean_output_tokens`, `cost_usd` (sum of known costs),
        `share_cost`, `cost_per_call`, `latency_mean_ms`, `latency_p50_ms`, `latency_p90_ms` (linear
        interpolation), `tool_call_share`, `text_share`, `error_share`, `tokens_estimated_share`,
        `cost_estimated_share` and `cost_missing_share` (no logged cost and no price).

    Example:
        >>> profile_calls(calls, by="agent").select("agent", "calls", "cost_usd")  # doctest: +SKIP
    """
    by = [by] if isinstance(by, str) else list(by)
    df = _prepare(calls, collapse_snapshots, action="action" in by)
    lazy = isinstance(df, pl.LazyFrame)
    per_call = (
        ()
        if lazy
        else (  # held per call by polars: a lazy scan gets them from `_lean_aggs`
            pl.col("session_id").n_unique().alias("sessions"),
            _quantile("latency_ms", 0.5).alias("latency_p50_ms"),
            _quantile("latency_ms", 0.9).alias("latency_p90_ms"),
        )
    )
    grouped = _collect(
        df.group_by(by).agg(
            pl.len().alias("calls"),
            *per_call,
            pl.col("input_tokens").sum(),
            pl.col("cached_input_tokens").sum(),
            pl.col("output_tokens").sum(),
            pl.col("input_tokens").mean().alias("mean_input_tokens"),
            pl.col("output_tokens").mean().alias("mean_output_tokens"),
            pl.col("cost_usd").sum(),
            pl.col("latency_ms").mean().alias("latency_mean_ms"),
            pl.col("_tool").mean().alias("tool_call_share"),
            pl.col("_text").mean().alias("text_share"),
            pl.col("_error").mean().alias("error_share"),
            pl.col("tokens_estimated").mean().alias("tokens_estimated_share"),
            pl.col("cost_estimated").mean().alias("cost_estimated_share"),
            pl.col("cost_usd").is_null().mean().alias("cost_missing_share"),
        )
    )
    if lazy:
        grouped = grouped.join(_lean_aggs(df, by, grouped.select(by)), on=by, how="left", nulls_equal=True)
    n, total_cost = int(grouped["calls"].sum()), grouped["cost_usd"].sum()
    out = grouped.with_columns(
        (pl.col("calls") / max(n, 1)).alias("share_calls"),
        (pl.col("cost_usd") / total_cost if total_cost else pl.lit(None, pl.Float64)).alias("share_cost"),
        (pl.col("cost_usd") / pl.col("calls")).alias("cost_per_call"),
    ).sort(["cost_usd", "calls", *by], descending=[True, True] + [False] * len(by), nulls_last=True)
    first = [*by, "calls", "share_calls", "sessions", "input_tokens", "cached_input_tokens", "output_tokens",
             "mean_input_tokens", "mean_output_tokens", "cost_usd", "share_cost", "cost_per_call",
             "latency_mean_ms", "latency_p50_ms", "latency_p90_ms"]  # fmt: skip
    return out.select(first + [c for c in out.columns if c not in first])


def _lean_aggs(df: pl.LazyFrame, by: list[str], keys: pl.DataFrame) -> pl.DataFrame:
    """Sessions and latency p50 / p90 per group of a lazy scan, without polars' per-call group state.

    A grouped distinct count or exact quantile makes polars hold ~150 bytes a call; instead the distinct
    (group, session) pairs are counted as 64-bit hashes, a bucket at a time (`slmlab.collect.distinct`),
    and one group's latencies are read at a time (8 bytes a call of the largest group). Same numbers as
    the in-memory aggregation.
    """
    sessions = distinct_counts(df, by, "session_id").rename({"distinct": "sessions"})
    rows = []
    for key in keys.iter_rows():
        match = pl.all_horizontal(
            [pl.col(c).is_null() if v is None else pl.col(c) == v for c, v in zip(by, key, strict=True)]
        )
        lat = _collect(df.filter(match).select("latency_ms"))["latency_ms"]
        rows.append((*key, lat.quantile(0.5, "linear"), lat.quantile(0.9, "linear")))
    schema = {**keys.schema, "latency_p50_ms": pl.Float64, "latency_p90_ms": pl.Float64}
    quantiles = pl.DataFrame(rows, schema=schema, orient="row")
    return sessions.join(quantiles, on=by, how="full", coalesce=True, nulls_equal=True)


@dataclass(frozen=True)
class CallSummary:
    """Totals of a call table and the monthly cost they imply (see `summary` for how the rate is set)."""

    n_calls: int
    n_errors: int
    n_sessions: int
    agents: tuple[str, ...]
    models: tuple[str, ...]  # dated snapshots collapsed (see `model_family`)
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_usd: float  # sum of known costs (logged or estimated)
    cost_estimated_share: float  # share of calls whose cost slmlab estimated from its price table
    cost_missing_calls: int  # calls with no logged cost and no price (not in cost_usd)
    first: datetime | None
    last: datetime | None
    span_days: float | None  # last - first timestamp, in days
    calls_per_day: float | None  # the rate the monthly figures use
    cost_per_day: float | None
    monthly_calls: float | None
    monthly_cost_usd: float | None  # None when no rate can be justified (see rate_basis)
    rate_basis: str  # how calls_per_day was obtained, in words
    invalid_calls: int = 0  # calls with a negative token count or cost, left out of the totals

    def __str__(self) -> str:
        lines = [
            f"{self.n_calls:,} calls in {self.n_sessions:,} sessions ({self.n_errors:,} failed), "
            f"{len(self.agents)} agents, {len(self.models)} models",
            f"tokens: {self.input_tokens:,} in ({self.cached_input_tokens:,} cached), {self.output_tokens:,} out",
            f"cost: {usd(self.cost_usd)} ({self.cost_estimated_share:.0%} of calls priced by slmlab"
            + (f", {self.cost_missing_calls:,} calls without a price" if self.cost_missing_calls else "")
            + ")",
        ]
        if self.first is not None and self.span_days is not None:
            lines.append(
                f"time span: {self.first:%Y-%m-%d %H:%M} to {self.last:%Y-%m-%d %H:%M} UTC ({self.span_days:.2f} days)"
            )
        if self.monthly_cost_usd is not None:
            lines.append(
                f"rate: {self.calls_per_day:,.0f} calls/day, {usd(self.cost_per_day)}/day -> "
                f"{self.monthly_calls:,.0f} calls and {usd(self.monthly_cost_usd)} per month"
            )
        if self.invalid_calls:
            lines.append(
                f"left out of the totals: {self.invalid_calls:,} calls with a negative token count or cost "
                "(not a count: re-ingest with slmlab ingest, which nulls and flags them)"
            )
        lines.append(f"rate basis: {self.rate_basis}")
        return "\n".join(lines)


def summary(calls: Frame, calls_per_day: float | None = None, min_span_days: float = 1.0) -> CallSummary:
    """Totals, time span and the estimated monthly cost of the workload the log shows.

    How the monthly figure is computed, in order:

    1. `calls_per_day` given (your real traffic): monthly cost = observed mean cost per call x
       `calls_per_day` x 30.4375 days. Use this when the log is a sample.
    2. Timestamps spanning at least `min_span_days`: the observed rate, `n_calls / span_days` and
       `cost_usd / span_days`, where span = last - first call start; times 30.4375 days. A log that covers
       whole days of normal traffic extrapolates fairly; one week or more averages out weekdays.
    3. Otherwise (no timestamps, or a shorter burst such as a benchmark run, where calls per minute say
       nothing about calls per month): no monthly figure (`None`), and `rate_basis` says why.

    Args:
        calls: the canonical call table, in memory or lazily scanned (`pl.LazyFrame`).
        calls_per_day: your production volume, overriding the observed rate.
        min_span_days: the shortest time span trusted for extrapolation.

    Example:
        >>> s = summary(calls)  # doctest: +SKIP
        >>> s.monthly_cost_usd, s.rate_basis  # doctest: +SKIP
    """
    if calls_per_day is not None and calls_per_day < 0:
        raise ValueError(f"calls_per_day must be >= 0, got {calls_per_day}")
    counts = ("input_tokens", "cached_input_tokens", "output_tokens", "cost_usd")
    lazy = isinstance(calls, pl.LazyFrame)
    invalid = pl.any_horizontal([(pl.col(c) < 0).fill_null(False) for c in counts])
    row = _collect(
        calls.select(
            pl.len().alias("n"),
            (pl.col("status") != "ok").sum().alias("errors"),
            *([] if lazy else [pl.col("session_id").n_unique().alias("sessions")]),
            *[nonnegative(c).sum() for c in counts],
            invalid.sum().alias("invalid"),
            pl.col("cost_estimated").mean().alias("cost_est"),
            pl.col("cost_usd").is_null().sum().alias("cost_missing"),
            pl.col("timestamp").min().alias("first"),
            pl.col("timestamp").max().alias("last"),
        )
    ).row(0, named=True)
    if lazy:  # polars' distinct count holds a hash table entry per session: see `slmlab.collect.distinct`
        row["sessions"] = int(distinct_counts(calls, [], "session_id")["distinct"].sum())
    n, cost = row["n"], row["cost_usd"] or 0.0
    first, last = row["first"], row["last"]
    span = (last - first).total_seconds() / 86400 if first is not None and last is not None else None
    rate = cost_rate = None
    if calls_per_day is not None:
        priced = n - row["cost_missing"]
        rate = float(calls_per_day)
        cost_rate = cost / priced * rate if priced else 0.0
        basis = (
            f"given volume: {rate:,.0f} calls/day x observed mean cost per priced call "
            f"({usd(cost / priced if priced else 0, 5)}) x {DAYS_PER_MONTH} days/month"
        )
    elif span is not None and span >= min_span_days:
        rate, cost_rate = n / span, cost / span
        basis = (
            f"observed: {n:,} calls between the first and last timestamp ({span:.2f} days) "
            f"x {DAYS_PER_MONTH} days/month"
        )
    elif span is not None:
        basis = (
            f"no monthly estimate: the log spans only {span * 24:.2f} hours (< {min_span_days} day), a burst "
            "that says nothing about daily volume; pass calls_per_day=<your traffic>"
        )
    else:
        basis = "no monthly estimate: the log has no timestamps; pass calls_per_day=<your traffic>"
    return CallSummary(
        n_calls=n,
        n_errors=row["errors"],
        n_sessions=row["sessions"],
        agents=tuple(sorted(_collect(calls.select(pl.col("agent").drop_nulls().unique()))["agent"])),
        models=tuple(sorted(_collect(calls.select(model_family().drop_nulls().unique()))["model"])),
        input_tokens=row["input_tokens"] or 0,
        cached_input_tokens=row["cached_input_tokens"] or 0,
        output_tokens=row["output_tokens"] or 0,
        cost_usd=cost,
        cost_estimated_share=row["cost_est"] or 0.0,
        cost_missing_calls=row["cost_missing"],
        first=first,
        last=last,
        span_days=span,
        calls_per_day=rate,
        cost_per_day=cost_rate,
        monthly_calls=rate * DAYS_PER_MONTH if rate is not None else None,
        monthly_cost_usd=cost_rate * DAYS_PER_MONTH if cost_rate is not None else None,
        rate_basis=basis,
        invalid_calls=row["invalid"],
    )


def by_tool(calls: pl.DataFrame) -> pl.DataFrame:
    """Successful calls per action (the tool called, or "respond" for a text answer), most frequent first.

    Returns:
        `action`, `calls`, `share_calls` (of successful calls), `agents` and `models` (sorted lists),
        `mean_arguments_chars` (length of the tool-call JSON; null for text), `mean_output_tokens`,
        `cost_usd`, `multi_tool_share` (responses with more than one tool call).

    Example:
        >>> by_tool(calls).head(3)  # doctest: +SKIP
    """
    ok = calls.filter(pl.col("status") == "ok").with_columns(action_expr(), model_family())
    return (
        ok.group_by("action")
        .agg(
            pl.len().alias("calls"),
            pl.col("agent").unique().sort().alias("agents"),
            pl.col("model").unique().sort().alias("models"),
            pl.col("response_tool_calls").str.len_chars().mean().alias("mean_arguments_chars"),
            pl.col("output_tokens").mean().alias("mean_output_tokens"),
            pl.col("cost_usd").sum(),
            (pl.col("n_tool_calls") > 1).mean().alias("multi_tool_share"),
        )
        .with_columns((pl.col("calls") / max(ok.height, 1)).alias("share_calls"))
        .with_columns(
            pl.when(pl.col("action") == TEXT_ACTION)
            .then(None)
            .otherwise(pl.col("mean_arguments_chars"))
            .alias("mean_arguments_chars")
        )
        .select(
            "action",
            "calls",
            "share_calls",
            "agents",
            "models",
            "mean_arguments_chars",
            "mean_output_tokens",
            "cost_usd",
            "multi_tool_share",
        )  # fmt: skip
        .sort(["calls", "action"], descending=[True, False])
    )


def latency_table(
    calls: pl.DataFrame,
    by: str | Sequence[str] = "model",
    include_errors: bool = False,
    collapse_snapshots: bool = True,
) -> pl.DataFrame:
    """Latency percentiles per group (successful calls only unless `include_errors`: timeouts distort).

    Returns:
        `calls` (with a latency), `mean_ms`, `p50_ms`, `p90_ms`, `p99_ms`, `max_ms` (linear interpolation),
        and `ms_per_output_token` (median of latency / output tokens: the decode speed users feel).

    Example:
        >>> latency_table(calls, by="model")  # doctest: +SKIP
    """
    by = [by] if isinstance(by, str) else list(by)
    df = _prepare(calls, collapse_snapshots)
    if not include_errors:
        df = df.filter(~pl.col("_error"))
    df = df.filter(pl.col("latency_ms").is_not_null())
    return (
        df.group_by(by)
        .agg(
            pl.len().alias("calls"),
            pl.col("latency_ms").mean().alias("mean_ms"),
            _quantile("latency_ms", 0.5).alias("p50_ms"),
            _quantile("latency_ms", 0.9).alias("p90_ms"),
            _quantile("latency_ms", 0.99).alias("p99_ms"),
            pl.col("latency_ms").max().alias("max_ms"),
            (pl.col("latency_ms") / pl.col("output_tokens"))
            .filter(pl.col("output_tokens") > 0)
            .median()
            .alias("ms_per_output_token"),
        )
        .sort(by)
    )


def _first_prompt() -> pl.Expr:
    # Content of the first message (the system prompt when there is one) and its role.
    return pl.col("messages").str.json_path_match("$[0].content")


def detect_templates(calls: pl.DataFrame, min_share: float = 0.01, prefix_chars: int = 50) -> pl.DataFrame:
    """Groups of calls whose prompt starts the same way: a shared system prompt or a long common prefix.

    The key of a call is the first `prefix_chars` characters of its first message (the system prompt, else
    the first user turn), lower-cased, with digits replaced by 0 and whitespace collapsed, so that dates,
    ids and counts filled into a template do not split it. Fillers that are words (a customer tier, a name)
    inside the first `prefix_chars` characters do split it: lower `prefix_chars` for prompts that put
    fillers early, raise it when unrelated prompts open with the same boilerplate.

    Args:
        calls: the canonical call table.
        min_share: keep templates covering at least this share of calls (0 keeps all).
        prefix_chars: length of the prompt prefix that defines a template.

    Returns:
        One row per template, most calls first: `template` (a stable 10-hex-digit id), `calls`,
        `share_calls`, `cum_share` (share of all calls covered by this and the larger templates), `source`
        ("system" or the role of the first message), `agents`, `models`, `distinct_prompts` (how many
        different full first messages), `common_prefix_chars` (length of the part every prompt shares,
        after normalisation), `example_call_id` and `example` (the start of one prompt, 200 characters).

    Example:
        >>> detect_templates(calls, min_share=0.02).select("template", "calls", "agents")  # doctest: +SKIP
    """
    if not 0 <= min_share <= 1:
        raise ValueError(f"min_share must be in [0, 1], got {min_share}")
    norm = (
        _first_prompt()
        .fill_null("")
        .str.to_lowercase()
        .str.replace_all(r"\d", "0")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )
    df = calls.select(
        "call_id",
        "agent",
        model_family(),
        norm.alias("_norm"),
        pl.col("messages").str.json_path_match("$[0].role").fill_null("none").alias("source"),
        _first_prompt().fill_null("").str.slice(0, 200).alias("example"),
    ).with_columns(pl.col("_norm").str.slice(0, prefix_chars).alias("_key"))
    n = max(df.height, 1)
    groups = (
        df.group_by("_key")
        .agg(
            pl.len().alias("calls"),
            pl.col("source").mode().first(),
            pl.col("agent").unique().sort().alias("agents"),
            pl.col("model").unique().sort().alias("models"),
            pl.col("_norm").n_unique().alias("distinct_prompts"),
            pl.col("_norm").min().alias("_min"),
            pl.col("_norm").max().alias("_max"),
            pl.col("call_id").first().alias("example_call_id"),
            pl.col("example").first(),
        )
        .sort(["calls", "_key"], descending=[True, False])
        .with_columns((pl.col("calls") / n).alias("share_calls"))
        .with_columns(pl.col("share_calls").cum_sum().alias("cum_share"))
        .filter(pl.col("share_calls") >= min_share)
    )
    # The longest prefix all prompts of a group share is the common prefix of its min and max (lexical order).
    keys, mins, maxs = (groups.get_column(c).to_list() for c in ("_key", "_min", "_max"))
    return groups.with_columns(
        pl.Series("template", [hashlib.sha1(k.encode()).hexdigest()[:10] for k in keys], pl.String),
        pl.Series("common_prefix_chars", [len(os.path.commonprefix([a, b])) for a, b in zip(mins, maxs, strict=True)], pl.Int64),
    ).select("template", "calls", "share_calls", "cum_share", "source", "agents", "models", "distinct_prompts",
             "common_prefix_chars", "example_call_id", "example")  # fmt: skip


_PLOTS = (
    "plot_cost",
    "plot_latency",
    "plot_response_types",
    "plot_template_concentration",
    "plot_calls_over_time",
)


def __getattr__(name: str):
    """The figures (`plot_cost`, ...) live in `slmlab.collect.profile_plots`; served here on first use."""
    if name in _PLOTS:
        from slmlab.collect import profile_plots

        return getattr(profile_plots, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PLOTS])
