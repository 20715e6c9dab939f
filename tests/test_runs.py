"""Tests of slmlab.runs (the run store), the saved split and the adapters' provenance checks."""

from __future__ import annotations

import json

import polars as pl
import pytest

from slmlab.runs import (
    ARTEFACTS,
    MissingArtefactError,
    RunStore,
    StaleArtefactError,
    conform_clusters,
)
from slmlab.schema import CALL_SCHEMA, CLUSTER_SCHEMA, SchemaError, conform


def _calls(n_sessions: int = 12, per_session: int = 3) -> pl.DataFrame:
    rows = []
    for s in range(n_sessions):
        for i in range(per_session):
            tool = ["get_user", "get_order", None][(s + i) % 3]
            rows.append(
                {
                    "call_id": f"s{s}-{i}",
                    "session_id": f"s{s}",
                    "step": i,
                    "agent": "agent",
                    "model": "gpt-4o",
                    "messages": json.dumps([{"role": "user", "content": f"session {s} turn {i}"}]),
                    "response_text": None if tool else f"answer {s}.{i}",
                    "response_tool_calls": json.dumps([{"id": "1", "name": tool, "arguments": "{}"}])
                    if tool
                    else None,
                    "tool_name": tool,
                    "n_tool_calls": 1 if tool else 0,
                    "status": "ok",
                    "source_file": "t.jsonl",
                    "source_line": len(rows) + 1,
                }
            )
    return conform(pl.DataFrame(rows))


def _clustered(calls: pl.DataFrame, by: str = "tool") -> pl.DataFrame:
    cluster = (
        pl.when(pl.col("tool_name") == "get_user")
        .then(0)
        .when(pl.col("tool_name") == "get_order")
        .then(1)
        .otherwise(2)
        if by == "tool"
        else pl.col("step")
    )
    return calls.with_columns(cluster.cast(pl.Int32).alias("cluster"))


def _clusters(clustered: pl.DataFrame) -> pl.DataFrame:
    sizes = clustered.group_by("cluster").len("size").sort("cluster")
    return conform_clusters(sizes.with_columns(pl.lit(0.5).alias("suitability")))


@pytest.fixture()
def store(tmp_path, monkeypatch) -> RunStore:
    monkeypatch.setenv("SLMLAB_HOME", str(tmp_path))
    store = RunStore("t")
    calls = _calls()
    store.write_calls(calls)
    store.write_curated(calls)
    clustered = _clustered(calls)
    store.write_clustered(clustered)
    store.write_clusters(_clusters(clustered))
    return store


def test_every_artefact_names_its_step_and_known_inputs():
    for spec in ARTEFACTS.values():
        assert spec.step and spec.filename
        assert all(i in ARTEFACTS for i in spec.inputs), spec
    assert ARTEFACTS["split"].inputs == ("curated",)


def test_typed_readers_round_trip_with_fixed_schemas(store):
    assert store.read_calls().schema == pl.Schema(CALL_SCHEMA)
    assert store.read_curated().height == 36
    assert store.read_clustered().schema["cluster"] == pl.Int32
    assert list(store.read_clusters().schema)[: len(CLUSTER_SCHEMA)] == list(CLUSTER_SCHEMA)
    ranking = pl.DataFrame({"cluster": [0], "hub_id": ["smollm2-135m"], "rank": [1], "score": [0.9]})
    store.write_ranking(ranking)
    assert store.read_ranking().equals(ranking)
    scores = pl.DataFrame(
        {"call_id": ["s0-0"], "cluster": [0], "model": ["m"], "experiment": ["base"], "agreement": [1.0]}
    )
    store.write_scores(scores)
    assert store.read_scores().equals(scores)
    replay = pl.DataFrame(
        {
            "call_id": ["s0-0"],
            "route_cluster": [0],
            "routed_to": ["slm"],
            "agreement": [1.0],
            "measured": [True],
            "llm_cost_usd": [0.01],
            "replay_cost_usd": [0.001],
        }
    )
    store.write_replay(replay)
    assert store.read_replay().equals(replay)
    per_call, total = store.write_savings(
        pl.DataFrame({"call_id": ["s0-0"], "saved": [0.009]}), {"total": {}}
    )
    assert store.read_savings().height == 1 and store.read_savings_total() == {"total": {}}
    prov = store.provenance("replay")
    assert prov["step"] == "07_evaluate_route" and prov["rows"] == 1


def test_writing_or_reading_a_wrong_schema_is_a_one_line_error(store):
    with pytest.raises(SchemaError, match=r"ranking being written .*missing column\(s\) \['hub_id'"):
        store.write_ranking(pl.DataFrame({"cluster": [0], "model": ["x"], "rank": [1], "score": [1.0]}))
    pl.DataFrame({"call_id": ["a"]}).write_parquet(store.path("clustered"))
    with pytest.raises(SchemaError, match="clustered.parquet: missing column"):
        store.read_clustered()


def test_missing_artefact_names_the_notebook(store):
    with pytest.raises(MissingArtefactError, match="run notebook 06_specialize_model"):
        store.read_split()


def test_rewriting_an_upstream_artefact_makes_every_later_read_stale(store):
    store.write_ranking(pl.DataFrame({"cluster": [0], "hub_id": ["m"], "rank": [1], "score": [1.0]}))
    # step 2 re-runs with other data: clustered (and what was made from it) must be re-made
    store.write_curated(_calls(n_sessions=10))
    with pytest.raises(StaleArtefactError, match="re-run notebook 03_cluster_tasks"):
        store.read_clustered()
    with pytest.raises(StaleArtefactError, match="clusters.parquet"):
        store.read_ranking()  # stale through its input, the cluster table
    # the same content written again is not a change
    store.write_curated(_calls())
    assert store.read_clustered().height == 36


def test_the_run_split_is_made_once_and_then_only_read(store):
    from slmlab.specialize.splits import apply_split, make_run_split

    split = make_run_split(store, test_size=0.25, val_size=0.1, seed=3)
    assert set(split["split"]) <= {"train", "val", "test"}
    assert split.group_by("session_id").agg(pl.col("split").n_unique()).get_column("split").max() == 1
    again = make_run_split(store, test_size=0.25, val_size=0.1, seed=3)
    assert again.equals(split) and store.provenance("split")["settings"]["seed"] == 3
    with pytest.raises(ValueError, match="already has a split made with"):
        make_run_split(store, seed=4)
    # a cluster's split is a filter of the run's split: the same call is on the same side everywhere
    one = apply_split(store.read_clustered().filter(pl.col("cluster") == 1), split)
    every = apply_split(store.read_clustered(), split).filter(pl.col("cluster") == 1)
    assert one.select("call_id", "split").equals(every.select("call_id", "split"))


def _fake_adapter(store: RunStore, cluster: int, calls: pl.DataFrame) -> str:
    """An adapter folder with exactly the provenance files `finetune` writes (weights are not needed to
    test the checks, which run before any weight is loaded)."""
    from slmlab.specialize.provenance import ADAPTER_CONFIG, adapter_provenance, write_training_calls

    folder = store.adapter_dir(cluster)
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"base_model": "smollm2-135m", "provenance": adapter_provenance(store, cluster, calls)}
    (folder / ADAPTER_CONFIG).write_text(json.dumps(doc))

    class _Ex:
        def __init__(self, call_id: str) -> None:
            self.call_id = call_id

    train = calls.filter((pl.col("cluster") == cluster) & (pl.col("split") == "train"))["call_id"].to_list()
    write_training_calls(folder, [_Ex(c) for c in train])
    return str(folder)


def test_reclustering_makes_evaluation_refuse_the_old_adapter(store):
    from slmlab.evaluate import load_step_inputs, run_experiments
    from slmlab.runtime.endpoint import OpenAICompatibleGenerator
    from slmlab.specialize.provenance import StaleAdapterError, check_adapter
    from slmlab.specialize.splits import apply_split, make_run_split

    split = make_run_split(store, seed=0)
    calls = apply_split(store.read_clustered(), split)
    adapter = _fake_adapter(store, 1, calls)
    inputs = load_step_inputs(store)
    check_adapter(adapter, 1, inputs.calls, inputs.split_fingerprint)  # fresh: accepted
    # step 3 re-runs and clusters differently: cluster 1 now holds other calls
    reclustered = _clustered(store.read_curated(), by="step")
    store.write_clustered(reclustered)
    store.write_clusters(_clusters(reclustered))
    inputs = load_step_inputs(store)
    never_called = OpenAICompatibleGenerator("http://127.0.0.1:9/v1", "x")
    with pytest.raises(StaleAdapterError, match="re-run notebook 06 for cluster 1"):
        run_experiments(
            inputs.calls, [1], [never_called], inputs.adapters, experiments=["tuned"],
            split_fingerprint=inputs.split_fingerprint, progress=False,
        )  # fmt: skip


def test_an_adapter_is_never_scored_on_its_training_calls(store):
    from slmlab.specialize.provenance import assert_not_trained_on, training_call_ids
    from slmlab.specialize.splits import LeakageError, apply_split, make_run_split

    calls = apply_split(store.read_clustered(), make_run_split(store, seed=0))
    adapter = _fake_adapter(store, 0, calls)
    trained = training_call_ids(adapter)
    test_ids = calls.filter((pl.col("cluster") == 0) & (pl.col("split") == "test"))["call_id"].to_list()
    assert trained and test_ids and not trained & set(test_ids)
    assert_not_trained_on(adapter, test_ids)
    with pytest.raises(LeakageError, match="were training calls of"):
        assert_not_trained_on(adapter, test_ids + sorted(trained)[:1])


def test_evaluation_refuses_calls_without_the_saved_split(store):
    from slmlab.evaluate import run_experiments

    with pytest.raises(ValueError, match="evaluation never re-splits"):
        run_experiments(store.read_clustered(), [0], [], experiments=["base"])
