"""Tests of slmlab.iterate: drift between reference and new logs, on hand-built embeddings with known answers."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from slmlab.iterate import (
    TemplateIndex,
    cluster_centroids,
    clusters_to_retrain,
    detect_drift,
    fallback_rates,
    needs_reclustering,
    split_by_time,
)
from slmlab.schema import conform

RULES = "Verify the customer first. Never invent prices, flight times or booking numbers. Answer briefly."
SYS_V1 = "You are the seat agent of Acme Air. Today is {d}. " + RULES
SYS_V2 = (
    "# Role\nSeat desk, Acme Air, {d}.\n# Output\nOne JSON object with seat and fare. No prose at all please."
)
TOOLS = json.dumps([{"type": "function", "function": {"name": "get_seat", "parameters": {}}}])
TOOLS_NEW = json.dumps(
    [{"type": "function", "function": {"name": n, "parameters": {}}} for n in ("get_seat", "upgrade_seat")]
)


def _calls(n: int, prefix: str, cluster: int | None, system: str, tool: str | None = "get_seat", tools=TOOLS):
    rows = {
        "call_id": [f"{prefix}{i}" for i in range(n)],
        "session_id": [f"{prefix}s{i // 2}" for i in range(n)],
        "messages": [
            json.dumps(
                [
                    {"role": "system", "content": system.format(d=f"2026-11-{i % 28 + 1:02d}")},
                    {"role": "user", "content": f"seat {i}"},
                ]
            )
            for i in range(n)
        ],  # fmt: skip
        "tool_name": [tool] * n,
        "response_tool_calls": [json.dumps([{"id": "x", "name": tool, "arguments": "{}"}]) if tool else None]
        * n,
        "tools": [tools] * n,
    }
    df = conform(pl.DataFrame(rows))
    return df.with_columns(pl.lit(cluster, pl.Int32).alias("cluster")) if cluster is not None else df


def _blob(rng, center, n, scale=0.05):
    return np.asarray(center, float) + rng.normal(0, scale, size=(n, len(center)))


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    calls = pl.concat([_calls(60, "a", 0, SYS_V1), _calls(40, "b", 1, SYS_V1, tool=None)])
    emb = np.vstack([_blob(rng, [1, 0, 0], 60), _blob(rng, [0, 1, 0], 40)])
    return calls, emb


def test_no_drift_on_the_same_distribution(reference):
    ref, emb = reference
    rng = np.random.default_rng(1)
    new = pl.concat([_calls(30, "na", None, SYS_V1), _calls(20, "nb", None, SYS_V1, tool=None)])
    new_emb = np.vstack([_blob(rng, [1, 0, 0], 30), _blob(rng, [0, 1, 0], 20)])
    r = detect_drift(new, None, ref, new_embeddings=new_emb, reference_embeddings=emb)
    assert r.assignments["nearest"].to_list() == [0] * 30 + [1] * 20
    assert r.reference_far_share == pytest.approx(0.05, abs=0.01)
    assert r.far_share < 0.15
    assert r.new_templates.height == 0 and r.new_tools.height == 0
    assert clusters_to_retrain(r) == [] and not needs_reclustering(r)
    per = r.per_cluster.filter(pl.col("cluster") == 0).row(0, named=True)
    assert per["reference_share"] == pytest.approx(0.6) and per["new_calls_nearest"] == 30
    assert set(r.summary["metric"]) >= {"new calls", "clusters to re-train"}


def test_far_calls_new_template_and_new_tool(reference):
    ref, emb = reference
    rng = np.random.default_rng(2)
    new = pl.concat(
        [
            _calls(20, "na", None, SYS_V1),  # unchanged seat calls
            _calls(20, "nv", None, SYS_V2, tool="upgrade_seat", tools=TOOLS_NEW),  # cluster 1 drifted
            _calls(20, "nx", None, SYS_V1, tool=None),  # a sub-task no cluster covers
        ]
    )
    new_emb = np.vstack(
        [_blob(rng, [1, 0, 0], 20), _blob(rng, [0, 1, 0], 20, scale=0.05), _blob(rng, [0, 0, 1], 20)]
    )
    r = detect_drift(new, None, ref, new_embeddings=new_emb, reference_embeddings=emb)
    # every call of the uncovered sub-task is far; of the others only about the reference's 5% (+ noise)
    assert 1 / 3 <= r.far_share <= 1 / 3 + 0.15
    assert r.assignments.filter(pl.col("call_id").str.starts_with("nx"))["cluster"].unique().to_list() == [-1]
    assert r.new_templates["n_calls"].to_list() == [20]  # v2 prompt, one template despite 20 dates
    assert "Seat desk" in r.new_templates["example"][0]
    assert r.new_tools.row(0, named=True) == {"tool": "upgrade_seat", "n_calls": 20, "n_offered": 20}
    per = {row["cluster"]: row for row in r.per_cluster.to_dicts()}
    assert per[1]["new_template_share"] == pytest.approx(20 / per[1]["new_calls_nearest"])
    assert per[-1]["new_calls"] == round(r.far_share * 60)  # far calls are counted under -1
    assert 1 in clusters_to_retrain(r)
    assert clusters_to_retrain(r, clusters=[0]) in ([], [0])
    assert needs_reclustering(r)


def test_volume_change_and_given_centroids(reference):
    ref, emb = reference
    rng = np.random.default_rng(3)
    new = pl.concat([_calls(10, "na", None, SYS_V1), _calls(40, "nb", None, SYS_V1, tool=None)])
    new_emb = np.vstack([_blob(rng, [1, 0, 0], 10), _blob(rng, [0, 1, 0], 40)])
    centroids = {7: [1.0, 0, 0], 8: [0, 1.0, 0]}
    r = detect_drift(new, centroids, ref.with_columns(pl.col("cluster") + 7), new_embeddings=new_emb,
                     reference_embeddings=emb, threshold=0.5)  # fmt: skip
    per = {row["cluster"]: row for row in r.per_cluster.to_dicts()}
    assert per[7]["volume_ratio"] == pytest.approx((10 / 50) / 0.6)
    assert per[8]["share_change"] == pytest.approx(40 / 50 - 0.4)
    # a (k, d) array: row i is cluster i
    r2 = detect_drift(new, np.array([[1.0, 0, 0], [0, 1.0, 0]]), ref, new_embeddings=new_emb, threshold=0.5)
    assert r2.threshold == 0.5 and r2.assignments["nearest"].to_list() == [0] * 10 + [1] * 40
    # a frame: cluster + centroid
    frame = pl.DataFrame({"cluster": [3, 4], "centroid": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]})
    r3 = detect_drift(new, frame, ref, new_embeddings=new_emb, threshold=0.5)
    assert r3.assignments["nearest"].to_list() == [3] * 10 + [4] * 40
    with pytest.raises(ValueError, match="centroid"):
        detect_drift(new, frame.rename({"centroid": "vec"}), ref, new_embeddings=new_emb, threshold=0.5)


def test_predict_object_assigns(reference):
    ref, emb = reference

    class ByTool:
        def predict(self, calls):
            return np.where(calls["tool_name"].is_null().to_numpy(), 1, 0)

    new = pl.concat([_calls(5, "na", None, SYS_V1), _calls(5, "nb", None, SYS_V1, tool=None)])
    r = detect_drift(new, ByTool(), ref)
    assert r.assignments["nearest"].to_list() == [0] * 5 + [1] * 5
    assert r.far_share is None and r.threshold is None


def test_rising_fallback_rate(reference):
    ref, emb = reference
    rng = np.random.default_rng(4)
    new = _calls(20, "na", None, SYS_V1)
    new_emb = _blob(rng, [1, 0, 0], 20)
    ref_replay = pl.DataFrame({"call_id": ref["call_id"], "route_cluster": ref["cluster"].cast(pl.Int64),
                               "routed_to": ["slm"] * 57 + ["llm"] * 3 + ["llm"] * 40})  # fmt: skip
    new_replay = pl.DataFrame({"call_id": new["call_id"], "route_cluster": [0] * 20,
                               "routed_to": ["slm"] * 12 + ["llm"] * 8})  # fmt: skip
    r = detect_drift(new, None, ref, new_embeddings=new_emb, reference_embeddings=emb,
                     reference_replay=ref_replay, new_replay=new_replay)  # fmt: skip
    row = r.per_cluster.filter(pl.col("cluster") == 0).row(0, named=True)
    assert row["reference_fallback_rate"] == pytest.approx(0.05)
    assert row["new_fallback_rate"] == pytest.approx(0.4)
    assert r.fallback_rate == pytest.approx(0.4) and r.reference_fallback_rate == pytest.approx(0.05)
    assert clusters_to_retrain(r) == [0]
    rates = fallback_rates(pl.DataFrame({"route_cluster": [0, 0, 1], "routed_to": ["llm", "slm", "llm"]}))
    assert rates.rows() == [(0, 2, 0.5)]  # cluster 1 was never swapped: no fallback rate
    with pytest.raises(ValueError, match="route_cluster"):
        fallback_rates(pl.DataFrame({"cluster": [0], "routed_to": ["llm"]}))


def test_template_index_and_centroids():
    idx = TemplateIndex().fit([SYS_V1.format(d="2026-11-01")] * 3 + [SYS_V2.format(d="x")])
    assert len(idx.templates_) == 2
    got = idx.match([SYS_V1.format(d="2027-02-11"), "Completely different prompt about cooking pasta.", None])
    assert got[0] is not None and got[1:] == [None, None]
    again = TemplateIndex.from_examples(idx.templates_).match([SYS_V2.format(d="y")])
    assert again[0] in idx.templates_
    ids, cent = cluster_centroids(pl.DataFrame({"cluster": [0, 0, -1, 2]}), np.array([[0.0], [2], [9], [5]]))
    assert ids.tolist() == [0, 2] and cent.ravel().tolist() == [1.0, 5.0]


def test_split_by_time():
    calls = pl.DataFrame({"session_id": ["a", "a", "b", "b", "c", "d"], "timestamp": [1, 2, 3, 4, 5, 6]})
    ref, new = split_by_time(calls, 3)
    assert new["session_id"].to_list() == ["c", "d"]  # whole sessions, at most half the calls
    assert ref.height + new.height == calls.height
