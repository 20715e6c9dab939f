"""The readers on the real agent logs in ../shared: every count the data READMEs state is reproduced."""

from __future__ import annotations

import json

import polars as pl
import pytest

from slmlab.collect import ingest
from slmlab.schema import parse_messages, parse_tool_calls, validate_calls

pytestmark = pytest.mark.shared


@pytest.fixture(scope="session")
def tau_calls(shared_logs, tmp_path_factory):
    q = tmp_path_factory.mktemp("q") / "tau.jsonl"
    return ingest(shared_logs / "tau-bench-airline", quarantine=q, count_missing_tokens=False)


@pytest.fixture(scope="session")
def tau2(shared_logs, tmp_path_factory):
    q = tmp_path_factory.mktemp("q") / "tau2.jsonl"
    return ingest(shared_logs / "tau2-bench", quarantine=q, count_missing_tokens=False)


def test_tau_bench_airline_counts(tau_calls):
    s, df = tau_calls.summary, validate_calls(tau_calls.calls)
    assert (s.read, s.ingested, s.quarantined, s.calls) == (200, 200, 0, 2454)
    assert df["n_tool_calls"].sum() == 1164
    assert df["tool_name"].drop_nulls().n_unique() == 14
    assert df.filter(pl.col("n_tool_calls") == 0).height == 1290
    counts = dict(df.group_by("tool_name").len().drop_nulls().iter_rows())
    assert counts["get_reservation_details"] == 377 and counts["update_reservation_passengers"] == 2
    assert (df["model"] == "gpt-4o").all() and df["session_id"].n_unique() == 200
    # Mean task reward 0.42 (README), over sessions.
    assert df.group_by("session_id").agg(pl.col("reward").first())["reward"].mean() == pytest.approx(
        0.42, abs=0.005
    )
    # The prompt of a call is every message before it: the next call's prompt extends it by the reply.
    a, b = df.filter(pl.col("session_id") == df["session_id"][0]).head(2).iter_rows(named=True)
    pa, pb = parse_messages(a["messages"]), parse_messages(b["messages"])
    assert pa[0]["role"] == "system" and pb[: len(pa)] == pa and pb[len(pa)]["role"] == "assistant"
    # Costs: none logged, all estimated from the gpt-4o list price where tokens are known (not counted here).
    assert df["cost_estimated"].sum() == 0 and df["cost_usd"].null_count() == 2454


# README table: agent calls (with usage), agent tool calls, user-simulator calls, user tool calls, agent
# prompt / completion tokens (None where the file has no usage).
TAU2 = {
    "gpt-4.1_airline": (206, 148, 136, 0, 994_898, 16_536),
    "gpt-4.1_retail": (476, 299, 290, 0, 2_425_565, 30_486),
    "gpt-4.1_telecom": (620, 207, 889, 482, 4_701_015, 45_153),
    "gpt-4.1_telecom-no-user": (606, 626, 0, 0, 5_237_511, 11_701),
    "ft-gpt-4.1-sft_airline": (248, 147, 134, 0, 1_277_560, 16_829),
    "ft-gpt-4.1-sft_retail": (531, 292, 316, 0, 2_731_756, 33_435),
    "ft-gpt-4.1-sft_telecom": (1013, 656, 806, 420, 9_749_306, 37_043),
    "gpt-4o_telecom": (217, 90, 263, 125, 1_547_053, 15_687),
    "claude-sonnet-4-5_airline": (467, 371, 300, 0, 3_838_336, 195_216),
    "gpt-oss-120b-langchain_airline": (887, 847, 257, 0, None, None),
    "toolorchestra_retail": (1027, 873, 520, 0, None, None),
}


def test_tau2_bench_counts_per_file(tau2):
    df = validate_calls(tau2.calls).with_columns(
        pl.col("source_file").str.extract(r"([^/]+)\.json$").alias("file")
    )
    assert tau2.summary.read == 474 and tau2.summary.quarantined == 0  # 474 simulations
    got = {
        r["file"]: r
        for r in df.group_by("file", "agent")
        .agg(
            pl.len().alias("n"),
            pl.col("n_tool_calls").sum().alias("tc"),
            pl.col("input_tokens").sum().alias("pt"),
            pl.col("output_tokens").sum().alias("ct"),
            pl.col("input_tokens").is_not_null().sum().alias("with_usage"),
        )  # fmt: skip
        .with_columns(pl.concat_str("file", "agent", separator="|").alias("file"))
        .iter_rows(named=True)
    }
    for f, (calls, tc, user, user_tc, pt, ct) in TAU2.items():
        a = got[f"{f}|agent"]
        assert (a["n"], a["tc"]) == (calls, tc), f
        assert (a["pt"], a["ct"]) == ((pt, ct) if pt is not None else (0, 0)), f
        assert a["with_usage"] == (calls if pt is not None else 0), f
        u = got.get(f"{f}|user_simulator", {"n": 0, "tc": 0})
        assert (u["n"], u["tc"]) == (user, user_tc), f
    agents = df.filter(pl.col("agent") == "agent")
    assert agents.height == 6298 and agents["n_tool_calls"].sum() == 4556
    assert df.filter(pl.col("agent") == "user_simulator").height == 3911
    # README total: 32.5 M / 0.40 M agent tokens; exact sums of the per-file rows above.
    assert agents["input_tokens"].sum() == sum(v[4] or 0 for v in TAU2.values())
    assert (
        round(agents["input_tokens"].sum() / 1e6, 1) == 32.5
        and round(agents["output_tokens"].sum() / 1e6, 2) == 0.40
    )
    # Logged agent cost: $25.39 in total, to the cent, and never replaced by an estimate.
    logged = agents.filter(~pl.col("cost_estimated"))
    assert round(logged["cost_usd"].sum(), 2) == 25.39
    assert (
        df.filter(pl.col("file") == "ft-gpt-4.1-sft_airline", pl.col("agent") == "agent")["cost_usd"].sum()
        == 0.0
    )
    assert df["tool_name"].drop_nulls().n_unique() >= 60  # 60 agent tools + the user's phone tools


def test_tau2_models_prompts_and_latency(tau2):
    df = tau2.calls
    models = dict(
        df.filter(pl.col("agent") == "agent")
        .with_columns(pl.col("source_file").str.extract(r"([^/]+)\.json$").alias("file"))
        .group_by("file").agg(pl.col("model").first()).iter_rows()
    )  # fmt: skip
    assert models["toolorchestra_retail"] == "gpt-4.1-mini-2025-04-14"
    assert models["gpt-oss-120b-langchain_airline"] == "openai/gpt-oss-120b"
    assert models["ft-gpt-4.1-sft_airline"].startswith("ft:gpt-4.1")
    row = df.filter(pl.col("agent") == "agent", pl.col("n_tool_calls") > 0).row(0, named=True)
    msgs = parse_messages(row["messages"])
    assert msgs[0]["role"] == "system" and "policy" in msgs[0]["content"].lower()
    assert msgs[1] == {
        "role": "assistant",
        "content": "Hi! How can I help you today?",
    }  # the greeting is context
    assert json.loads(parse_tool_calls(row["response_tool_calls"])[0]["arguments"]) is not None
    assert row["latency_ms"] > 0 and row["reward"] is not None
    user = df.filter(pl.col("agent") == "user_simulator").row(0, named=True)
    um = parse_messages(user["messages"])
    assert um[0]["role"] == "system" and um[1]["role"] == "user"  # the agent's greeting, seen by the user
    orch = df.filter(
        pl.col("source_file").str.contains("toolorchestra"),
        pl.col("agent") == "agent",
        pl.col("n_tool_calls") == 0,
    )
    assert (
        orch["response_text"].str.starts_with('{"message"').sum() > 100
    )  # JSON strings kept verbatim as text
    # No API key from llm_args leaks into metadata.
    assert not df["metadata"].str.contains("api_key").any()


def test_toolbench_counts_and_real_token_counts(shared_logs, tmp_path):
    res = ingest(shared_logs / "toolbench", quarantine=tmp_path / "q.jsonl")  # the bundled SmolLM2 tokenizer
    s, df = res.summary, validate_calls(res.calls)
    assert (s.read, s.calls, s.quarantined) == (52, 52, 0)
    # 348 = query_count: LLM calls incl. pruned DFSDT branches, which are not logged as messages.
    assert s.notes["toolbench"] == {"queries": 15, "query_count": 348, "total_tokens": 727_043}
    assert len(s.ignored_files) == 3  # instruction/G*_query.json are inputs, not logs
    assert df["session_id"].n_unique() == 13  # 2 of the 15 files have no train_messages
    assert (df["model"] == "gpt-3.5-turbo-16k").all() and df["tokens_estimated"].all()
    assert df["cost_estimated"].all() and df["cost_usd"].min() > 0
    # The counted prompt tokens are the same order as the logged per-query totals (which include pruned calls).
    assert 0.05 * 727_043 < df["input_tokens"].sum() < 727_043
    assert df["tool_name"].drop_nulls().n_unique() > 10
