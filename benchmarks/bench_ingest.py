"""Ingest + profile N logged calls with slmlab and with a straightforward pandas implementation.

Generates N calls in the openai request/response JSONL form (the shape logging proxies write), then runs
each implementation in its own subprocess and reports wall time and peak memory (each child's own VmHWM) and ratios.

Memory: pandas holds the whole file as Python objects, about 4.3 GB per 200k calls (1.16 GB at 50k), so
the default N of 1,000,000 needs about 22 GB for the pandas side: more than a 23 GB machine has next to
anything else. There, run `--n 200000`, or `--n 1000000 --skip-pandas` for slmlab alone (it streams the
file; its peak at 1M, 2.6 GB, is the call table this script reads back to profile it).

Usage:
    python benchmarks/bench_ingest.py --n 200000
    python benchmarks/bench_ingest.py --n 1000000 --skip-pandas
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _memory import own_peak_mb

MODELS = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini"]
PRICES = {
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
}


def generate(n: int, path: Path, seed: int = 0) -> None:
    """Write n openai-shaped log lines (tool calls, tool schemas, sessions, metadata) to `path`."""
    rng = random.Random(seed)
    tools = [
        {"type": "function", "function": {"name": f"tool_{i}", "description": "Look up a record by id. " * 4,
         "parameters": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}}
        for i in range(4)
    ]  # fmt: skip
    system = {"role": "system", "content": "You are a customer-service agent. Follow the policy. " * 8}
    with open(path, "w") as f:
        for i in range(n):
            tc = rng.random() < 0.45
            msg = (
                {"role": "assistant", "content": None, "tool_calls": [{"id": f"call_{i}", "type": "function",
                 "function": {"name": f"tool_{i % 4}", "arguments": json.dumps({"id": f"R{i:07d}"})}}]}
                if tc else {"role": "assistant", "content": f"Your booking R{i:07d} is confirmed for {rng.randint(1, 28)} May."}
            )  # fmt: skip
            model = rng.choice(MODELS)
            rec = {
                "request": {"model": model, "messages": [system, {"role": "user", "content": f"Please check booking R{i:07d}."}],
                            "tools": tools, "temperature": 0},  # fmt: skip
                "response": {"id": f"chatcmpl-{i:09d}", "object": "chat.completion", "created": 1793527200 + i,
                             "model": model, "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if tc else "stop"}],
                             "usage": {"prompt_tokens": rng.randint(300, 3000), "completion_tokens": rng.randint(5, 120),
                                       "prompt_tokens_details": {"cached_tokens": rng.choice([0, 256, 1024])}}},  # fmt: skip
                "metadata": {"agent": rng.choice(["planner", "executor", "critic"]), "session_id": f"s-{i // 12:07d}", "step": i % 12},
                "latency_ms": round(rng.uniform(200, 3000), 1),
                "timestamp": f"2026-11-01T10:{(i // 60) % 60:02d}:{i % 60:02d}Z",
            }  # fmt: skip
            f.write(json.dumps(rec) + "\n")


def run_slmlab(path: str) -> str:
    import polars as pl

    from slmlab.collect import ingest

    with tempfile.TemporaryDirectory() as d:
        res = ingest(path, format="openai", out=Path(d) / "calls.parquet", count_missing_tokens=False)
        try:
            from slmlab.collect.profile import profile_calls

            prof = profile_calls(res.calls)
        except ImportError:
            prof = (
                res.scan()
                .group_by("model")
                .agg(
                    pl.len().alias("calls"),
                    pl.col("input_tokens").sum(),
                    pl.col("output_tokens").sum(),
                    pl.col("cost_usd").sum(),
                )  # fmt: skip
                .sort("model")
                .collect()
            )
        return f"{res.summary}\n{prof}"


def run_pandas(path: str) -> str:
    import pandas as pd

    df = pd.read_json(path, lines=True)
    flat = pd.json_normalize(df.to_dict("records"))
    flat["cost"] = [
        (i * PRICES[m][0] + o * PRICES[m][1]) / 1e6
        for m, i, o in zip(
            flat["request.model"],
            flat["response.usage.prompt_tokens"],
            flat["response.usage.completion_tokens"],
            strict=True,
        )
    ]
    prof = flat.groupby("request.model").agg(
        calls=("response.id", "count"),
        input_tokens=("response.usage.prompt_tokens", "sum"),
        output_tokens=("response.usage.completion_tokens", "sum"),
        cost_usd=("cost", "sum"),
    )
    return str(prof)


def worker(kind: str, path: str) -> None:
    t = time.perf_counter()
    out = run_slmlab(path) if kind == "slmlab" else run_pandas(path)
    seconds = time.perf_counter() - t
    peak_mb = own_peak_mb()
    print(json.dumps({"kind": kind, "seconds": seconds, "peak_mb": peak_mb, "output": out}))


def measure(kind: str, path: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--file", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="number of logged calls to generate")
    ap.add_argument("--file", help="use this JSONL instead of generating one")
    ap.add_argument("--worker", choices=["slmlab", "pandas"], help=argparse.SUPPRESS)
    ap.add_argument("--skip-pandas", action="store_true", help="only run slmlab (pandas needs ~22 GB at 1M)")
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.file)
        return
    with tempfile.TemporaryDirectory() as d:
        path = Path(args.file) if args.file else Path(d) / "calls.jsonl"
        if not args.file:
            t = time.perf_counter()
            generate(args.n, path)
            print(
                f"generated {args.n:,} calls ({path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t:.1f} s"
            )
        s = measure("slmlab", path)
        print(f"slmlab: {s['seconds']:.1f} s, peak {s['peak_mb']:,.0f} MB\n{s['output']}")
        if args.skip_pandas:
            return
        p = measure("pandas", path)
        print(f"pandas: {p['seconds']:.1f} s, peak {p['peak_mb']:,.0f} MB\n{p['output']}")
        print(f"speed-up {p['seconds'] / s['seconds']:.1f}x, memory ratio {s['peak_mb'] / p['peak_mb']:.2f}")


if __name__ == "__main__":
    main()
