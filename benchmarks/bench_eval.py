"""Evaluating held-out calls with the bundled 135M model: slmlab's batched path vs a one-at-a-time loop.

Both paths generate greedily for the same fitted prompts of tau-bench airline test calls and score them
with `score_calls`. slmlab batches length-sorted prompts (`TransformersGenerator.generate`, bf16 where the
CPU computes bf16 natively); the baseline is the plain loop: the fp32 model, one `generate` per call, in
input order, on the first `--baseline-n` calls (it is slow), compared in calls per second. A third pass
shows the on-disk cache re-run.
Goal: 500 calls in <= 5 minutes on 2 CPU cores. Use `--n` to run fewer.

    .venv/bin/python benchmarks/bench_eval.py --n 500
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "agent-logs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500, help="held-out calls to evaluate")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--max-prompt-tokens", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--int8", action="store_true", help="dynamic int8 linear layers (CPU)")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--baseline-n", type=int, default=100, help="calls the slow one-at-a-time loop runs on")
    args = ap.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} not found: this benchmark needs ../shared/data/agent-logs")
    sys.path.insert(0, str(REPO / "tests"))
    from test_evaluate_experiments import tau_bench_calls

    from slmlab.evaluate import build_prompt, score_calls
    from slmlab.runtime.chat_format import PromptBudget, tools_from_calls
    from slmlab.runtime.generate import GenerationCache, TransformersGenerator
    from slmlab.specialize.splits import split_by_session

    calls = split_by_session(tau_bench_calls(SHARED), seed=0)
    test = calls.filter(pl.col("split") == "test").sample(fraction=1.0, shuffle=True, seed=0).head(args.n)
    budget = PromptBudget(max_tokens=args.max_prompt_tokens)
    tools = tools_from_calls(calls["response_tool_calls"].to_list())

    t0 = time.perf_counter()
    gen = TransformersGenerator("smollm2-135m", batch_size=args.batch_size, int8=args.int8)
    prompts = [build_prompt(r, budget, gen.tokenizer, tools) for r in test.to_dicts()]
    prep_s = time.perf_counter() - t0
    precision = "int8" if args.int8 else ("bf16" if gen.cpu_bf16 else "fp32")
    print(f"{test.height} held-out tau-bench calls; model load + prompt fitting {prep_s:.1f} s")

    cache = GenerationCache(Path(tempfile.mkdtemp()) / "g.sqlite")
    t0 = time.perf_counter()
    outs = gen.generate(prompts, max_new_tokens=args.max_new_tokens, progress=False, cache=cache)
    scores = score_calls(test, outs, model=gen.name, experiment="base", embedder="tfidf")
    fast_s = time.perf_counter() - t0
    print(f"slmlab batched ({precision}, batch {args.batch_size}, length-sorted): {fast_s:.1f} s = "
          f"{test.height / fast_s:.2f} calls/s; agreement {scores['agreement'].mean():.3f}, "
          f"name match {scores['name_match'].mean():.3f}")  # fmt: skip

    t0 = time.perf_counter()
    gen.generate(prompts, max_new_tokens=args.max_new_tokens, progress=False, cache=cache)
    print(f"cached re-run: {time.perf_counter() - t0:.2f} s")

    if args.skip_baseline:
        return
    # The plain loop a user writes first: the fp32 model, one `generate` per call, in input order.
    from slmlab.runtime.models import LoadSpec, load_causal_lm

    model, tok = load_causal_lm("smollm2-135m", LoadSpec(device="cpu"))
    plain = TransformersGenerator(model, tok, batch_size=1, name="plain loop")
    n_base = min(args.baseline_n, test.height)
    t0 = time.perf_counter()
    loop = [
        plain.generate([p], max_new_tokens=args.max_new_tokens, progress=False, sort_by_length=False)[0]
        for p in prompts[:n_base]
    ]
    base_scores = score_calls(test.head(n_base), loop, model="plain", experiment="base", embedder="tfidf")
    loop_s = time.perf_counter() - t0
    print(f"one-at-a-time fp32 loop on the first {n_base} of the same calls: {loop_s:.1f} s = "
          f"{n_base / loop_s:.2f} calls/s; agreement {base_scores['agreement'].mean():.3f}")  # fmt: skip
    speedup = (test.height / fast_s) / (n_base / loop_s)
    print(f"ratio (calls/s batched / loop): {speedup:.2f}x; 500 calls: batched "
          f"{500 * fast_s / test.height / 60:.1f} min vs loop {500 * loop_s / n_base / 60:.1f} min")  # fmt: skip


if __name__ == "__main__":
    main()
