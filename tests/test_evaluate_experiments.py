"""The experiment matrix (base / ICL / tuned) on real tau-bench calls with the bundled 135M model."""

from __future__ import annotations

import json
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest

from slmlab.evaluate import (
    accepted_clusters,
    build_prompt,
    cluster_task_ari,
    clusters_from_task_label,
    plot_experiment_heatmap,
    run_experiments,
    summarize_scores,
    verdicts,
)
from slmlab.runtime.chat_format import PromptBudget, recent_turns_text
from slmlab.runtime.endpoint import OpenAICompatibleGenerator
from slmlab.schema import action_expr, conform

ACTIONS = ["get_reservation_details", "respond", "search_direct_flight", "get_user_details"]


def tau_bench_calls(shared_logs: Path, n_sessions: int | None = None) -> pl.DataFrame:
    """tau-bench airline conversations as a call table (one row per assistant turn), clustered by action.

    A minimal reader for tests (the collect step owns the full one): the prompt of a turn is every message
    before it; the cluster is the action the LLM took (a stand-in for `slmlab.cluster`).
    """
    data = json.loads((shared_logs / "tau-bench-airline" / "gpt-4o-airline.json").read_text())
    rows = []
    for rec in data[:n_sessions]:
        sid, traj, step = f"{rec['task_id']}-{rec['trial']}", rec["traj"], 0
        for i, m in enumerate(traj):
            if m.get("role") != "assistant":
                continue
            calls = [{"id": c["id"], **c["function"]} for c in m.get("tool_calls") or []]
            rows.append({
                "call_id": f"{sid}-{i}", "session_id": sid, "step": step, "agent": "agent", "model": "gpt-4o",
                "messages": json.dumps(traj[:i]), "response_text": m.get("content"),
                "response_tool_calls": json.dumps(calls) if calls else None,
                "tool_name": calls[0]["name"] if calls else None, "n_tool_calls": len(calls), "status": "ok",
                "reward": float(rec["reward"]), "task_label": f"task_{rec['task_id']}", "source_format": "test",
                "source_file": "gpt-4o-airline.json", "source_line": i,
            })  # fmt: skip
            step += 1
    codes = {a: i for i, a in enumerate(ACTIONS)}
    df = conform(pl.DataFrame(rows)).with_columns(action_expr())
    return df.with_columns(
        pl.col("action").replace_strict(codes, default=-1, return_dtype=pl.Int32).alias("cluster")
    )


@pytest.fixture(scope="module")
def tau(shared_logs):
    from slmlab.specialize.splits import split_by_session

    return split_by_session(tau_bench_calls(shared_logs, n_sessions=60), seed=0)


def test_prompt_text_reads_latest_turns_only():
    msgs = [
        {"role": "system", "content": "policy"},
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"function": {"name": "get_user_details", "arguments": "{}"}}],
        },
        {"role": "tool", "name": "get_user_details", "content": "{...}"},
    ]
    assert (
        recent_turns_text(json.dumps(msgs))
        == "assistant: calls get_user_details\ntool get_user_details: {...}"
    )


def test_build_prompt_puts_examples_before_the_conversation():
    row = {
        "messages": json.dumps(
            [{"role": "system", "content": "S"}, {"role": "user", "content": "cancel ABC"}]
        ),
        "tools": None,
    }
    ex = {"messages": json.dumps([{"role": "user", "content": "cancel XYZ"}]), "response_text": None,
          "response_tool_calls": json.dumps([{"name": "cancel_reservation", "arguments": '{"reservation_id": "XYZ"}'}])}  # fmt: skip
    p = build_prompt(row, PromptBudget(), examples=[ex])
    assert [m["role"] for m in p] == ["system", "user", "assistant", "user"]
    assert p[1]["content"] == "user: cancel XYZ" and '"reservation_id": "XYZ"' in p[2]["content"]
    assert p[-1]["content"] == "cancel ABC"
    assert build_prompt(row, PromptBudget()) == [p[0] | {"content": "S"}, p[-1]]


def test_task_labels_as_clusters_and_ari():
    df = pl.DataFrame({"task_label": ["b", "a", "b", None], "cluster": [5, 7, 5, 1]})
    assert clusters_from_task_label(df)["cluster"].to_list() == [1, 0, 1, -1]
    assert cluster_task_ari(df) == pytest.approx(1.0)
    assert cluster_task_ari(df.drop("task_label")) is None


def test_accepted_clusters_from_a_cluster_table(capsys):
    calls = pl.DataFrame({"cluster": [0, 1, 2, -1]})
    table = pl.DataFrame({"cluster": [0, 1, 2], "status": ["slm_candidate", "keep_llm", "slm_candidate"]})
    assert accepted_clusters(table, calls) == [0, 2]
    assert accepted_clusters(None, calls) == [0, 1, 2]
    assert accepted_clusters(table.with_columns(pl.lit("unreviewed").alias("status")), calls) == [0, 1, 2]
    assert "evaluating every cluster" in capsys.readouterr().out


def test_verdicts_by_hand():
    summary = pl.DataFrame({
        "cluster": [0, 0, 1, 2, 3], "model": ["m"] * 5, "experiment": ["base", "tuned", "base", "base", "icl"],
        "n": [40, 40, 40, 5, 40], "name_args_exact": [0.5, 0.95, 0.6, 1.0, None],
        "name_args_exact_lo": [0.4, 0.9, 0.5, 1.0, None], "name_args_exact_hi": [0.6, 1.0, 0.7, 1.0, None],
        "agreement": [0.5, 0.95, 0.6, 1.0, 0.92], "agreement_lo": [0.4, 0.9, 0.5, 1.0, 0.88], "agreement_hi": [0.6, 1, 0.7, 1, 0.96],
    })  # fmt: skip
    v = verdicts(summary, swap_at=0.9, min_eval=20, adapters={0: "/ad/cluster_0"})
    assert v["verdict"].to_list() == [
        "swap",
        "keep_llm",
        "needs_more_data",
        "swap",
    ]  # 3: text cluster, by agreement
    assert v["experiment"].to_list() == ["tuned", "base", "base", "icl"]
    assert v["adapter"].to_list() == ["/ad/cluster_0", None, None, None]
    assert v["value"].to_list() == pytest.approx([0.95, 0.6, 1.0, 0.92])
    fig = plot_experiment_heatmap(summary)
    assert fig.data[0].type == "heatmap" and len(fig.data[0].y) == 4


@pytest.mark.shared
def test_matrix_refuses_leaky_splits(tau):
    from slmlab.specialize.splits import LeakageError

    leaky = tau.with_columns(
        pl.when(pl.col("step") == 0).then(pl.lit("train")).otherwise(pl.col("split")).alias("split")
    )
    with pytest.raises(LeakageError):
        run_experiments(leaky, [0], models=[OpenAICompatibleGenerator("http://127.0.0.1:9/v1", "x")])


@pytest.fixture(scope="module")
def echo_server():
    from test_evaluate_metrics import _ChatHandler

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


@pytest.mark.shared
def test_matrix_against_an_endpoint_with_task_labels_and_random_icl(tau, echo_server):
    gen = OpenAICompatibleGenerator(echo_server, "served-slm")
    scores = run_experiments(
        tau, models=[gen], experiments=("base", "icl"), n_eval=3, icl="random", cluster_source="task_label",
        embedder="tfidf", cache=False, progress=False,
    )  # fmt: skip
    assert set(scores["experiment"]) == {"base", "icl"} and set(scores["model"]) == {"served-slm"}
    assert scores.group_by("cluster", "experiment").len()["len"].max() <= 3
    assert scores["split"].unique().to_list() == ["test"]


@pytest.fixture(scope="module")
def lora_adapter(tmp_path_factory, tau):
    """A real (untrained, B=0) LoRA adapter folder for the bundled model, as specialize would save it:
    with its provenance (cluster fingerprint) and the ids of its training calls (cluster 0's train split)."""
    peft = pytest.importorskip("peft")
    from slmlab.runtime.models import LoadSpec, load_causal_lm
    from slmlab.specialize.provenance import cluster_fingerprint

    model, _ = load_causal_lm("smollm2-135m", LoadSpec(device="cpu"))
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    folder = tmp_path_factory.mktemp("adapters") / "cluster_0"
    peft.get_peft_model(model, cfg).save_pretrained(folder)
    provenance = {"cluster_id": 0, "cluster_fingerprint": cluster_fingerprint(tau, 0)}
    (folder / "slmlab_adapter.json").write_text(json.dumps({"base_model": "smollm2-135m", "cluster_id": 0,
        "prompt_budget": {"max_turns": 2, "max_tokens": 384}, "tools": None, "provenance": provenance}))  # fmt: skip
    train = tau.filter((pl.col("cluster") == 0) & (pl.col("split") == "train"))["call_id"].to_list()
    (folder / "training_calls.json").write_text(json.dumps({"train": train, "val": []}))
    return folder


@pytest.mark.shared
@pytest.mark.slow
def test_matrix_with_the_bundled_model_base_icl_tuned(tau, lora_adapter, capsys):
    budget = PromptBudget(max_system_chars=400, max_message_chars=300, max_turns=2, max_tokens=384)
    scores = run_experiments(
        tau, [0, 1], models=["smollm2-135m"], adapters={0: lora_adapter}, k_icl=2, n_eval=3, budget=budget,
        max_new_tokens=12, embedder="tfidf", cache=False, progress=False, batch_size=6,
    )  # fmt: skip
    assert "cluster 1: no adapter" in capsys.readouterr().out
    counts = {
        (r["cluster"], r["experiment"]): r["len"]
        for r in scores.group_by("cluster", "experiment").len().iter_rows(named=True)
    }
    assert counts == {(0, "base"): 3, (0, "icl"): 3, (0, "tuned"): 3, (1, "base"): 3, (1, "icl"): 3}
    assert scores["output_tokens"].max() <= 12 and scores["latency_ms"].min() > 0
    tuned = scores.filter(pl.col("experiment") == "tuned")
    base = scores.filter((pl.col("experiment") == "base") & (pl.col("cluster") == 0))
    assert tuned["adapter"].unique().to_list() == [str(lora_adapter)]
    assert tuned["mean_logprob"].null_count() < tuned.height
    # B=0 LoRA merged = the base weights; the adapter's own (shorter) budget may change prompts, so compare
    # only that both produced the same number of scored calls with metrics defined
    assert tuned.height == base.height and tuned["name_match"].null_count() == 0
    summary = summarize_scores(scores, n_boot=100)
    assert summary.height == 5 and {"agreement_lo", "agreement_hi"} <= set(summary.columns)
    v = verdicts(summary, min_eval=3)
    assert set(v["verdict"]) <= {"swap", "keep_llm", "needs_more_data"} and v.height == 2
