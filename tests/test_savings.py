"""Cost model arithmetic, break-even, energy, and the dashboard driven headless."""

from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from slmlab.savings import (
    SavingsDashboard,
    SelfHostedSLM,
    break_even_curve,
    compute_savings,
    energy_wh,
    plot_break_even,
    plot_cost_before_after,
    plot_savings_waterfall,
    slm_cost_per_call,
    utilization_table,
)


def _calls(n=4):
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return pl.DataFrame(
        {
            "call_id": [f"c{i}" for i in range(n)],
            "agent": ["worker", "worker", "planner", "planner"][:n],
            "cluster": [0, 0, 1, 1][:n],
            "model": ["gpt-4o"] * n,
            "input_tokens": [3600] * n,
            "output_tokens": [36] * n,
            "cached_input_tokens": [0] * n,
            "cost_usd": [0.01] * n,
            "latency_ms": [1000.0] * n,
            "timestamp": [t0 + timedelta(minutes=20 * i) for i in range(n)],
        }
    )


SPEC = SelfHostedSLM(usd_per_hour=1.0, prefill_tok_s=36000, decode_tok_s=3600, utilization=1.0)


def test_slm_cost_per_call_is_busy_seconds_times_price():
    # 3600/36000 + 36/3600 = 0.11 s of a $1/h GPU
    assert slm_cost_per_call(3600, 36, SPEC) == pytest.approx(0.11 / 3600)


def test_idle_gpu_costs_inverse_utilization():
    busy = slm_cost_per_call(3600, 36, SPEC)
    idle = slm_cost_per_call(3600, 36, SelfHostedSLM(**{**SPEC.__dict__, "utilization": 0.2}))
    assert idle == pytest.approx(5 * busy)
    table = utilization_table(SPEC, 3600, 36)
    assert table.filter(pl.col("utilization") == 0.2)["usd_per_1k_calls"][0] == pytest.approx(5000 * busy)


def test_invalid_spec_rejected():
    with pytest.raises(ValueError, match="utilization"):
        SelfHostedSLM(utilization=0)
    with pytest.raises(ValueError, match="usd_per_hour"):
        SelfHostedSLM(usd_per_hour=-1)


def test_savings_totals_and_monthly_scaling():
    calls = _calls()
    r = compute_savings(calls, SPEC, swap_clusters=[0])
    # 4 calls over 60 minutes -> a month is 730 hours
    factor = 730.0
    assert r.assumptions["monthly_factor"] == pytest.approx(factor)
    assert r.total["logged_cost_usd"] == pytest.approx(0.04)
    assert r.total["monthly_before_usd"] == pytest.approx(0.04 * factor)
    after = (0.02 + 2 * 0.11 / 3600) * factor
    assert r.total["monthly_after_usd"] == pytest.approx(after)
    assert r.total["slm_calls"] == 2 and r.total["slm_share"] == 0.5
    by_cluster = {row["cluster"]: row for row in r.by_cluster.iter_rows(named=True)}
    assert by_cluster[1]["monthly_saved_usd"] == pytest.approx(0.0)
    assert by_cluster[0]["monthly_saved_usd"] == pytest.approx((0.02 - 2 * 0.11 / 3600) * factor)
    assert r.by_agent["calls"].sum() == 4


def test_routed_to_column_overrides_clusters_and_user_volume():
    calls = _calls().with_columns(pl.Series("routed_to", ["slm", "llm", "llm", "llm"]))
    r = compute_savings(calls, SPEC, swap_clusters=[0, 1], calls_per_month=4000)
    assert r.total["slm_calls"] == 1
    assert r.total["monthly_calls"] == pytest.approx(4000)


def test_break_even_volume():
    spec = SelfHostedSLM(**{**SPEC.__dict__, "engineering_usd_month": 100.0})
    r = compute_savings(_calls(), spec, swap_clusters=[0])
    saving_per_swapped_call = 0.01 - 0.11 / 3600
    expected = 100.0 / (saving_per_swapped_call * 0.5)
    assert r.break_even_calls_per_month == pytest.approx(expected)
    curve = break_even_curve(r, spec, max_calls=2 * expected, points=3)
    mid = curve.row(1, named=True)  # exactly at the break-even volume
    assert mid["after_usd"] == pytest.approx(mid["before_usd"])
    assert curve["after_usd"][2] < curve["before_usd"][2]


def test_no_break_even_when_slm_costs_more():
    expensive = SelfHostedSLM(usd_per_hour=1000.0, prefill_tok_s=100, decode_tok_s=10, utilization=0.1)
    r = compute_savings(_calls(), expensive, swap_clusters=[0, 1])
    assert r.total["monthly_saved_usd"] < 0
    assert r.break_even_calls_per_month is None


def test_energy_formula():
    # 2 FLOPs x 1e9 params x 1000 tokens x 1e-12 J/FLOP = 2 J = 2/3600 Wh
    assert energy_wh(1.0, 1000, 1e-12) == pytest.approx(2 / 3600)


def test_figures_are_figures():
    r = compute_savings(_calls(), SPEC, swap_clusters=[0])
    for fig in (
        plot_cost_before_after(r),
        plot_savings_waterfall(r),
        plot_break_even(break_even_curve(r, SPEC), r),
    ):
        assert len(fig.data) >= 1


def test_dashboard_headless():
    dash = SavingsDashboard(_calls(), clusters=[0, 1], spec=SPEC, swap_clusters=[])
    assert dash.result.total["slm_calls"] == 0
    dash.cluster_boxes[0].value = True
    assert dash.result.total["slm_calls"] == 2
    before = dash.result.total["monthly_after_usd"]
    dash.utilization.value = 0.2
    assert dash.result.total["monthly_after_usd"] > before
    assert "USD/month" in dash.summary.value
    assert len(dash.fig_waterfall.data) == 1


def _run_with_merged_labels(tmp_path, monkeypatch, with_replay: bool):
    """A run folder whose labeller merged cluster 1 into 0 and accepted 0; optionally a notebook-07 replay."""
    from slmlab.label import LabelSession
    from slmlab.runs import RunStore, conform_clusters
    from slmlab.schema import conform

    monkeypatch.setenv("SLMLAB_HOME", str(tmp_path))
    store = RunStore("t")
    calls = conform(_calls().with_columns(pl.lit("s").alias("session_id"))).with_columns(
        pl.Series("cluster", [0, 1, 2, 2], dtype=pl.Int32)
    )
    store.write_clustered(calls)
    store.write_clusters(conform_clusters(pl.DataFrame({"cluster": [0, 1, 2], "size": [1, 1, 2]})))
    session = LabelSession(store.read_clusters(), calls)
    session.merge([0, 1], into=0)
    session.set_status(0, "slm_candidate")
    session.save(store.labels_path())
    if with_replay:
        store.write_replay(
            pl.DataFrame(
                {
                    "call_id": ["c0", "c1", "c2"],
                    "route_cluster": [0, 0, -1],
                    "routed_to": ["slm", "slm", "llm"],
                    "agreement": [1.0, 0.5, None],
                    "measured": [True, True, True],
                    "llm_cost_usd": [0.01] * 3,
                    "replay_cost_usd": [None, None, 0.01],
                }
            )
        )


@pytest.mark.parametrize("with_replay", [False, True])
def test_load_routed_calls_uses_the_labellers_cluster_ids(tmp_path, monkeypatch, with_replay):
    from slmlab.savings import load_routed_calls

    _run_with_merged_labels(tmp_path, monkeypatch, with_replay)
    if not with_replay:  # no "after" figure without a measured replay: the error names notebook 07
        with pytest.raises(FileNotFoundError, match="run notebook 07_evaluate_route"):
            load_routed_calls("t")
        return
    routed = load_routed_calls("t").sort("call_id")
    assert routed["cluster"].to_list()[:3] == [0, 0, 2]  # c1 was merged into 0, as notebook 07 saw it
    assert routed.height == 3 and routed["routed_to"].to_list() == ["slm", "slm", "llm"]
    assert routed["agreement"].to_list()[:2] == [1.0, 0.5]


def test_load_routed_calls_names_the_missing_step(tmp_path, monkeypatch):
    from slmlab.savings import load_routed_calls

    monkeypatch.setenv("SLMLAB_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="run notebook 07_evaluate_route"):
        load_routed_calls("empty")
