"""tau-bench swap: can a tuned SmolLM2-135M take over GPT-4o's lookup calls, and what share of all calls?

The paper's claim, measured on real logs (`../shared/data/agent-logs/tau-bench-airline`, 2,454 GPT-4o calls):

1. Split by task (the 4 trials of a task stay on one side), check leakage.
2. Clusters: the logged next action of the lookup sub-tasks (`get_user_details`, `get_reservation_details`),
   as a person accepts them in the labeller after naming the discovered clusters; every other call is one
   "keep on the LLM" cluster.
3. One LoRA adapter per lookup cluster, trained on the cluster's train-split calls (CPU, bounded steps),
   with the cluster's own tool in the prompt and a short prompt budget.
4. Experiment matrix on the held-out calls of each lookup cluster: base (zero-shot), ICL (k similar train
   examples), tuned (the merged adapter); GPT-4o's logged answer is the reference.
5. A prompt-only `ClusterRouter` trained on the train split picks a cluster for every held-out call; the
   tuned adapter answers every call routed to its cluster (misroutes included), and the SLM's mean token
   probability decides fallback to GPT-4o. The threshold sweep gives the largest share of all held-out
   calls the SLM takes at >= 90% agreement with GPT-4o.

Baseline to beat (the issue's plain-LoRA run, same data): get_user_details 7/12, get_reservation_details
6/43 name+arguments exact match. CPU goal: >= 90% on the lookup clusters.

The GPU path (`SLMLAB_SCALE=gpu`, the default where CUDA is visible) is the same script with bigger knobs:
Qwen2.5-1.5B-Instruct (any hub id or local path via --model), a 3.5k-token prompt budget that keeps most of
the policy, and `--clusters actions`: one adapter for every next action with >= --min-train-calls training
calls (each tool, and "respond" for text replies), so the router can send any call to an SLM. GPU goal:
>= 50% of all held-out calls at >= 90% agreement with GPT-4o.

    python benchmarks/bench_taubench_swap.py                             # ~30 min on 2 CPU cores
    python benchmarks/bench_taubench_swap.py --steps 40 --n-test 16      # quicker look
    SLMLAB_SCALE=gpu python benchmarks/bench_taubench_swap.py            # one GPU, needs the model locally
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import polars as pl

from slmlab.runtime.chat_format import PromptBudget
from slmlab.config import by_scale

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "agent-logs"
LOOKUPS = ("get_user_details", "get_reservation_details")
RESPOND = "respond"  # the action of a text reply (no tool call)
KEEP = -1  # the cluster of every other call: stays on the LLM

# CPU: short prompts. A lookup needs the latest turns and the ids in them, not the 4k-token policy.
# GPU: most of the policy and the conversation, as every action (refunds, rebooking) must follow it.
CPU_BUDGET = PromptBudget(
    max_system_chars=200, max_message_chars=600, max_turns=6, max_tokens=576, max_evidence_chars=400
)
GPU_BUDGET = PromptBudget(
    max_system_chars=9000, max_message_chars=2000, max_turns=16, max_tokens=3584, max_evidence_chars=800
)
BUDGET = by_scale(smoke=CPU_BUDGET, cpu=CPU_BUDGET, gpu=GPU_BUDGET)
MAX_LEN = BUDGET.max_tokens + 128  # prompt + answer; longer examples are dropped from training (counted)


def load_split(seed: int, actions: tuple[str, ...] = LOOKUPS) -> pl.DataFrame:
    from slmlab.collect import ingest
    from slmlab.specialize.splits import check_leakage, split_by_session

    calls = ingest(SHARED / "tau-bench-airline" / "gpt-4o-airline.json", count_missing_tokens=False).calls
    calls = calls.with_columns(pl.col("session_id").str.extract(r"(task\d+)").alias("task"))
    split = check_leakage(split_by_session(calls, group_col="task", seed=seed))
    return with_clusters(split, actions)


def pick_actions(split: pl.DataFrame, mode: str, min_train_calls: int) -> tuple[str, ...]:
    """The sub-tasks that get an adapter: the two lookups, or every next action with enough train calls."""
    if mode == "lookups":
        return LOOKUPS
    train = split.filter(pl.col("split") == "train")
    counts = train.group_by(pl.col("tool_name").fill_null(RESPOND)).len()
    counts = counts.filter(pl.col("len") >= min_train_calls).sort("len", "tool_name", descending=True)
    return tuple(counts.get_column("tool_name"))


def with_clusters(split: pl.DataFrame, actions: tuple[str, ...]) -> pl.DataFrame:
    """Cluster id = the index of the call's next action in `actions`; KEEP for every other call."""
    ids = {name: i for i, name in enumerate(actions)}
    return split.with_columns(
        pl.col("tool_name")
        .fill_null(RESPOND)
        .replace_strict(ids, default=KEEP, return_dtype=pl.Int64)
        .alias("cluster")
    )


def train_adapters(split: pl.DataFrame, actions: tuple[str, ...], args, out: Path) -> dict[int, Path]:
    from slmlab.runtime.models import load_tokenizer
    from slmlab.specialize import FinetuneConfig, build_sft_dataset, finetune, tools_for

    tok = load_tokenizer(args.model)
    adapters = {}
    for cid, name in enumerate(actions):
        group = split.filter(pl.col("cluster") == cid)
        tools = [t for t in tools_for(group) if (t.get("function") or t).get("name") == name]
        data = build_sft_dataset(group, tok, BUDGET, tools=tools, max_len=MAX_LEN)
        print(f"[{name}] dropped {data.n_dropped} over-long examples")
        cfg = FinetuneConfig(
            base_model=args.model,
            method=args.method,
            max_steps=args.steps,
            epochs=dict(args.cluster_epochs).get(name, args.epochs),
            batch_size=args.batch_size,
            max_len=max(1024, MAX_LEN),
            lr=args.lr,
            r=args.r,
            alpha=2 * args.r,
            warmup_steps=5,
            save_every=0,
            eval_every=0,
            cluster_id=cid,
            seed=args.seed,
            output_dir=str(out / f"ft-{name}"),
        )
        start = time.perf_counter()
        result = finetune(data, config=cfg, progress=True)
        print(
            f"[{name}] {len(data.train)} train examples, {result.steps} steps in "
            f"{time.perf_counter() - start:.0f}s, eval loss {result.eval_loss:.3f}"
        )
        adapters[cid] = Path(result.adapter_dir)
    return adapters


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=by_scale("smollm2-135m", "smollm2-135m", "Qwen/Qwen2.5-1.5B-Instruct"))
    p.add_argument(
        "--method", default="lora", choices=("lora", "qlora"), help="qlora: nf4 base (bitsandbytes)"
    )
    p.add_argument(
        "--clusters",
        default=by_scale("lookups", "lookups", "actions"),
        choices=("lookups", "actions"),
        help="lookups: the two lookup tools; actions: every next action with >= --min-train-calls",
    )
    p.add_argument("--min-train-calls", type=int, default=20)
    p.add_argument(
        "--steps", type=int, default=-1, help="optimizer steps per adapter (> 0 overrides --epochs)"
    )
    p.add_argument(
        "--epochs", type=float, default=by_scale(1.0, 1.0, 2.0), help="passes over the train calls"
    )
    p.add_argument(
        "--cluster-epochs",
        nargs="*",
        type=lambda kv: (kv.split("=")[0], float(kv.split("=")[1])),
        default=by_scale([], [("get_reservation_details", 2.0)], []),
        metavar="ACTION=EPOCHS",
        help="per-cluster override of --epochs (the 135M model needs 2 passes to copy reservation ids)",
    )
    p.add_argument("--batch-size", type=int, default=by_scale(1, 1, 4), help="packed rows per step")
    p.add_argument("--gen-batch-size", type=int, default=by_scale(8, 8, 32), help="prompts per generate call")
    p.add_argument("--lr", type=float, default=by_scale(1e-3, 1e-3, 2e-4))
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--n-test", type=int, default=None, help="held-out calls per lookup cluster (all)")
    p.add_argument("--experiments", default="base,icl,tuned")
    p.add_argument("--max-new-tokens", type=int, default=64, help="a lookup call is ~40 tokens")
    p.add_argument("--reuse-adapters", action="store_true", help="evaluate adapters of an earlier run")
    p.add_argument("--routing-only", action="store_true", help="skip the matrix (reuses adapters)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=".slmlab/bench-taubench-swap")
    args = p.parse_args()
    if not SHARED.exists():
        raise SystemExit(f"{SHARED} not found: this benchmark needs the shared tau-bench logs")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from slmlab.evaluate import run_experiments, summarize_scores

    split = load_split(args.seed)
    actions = pick_actions(split, args.clusters, args.min_train_calls)
    split = with_clusters(split, actions)
    print(f"clusters: {dict(enumerate(actions))}")
    print(split.group_by("cluster", "split").len().sort("cluster", "split"))
    adapters = {}
    if args.reuse_adapters or args.routing_only:
        adapters = {i: out / f"ft-{name}" for i, name in enumerate(actions)}
        adapters = {i: a for i, a in adapters.items() if (a / "adapter_model.safetensors").exists()}
    if "tuned" in args.experiments and len(adapters) < len(actions):
        adapters = train_adapters(split, actions, args, out)
    if args.routing_only:
        report_routing(split, adapters, args, out)
        return
    start = time.perf_counter()
    scores = run_experiments(
        split,
        clusters=list(range(len(actions))),
        models=[args.model],
        adapters=adapters,
        experiments=args.experiments.split(","),
        n_eval=args.n_test,
        budget=BUDGET,
        max_new_tokens=args.max_new_tokens,
        embedder="tfidf",
        batch_size=args.gen_batch_size,
        seed=args.seed,
    )
    print(f"experiment matrix generated and scored in {time.perf_counter() - start:.0f}s")
    scores.write_parquet(out / "scores.parquet")
    summary = summarize_scores(scores)
    print(summary)
    summary.write_csv(out / "summary.csv")
    report_routing(split, adapters, args, out)


def score_routed_calls(test: pl.DataFrame, router, adapters: dict[int, Path], args) -> pl.DataFrame:
    """The tuned adapter of the cluster the router picks, run on every held-out call routed to it.

    Misrouted calls (the LLM's real next step was something else) are scored like the others: a lookup
    answer where GPT-4o did something else scores 0.
    """
    from slmlab.evaluate import build_prompt, score_calls
    from slmlab.evaluate.experiments import adapter_prompt_setup
    from slmlab.runtime.generate import TransformersGenerator

    picked = test.with_columns(pl.Series("route_cluster", router.predict(test)))
    parts = []
    for cid, adapter in adapters.items():
        sub = picked.filter(pl.col("route_cluster") == cid)
        if sub.is_empty():
            continue
        gen = TransformersGenerator(args.model, adapter=adapter, batch_size=args.gen_batch_size)
        budget, tools = adapter_prompt_setup(adapter, BUDGET, None)
        prompts = [build_prompt(r, budget, gen.tokenizer, tools) for r in sub.to_dicts()]
        outs = gen.generate(prompts, max_new_tokens=args.max_new_tokens, cache=True)
        sc = score_calls(sub, outs, model=args.model, experiment="tuned", embedder="tfidf")
        parts.append(sc.with_columns(pl.lit(str(adapter)).alias("adapter")))
    return pl.concat(parts, how="diagonal_relaxed")


def report_routing(split: pl.DataFrame, adapters: dict[int, Path], args, out: Path) -> dict:
    import numpy as np

    from slmlab.route import ClusterRouter, apgr, share_at_agreement, threshold_sweep

    routes = pl.DataFrame(
        {"cluster": list(adapters), "model": [args.model] * len(adapters), "experiment": ["tuned"] * len(adapters)}
    )  # fmt: skip
    train = split.filter(pl.col("split") == "train")
    test = split.filter(pl.col("split") == "test")
    prompt_router = ClusterRouter().fit(train, routes=routes)
    scores = score_routed_calls(test, prompt_router, adapters, args)
    scores.write_parquet(out / "routed_scores.parquet")
    # Fallback on the SLM's own confidence: a call goes to the SLM when its answer's mean token
    # probability clears the threshold, else back to GPT-4o.
    lp_router = ClusterRouter(confidence="logprob").fit(train, routes=routes)
    lp_calls = test.join(scores.select("call_id", "mean_logprob"), on="call_id", how="left")
    sweep = threshold_sweep(lp_calls, lp_router, scores, thresholds=np.round(np.linspace(0, 0.99, 34), 3))
    sweep.write_csv(out / "sweep.csv")
    with pl.Config(tbl_rows=40):
        print(sweep.select("threshold", "slm_share", "slm_agreement", "quality"))
    at = {f"{lvl:.2f}": share_at_agreement(sweep, lvl) for lvl in (0.8, 0.9, 0.95)}
    # Fallback on the router's own class probability instead: from 0.5 up, every routed call is among
    # the scored ones above, so no answer is assumed.
    proba_sweep = threshold_sweep(
        test, prompt_router, scores, thresholds=np.round(np.linspace(0.5, 0.995, 34), 3)
    )
    proba_sweep.write_csv(out / "sweep_router_probability.csv")
    at_proba = {f"{lvl:.2f}": share_at_agreement(proba_sweep, lvl) for lvl in (0.8, 0.9, 0.95)}
    routed = scores.height
    summary = {
        "held_out_calls": test.height,
        "held_out_lookups": int(test.get_column("cluster").is_in(list(adapters)).sum()),
        "routed_by_prompt": routed,
        "routed_share_by_prompt": routed / test.height,
        "routed_agreement_by_prompt": float(scores.get_column("agreement").mean()),
        "share_at_agreement": at,
        "share_at_agreement_router_probability": at_proba,
        "apgr": apgr(sweep),
    }
    print(json.dumps(summary, indent=1))
    (out / "routing.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
