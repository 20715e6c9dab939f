"""Sharded inputs: a folder / glob / URL of JSONL, JSONL.gz and Parquet shards -> a partitioned call table
with the same counts and call ids as one `ingest` of the same files; bad shards quarantined, not fatal;
profile and curate on the lazy table."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from slmlab.collect import ingest
from slmlab.collect.shard_profile import profile_frame, profile_table
from slmlab.collect.shards import ShardedTable, ingest_shards, list_shards
from slmlab.curate.partitions import curate_partitions
from slmlab.schema import CALL_SCHEMA

N_CALLS = 240


def _records(n: int = N_CALLS, seed: int = 3) -> list[dict]:
    from slmlab.demo.synth import generate_agent_logs

    return generate_agent_logs(n, seed=seed, days=3)


def write_shards(root: Path, n: int = N_CALLS) -> dict[str, Path]:
    """Three day shards (one gzipped), a malformed line, a call repeated in a later shard, a canonical
    Parquet shard, a Parquet file that is not a call table and a README-like JSON no reader knows."""
    recs = _records(n)
    thirds = [recs[: n // 3], recs[n // 3 : 2 * n // 3], recs[2 * n // 3 :]]
    root.mkdir(parents=True, exist_ok=True)
    days = root / "days"
    days.mkdir()
    paths = {}
    for i, part in enumerate(thirds):
        lines = [json.dumps(r) for r in part]
        if i == 1:
            lines.insert(3, '{"request": {"model": "gpt-4o", "messages": [')  # truncated line
            lines.append(json.dumps(thirds[0][5]))  # the same call as in day 0: a duplicate call id
        body = "\n".join(lines) + "\n"
        name = f"2026-11-0{i + 1}.jsonl"
        if i == 2:
            p = days / (name + ".gz")
            with gzip.open(p, "wt") as f:
                f.write(body)
        else:
            p = days / name
            p.write_text(body)
        paths[f"day{i}"] = p
    return paths


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shards")
    write_shards(root)
    return root / "days"


def test_list_shards_folder_glob_and_names(shard_dir):
    shards = list_shards(shard_dir)
    assert [s.name for s in shards] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert [s.kind for s in shards] == ["jsonl"] * 3 and [s.index for s in shards] == [0, 1, 2]
    assert [s.name for s in list_shards(str(shard_dir / "2026-11-0[12].jsonl"))] == [
        "2026-11-01",
        "2026-11-02",
    ]
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        list_shards(shard_dir / "nothing-here")
    with pytest.raises(FileNotFoundError, match="no .* shard files"):
        list_shards(str(shard_dir / "*.csv"))


def test_sharded_ingest_equals_one_ingest(shard_dir, tmp_path):
    table = ingest_shards(
        shard_dir, tmp_path / "calls", prices=False, count_missing_tokens=False, progress=False
    )
    single = ingest(shard_dir, out=tmp_path / "single.parquet", prices=False, count_missing_tokens=False)
    t, s = table.totals(), single.summary
    assert (t["read"], t["ingested"], t["quarantined"], t["calls"]) == (
        s.read,
        s.ingested,
        s.quarantined,
        s.calls,
    )
    assert t["quarantined"] == 2  # the truncated line and the repeated call
    got = table.scan().collect()
    assert got.schema == pl.Schema(CALL_SCHEMA)
    want = single.calls
    assert sorted(got["call_id"]) == sorted(want["call_id"])
    assert got.sort("call_id").drop("source_file").equals(want.sort("call_id").drop("source_file"))
    reasons = [q["reason"] for q in table.quarantined()]
    assert any("duplicate call_id" in r and "2026-11-02.jsonl" in r for r in reasons)
    assert any("2026-11-02.jsonl:4:" in r for r in reasons)  # file and line of the truncated record
    # Partitions on disk, hive style, and the manifest reopens the table.
    assert sorted(p.parent.name for p in table.partitions()) == [f"shard=2026-11-0{i}" for i in (1, 2, 3)]
    assert ShardedTable.open(tmp_path / "calls").totals() == t


def test_parquet_shards_bad_files_and_ignored_files(shard_dir, tmp_path):
    src = tmp_path / "mixed"
    src.mkdir()
    ingest(
        shard_dir / "2026-11-01.jsonl",
        out=src / "a-canonical.parquet",
        prices=False,
        count_missing_tokens=False,
    )
    pl.DataFrame({"x": [1, 2]}).write_parquet(src / "b-not-calls.parquet")
    (src / "c-readme.json").write_text(json.dumps({"title": "not a log", "version": 3}))
    (src / "d-day3.jsonl.gz").write_bytes((shard_dir / "2026-11-03.jsonl.gz").read_bytes())
    (src / "e-broken.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    table = ingest_shards(src, tmp_path / "calls", prices=False, count_missing_tokens=False, progress=False)
    by = {s.name: s for s in table.shards}
    assert by["a-canonical"].calls == N_CALLS // 3 and by["a-canonical"].kind == "parquet"
    assert by["b-not-calls"].calls == 0 and "not a canonical call table" in by["b-not-calls"].error
    assert by["c-readme"].ignored
    assert by["d-day3"].calls == N_CALLS - 2 * (N_CALLS // 3)
    bad = by["e-broken"]
    assert bad.quarantined >= 1 and bad.calls == 0
    t = table.totals()
    assert t["read"] == t["ingested"] + t["quarantined"]
    assert table.scan().select(pl.len()).collect().item() == t["calls"]
    reasons = " ".join(q["reason"] for q in table.quarantined())
    assert "b-not-calls.parquet:0: ValueError" in reasons and "missing call_id" in reasons


def test_remote_url_shards_through_fsspec(shard_dir, tmp_path):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    for p in sorted(shard_dir.iterdir()):
        fs.pipe(f"/bucket/logs/{p.name}", p.read_bytes())
    ingest(
        shard_dir / "2026-11-01.jsonl", out=tmp_path / "c.parquet", prices=False, count_missing_tokens=False
    )
    fs.pipe("/bucket/tables/day1.parquet", (tmp_path / "c.parquet").read_bytes())
    shards = list_shards("memory://bucket/logs/*.jsonl*")
    assert [s.uri for s in shards][0] == "memory://bucket/logs/2026-11-01.jsonl" and shards[0].remote
    table = ingest_shards(
        ["memory://bucket/logs/", "memory://bucket/tables/day1.parquet"],
        tmp_path / "calls",
        prices=False,
        count_missing_tokens=False,
        progress=False,
    )
    t = table.totals()
    # day1 appears twice (JSONL and its Parquet table): the second copy's calls are all duplicates.
    assert t["calls"] == N_CALLS and t["quarantined"] == 2 + N_CALLS // 3
    files = set(table.scan().select("source_file").unique().collect()["source_file"])
    assert "memory://bucket/logs/2026-11-02.jsonl" in files  # rows name the URL, not the temporary copy


def test_profile_and_curate_the_lazy_table(shard_dir, tmp_path):
    table = ingest_shards(
        shard_dir, tmp_path / "calls", prices=False, count_missing_tokens=False, progress=False
    )
    frame = profile_frame(table)
    assert frame.schema == pl.Schema(CALL_SCHEMA) and frame["messages"].null_count() == frame.height
    assert set(frame["response_text"].drop_nulls()) == {""}
    by_action = profile_table(table, by="action").by_group  # an action can be written in the text: read it
    from slmlab.collect.profile import profile_calls as _pc

    # streamed sums may differ from in-memory ones in the last bits (another summation order)
    assert_frame_equal(by_action, _pc(table.collect(), by="action"), rel_tol=1e-12)
    prof = profile_table(tmp_path / "calls", by="agent")
    full = table.collect()
    from slmlab.collect.profile import profile_calls, summary

    assert prof.summary == summary(full)
    assert_frame_equal(prof.by_group, profile_calls(full, by="agent"), rel_tol=1e-12)
    from slmlab.curate import CurateConfig, curate

    cfg = CurateConfig(salt="test-salt", redactor="patterns")  # the spaCy model adds nothing to this check
    curated = curate_partitions(table, tmp_path / "curated", cfg)
    totals = curated.totals()
    parts = [curate(pl.read_parquet(p), cfg) for p in table.partitions()]
    assert totals["calls_in"] == full.height
    assert totals["calls_out"] == sum(r.calls.height for r in parts)
    assert totals["redactions"] == sum(r.audit.height for r in parts) > 0
    assert curated.scan().select(pl.len()).collect().item() == totals["calls_out"]
