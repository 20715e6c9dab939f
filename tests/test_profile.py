"""Tests for step 1 profile: exact numbers on a hand-built call table, then the demo logs end to end."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import plotly.graph_objects as go
import polars as pl
import pytest

from slmlab.collect import profile
from slmlab.schema import conform, validate_calls


def _msgs(system: str, user: str = "hi") -> str:
    return json.dumps([{"role": "system", "content": system}, {"role": "user", "content": user}])


def _ts(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, tzinfo=timezone.utc)


@pytest.fixture
def calls() -> pl.DataFrame:
    """Five calls: two planner (gpt-4o, one logged under its snapshot name), three worker (gpt-4o-mini)."""
    tool = json.dumps([{"id": "c1", "name": "lookup_order", "arguments": "{}"}])
    df = pl.DataFrame(
        {
            "call_id": ["a", "b", "c", "d", "e"],
            "session_id": ["s1", "s1", "s1", "s2", "s2"],
            "step": [0, 1, 2, 0, 1],
            "agent": ["planner", "worker", "worker", "planner", "worker"],
            "model": ["gpt-4o", "gpt-4o-mini", "gpt-4o-mini", "gpt-4o-2024-08-06", "gpt-4o-mini"],
            "timestamp": [_ts(1), _ts(1, 6), _ts(2), _ts(2, 12), _ts(3)],
            "messages": [
                _msgs("You are the planner. Today is 2026-01-01.", "plan A"),
                _msgs("You are the worker of Acme.", "do X"),
                _msgs("You are the worker of Acme.", "do Y"),
                _msgs("You are the planner. Today is 2026-01-02.", "plan B"),
                json.dumps([{"role": "user", "content": "no system prompt here"}]),
            ],
            "response_text": ["plan", None, "answer", "plan", None],
            "response_tool_calls": [None, tool, None, None, None],
            "tool_name": [None, "lookup_order", None, None, None],
            "n_tool_calls": [0, 1, 0, 0, 0],
            "input_tokens": [100, 200, 300, 400, 50],
            "cached_input_tokens": [0, 128, 0, 0, None],
            "output_tokens": [10, 20, 30, 40, None],
            "latency_ms": [100.0, 200.0, 300.0, 400.0, 5000.0],
            "cost_usd": [1.0, 0.5, 0.25, 2.0, None],
            "cost_estimated": [False, True, True, False, False],
            "status": ["ok", "ok", "ok", "ok", "error"],
            "source_format": "test",
            "source_file": "t.jsonl",
            "source_line": [1, 2, 3, 4, 5],
        }
    )
    return validate_calls(conform(df))


def test_profile_calls_exact_numbers(calls):
    t = profile.profile_calls(calls, by=("model", "agent"))
    assert t.get_column("model").to_list() == ["gpt-4o", "gpt-4o-mini"]  # snapshot collapsed, costliest first
    planner = t.row(0, named=True)
    assert planner["calls"] == 2 and planner["sessions"] == 2 and planner["share_calls"] == 0.4
    assert planner["input_tokens"] == 500 and planner["output_tokens"] == 50
    assert planner["cost_usd"] == 3.0 and planner["share_cost"] == pytest.approx(3.0 / 3.75)
    assert planner["latency_mean_ms"] == 250.0 and planner["latency_p50_ms"] == 250.0
    assert planner["latency_p90_ms"] == pytest.approx(370.0)  # linear interpolation: 100 + 0.9 * (400 - 100)
    assert planner["text_share"] == 1.0 and planner["tool_call_share"] == 0.0
    worker = t.row(1, named=True)
    assert worker["calls"] == 3 and worker["cached_input_tokens"] == 128
    assert worker["cost_usd"] == 0.75 and worker["cost_per_call"] == 0.25
    assert worker["tool_call_share"] == pytest.approx(1 / 3)
    assert worker["text_share"] == pytest.approx(1 / 3)
    assert worker["error_share"] == pytest.approx(1 / 3)
    assert worker["cost_estimated_share"] == pytest.approx(2 / 3)
    assert worker["cost_missing_share"] == pytest.approx(1 / 3)
    assert worker["latency_p50_ms"] == 300.0
    raw = profile.profile_calls(calls, by="model", collapse_snapshots=False)
    assert raw.height == 3


def test_summary_monthly_cost_from_the_observed_span(calls):
    s = profile.summary(calls)
    assert (s.n_calls, s.n_errors, s.n_sessions) == (5, 1, 2)
    assert s.agents == ("planner", "worker") and s.models == ("gpt-4o", "gpt-4o-mini")
    assert (s.input_tokens, s.cached_input_tokens, s.output_tokens) == (1050, 128, 100)
    assert s.cost_usd == 3.75 and s.cost_missing_calls == 1 and s.cost_estimated_share == 0.4
    assert s.span_days == 2.0  # Jan 1 00:00 to Jan 3 00:00
    assert s.calls_per_day == 2.5 and s.cost_per_day == 1.875
    assert s.monthly_cost_usd == pytest.approx(1.875 * 30.4375)
    assert s.monthly_calls == pytest.approx(2.5 * 30.4375)
    assert s.rate_basis.startswith("observed")
    assert "per month" in str(s) and "rate basis" in str(s)


def test_summary_given_volume_overrides_the_rate(calls):
    s = profile.summary(calls, calls_per_day=1000)
    # mean cost per priced call = 3.75 / 4; the unpriced error is not counted as free.
    assert s.cost_per_day == pytest.approx(937.5)
    assert s.monthly_cost_usd == pytest.approx(937.5 * 30.4375)
    assert s.rate_basis.startswith("given volume")
    with pytest.raises(ValueError):
        profile.summary(calls, calls_per_day=-1)


def test_summary_refuses_to_extrapolate_a_burst_or_missing_timestamps(calls):
    burst = calls.with_columns(pl.lit(_ts(1), dtype=pl.Datetime("us", "UTC")).alias("timestamp"))
    s = profile.summary(burst)
    assert s.monthly_cost_usd is None and s.span_days == 0.0 and "calls_per_day" in s.rate_basis
    s = profile.summary(calls.with_columns(pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("timestamp")))
    assert s.monthly_cost_usd is None and s.first is None and "no timestamps" in s.rate_basis
    assert profile.summary(calls, min_span_days=3).monthly_cost_usd is None


def test_by_tool_counts_successful_calls_per_action(calls):
    t = profile.by_tool(calls)
    assert t.get_column("action").to_list() == ["respond", "lookup_order"]
    respond, lookup = t.row(0, named=True), t.row(1, named=True)
    assert respond["calls"] == 3 and respond["share_calls"] == 0.75
    assert respond["agents"] == ["planner", "worker"] and respond["mean_arguments_chars"] is None
    assert lookup["calls"] == 1 and lookup["models"] == ["gpt-4o-mini"] and lookup["cost_usd"] == 0.5


def test_latency_table(calls):
    t = profile.latency_table(calls, by="model")
    mini = t.filter(pl.col("model") == "gpt-4o-mini").row(0, named=True)
    assert mini["calls"] == 2 and mini["max_ms"] == 300.0  # the 5 s failure is left out
    assert mini["ms_per_output_token"] == 10.0
    with_errors = profile.latency_table(calls, by="model", include_errors=True)
    assert with_errors.filter(pl.col("model") == "gpt-4o-mini")["max_ms"].item() == 5000.0


def test_detect_templates_masks_digits_and_hashes_stably(calls):
    t = profile.detect_templates(calls, min_share=0.0)
    assert t.get_column("calls").to_list() == [2, 2, 1]
    assert t.get_column("cum_share").to_list() == pytest.approx([0.4, 0.8, 1.0])
    planner = t.filter(pl.col("agents").list.contains("planner")).row(0, named=True)
    assert planner["distinct_prompts"] == 1  # the two dates normalise to the same prompt
    assert planner["source"] == "system" and planner["models"] == ["gpt-4o"]
    assert planner["common_prefix_chars"] == len("you are the planner. today is 0000-00-00.")
    assert t.filter(pl.col("calls") == 1)["source"].item() == "user"
    assert len(set(t["template"])) == 3 and all(len(x) == 10 for x in t["template"])
    again = profile.detect_templates(calls, min_share=0.0)
    assert again["template"].to_list() == t["template"].to_list()
    assert profile.detect_templates(calls, min_share=0.3).height == 2
    short = profile.detect_templates(calls, min_share=0.0, prefix_chars=8)  # "you are " joins both templates
    assert short["calls"].to_list() == [4, 1]
    with pytest.raises(ValueError):
        profile.detect_templates(calls, min_share=2)


def test_plots_return_figures(calls):
    figs = [
        profile.plot_cost(calls),
        profile.plot_cost(calls, metric="output_tokens"),
        profile.plot_latency(calls),
        profile.plot_response_types(calls),
        profile.plot_template_concentration(calls),
        profile.plot_calls_over_time(calls, every="1d"),
    ]
    assert all(isinstance(f, go.Figure) and f.data for f in figs)
    bars = {tr.name: tr.y for tr in figs[0].data}
    assert list(bars["gpt-4o"]) == [3.0, 0]  # x order: planner (3.0 USD), worker (0.75 USD)
    assert list(figs[4].data[0].y) == pytest.approx([0.4, 0.8, 1.0])
    with pytest.raises(ValueError):
        profile.plot_cost(calls, metric="nope")


@pytest.fixture(scope="module")
def demo_calls():
    collect = pytest.importorskip("slmlab.collect")
    from slmlab.demo.synth import demo_logs_path

    res = collect.ingest(demo_logs_path(), quarantine=None)
    return res.calls


def test_profile_on_the_demo_logs(demo_calls):
    s = profile.summary(demo_calls)
    assert s.n_calls == 3000 and s.n_sessions > 500 and 6 <= s.span_days <= 7
    assert s.monthly_cost_usd and s.monthly_cost_usd > s.cost_usd  # a week of logs, extrapolated to a month
    t = profile.profile_calls(demo_calls)
    assert t.height == 6 and t["calls"].sum() == 3000  # 6 agents, snapshots collapsed to 3 models
    assert t["share_cost"].sum() == pytest.approx(1.0)
    assert t.filter(pl.col("agent") == "worker")["tool_call_share"].item() > 0.9
    tools = profile.by_tool(demo_calls)
    assert {"lookup_order", "search_flights", "create_ticket", "send_email", "query_database"} <= set(
        tools["action"]
    )
    templates = profile.detect_templates(demo_calls, min_share=0.01)
    # 6 agents x 2 system-prompt versions; the worker's templates each serve several tools.
    assert templates.height == 12 and templates["cum_share"].max() == pytest.approx(1.0)


def test_usd_puts_the_sign_first_and_negatives_are_left_out():
    from slmlab.collect.profile import usd

    assert (usd(-3.5), usd(0.0), usd(1234.567)) == ("-$3.50", "$0.00", "$1,234.57")
    df = pl.DataFrame(
        {
            "call_id": ["a", "b"],
            "session_id": ["s", "s"],
            "agent": ["x", "x"],
            "model": ["gpt-4o", "gpt-4o"],
            "status": ["ok", "ok"],
            "input_tokens": [-470, 100],
            "cached_input_tokens": [0, 0],
            "output_tokens": [5, 5],
            "cost_usd": [-3.5, 0.25],
            "cost_estimated": [False, False],
            "timestamp": [None, None],
        },
        schema_overrides={"timestamp": pl.Datetime("us", "UTC")},
    )
    s = profile.summary(df)
    assert (s.input_tokens, s.cost_usd, s.invalid_calls) == (100, 0.25, 1)
    assert "-" not in str(s).split("\n")[1] and "$-" not in str(s)
