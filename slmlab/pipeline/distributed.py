"""Ingest and curate on a Dask cluster: the per-shard steps of `slmlab.collect.shards`, one task per shard.

When the logs outgrow one machine (or one machine's patience), the same two steps run as Dask tasks:

1. every shard is ingested by `slmlab.collect.shards.ingest_shard` on some worker, which writes its
   partition (`shard=<name>/part-0.parquet` + quarantine) into `out_dir`;
2. the client runs `finish_table` (call ids unique over all shards: the one step that needs every shard)
   and writes the manifest;
3. every partition is curated by `curate_partition` on some worker (same `CurateConfig`, so same salt).

The counts are those of the single-process path (`ingest_shards` + `curate_partitions`): same functions,
same inputs, only the scheduler differs; `tests/test_distributed.py` checks it on a local cluster.

Why Dask (`dask` + `distributed` from PyPI) rather than Ray Data or Spark:

- The work is "run this Python function on each file"; Dask's futures (`client.map`) is exactly that, with
  no DataFrame engine in the way (polars does the in-partition work, as in the single-process path).
- Pure-Python wheels (a few MB), no JVM (Spark) and no separate daemons or shared-memory object store (Ray:
  a raylet and a GCS server per node, a ~60 MB wheel), so a test can start a real 2-worker cluster in a
  few seconds on a 2-core machine, and the same code points at a real cluster by address
  (`dask-scheduler` / `dask-worker`, dask-jobqueue on SLURM, dask-kubernetes, Coiled).
- Worker memory limits, retries of failed tasks and a dashboard come with `distributed`.

The table folder must be on storage every worker and the client can reach (a shared filesystem on a real
cluster; local disk for a `LocalCluster`). Shards themselves may be URLs (see `list_shards`).

Usage:
    >>> from slmlab.pipeline.distributed import local_cluster, run_distributed
    >>> with local_cluster(n_workers=2) as client:  # doctest: +SKIP
    ...     res = run_distributed("logs/", "runs/nov", client=client, prices=False)
    >>> print(res.table.summary(), res.curated.totals())  # doctest: +SKIP

    $ python -m slmlab.pipeline.distributed "s3://acme-logs/2026-11/*.jsonl.gz" runs/nov --scheduler tcp://10.0.0.5:8786
    $ python -m slmlab.pipeline.distributed logs/ runs/nov --workers 2      # a local cluster
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmlab.collect.shards import ShardedTable, finish_table, ingest_shard, list_shards
from slmlab.config import require
from slmlab.curate.partitions import CuratedTable, curate_partitions


def _distributed() -> Any:
    return require("distributed", "distributed")


@contextmanager
def local_cluster(
    n_workers: int = 2, threads_per_worker: int = 1, processes: bool = True, memory_limit: str | None = "auto"
) -> Iterator[Any]:
    """A `distributed.Client` on a `LocalCluster` started here and closed afterwards.

    Args:
        n_workers: worker processes (one per core is the usual choice).
        threads_per_worker: threads in each; ingest and curate hold the GIL, so 1.
        processes: separate worker processes (True), as on a real cluster; False = threads in this process.
        memory_limit: per worker ("auto" = a share of the machine's memory; None = no limit).

    Example:
        >>> with local_cluster(2) as client:  # doctest: +SKIP
        ...     print(client.dashboard_link)
    """
    d = _distributed()
    cluster = d.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=processes,
        memory_limit=memory_limit if memory_limit is not None else 0,
        dashboard_address=None,
    )
    client = d.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def client_for(scheduler: str | Any | None) -> Any:
    """A `distributed.Client`: the given one, one connected to a scheduler address, or the current one."""
    d = _distributed()
    if scheduler is None:
        return d.get_client()
    if isinstance(scheduler, str):
        return d.Client(scheduler)
    return scheduler


def dask_map(client: Any, progress: bool = False, desc: str = "tasks") -> Callable[..., list[Any]]:
    """`map_fn(func, list_of_kwargs) -> results in order`, run as one Dask task per kwargs dict."""

    def run(func: Callable[..., Any], kwargs_list: Sequence[dict[str, Any]]) -> list[Any]:
        futures = [client.submit(func, pure=False, **kw) for kw in kwargs_list]
        if progress and futures:
            from tqdm.auto import tqdm

            d = _distributed()
            for _ in tqdm(d.as_completed(futures), total=len(futures), desc=desc):
                pass
        return client.gather(futures)

    return run


@dataclass(frozen=True)
class DistributedResult:
    """The partitioned table, its curated copy (None when not curated) and how the run went."""

    table: ShardedTable
    curated: CuratedTable | None
    n_workers: int
    seconds_ingest: float
    seconds_curate: float


def run_distributed(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    client: Any = None,
    curate: bool = True,
    curate_config: Any = None,
    format: str = "auto",
    progress: bool = False,
    storage_options: dict[str, Any] | None = None,
    **ingest_kwargs: Any,
) -> DistributedResult:
    """Ingest every shard of `source` and curate every partition as Dask tasks.

    Args:
        source: shards, as `slmlab.collect.shards.list_shards` takes them (folder, glob, URL, list).
        out_dir: run folder on shared storage: `calls/` (the partitioned table), `curated/`.
        client: a `distributed.Client`, a scheduler address, or None for the current client.
        curate: also curate each partition.
        curate_config: a `slmlab.curate.CurateConfig` (default: its defaults; pass a salt on a cluster so
            that every worker hashes with the same one).
        format: reader name or "auto".
        progress: a bar over finished tasks.
        storage_options: for polars' object-store reader (remote Parquet shards).
        **ingest_kwargs: passed to `slmlab.collect.ingest` for each shard.

    Returns:
        A `DistributedResult`; the counts equal `ingest_shards` + `curate_partitions` on one process.
    """
    client = client_for(client)
    out = Path(out_dir)
    calls_dir = out / "calls"
    calls_dir.mkdir(parents=True, exist_ok=True)
    shards = list_shards(source)
    if curate and curate_config is None:
        # One salt for every worker; the default salt lives in each worker's own SLMLAB_HOME.
        from slmlab.curate import CurateConfig, default_salt

        curate_config = CurateConfig(salt=default_salt())
    t0 = time.perf_counter()
    run = dask_map(client, progress, "ingest shards")
    jobs = [
        dict(
            shard=s,
            out_dir=str(calls_dir),
            format=format,
            storage_options=storage_options,
            **ingest_kwargs,
        )
        for s in shards
    ]
    results = run(ingest_shard, jobs)
    table = finish_table(calls_dir, results, source)
    t_ingest = time.perf_counter() - t0
    curated = None
    t1 = time.perf_counter()
    if curate:
        curated = curate_partitions(
            table, out / "curated", curate_config, map_fn=dask_map(client, progress, "curate partitions")
        )
    n_workers = len(client.scheduler_info().get("workers", {}))
    return DistributedResult(
        table, curated, n_workers, round(t_ingest, 3), round(time.perf_counter() - t1, 3)
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m slmlab.pipeline.distributed SOURCE OUT [--scheduler ADDRESS | --workers N]`."""
    import argparse
    import json

    p = argparse.ArgumentParser(
        prog="python -m slmlab.pipeline.distributed", description=__doc__.split("\n")[0]
    )
    p.add_argument("source", nargs="+", help="shards: folder, glob or URL (several allowed)")
    p.add_argument("out", help="run folder on storage every worker can reach")
    p.add_argument("--scheduler", default=None, help="address of a running Dask scheduler")
    p.add_argument("--workers", type=int, default=2, help="workers of a local cluster (without --scheduler)")
    p.add_argument("--format", default="auto")
    p.add_argument("--salt", default=None, help="curate salt (default: this machine's)")
    p.add_argument("--no-curate", action="store_true")
    p.add_argument("--no-prices", action="store_true", help="leave cost_usd null where the log has none")
    args = p.parse_args(argv)
    from slmlab.curate import CurateConfig

    cfg = CurateConfig(salt=args.salt) if args.salt else None
    kw = {"prices": False} if args.no_prices else {}
    source = args.source if len(args.source) > 1 else args.source[0]

    def go(client: Any) -> DistributedResult:
        return run_distributed(
            source, args.out, client=client, curate=not args.no_curate, curate_config=cfg,
            format=args.format, progress=True, **kw,
        )  # fmt: skip

    if args.scheduler:
        res = go(client_for(args.scheduler))
    else:
        with local_cluster(args.workers) as client:
            res = go(client)
    print(res.table.summary())
    if res.curated is not None:
        print(json.dumps(res.curated.totals()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
