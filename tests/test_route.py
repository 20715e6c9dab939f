"""Routers (registry, random baseline, prompt-only cluster router), persistence, replay and sweeps."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from slmlab.route import (
    ROUTERS,
    ClusterRouter,
    RandomRouter,
    Router,
    apgr,
    call_share_for_quality,
    load_router,
    plot_quality_vs_llm_share,
    register_router,
    replay,
    select_router,
    share_at_agreement,
    threshold_sweep,
)

TOPICS = {
    0: ["cancel my reservation {i} please", "I want to cancel booking {i}", "please cancel trip {i} now"],
    1: [
        "what is the baggage allowance for {i} bags",
        "how many bags can I check {i}",
        "baggage fee for {i} suitcases",
    ],
    2: [
        "change my flight {i} to tomorrow",
        "move flight {i} to a later date",
        "rebook flight {i} for friday",
    ],
}


def _calls(n_per=20, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for c, templates in TOPICS.items():
        for i in range(n_per):
            text = templates[int(rng.integers(len(templates)))].format(i=int(rng.integers(1000)))
            msgs = [{"role": "system", "content": "airline policy"}, {"role": "user", "content": text}]
            rows.append({"call_id": f"{c}-{i}-{seed}", "cluster": c, "messages": json.dumps(msgs),
                         "latency_ms": 1000.0, "cost_usd": 0.01, "input_tokens": 500, "output_tokens": 20})  # fmt: skip
    return pl.DataFrame(rows, schema_overrides={"cluster": pl.Int32})


ROUTES = pl.DataFrame(
    {
        "cluster": [0, 1, 2],
        "verdict": ["swap", "swap", "keep_llm"],
        "model": ["m"] * 3,
        "experiment": ["tuned", "base", "base"],
        "adapter": ["/a/cluster_0", None, None],
    }  # fmt: skip
)


def _scores(calls, good=(0,)):
    """Measured agreement: cluster 0's tuned SLM is always right, the others always wrong."""
    exp = {0: "tuned", 1: "base", 2: "base"}
    return calls.select(
        "call_id",
        pl.lit("m").alias("model"),
        pl.col("cluster").replace_strict(exp, return_dtype=pl.String).alias("experiment"),
        pl.when(pl.col("cluster") == 0).then(pl.lit("/a/cluster_0")).otherwise(None).alias("adapter"),
        pl.col("cluster").is_in(list(good)).cast(pl.Float64).alias("agreement"),
        pl.lit(15, dtype=pl.Int64).alias("output_tokens"),
        pl.lit(80.0).alias("latency_ms"),
    )


def test_registry_and_select():
    assert {"random", "cluster"} <= set(ROUTERS)
    assert isinstance(select_router("cluster", method="logreg"), ClusterRouter)
    with pytest.raises(KeyError, match="registered"):
        select_router("nope")

    @register_router("test_always_slm")
    class AlwaysSLM(Router):
        def score(self, calls):
            return np.ones(calls.height)

    routed = select_router("test_always_slm", routes=[0]).route(_calls(2))
    assert routed.filter(pl.col("routed_to") == "slm")["cluster"].unique().to_list() == [0]
    with pytest.raises(NotImplementedError):
        Router().score(_calls(1))


def test_random_router_is_deterministic_and_sends_the_expected_share():
    calls = _calls(100)
    r = RandomRouter(threshold=0.7, seed=1)
    a, b = r.score(calls), r.score(calls)
    assert np.array_equal(a, b) and 0 <= a.min() and a.max() < 1
    share = (r.route(calls)["routed_to"] == "slm").mean()
    assert 0.22 < share < 0.38  # about 30% of all calls, whatever their cluster
    assert not np.array_equal(a, RandomRouter(seed=2).score(calls))


@pytest.mark.parametrize("method", ["centroid", "logreg"])
def test_cluster_router_assigns_prompts_to_clusters_and_routes_only_swaps(method):
    train, test = _calls(30, seed=0), _calls(10, seed=1)
    r = ClusterRouter(method=method, routes=ROUTES).fit(train)
    assert (r.predict(test) == test["cluster"].to_numpy()).mean() >= 0.95
    routed = r.route(test)
    assert set(routed.filter(pl.col("routed_to") == "slm")["route_cluster"].to_list()) <= {0, 1}
    assert routed.filter(pl.col("route_cluster") == 2)["routed_to"].unique().to_list() == ["llm"]
    slm0 = routed.filter((pl.col("routed_to") == "slm") & (pl.col("route_cluster") == 0))
    assert slm0.height > 0 and slm0["adapter"].unique().to_list() == ["/a/cluster_0"]
    assert (
        routed.filter(pl.col("routed_to") == "llm")["adapter"].null_count()
        == routed.filter(pl.col("routed_to") == "llm").height
    )
    # an off-topic prompt falls back to the LLM
    odd = pl.DataFrame(
        {"call_id": ["x"], "messages": [json.dumps([{"role": "user", "content": "zebra quantum poetry"}])]}
    )
    assert r.route(odd)["routed_to"].to_list() == ["llm"]
    # the router never reads responses: a frame with prompts only is enough
    assert r.route(test.select("call_id", "messages")).height == test.height


def test_cluster_router_logprob_confidence():
    train = _calls(10)
    r = ClusterRouter(threshold=0.5, confidence="logprob", routes=[0, 1, 2]).fit(train)
    calls = train.with_columns(pl.Series("mean_logprob", [-0.1, -3.0] * (train.height // 2)))
    routed = r.route(calls)
    assert routed["routed_to"].to_list() == ["slm", "llm"] * (train.height // 2)  # exp(-0.1) > .5 > exp(-3)
    with pytest.raises(ValueError, match="mean_logprob"):
        r.route(train)


@pytest.mark.parametrize("method", ["centroid", "logreg"])
def test_saved_router_gives_the_same_decisions_in_a_fresh_process(tmp_path, method):
    train, test = _calls(20, seed=0), _calls(5, seed=2)
    r = ClusterRouter(method=method, routes=ROUTES).fit(train)
    folder = r.save(tmp_path / "router")
    assert sorted(p.name for p in folder.iterdir()) == ["router.json", "state.npz"]
    test.write_parquet(tmp_path / "test.parquet")
    code = (
        "import polars as pl, sys; from slmlab.route import load_router;"
        f"r = load_router({str(folder)!r}); t = pl.read_parquet({str(tmp_path / 'test.parquet')!r});"
        f"r.route(t).select('call_id', 'routed_to', 'route_cluster', 'route_score', 'adapter').write_parquet({str(tmp_path / 'out.parquet')!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    fresh = pl.read_parquet(tmp_path / "out.parquet")
    here = r.route(test).select(fresh.columns)
    assert fresh.drop("route_score").equals(here.drop("route_score"))
    assert np.allclose(fresh["route_score"].to_numpy(), here["route_score"].to_numpy(), atol=1e-5)
    loaded = load_router(folder)
    assert loaded.threshold == pytest.approx(r.threshold) and loaded.routes.equals(r.routes)


def test_replay_attaches_measured_agreement_latency_and_cost():
    train, test = _calls(20, seed=0), _calls(10, seed=3)
    r = ClusterRouter(threshold=-1.0, routes=ROUTES).fit(train)
    out = replay(test, r, _scores(test), slm_cost_per_mtok=0.2)
    assert out.height == test.height and {
        "routed_to",
        "agreement",
        "slm_latency_ms",
        "replay_cost_usd",
    } <= set(out.columns)
    slm = out.filter(pl.col("routed_to") == "slm")
    llm = out.filter(pl.col("routed_to") == "llm")
    assert set(slm["route_cluster"].to_list()) == {0, 1} and llm["route_cluster"].unique().to_list() == [2]
    assert llm["agreement"].unique().to_list() == [1.0]  # kept on the LLM: agrees by definition
    by = slm.group_by("route_cluster").agg(pl.col("agreement").mean()).sort("route_cluster")
    assert by["agreement"].to_list() == [1.0, 0.0]
    assert slm["replay_latency_ms"].unique().to_list() == [80.0] and llm[
        "replay_latency_ms"
    ].unique().to_list() == [1000.0]
    assert slm["replay_cost_usd"][0] == pytest.approx((500 + 15) * 0.2 / 1e6)
    assert slm["slm_output_tokens"].unique().to_list() == [15] and out["measured"].all()
    # an SLM call nobody evaluated has no agreement, and says so
    partial = replay(test, r, _scores(test).filter(pl.col("call_id") != test["call_id"][0]))
    assert partial.filter(~pl.col("measured")).height == 1


def test_sweep_apgr_and_call_share_against_random():
    train, test = _calls(20, seed=0), _calls(30, seed=4)
    routes = ROUTES.with_columns(pl.lit("swap").alias("verdict"))
    scores = _scores(test)
    r = ClusterRouter(routes=routes.filter(pl.col("cluster") == 0)).fit(train)
    sweep = threshold_sweep(test, r, scores)
    rand = threshold_sweep(test, RandomRouter(routes=routes), scores)
    assert sweep["llm_share"].min() == pytest.approx(2 / 3, abs=0.05)  # only cluster 0 may move
    assert sweep["quality"].min() == pytest.approx(1.0)  # cluster 0's SLM is always right
    assert sweep["quality_all_slm"][0] == pytest.approx(1 / 3)
    # the SLM fails 2/3 of calls, so even the optimal router needs a 2/3 LLM share to close the gap:
    # PGR rises linearly to 1 at share 2/3 -> APGR = 1/3 + 1/3
    assert apgr(sweep) == pytest.approx(2 / 3, abs=0.02)
    assert 0.35 < apgr(rand) < 0.65  # the random router recovers the gap linearly
    q = rand["quality"].to_numpy()
    assert np.all(np.diff(q) >= -1e-9)  # more calls on the LLM never lowers quality here
    cpt = call_share_for_quality(sweep, [0.5, 0.95])
    assert cpt["llm_share"].to_list() == pytest.approx([sweep["llm_share"].min()] * 2)
    cpt_r = call_share_for_quality(rand, [0.5, 0.8])
    assert 0.35 < cpt_r["llm_share"][0] < 0.65 and 0.65 < cpt_r["llm_share"][1] < 0.95
    assert call_share_for_quality(rand, [0.9], relative_to="llm")["llm_share"][0] > 0.7
    fig = plot_quality_vs_llm_share(sweep, rand)
    assert len(fig.data) == 2 and "random" in fig.data[1].name
    # the SLM-routed calls alone: cluster 0's SLM is always right, the random router's about 1/3
    assert sweep.filter(pl.col("slm_share") > 0)["slm_agreement"].min() == pytest.approx(1.0)
    at = share_at_agreement(sweep, 0.9)
    assert at["slm_share"] == pytest.approx(1 - sweep["llm_share"].min()) and at["slm_agreement"] == 1.0
    assert share_at_agreement(rand, 0.99)["slm_share"] < 0.2  # only a handful of lucky calls
    assert share_at_agreement(sweep.with_columns(pl.lit(0.5).alias("slm_agreement")), 0.9)["slm_share"] == 0.0


@pytest.mark.shared
def test_cluster_router_on_tau_bench_prompts(tau_calls):
    """Prompt-only routing of real agent calls into action clusters (what a live router sees)."""
    from slmlab.specialize.splits import split_by_session

    calls = split_by_session(tau_calls, seed=0)
    train, test = calls.filter(pl.col("split") == "train"), calls.filter(pl.col("split") == "test")
    r = ClusterRouter(method="logreg", routes=[0, 1]).fit(train)
    acc = float((r.predict(test) == test["cluster"].to_numpy()).mean())
    majority = float(test["cluster"].value_counts()["count"].max() / test.height)
    assert acc > majority + 0.1, (acc, majority)


@pytest.fixture(scope="module")
def tau_calls(shared_logs):
    """tau-bench airline calls, clustered by the action the LLM took (a stand-in for `slmlab.cluster`)."""
    from test_evaluate_experiments import tau_bench_calls

    return tau_bench_calls(shared_logs, n_sessions=80)
