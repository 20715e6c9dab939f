"""Tests of slmlab.label: LabelSession operations, undo, save/load, apply; the widget driven headless."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from slmlab.cluster import describe_clusters
from slmlab.label import LabelSession, StaleLabelsError, split_keys
from slmlab.schema import CLUSTER_SCHEMA, conform

SYS_A = (
    "You are the booking agent of Acme Air. Today is {d}. Verify the customer, never invent prices, be brief."
)
SYS_B = (
    "# Role\nRefund desk of Acme Retail ({d}). Answer with one JSON object: refund, amount, reason. No prose."
)


def _msgs(system: str, user: str) -> str:
    return json.dumps([{"role": "system", "content": system}, {"role": "user", "content": user}])


@pytest.fixture()
def calls() -> pl.DataFrame:
    """20 calls: cluster 0 = 6 seat lookups + 4 refunds (two actions, two templates), 1 = 6 texts, 2 = 3, noise 1."""
    rows = []
    for i in range(6):
        rows.append(
            (
                "a",
                0,
                "get_seat",
                _msgs(SYS_A.format(d=f"2026-11-0{i + 1}"), f"seat for booking B{i}"),
                100,
                0.010,
            )
        )
    for i in range(4):
        rows.append(
            ("b", 0, "refund", _msgs(SYS_B.format(d=f"2026-11-0{i + 1}"), f"refund order O{i}"), 300, 0.030)
        )
    for i in range(6):
        rows.append(("c", 1, None, _msgs(SYS_A.format(d="2026-11-09"), f"hello there {i}"), 50, 0.005))
    for i in range(3):
        rows.append(("d", 2, None, _msgs(SYS_B.format(d="2026-11-09"), f"complaint {i}"), 80, 0.008))
    rows.append(("e", -1, None, _msgs("odd", "??"), 10, 0.001))
    df = pl.DataFrame(
        rows,
        schema=["session_id", "cluster", "tool_name", "messages", "input_tokens", "cost_usd"],
        orient="row",
    )
    return conform(
        df.with_row_index("i").with_columns(
            pl.format("c{}", pl.col("i")).alias("call_id"),
            pl.col("tool_name").is_not_null().cast(pl.Int32).alias("n_tool_calls"),
            pl.lit(20).alias("output_tokens"),
            pl.col("cluster").cast(pl.Int32),
        )
    ).drop("i")


@pytest.fixture()
def clusters(calls: pl.DataFrame) -> pl.DataFrame:
    sizes = calls.group_by("cluster").len().filter(pl.col("cluster") >= 0).sort("cluster")
    return pl.DataFrame(
        {
            "cluster": sizes["cluster"],
            "name": ["seats+refunds", "chit-chat", "complaints"],
            "size": sizes["len"].cast(pl.Int64),
            "share_calls": sizes["len"] / calls.height,
            "keywords": [["seat", "refund"], ["hello"], ["complaint"]],
            "exemplars": [["c0", "c6"], ["c10"], ["c16"]],
            "dominant_action": ["get_seat", "respond", "respond"],
            "action_share": [0.6, 1.0, 1.0],
            "template": [SYS_A[:20], SYS_A[:20], SYS_B[:20]],
            "suitability": [0.8, 0.3, 0.65],
        }
    )


def test_fills_schema_and_renames(clusters, calls):
    s = LabelSession(clusters, calls)
    table = s.clusters
    assert set(CLUSTER_SCHEMA) <= set(table.columns) and "note" in table.columns
    assert table["status"].to_list() == ["unreviewed"] * 3
    s.rename(1, "greeting")
    assert s.clusters.filter(pl.col("cluster") == 1)["name"].item() == "greeting"
    s.undo()
    assert s.clusters.filter(pl.col("cluster") == 1)["name"].item() == "chit-chat"
    with pytest.raises(ValueError, match="no cluster 7"):
        s.rename(7, "x")


def test_merge_recomputes_stats_and_undo(clusters, calls):
    s = LabelSession(clusters, calls)
    into = s.merge([2, 1])
    assert into == 1  # the larger cluster keeps its id
    row = s.clusters.filter(pl.col("cluster") == 1).row(0, named=True)
    assert row["size"] == 9
    assert row["share_calls"] == pytest.approx(9 / 20)
    assert row["share_cost"] == pytest.approx((6 * 0.005 + 3 * 0.008) / calls["cost_usd"].sum())
    assert row["mean_input_tokens"] == pytest.approx((6 * 50 + 3 * 80) / 9)
    assert row["keywords"] == ["hello", "complaint"]
    assert s.apply(calls)["cluster"].value_counts().filter(pl.col("cluster") == 1)["count"].item() == 9
    s.undo()
    assert sorted(s.clusters["cluster"].to_list()) == [0, 1, 2]
    assert s.clusters.filter(pl.col("cluster") == 2)["size"].item() == 3
    with pytest.raises(ValueError, match="at least two"):
        s.merge([1])


def test_merge_without_calls_combines_table_numbers(clusters):
    s = LabelSession(clusters)
    s.merge([0, 2], into=2, name="mixed")
    row = s.clusters.filter(pl.col("cluster") == 2).row(0, named=True)
    assert (row["name"], row["size"]) == ("mixed", 13)
    assert row["suitability"] == pytest.approx((0.8 * 10 + 0.65 * 3) / 13)
    with pytest.raises(ValueError, match="call table"):
        s.split(2)


def test_split_by_action(clusters, calls):
    s = LabelSession(clusters, calls)
    parts = s.split(0, by="action")
    assert parts == [0, 3]  # ids continue after the largest id seen
    table = s.clusters
    assert table.filter(pl.col("cluster") == 0).row(0, named=True)["size"] == 6
    new = table.filter(pl.col("cluster") == 3).row(0, named=True)
    assert (new["size"], new["dominant_action"], new["action_share"]) == (4, "refund", 1.0)
    assert new["output_shape"] == "tool_call" and new["mean_input_tokens"] == 300
    assert "refund" in new["name"]
    mapped = s.apply(calls)
    assert mapped.filter(pl.col("tool_name") == "refund")["cluster"].unique().to_list() == [3]
    assert mapped.schema["cluster"] == pl.Int32
    assert s.clusters.filter(pl.col("cluster") == 0)["exemplars"].item().to_list()[0] == "c0"
    s.undo()
    assert s.clusters.filter(pl.col("cluster") == 0)["size"].item() == 10
    with pytest.raises(ValueError, match="single"):
        s.split(1, by="action")


# What describe_clusters decides about a cluster from its calls (shares relative to the whole table).
DESCRIBED = ["cluster", "size", "share_calls", "share_cost", "dominant_action", "action_share", "output_shape",
             "template", "mean_input_tokens", "p90_input_tokens", "mean_output_tokens", "suitability"]  # fmt: skip


@pytest.mark.parametrize("table", ["step 3", "hand-built"])
def test_split_parts_get_describe_clusters_numbers(table, clusters, calls):
    base = describe_clusters(calls) if table == "step 3" else clusters
    s = LabelSession(base, calls)
    parts = s.split(0, by="action")
    want = describe_clusters(s.apply(calls)).filter(pl.col("cluster").is_in(parts)).sort("cluster")
    got = s.clusters.filter(pl.col("cluster").is_in(parts)).sort("cluster")
    assert got.height == want.height == 2
    for g, w in zip(
        got.select(DESCRIBED).iter_rows(named=True), want.select(DESCRIBED).iter_rows(named=True), strict=True
    ):
        assert g == pytest.approx(w)
    # each part has its own suitability (not the parent's, which mixed two actions)
    parent = describe_clusters(calls).filter(pl.col("cluster") == 0)["suitability"].item()
    assert got["action_share"].to_list() == [1.0, 1.0]
    assert all(v > parent for v in got["suitability"].to_list())
    # a replay (load, undo) gives the same numbers
    s.rename(1, "chat")
    s.undo()
    assert s.clusters.filter(pl.col("cluster").is_in(parts)).sort("cluster").equals(got)


def test_merge_is_described_like_the_cluster_step(calls):
    # fenced JSON answers are "json" for the cluster step, so they are for the labeller too
    fenced = '```json\n{"greeting": true}\n```'
    calls = calls.with_columns(
        pl.when(pl.col("cluster") == 1)
        .then(pl.lit(fenced))
        .otherwise(pl.col("response_text"))
        .alias("response_text")
    )
    s = LabelSession(describe_clusters(calls), calls)
    into = s.merge([1, 2])
    got = s.clusters.filter(pl.col("cluster") == into).select(DESCRIBED).row(0, named=True)
    want = (
        describe_clusters(s.apply(calls))
        .filter(pl.col("cluster") == into)
        .select(DESCRIBED)
        .row(0, named=True)
    )
    assert got == pytest.approx(want)
    assert got["output_shape"] == "json"  # 6 fenced JSON answers, 3 plain ones


def test_split_by_template_ignores_fillers(clusters, calls):
    keys = split_keys(calls, "template")
    # six seat calls with six different dates share one template
    assert keys[:6].n_unique() == 1 and keys[6] != keys[0]
    s = LabelSession(clusters, calls)
    assert s.split(0, by="template") == [0, 3]
    assert s.clusters.filter(pl.col("cluster") == 3)["dominant_action"].item() == "refund"
    # apply on calls the session never saw follows the stored template examples
    unseen = calls.head(1).with_columns(
        pl.lit("x").alias("call_id"),
        pl.lit(_msgs(SYS_B.format(d="2027-01-01"), "refund pls")).alias("messages"),
    )
    assert s.apply(unseen)["cluster"].to_list() == [3]


def test_split_kmeans_on_embeddings(clusters, calls):
    emb = np.zeros((calls.height, 2), np.float32)
    emb[:6] = [1, 0]
    emb[6:10] = [0, 1]
    s = LabelSession(clusters, calls, embeddings=emb)
    parts = s.split(0, by="kmeans")
    assert len(parts) == 2
    sizes = dict(s.clusters.select("cluster", "size").iter_rows())
    assert sizes[0] == 6 and sizes[parts[1]] == 4
    assert s.apply(calls).filter(pl.col("tool_name") == "refund")["cluster"].unique().to_list() == [parts[1]]


def test_split_kmeans_tfidf_fallback(clusters, calls):
    s = LabelSession(clusters, calls)
    parts = s.split(0, by="kmeans")
    assert sorted(s.clusters.filter(pl.col("cluster").is_in(parts))["size"].to_list()) == [4, 6]


def test_status_note_accept_and_undo_many(clusters, calls):
    s = LabelSession(clusters, calls)
    s.set_status(2, "keep_llm")
    s.note(2, "needs the policy text")
    with pytest.raises(ValueError, match="unknown status"):
        s.set_status(2, "maybe")
    assert s.accept_suggested(0.6, if_unlabelled=True) == []  # a person labelled: nothing auto-accepted
    assert s.accept_suggested(0.6) == [0]  # 2 is already reviewed, 1 is below the threshold
    assert s.accepted() == [0]
    assert s.accept_suggested(0.99, at_least=1) == [1]  # the most suitable open cluster, even below 0.99
    s.undo()
    assert s.history["op"].to_list() == ["status", "note", "status"]
    assert s.n_labelled == 2
    s.undo(2)
    row = s.clusters.filter(pl.col("cluster") == 2).row(0, named=True)
    assert (row["status"], row["note"]) == ("keep_llm", "")
    s.undo(5)  # more than the log holds
    assert s.history.height == 0 and s.undo() is None


def test_save_load_round_trip(tmp_path, clusters, calls):
    s = LabelSession(clusters, calls)
    s.split(0, by="action")
    s.merge([1, 2], name="small talk")
    s.rename(3, "refunds")
    s.set_status([0, 3], "slm_candidate")
    s.note(0, "seat map JSON")
    path = s.save(tmp_path / "labels.json")
    loaded = LabelSession.load(path, calls, clusters=clusters)
    assert loaded.clusters.equals(s.clusters)
    assert loaded.history.equals(s.history)
    assert loaded.apply(calls)["cluster"].to_list() == s.apply(calls)["cluster"].to_list()
    loaded.undo()
    assert loaded.clusters.filter(pl.col("cluster") == 0)["note"].item() == ""
    # without the call table (the report): names and statuses still come back
    light = LabelSession.load(path)
    assert light.accepted() == s.accepted()


def test_stale_labels_are_detected(tmp_path, clusters, calls):
    path = LabelSession(clusters, calls).save(tmp_path / "labels.json")
    other = clusters.with_columns(pl.col("size") + 1)
    with pytest.raises(StaleLabelsError):
        LabelSession.load(path, clusters=other)
    with pytest.raises(StaleLabelsError):
        LabelSession.load(path, calls.head(5))
    with pytest.warns(UserWarning, match="fresh"):
        fresh = LabelSession.load_or_new(path, other)
    assert fresh.history.height == 0 and (tmp_path / "labels.json.stale").exists()


# ------------------------------------------------------------------------------------------------ widget


def test_widget_headless(tmp_path, clusters, calls):
    from slmlab.label import LabelWidget

    s = LabelSession(clusters, calls)
    path = tmp_path / "labels.json"
    w = LabelWidget(s, path)
    assert w.selected == [0]  # the largest cluster is selected at start
    assert "seat for booking" in w.detail.value and "seats+refunds" in w.detail.value
    assert len(w.figure.data[1].x) == 10  # the selected cluster is highlighted on the map

    w.name_text.value = "seat lookup"
    w.rename_button.click()
    assert s.clusters.filter(pl.col("cluster") == 0)["name"].item() == "seat lookup"

    w.split_by.value = "action"
    w.split_button.click()
    assert w.selected == [0, 3] and s.clusters.height == 4

    w.cluster_list.value = (1, 2)
    w.merge_button.click()
    assert sorted(s.clusters["cluster"].to_list()) == [0, 1, 3]

    w.cluster_list.value = (0,)
    w.status_buttons["slm_candidate"].click()
    w.note_text.value = "short JSON answers"
    w.note_button.click()
    assert (
        s.accepted() == [0]
        and s.clusters.filter(pl.col("cluster") == 0)["note"].item() == "short JSON answers"
    )

    w.undo_button.click()
    assert s.clusters.filter(pl.col("cluster") == 0)["note"].item() == ""

    w.cluster_list.value = (0, 1)
    w.rename_button.click()  # needs one cluster: an error message, no exception, no change
    assert "exactly one" in w.message.value and s.history.height == 4

    assert not path.exists()
    w.save_button.click()
    saved = LabelSession.load(path, calls)
    assert saved.clusters.equals(s.clusters)
    assert "slm_candidate" in path.read_text()


def test_widget_with_given_coords(clusters, calls):
    from slmlab.label import LabelWidget

    coords = pl.DataFrame({"call_id": calls["call_id"], "x": np.arange(20.0), "y": np.zeros(20)})
    w = LabelWidget(LabelSession(clusters, calls), coords=coords)
    w.cluster_list.value = (2,)
    assert list(w.figure.data[1].x) == [16.0, 17.0, 18.0]
    assert w.save_button.disabled
