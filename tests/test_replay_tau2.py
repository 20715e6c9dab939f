"""Per-agent replay (`slmlab.pipeline.per_agent.replay_by_agent`): cost before is the logged cost, to the cent.

On the tau2-bench logs in ../shared (six agent models, per-message logged costs) every figure of cost
before is checked against sums read from the raw JSON files with the `json` module, not through slmlab;
agreement of SLM-routed calls is only ever measured (a few real SmolLM2-135M generations), never assumed.
"""

from __future__ import annotations

import json
from collections import defaultdict

import polars as pl
import pytest

from slmlab.pipeline.per_agent import AGENT_TABLE_COLUMNS, AgentReplay, replay_by_agent
from slmlab.pipeline.per_agent_scoring import score_routed
from slmlab.savings import SelfHostedSLM, slm_cost_per_call

SIX_AGENTS = {
    "claude-sonnet-4-5",
    "ft:gpt-4.1-2025-04-14:sierra:tau2-full-sft:BzrYdMNm",
    "gpt-4.1",
    "gpt-4.1-mini-2025-04-14",
    "gpt-4o",
    "openai/gpt-oss-120b",
}


# --- raw tau2-bench files, read without slmlab ------------------------------------------------------


@pytest.fixture(scope="module")
def raw(shared_logs):
    """Logged agent cost per model, per session ("file stem/simulation id") and per agent call."""
    by_model, by_session, calls, usage = defaultdict(float), defaultdict(float), {}, {}
    n_calls = defaultdict(int)
    for path in sorted((shared_logs / "tau2-bench").glob("*.json")):
        doc = json.loads(path.read_text())
        model = doc["info"]["agent_info"]["llm"]
        for sim in doc["simulations"]:
            session = f"{path.name.split('.')[0]}/{sim['id']}"
            for i, m in enumerate(sim["messages"]):
                if m["role"] != "assistant" or (i == 0 and not m.get("usage")):
                    continue  # the fixed greeting opening a simulation is not an LLM call
                n_calls[model] += 1
                call_id = f"{session}/{m.get('turn_idx', i)}"
                calls[call_id] = m.get("cost")
                usage[call_id] = m.get("usage") or {}
                if m.get("cost") is not None:
                    by_model[model] += m["cost"]
                    by_session[session] += m["cost"]
    return {"model": by_model, "session": by_session, "call": calls, "usage": usage, "n": n_calls}


@pytest.fixture(scope="module")
def tau2_agents(shared_logs, tmp_path_factory):
    from slmlab.collect import ingest

    q = tmp_path_factory.mktemp("q") / "tau2.jsonl"
    calls = ingest(shared_logs / "tau2-bench", quarantine=q, count_missing_tokens=False).calls
    return calls.filter(pl.col("agent") == "agent")


@pytest.fixture(scope="module")
def replayed(tau2_agents) -> AgentReplay:
    return replay_by_agent(tau2_agents, by="model", test_size=0.3, seed=0)


# --- tau2-bench -----------------------------------------------------------------------------------


@pytest.mark.shared
def test_cost_before_is_the_logged_cost_to_the_cent(replayed, raw):
    t = replayed.table
    assert set(t["model"]) == SIX_AGENTS and t.columns == ["model", *AGENT_TABLE_COLUMNS]
    for row in t.iter_rows(named=True):
        model = row["model"]
        # The whole log: every agent call and its logged cost.
        assert row["log_calls"] == raw["n"][model], model
        assert row["log_cost_usd"] == pytest.approx(raw["model"][model], abs=1e-9), model
        assert round(row["log_cost_usd"], 2) == round(raw["model"][model], 2), model
        # The held-out split: whole sessions, so its logged cost is the sum over those sessions.
        sessions = replayed.held_out[model]["session_id"].unique().to_list()
        held_raw = sum(raw["session"][s] for s in sessions)
        assert row["cost_before_usd"] == pytest.approx(held_raw, abs=1e-9), model
        assert round(row["cost_before_usd"], 2) == round(held_raw, 2), model
        assert row["calls"] == replayed.held_out[model].height and row["calls_cost_estimated"] == 0
        assert row["train_calls"] + row["calls"] == row["log_calls"], model  # nothing dropped
    total = replayed.total
    assert round(total["log_cost_usd"], 2) == round(sum(raw["model"].values()), 2) == 25.39
    held_sessions = [s for m in replayed.held_out.values() for s in m["session_id"].unique().to_list()]
    assert round(total["cost_before_usd"], 2) == round(sum(raw["session"][s] for s in held_sessions), 2)
    # Models without logged costs (gpt-oss, ToolOrchestra) keep them out of before and after alike.
    no_cost = t.filter(pl.col("log_calls_without_cost") > 0)
    assert set(no_cost["model"]) == {"openai/gpt-oss-120b", "gpt-4.1-mini-2025-04-14"}
    assert (no_cost["calls_without_cost"] == no_cost["calls"]).all()


@pytest.mark.shared
def test_cost_after_keeps_llm_calls_at_logged_cost_and_prices_routed_ones(replayed, raw):
    spec = SelfHostedSLM()
    per_call = replayed.calls
    assert per_call.height == replayed.total["calls"]
    for model, part in per_call.group_by("model"):
        expected = 0.0
        for call_id, routed in part.select("call_id", "routed_to").iter_rows():
            cost = raw["call"][call_id]
            if cost is None:
                continue
            u = raw["usage"][call_id]
            slm = slm_cost_per_call(u.get("prompt_tokens") or 0, u.get("completion_tokens") or 0, spec)
            expected += float(slm) if routed == "slm" else cost
        row = replayed.table.filter(pl.col("model") == model[0]).row(0, named=True)
        assert row["cost_after_usd"] == pytest.approx(expected, abs=1e-9), model
    t = replayed.table
    paid = t.filter(pl.col("cost_before_usd") > 0)
    assert paid.height == 3 and (paid["cost_after_usd"] < paid["cost_before_usd"]).all()
    assert (t["slm_calls"] > 0).all() and t["slm_share"].is_between(0, 1).all()
    # No SLM was evaluated: every routed call is unmeasured, and no agreement is invented.
    assert (t["measured_calls"] == 0).all() and (t["unmeasured_calls"] == t["slm_calls"]).all()
    assert t["slm_agreement"].null_count() == t.height and replayed.total["slm_agreement"] is None


@pytest.mark.shared
def test_scored_sample_gives_measured_agreement(replayed):
    scores = score_routed(
        replayed, "smollm2-135m", n_per_cluster=2, max_clusters=1, agents=["gpt-4o"], max_new_tokens=8
    )
    assert scores.height == 2 and set(scores["model"]) == {"smollm2-135m"}
    assert scores["agreement"].is_between(0, 1).all()
    scored = replayed.with_scores(scores)
    row = scored.table.filter(pl.col("model") == "gpt-4o").row(0, named=True)
    assert row["measured_calls"] == 2 and row["unmeasured_calls"] == row["slm_calls"] - 2
    assert row["slm_agreement"] == pytest.approx(scores["agreement"].mean())
    others = scored.table.filter(pl.col("model") != "gpt-4o")
    assert (others["measured_calls"] == 0).all() and others["slm_agreement"].null_count() == others.height
    # Scoring changes what is measured, not what is routed or what it costs.
    keep = ["model", "cost_before_usd", "cost_after_usd", "slm_calls"]
    before, after = replayed.table.select(keep), scored.table.select(keep)
    assert before["slm_calls"].to_list() == after["slm_calls"].to_list()
    assert before["cost_before_usd"].to_list() == after["cost_before_usd"].to_list()
    assert replayed.table["measured_calls"].sum() == 0  # the original replay is left as it was


# --- any call table (the demo logs: estimated costs, no ../shared needed) ----------------------------


@pytest.fixture(scope="module")
def demo_replay():
    from slmlab.collect import ingest
    from slmlab.demo.synth import demo_logs_path

    calls = ingest(demo_logs_path(), count_missing_tokens=False).calls
    sessions = calls["session_id"].unique().sort().head(150).implode()
    return replay_by_agent(calls.filter(pl.col("session_id").is_in(sessions)), by="agent")


def test_replay_by_agent_on_demo_logs(demo_replay):
    t, calls = demo_replay.table, demo_replay.calls
    assert t.height == calls["agent"].n_unique() >= 4
    # Demo costs are estimates from the price table: counted as such, and still summed exactly.
    assert (t["calls_cost_estimated"] == t["calls"] - t["calls_without_cost"]).all()
    sums = calls.group_by("agent").agg(pl.col("cost_before_usd").sum()).sort("agent")
    assert sums["cost_before_usd"].to_list() == pytest.approx(t["cost_before_usd"].to_list(), abs=1e-12)
    assert (t["unmeasured_calls"] == t["slm_calls"]).all()


def test_with_scores_uses_only_given_scores_and_one_configuration(demo_replay):
    routed = demo_replay.calls.filter(pl.col("routed_to") == "slm")
    assert routed.height >= 2
    ids = routed["call_id"].head(2).to_list()
    scores = pl.DataFrame({"call_id": ids, "agreement": [1.0, 0.0], "model": "m", "experiment": "base"})
    out = demo_replay.with_scores(scores)
    assert out.total["measured_calls"] == 2 and out.total["slm_agreement"] == pytest.approx(0.5)
    two = pl.concat([scores, scores.with_columns(pl.lit("icl").alias("experiment"))])
    with pytest.raises(ValueError, match="several SLM configurations"):
        demo_replay.with_scores(two)
