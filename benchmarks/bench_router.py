"""Routing throughput on CPU: slmlab's batched `ClusterRouter.route` vs a naive one-call-at-a-time loop.

Fits a prompt-only cluster router on tau-bench airline calls (clusters = the action the LLM took, a
stand-in for `slmlab.cluster`), then routes `--n` held-out prompts both ways in the same run and prints
decisions per second, overhead per call and the ratio. Goal: >= 10,000 decisions/s batched.

    .venv/bin/python benchmarks/bench_router.py --n 20000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import polars as pl

from slmlab.route import ClusterRouter
from slmlab.schema import action_expr
from slmlab.specialize.splits import split_by_session

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "agent-logs"


def tau_calls() -> pl.DataFrame:
    """Assistant turns of tau-bench airline as (call_id, session_id, messages, responses, cluster)."""
    path = SHARED / "tau-bench-airline" / "gpt-4o-airline.json"
    if not path.exists():
        sys.exit(f"{path} not found: this benchmark needs ../shared/data/agent-logs")
    rows = []
    for rec in json.loads(path.read_text()):
        sid, traj = f"{rec['task_id']}-{rec['trial']}", rec["traj"]
        for i, m in enumerate(traj):
            if m.get("role") == "assistant":
                calls = [{"id": c["id"], **c["function"]} for c in m.get("tool_calls") or []]
                rows.append({"call_id": f"{sid}-{i}", "session_id": sid, "messages": json.dumps(traj[:i]),
                             "response_text": m.get("content"), "response_tool_calls": json.dumps(calls) if calls else None,
                             "tool_name": calls[0]["name"] if calls else None})  # fmt: skip
    df = pl.DataFrame(rows).with_columns(action_expr())
    top = df["action"].value_counts().sort("count", descending=True)["action"].head(8).to_list()
    return df.with_columns(
        pl.col("action")
        .replace_strict({a: i for i, a in enumerate(top)}, default=-1, return_dtype=pl.Int32)
        .alias("cluster")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="routing decisions to time (batched path)")
    ap.add_argument("--n-loop", type=int, default=1000, help="decisions for the per-call loop baseline")
    ap.add_argument("--method", default="logreg", choices=["centroid", "logreg"])
    args = ap.parse_args()

    calls = split_by_session(tau_calls(), seed=0)
    train, test = calls.filter(pl.col("split") == "train"), calls.filter(pl.col("split") != "train")
    t0 = time.perf_counter()
    router = ClusterRouter(method=args.method, routes=[0, 1, 2, 3]).fit(train)
    fit_s = time.perf_counter() - t0
    acc = float((router.predict(test) == test["cluster"].to_numpy()).mean())
    reps = -(-args.n // test.height)
    big = pl.concat([test] * reps).head(args.n)

    router.route(big.head(100))  # warm-up (imports)
    t0 = time.perf_counter()
    routed = router.route(big)
    batch_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    feats = router.featurize(big)
    feat_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    router._predict(feats)
    score_s = time.perf_counter() - t0

    loop = big.head(args.n_loop)
    t0 = time.perf_counter()
    for i in range(loop.height):
        router.route(loop.slice(i, 1))
    loop_s = time.perf_counter() - t0

    batch_rate, loop_rate = args.n / batch_s, loop.height / loop_s
    print(f"router: ClusterRouter(method={args.method!r}), fit on {train.height} calls in {fit_s:.2f} s; "
          f"held-out cluster accuracy {acc:.3f} ({test.height} calls)")  # fmt: skip
    print(f"batched route():   {args.n} decisions in {batch_s:.3f} s = {batch_rate:,.0f} decisions/s "
          f"({1e6 * batch_s / args.n:.1f} us/call: features {1e6 * feat_s / args.n:.1f} us, scoring {1e6 * score_s / args.n:.2f} us)")  # fmt: skip
    print(f"per-call loop:     {loop.height} decisions in {loop_s:.3f} s = {loop_rate:,.0f} decisions/s "
          f"({1e6 * loop_s / loop.height:.0f} us/call)")  # fmt: skip
    print(
        f"ratio batched / per-call: {batch_rate / loop_rate:.1f}x; sent to SLM: {(routed['routed_to'] == 'slm').mean():.1%}"
    )
    print(f"goal >= 10,000 decisions/s: {'met' if batch_rate >= 10_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
