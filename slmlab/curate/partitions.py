"""Curate a partitioned (sharded) call table one partition at a time, in this process or on an engine.

Usage:
    >>> from slmlab.curate.partitions import curate_partitions
    >>> curated = curate_partitions("runs/nov/calls", "runs/nov/curated")  # doctest: +SKIP
    >>> curated.totals()  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from slmlab.collect.shards import MANIFEST, ShardedTable


def curate_partitions(
    table: ShardedTable | str | os.PathLike,
    out_dir: str | os.PathLike,
    config: Any = None,
    map_fn: Callable[..., list[dict[str, Any]]] | None = None,
) -> CuratedTable:
    """Curate a sharded table one partition at a time, into `out_dir/shard=<name>/{calls,audit,dropped}`.

    Each partition is curated alone with `slmlab.curate.curate` (the same config, so the same salt: a
    session id hashes to the same pseudonym in every partition). What "alone" means: exact and near
    duplicates are found within a partition, and ids / names `curate` learns from a partition's tool
    arguments are redacted within that partition. Shard by session or by day, so that a conversation stays
    in one partition, and the result equals curating the whole table where duplicates don't cross days.

    Args:
        table: a `ShardedTable` or its folder.
        out_dir: where the curated partitions go.
        config: a `slmlab.curate.CurateConfig` (default: its defaults).
        map_fn: how to run the per-partition jobs: `map_fn(func, list_of_kwargs) -> list_of_results`
            (default: in this process, one after another; `slmlab.pipeline.distributed` passes a Dask map).

    Returns:
        A `CuratedTable` with per-partition and total counts.
    """
    if not isinstance(table, ShardedTable):
        table = ShardedTable.open(table)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        {"part": str(p), "out_dir": str(out / p.parent.name), "config": config} for p in table.partitions()
    ]
    run = map_fn or (lambda f, kws: [f(**kw) for kw in kws])
    results = run(curate_partition, jobs)
    doc = {"source": str(table.path), "partitions": results}
    (out / MANIFEST).write_text(json.dumps(doc, indent=1, default=str))
    return CuratedTable(out, tuple(results))


def curate_partition(part: str, out_dir: str, config: Any = None) -> dict[str, Any]:
    """Curate one partition file into `out_dir` (calls.parquet, audit.parquet, dropped.parquet); its counts."""
    from slmlab.curate import curate

    t0 = time.perf_counter()
    calls = pl.read_parquet(part)
    res = curate(calls, config)
    o = Path(out_dir)
    o.mkdir(parents=True, exist_ok=True)
    res.calls.write_parquet(o / "calls.parquet", compression="zstd")
    res.audit.write_parquet(o / "audit.parquet")
    res.dropped.write_parquet(o / "dropped.parquet")
    dropped = dict(res.dropped.group_by("reason").len().iter_rows()) if res.dropped.height else {}
    return {
        "partition": Path(part).parent.name,
        "calls_in": calls.height,
        "calls_out": res.calls.height,
        "dropped": dropped,
        "redactions": res.audit.height,
        "seconds": round(time.perf_counter() - t0, 3),
    }


@dataclass(frozen=True)
class CuratedTable:
    """A curated, partitioned call table: `scan()` the calls, `totals()` the counts."""

    path: Path
    partitions: tuple[dict[str, Any], ...]

    def scan(self, what: str = "calls") -> pl.LazyFrame:
        """`what` = "calls", "audit" or "dropped", over all partitions, lazily."""
        files = [self.path / p["partition"] / f"{what}.parquet" for p in self.partitions]
        return pl.scan_parquet(files) if files else pl.LazyFrame()

    def totals(self) -> dict[str, Any]:
        dropped: dict[str, int] = {}
        for p in self.partitions:
            for k, v in p["dropped"].items():
                dropped[k] = dropped.get(k, 0) + v
        return {
            "calls_in": sum(p["calls_in"] for p in self.partitions),
            "calls_out": sum(p["calls_out"] for p in self.partitions),
            "redactions": sum(p["redactions"] for p in self.partitions),
            "dropped": dict(sorted(dropped.items())),
        }


__all__ = ["CuratedTable", "curate_partition", "curate_partitions"]
