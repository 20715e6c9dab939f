"""Ingest + curate on a real local Dask cluster (2 worker processes started here): the same counts, call ids
and curated calls as the single-process path and as one `ingest` of the same files."""

from __future__ import annotations

import pytest
from test_shards import write_shards

from slmlab.collect import ingest
from slmlab.collect.shards import ingest_shards
from slmlab.curate.partitions import curate_partitions

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    from slmlab.pipeline.distributed import local_cluster

    with local_cluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=None) as c:
        yield c


@pytest.mark.slow
def test_dask_ingest_and_curate_match_single_process(client, tmp_path):
    from slmlab.curate import CurateConfig
    from slmlab.pipeline.distributed import run_distributed

    write_shards(tmp_path / "src")
    src = tmp_path / "src" / "days"
    kw = {"prices": False, "count_missing_tokens": False}
    cfg = CurateConfig(salt="dask-test", redactor="patterns")

    dist = run_distributed(src, tmp_path / "dist", client=client, curate_config=cfg, **kw)
    assert dist.n_workers == 2
    local = ingest_shards(src, tmp_path / "local" / "calls", progress=False, **kw)
    local_cur = curate_partitions(local, tmp_path / "local" / "curated", cfg)
    one = ingest(src, out=tmp_path / "one.parquet", **kw).summary

    t = dist.table.totals()
    assert t == local.totals()
    assert (t["read"], t["ingested"], t["quarantined"], t["calls"]) == (
        one.read,
        one.ingested,
        one.quarantined,
        one.calls,
    )
    assert [(s.name, s.calls, s.quarantined) for s in dist.table.shards] == [
        (s.name, s.calls, s.quarantined) for s in local.shards
    ]
    a = dist.table.scan().drop("source_file").collect().sort("call_id")
    b = local.scan().drop("source_file").collect().sort("call_id")
    assert a.equals(b)
    assert dist.curated.totals() == local_cur.totals()
    ca = dist.curated.scan().collect().sort("call_id")
    cb = local_cur.scan().collect().sort("call_id")
    assert ca.drop("source_file").equals(cb.drop("source_file"))
    assert dist.curated.totals()["redactions"] > 0 and ca.height == dist.curated.totals()["calls_out"]


def test_missing_engine_names_the_extra(monkeypatch):
    import sys

    from slmlab.config import MissingDependencyError
    from slmlab.pipeline import distributed as d

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(MissingDependencyError, match=r'pip install "slmlab\[distributed\]"'):
        d.client_for(None)
