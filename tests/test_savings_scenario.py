"""Savings stated at a volume: the production scenario, the headline around break-even, stable figures."""

import polars as pl
import pytest

from slmlab.savings import (
    SavingsDashboard,
    SelfHostedSLM,
    at_volume,
    break_even_curve,
    compute_savings,
    default_scenario,
    describe_change,
    headline,
    plot_break_even,
    plot_cost_before_after,
)

SPEC = SelfHostedSLM(usd_per_hour=0.8, utilization=0.5, engineering_usd_month=200.0)


def _calls(n=100):
    return pl.DataFrame(
        {
            "call_id": [str(i) for i in range(n)],
            "agent": ["planner" if i % 3 else "worker" for i in range(n)],
            "cluster": [i % 5 for i in range(n)],
            "model": ["gpt-4o"] * n,
            "input_tokens": [2000] * n,
            "output_tokens": [40] * n,
            "cached_input_tokens": [0] * n,
            "cost_usd": [0.0055] * n,
            "latency_ms": [900.0] * n,
        }
    )


def test_at_volume_scales_per_call_costs_but_not_the_fixed_cost():
    r = compute_savings(_calls(), SPEC, swap_clusters=[0, 1], calls_per_month=3000)
    a, b = at_volume(r, 1e6).total, at_volume(r, 2e6).total
    var_a = a["monthly_after_usd"] - 200.0
    var_b = b["monthly_after_usd"] - 200.0
    assert b["monthly_before_usd"] == pytest.approx(2 * a["monthly_before_usd"])
    assert var_b == pytest.approx(2 * var_a)
    assert at_volume(r, 1e6).break_even_calls_per_month == pytest.approx(r.break_even_calls_per_month)
    # at the break-even volume, before == after
    be = at_volume(r, r.break_even_calls_per_month).total
    assert be["monthly_before_usd"] == pytest.approx(be["monthly_after_usd"])
    with pytest.raises(ValueError):
        at_volume(r, 0)


def test_headline_never_states_a_negative_saving():
    r = compute_savings(_calls(), SPEC, swap_clusters=[0, 1], calls_per_month=3000)
    lines = headline(r, 1e6)
    text = " ".join(lines)
    assert lines[0].startswith("Break-even at ")
    assert "costs $" in lines[1] and "more" in lines[1]  # 3,000 calls/month: below break-even
    assert "saves $" in lines[2]  # 1 M calls/month: above it
    assert "-" not in text.replace("Break-even", "").replace("all-LLM", "")
    assert describe_change(8.0, 203.0) == "costs $195.00/month more"
    assert describe_change(0.0, 0.0) == "saves $0.00/month"


def test_headline_without_a_swap_or_a_break_even():
    assert headline(compute_savings(_calls(), SPEC, swap_clusters=[]))[0].startswith("No call is routed")
    pricey = SelfHostedSLM(usd_per_hour=500.0, utilization=0.05, engineering_usd_month=200.0)
    r = compute_savings(_calls(), pricey, swap_clusters=[0])
    assert r.break_even_calls_per_month is None and headline(r)[0].startswith("No break-even")


def test_default_scenario_is_a_round_volume_above_break_even():
    r = compute_savings(_calls(), SPEC, swap_clusters=[0, 1], calls_per_month=3000)
    v = default_scenario(r)
    assert v >= 10 * r.break_even_calls_per_month and str(int(v)).rstrip("0") in ("1", "2", "5")
    assert v < 25 * r.break_even_calls_per_month  # the next round number, not the next power of ten


def test_bars_keep_their_order_and_break_even_marks_the_volumes():
    r = compute_savings(_calls(), SPEC, swap_clusters=[3, 1], calls_per_month=3000)
    fig = plot_cost_before_after(r, by="cluster")
    assert list(fig.data[0].x) == ["0", "1", "2", "3", "4"]
    curve = break_even_curve(r, SPEC, max_calls=1e7, min_calls=100)
    assert curve["calls_per_month"].min() == pytest.approx(100) and curve.height == 60
    fig = plot_break_even(curve, r, scenario_calls_per_month=1e6)
    texts = [a.text for a in fig.layout.annotations]
    assert {"observed volume", "break-even", "production scenario"} <= set(texts)
    assert fig.layout.xaxis.type == "log"


def test_dashboard_volume_knob_and_controls_change_the_headline():
    dash = SavingsDashboard(
        _calls(), clusters=list(range(5)), spec=SPEC, swap_clusters=[0, 1], calls_per_month=3000
    )
    first = dash.summary.value
    assert "production scenario" in first and "Break-even" in first
    dash.volume.value = 1000.0  # below break-even
    assert "costs $" in dash.summary.value.split("<br>")[0]
    assert dash.scenario.total["monthly_calls"] == pytest.approx(1000.0)
    dash.volume.value = 1e7
    assert "saves $" in dash.summary.value.split("<br>")[0]
    bars = list(dash.fig_before_after.data[0].x)
    dash.cluster_boxes[2].value = True
    assert list(dash.fig_before_after.data[0].x) == bars  # same order after a refresh
    dash.engineering.value = 1234.0
    assert "$1,234/month fixed cost" in dash.summary.value
    assert dash.usd_per_hour.options == tuple(sorted(dash.usd_per_hour.options))
