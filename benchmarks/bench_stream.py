"""Streaming ingest + profile of a multi-GB JSONL log: time and peak memory, with the bare polars scan of
the same file as the reference, at two sizes (peak memory should not grow with the file).

The log is generated into a temporary folder outside the repository (default: the system temp dir), in
the openai request/response JSONL shape of the demo agent (tool calls, tool schemas, sessions, usage,
~3.3 KB a call): a few thousand generated calls repeated with fresh call and session ids. It is deleted
afterwards. Each measurement runs in its own subprocess; peak memory is that child's own
peak RSS (VmHWM: `_memory.own_peak_mb`; ru_maxrss would include this parent's peak).

- reference: `pl.scan_ndjson(path)` -> call count, token sums per model (streaming engine); it parses
  every line, with no validation, quarantine or canonical table.
- slmlab: `slmlab.collect.shards.ingest_shards(path, out)` (the readers, the quarantine, the canonical
  table streamed to parquet, a byte-level progress bar), then, in a second process, `profile_table(out)`
  (summary and per-model / agent profile through a lazy scan that never decodes the texts). Each side's
  peak is reported: ingest's should not grow with the file; the profile's grows with the number of calls
  (~240 bytes a call of polars' aggregation state), not with the bytes of their texts.
- sharded: the same log cut into 2 shard files, ingested by `slmlab.pipeline.distributed.run_distributed`
  on a 2-worker Dask `LocalCluster` started in that child (one shard per worker; wall time includes
  starting the cluster). Peak memory is not reported for it (it is spread over the worker processes).

Usage:
    python benchmarks/bench_stream.py                 # 2.5 GB and 5 GB
    python benchmarks/bench_stream.py --gb 0.2 0.4    # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _memory import own_peak_mb

BASE_CALLS = 4000


def generate(path: Path, target_bytes: int, seed: int = 0) -> dict:
    """Write the log: the demo agent's calls, repeated with fresh ids until `target_bytes`."""
    from slmlab.demo.synth import iter_agent_logs

    templates = []
    for rec in iter_agent_logs(BASE_CALLS, seed=seed, days=7):
        cid, sess = rec["response"]["id"], rec["metadata"]["session_id"]
        line = json.dumps(rec, ensure_ascii=False)
        # Mark the ends of the call id and the session id; copy k gets "-k" appended there.
        line = line.replace(f'"{cid}"', f'"{cid}\x00"').replace(f'"{sess}"', f'"{sess}\x00"')
        templates.append(line.split("\x00"))
    written = lines = 0
    with open(path, "w", encoding="utf-8", buffering=16 << 20) as f:
        k = 0
        while written < target_bytes:
            suffix = f"-{k}"
            block = "\n".join(suffix.join(parts) for parts in templates) + "\n"
            f.write(block)
            written += len(block.encode("utf-8"))
            lines += len(templates)
            k += 1
    return {"bytes": path.stat().st_size, "lines": lines}


def run_reference(path: str) -> dict:
    import polars as pl

    resp = pl.col("response")
    usage = resp.struct.field("usage")
    out = (
        pl.scan_ndjson(path, infer_schema_length=1000)
        .group_by(resp.struct.field("model").alias("model"))
        .agg(
            pl.len().alias("calls"),
            usage.struct.field("prompt_tokens").sum().alias("input_tokens"),
            usage.struct.field("completion_tokens").sum().alias("output_tokens"),
        )
        .collect(engine="streaming")
    )
    return {"calls": int(out["calls"].sum()), "groups": out.height}


def run_ingest(path: str, out_dir: str) -> dict:
    from slmlab.collect.shards import ingest_shards

    table = ingest_shards(path, out_dir, progress=True)
    return {"calls": table.totals()["calls"], "totals": table.totals()}


def split_shards(path: Path, folder: Path, n: int, block_bytes: int = 64 << 20) -> list[Path]:
    """The same log as `n` shard files (whole lines, about `block_bytes` to each in turn): a sharded export."""
    folder.mkdir(parents=True, exist_ok=True)
    outs = [open(folder / f"calls-{i}.jsonl", "wb") for i in range(n)]  # noqa: SIM115 - closed below
    try:
        with open(path, "rb") as f:
            i, carry = 0, b""
            while block := f.read(block_bytes):
                block = carry + block
                cut = block.rfind(b"\n") + 1
                outs[i % n].write(block[:cut])
                carry, i = block[cut:], i + 1
            outs[i % n].write(carry)
    finally:
        for o in outs:
            o.close()
    return sorted(folder.glob("*.jsonl"))


def run_sharded(path: str, out_dir: str) -> dict:
    """The shards of `path` (a folder) ingested by `run_distributed` on a 2-worker Dask LocalCluster."""
    from slmlab.pipeline.distributed import local_cluster, run_distributed

    with local_cluster(n_workers=2) as client:
        res = run_distributed(path, out_dir, client=client, curate=False)
    return {"calls": res.table.totals()["calls"], "seconds_ingest": round(res.seconds_ingest, 1)}


def run_profile(path: str, out_dir: str) -> dict:
    from slmlab.collect.shard_profile import profile_table

    prof = profile_table(out_dir, by=("model", "agent"))
    return {"calls": prof.summary.n_calls, "groups": prof.by_group.height}


def measure(kind: str, path: Path, out_dir: Path) -> dict:
    """Run one side in a child process; its wall time and its own peak RSS (`own_peak_mb`, reported by it)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", kind, str(path), str(out_dir)], stdout=subprocess.PIPE
    )
    _, status, _usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{kind} failed (exit {status})")
    result = json.loads(out.strip().splitlines()[-1])
    return {"kind": kind, "seconds": round(wall, 1), "peak_rss_mb": result.pop("hwm_mb"), **result}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gb", type=float, nargs="+", default=[2.5, 5.0], help="log sizes in GB (10^9 bytes)")
    p.add_argument("--tmp", default=tempfile.gettempdir(), help="where the log and the table go (deleted)")
    p.add_argument("--keep", action="store_true", help="keep the generated files")
    p.add_argument("--no-sharded", action="store_true", help="skip the 2-shard, 2-worker Dask measurement")
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        kind, path, out_dir = args.worker
        run = {"polars": run_reference, "ingest": run_ingest, "profile": run_profile, "sharded": run_sharded}[
            kind
        ]
        res = run(path, out_dir) if kind != "polars" else run(path)
        print(json.dumps({**res, "hwm_mb": round(own_peak_mb())}))
        return

    need = max(args.gb) * 1e9 * 1.4  # the log plus the table (~0.3x) plus slack
    free = shutil.disk_usage(args.tmp).free
    if free < need:
        raise SystemExit(f"{args.tmp}: {free / 1e9:.1f} GB free, {need / 1e9:.1f} GB needed")
    import platform

    import polars as pl

    print(
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; polars {pl.__version__}"
    )
    print(f"load average before: {os.getloadavg()}")
    rows = []
    for gb in sorted(args.gb):
        work = Path(tempfile.mkdtemp(prefix="slmlab-bench-stream-", dir=args.tmp))
        try:
            log = work / "calls.jsonl"
            t0 = time.perf_counter()
            info = generate(log, int(gb * 1e9))
            print(
                f"\n{gb} GB: generated {info['lines']:,} calls, {info['bytes'] / 1e9:.2f} GB in {time.perf_counter() - t0:.0f} s"
            )
            ref = measure("polars", log, work / "unused")
            ing = measure("ingest", log, work / "table")
            prof = measure("profile", log, work / "table")
            table_gb = sum(f.stat().st_size for f in (work / "table").rglob("*") if f.is_file()) / 1e9
            sharded = None
            if not args.no_sharded:
                split_shards(log, work / "shards", 2)
                sharded = measure("sharded", work / "shards", work / "sharded")
                assert sharded["calls"] == info["lines"], sharded
            assert ing["calls"] == prof["calls"] == ref["calls"] == info["lines"], (ing, prof, ref, info)
            ours_s = ing["seconds"] + prof["seconds"]
            row = {
                "gb": round(info["bytes"] / 1e9, 2),
                "calls": info["lines"],
                "polars_s": ref["seconds"],
                "polars_peak_mb": ref["peak_rss_mb"],
                "slmlab_s": round(ours_s, 1),
                "slmlab_ingest_s": ing["seconds"],
                "slmlab_profile_s": prof["seconds"],
                "ingest_peak_mb": ing["peak_rss_mb"],
                "profile_peak_mb": prof["peak_rss_mb"],
                "ratio_time": round(ours_s / ref["seconds"], 2),
                "table_gb": round(table_gb, 2),
                "mb_per_s": round(info["bytes"] / 1e6 / ours_s, 1),
                "sharded_2_workers_s": sharded["seconds"] if sharded else None,
                "sharded_ratio_time": round(sharded["seconds"] / ref["seconds"], 2) if sharded else None,
            }
            rows.append(row)
            print(json.dumps(row))
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average after: {os.getloadavg()}")
    print(
        "| GB | calls | polars scan s | polars peak MB | slmlab s (ingest + profile) | ingest peak MB "
        "| profile peak MB | time ratio | MB/s | 2 shards, 2 Dask workers: ingest s (ratio) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['gb']} | {r['calls']:,} | {r['polars_s']} | {r['polars_peak_mb']} | {r['slmlab_s']} "
            f"({r['slmlab_ingest_s']} + {r['slmlab_profile_s']}) | {r['ingest_peak_mb']} | {r['profile_peak_mb']} "
            f"| {r['ratio_time']}x | {r['mb_per_s']} | {r['sharded_2_workers_s']} ({r['sharded_ratio_time']}x) |"
        )


if __name__ == "__main__":
    main()
