"""tau-bench swap: which GPT-4o calls can SmolLM2-135M take, through a prompt router or a cascade?

Measured on real logs (`../shared/data/agent-logs/tau-bench-airline`, 2,446 GPT-4o calls after dedupe):

1. The split is made ONCE (`split_by_session`, the 4 trials of a task on one side, stratified by action,
   seed 0) and saved as `benchmarks/results/taubench_split.parquet` (call_id -> train / val / test, with its
   fingerprint in the JSON). Every subset below (an action's calls, a cluster's) is a filter of it.
2. The SLM of a loop agent, two ways (the experiment matrix): **one agent adapter** tuned on the agent's
   calls of every action (capped at --cap-per-action train calls per action, all 14 tools in the prompt),
   and **per-action adapters** for the two lookups (`get_user_details`, `get_reservation_details`, each
   with only its own tool in the prompt; `--clusters actions` gives every action with enough calls one).
3. **Cascade**: the agent adapter answers every call first; a gate reads its own output (token
   probability of the action and of each argument value, schema validity, whether each id-like argument
   value occurs in the prompt, agreement with a decoding constrained to the tools' JSON schemas) and keeps
   the answer or escalates the call to GPT-4o. The gate (a logistic regression over those features, and
   each single signal for comparison) is fitted on the train split's calls held out of adapter training
   where there are any, else cross-fitted on validation, and its threshold is calibrated on the
   validation split: the lowest threshold whose Wilson lower bound on the kept calls' agreement reaches
   the target. The test split is reported separately with its CI.
4. The prompt-only `ClusterRouter` (per-action adapters, fallback on the SLM's token probability) and
   `RandomRouter` on the same quality-vs-share plot; APGR of each.

Agreement: a tool call agrees when name and arguments match GPT-4o's exactly; a text reply when
`slmlab.route.gate.text_agrees` holds (the stated metric, checked against the hand-judged pairs in
`benchmarks/results/taubench_text_judged.jsonl`).

    python benchmarks/bench_taubench_swap.py --stage train     # the agent adapter (~40 min on 2 cores)
    python benchmarks/bench_taubench_swap.py --stage cascade   # val + test generations (cached), the gate
    python benchmarks/bench_taubench_swap.py                   # all stages
    SLMLAB_SCALE=gpu python benchmarks/bench_taubench_swap.py --model Qwen/Qwen2.5-1.5B-Instruct  # one GPU
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import polars as pl

from slmlab.config import by_scale
from slmlab.runtime.chat_format import PromptBudget

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "agent-logs"
RESULTS = Path(__file__).resolve().parent / "results"
SPLIT_FILE = RESULTS / "taubench_split.parquet"
LOOKUPS = ("get_user_details", "get_reservation_details")
# The per-action arm of the cascade at the cpu scale: specialist adapters for the two lookups, each trained
# with only its own tool in the prompt; reservation ids need two passes of the 135M model to copy.
SPECIALIST_EPOCHS = {"get_reservation_details": 2.0}
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


def load_calls() -> pl.DataFrame:
    from slmlab.collect import ingest

    calls = ingest(SHARED / "tau-bench-airline" / "gpt-4o-airline.json", count_missing_tokens=False).calls
    return calls.with_columns(pl.col("session_id").str.extract(r"(task\d+)").alias("task"))


def load_split(seed: int = 0, actions: tuple[str, ...] = LOOKUPS) -> pl.DataFrame:
    """The calls with the saved split (made once, here, if the file is absent) and the action clusters."""
    from slmlab.specialize.splits import apply_split, check_leakage, split_by_session, split_table

    calls = load_calls()
    if SPLIT_FILE.exists():
        split = apply_split(calls, pl.read_parquet(SPLIT_FILE))
    else:
        split = check_leakage(split_by_session(calls, group_col="task", seed=seed))
        SPLIT_FILE.parent.mkdir(parents=True, exist_ok=True)
        split_table(split).write_parquet(SPLIT_FILE)
    return with_clusters(check_leakage(split), actions)


def split_fingerprint() -> str:
    from slmlab.runs import ids_fingerprint

    sp = pl.read_parquet(SPLIT_FILE)
    return ids_fingerprint([f"{c}={s}" for c, s in sp.select("call_id", "split").iter_rows()])


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


def agent_training_calls(split: pl.DataFrame, cap: int, seed: int) -> pl.DataFrame:
    """The agent adapter's training calls: the train split, at most `cap` calls per action (seeded).

    The cap bounds CPU training time; the train calls left out are where the learned gate is fitted
    (the adapter's answers there look like its answers on new calls, unlike on its own training calls).
    """
    train = split.filter(pl.col("split") == "train").with_columns(
        pl.col("tool_name").fill_null(RESPOND).alias("_action")
    )
    picked = (
        train.with_columns(pl.int_range(pl.len()).shuffle(seed=seed).over("_action").alias("_rank"))
        .filter(pl.col("_rank") < cap)
        .drop("_rank", "_action")
    )
    return picked


def finetune_adapter(
    data, args, folder: Path, label: str, epochs: float, save_every: int, cluster_id=None
) -> Path:
    """One LoRA run of this benchmark's settings on `data` into `folder`, with `bench_training.json`
    (examples, steps, epochs, seconds, split fingerprint) beside the adapter."""
    from slmlab.specialize import FinetuneConfig, finetune

    cfg = FinetuneConfig(
        base_model=args.model, method=args.method, max_steps=args.steps, epochs=epochs,
        batch_size=args.batch_size, max_len=max(1024, MAX_LEN), lr=args.lr, r=args.r, alpha=2 * args.r,
        warmup_steps=5, save_every=save_every, eval_every=0, cluster_id=cluster_id, seed=args.seed,
        output_dir=str(folder),
    )  # fmt: skip
    start = time.perf_counter()
    result = finetune(data, config=cfg, progress=True)
    seconds = time.perf_counter() - start
    print(f"[{label}] {len(data.train)} train examples, {result.steps} steps in {seconds:.0f}s")
    (folder / "bench_training.json").write_text(
        json.dumps({"train_examples": len(data.train), "steps": result.steps, "epochs": epochs,
                    "seconds": seconds, "split_fingerprint": split_fingerprint()})
    )  # fmt: skip
    return Path(result.adapter_dir)


def train_agent_adapter(split: pl.DataFrame, args, out: Path) -> Path:
    """One LoRA on the agent's calls of every action, all of the agent's tools in the prompt."""
    from slmlab.runtime.models import load_tokenizer
    from slmlab.specialize import build_sft_dataset, tools_for

    tok = load_tokenizer(args.model)
    picked = agent_training_calls(split, args.cap_per_action, args.seed)
    data = build_sft_dataset(picked, tok, BUDGET, tools=tools_for(split), max_len=MAX_LEN)
    print(f"[agent] {len(data.train)} train examples, dropped {data.n_dropped} over-long ones")
    return finetune_adapter(data, args, out / "ft-agent", "agent", args.epochs, save_every=50)


def train_specialists(split: pl.DataFrame, args, out: Path) -> dict[str, Path]:
    """One LoRA per specialist action (`--specialists`) on the train calls where GPT-4o took that action,
    with only that action's tool in the prompt; an adapter already trained under `out` is reused."""
    from slmlab.runtime.models import load_tokenizer
    from slmlab.specialize import build_sft_dataset, tools_for

    tok, every_tool = None, tools_for(split)
    found = {}
    for cid, name in enumerate(args.specialists, start=1):
        folder = out / f"ft-{name}"
        if (folder / "adapter_model.safetensors").exists():
            found[name] = folder
            continue
        tok = tok or load_tokenizer(args.model)
        calls = split.filter((pl.col("split") == "train") & (pl.col("tool_name") == name))
        tools = [t for t in every_tool if (t.get("function") or t).get("name") == name]
        data = build_sft_dataset(calls, tok, BUDGET, tools=tools, max_len=MAX_LEN)
        epochs = (
            SPECIALIST_EPOCHS.get(name, args.epochs)
            if args.specialist_epochs is None
            else args.specialist_epochs
        )
        found[name] = finetune_adapter(data, args, folder, name, epochs, save_every=0, cluster_id=cid)
    return found


def agent_adapter(out: Path, args) -> Path:
    """The agent adapter to evaluate: --adapter, else the finished run, else its newest checkpoint."""
    if args.adapter:
        return Path(args.adapter)
    final = out / "ft-agent"
    if (final / "adapter_model.safetensors").exists():
        return final
    ckpts = sorted((final / "checkpoints").glob("step-*"))
    if not ckpts:
        raise SystemExit(f"no agent adapter under {final}: run --stage train first")
    return ckpts[-1]


def generate_answers(calls: pl.DataFrame, adapter: Path, tools: list, args) -> tuple[list, float]:
    """The agent adapter's greedy answers to every call (cached on disk), and the wall time."""
    from slmlab.evaluate import build_prompt
    from slmlab.runtime.generate import TransformersGenerator

    gen = TransformersGenerator(args.model, adapter=adapter, batch_size=args.gen_batch_size)
    prompts = [build_prompt(r, BUDGET, gen.tokenizer, tools) for r in calls.to_dicts()]
    start = time.perf_counter()
    outs = gen.generate(prompts, max_new_tokens=args.max_new_tokens, cache=True)
    return outs, time.perf_counter() - start


def constrained_answers(
    calls: pl.DataFrame, outs: list, adapter: Path, tools: list, args
) -> tuple[list, float]:
    """Where the free answer is a tool call that fails the tools' schemas, the answer decoded under the
    schema constraint (lm-format-enforcer); None elsewhere. Decoding under the constraint costs about
    a second per token on 2 shared cores, so it runs only where it can change the answer."""
    from slmlab.evaluate import build_prompt
    from slmlab.route.gate import schema_ok
    from slmlab.runtime.constrained import tool_call_processor, tools_fingerprint
    from slmlab.runtime.generate import TransformersGenerator

    bad = [
        i for i, g in enumerate(outs) if g.tool_calls and not all(schema_ok(c, tools) for c in g.tool_calls)
    ]
    bad = bad[: args.max_constrained]
    result: list = [None] * len(outs)
    if not bad:
        return result, 0.0
    gen = TransformersGenerator(
        args.model, adapter=adapter, batch_size=args.gen_batch_size,
        logits_processor=tool_call_processor(tools), constraint="tools:" + tools_fingerprint(tools),
    )  # fmt: skip
    rows = calls.to_dicts()
    prompts = [build_prompt(rows[i], BUDGET, gen.tokenizer, tools) for i in bad]
    start = time.perf_counter()
    fixed = gen.generate(prompts, max_new_tokens=args.max_new_tokens, cache=True)
    for i, g in zip(bad, fixed, strict=True):
        result[i] = g
    return result, time.perf_counter() - start


def specialist_answers(
    calls: pl.DataFrame, outs: list, specialists: dict[str, Path], args
) -> tuple[list, list[int], float]:
    """Where the agent adapter's answer takes an action that has a specialist, that specialist's answer
    (its own prompt: only its tool, as it was trained); None elsewhere. Also the route of each call
    (`specialist_clusters`) and the wall time."""
    from slmlab.evaluate import build_prompt
    from slmlab.evaluate.inputs import adapter_prompt_setup
    from slmlab.route import specialist_clusters
    from slmlab.runtime.generate import TransformersGenerator

    names = list(specialists)
    clusters = specialist_clusters(outs, names)
    result: list = [None] * len(outs)
    rows = calls.to_dicts()
    start = time.perf_counter()
    for cid, name in enumerate(names, start=1):
        idx = [i for i, c in enumerate(clusters) if c == cid]
        if not idx:
            continue
        gen = TransformersGenerator(args.model, adapter=specialists[name], batch_size=args.gen_batch_size)
        budget, tools = adapter_prompt_setup(specialists[name], BUDGET, None)
        prompts = [build_prompt(rows[i], budget, gen.tokenizer, tools) for i in idx]
        for i, g in zip(
            idx, gen.generate(prompts, max_new_tokens=args.max_new_tokens, cache=True), strict=True
        ):
            result[i] = g
    return result, clusters, time.perf_counter() - start


def score_answers(calls: pl.DataFrame, outs: list, constrained: list, tools: list, args) -> pl.DataFrame:
    """Scores (binary agreement) and gate features of the agent adapter's answers, one row per call."""
    from slmlab.evaluate import score_calls
    from slmlab.route.gate import binary_agreement, gate_features

    answers = [c if c is not None else g for g, c in zip(outs, constrained, strict=True)]  # repaired
    scores = binary_agreement(score_calls(calls, answers, model=args.model, experiment="cascade"))
    feats = gate_features(calls, outs, tools, args.max_new_tokens, constrained)
    extra = calls.select(
        "call_id", "split", "task", pl.col("tool_name").fill_null(RESPOND).alias("ref_action_name")
    )
    return scores.join(feats, on="call_id").join(extra.drop("split"), on="call_id")


def gate_arm(
    val: pl.DataFrame,
    test: pl.DataFrame,
    args,
    routes: dict,
    features: tuple[str, ...],
    singles: tuple[str, ...],
) -> tuple[dict, dict, pl.DataFrame, object]:
    """Fit the learned gate (and each single-feature gate in `singles`) on val, calibrate it there,
    apply it unchanged to test. Returns per-gate results, test sweeps, the test table with the learned
    gate's decisions, and the learned router."""
    from slmlab.route import CascadeRouter, cascade_sweep
    from slmlab.route.gate import wilson_interval

    y_val = val.get_column("agreement").to_list()
    groups = val.get_column("task").to_list()
    results, sweeps, best = {}, {}, None
    for label, feature in {"learned": None, **{f: f for f in singles}}.items():
        router = CascadeRouter(target=args.target, feature=feature, features=features, routes=routes)
        router.fit(val, agreed=y_val, groups=groups)
        s_test = router.score(test)
        kept = s_test >= router.threshold
        y_test = test.get_column("agreement").to_numpy()
        k, hits = int(kept.sum()), int(y_test[kept].sum())
        results[label] = {
            "threshold": router.threshold, "val": router.calibration_,
            "test_kept": k, "share_of_calls": k / test.height, "agreement": hits / k if k else None,
            "ci": list(wilson_interval(hits, k)) if k else None,
        }  # fmt: skip
        sweeps[label] = cascade_sweep(s_test, y_test)
        if label == "learned":
            best = router
            test = test.with_columns(
                pl.Series("gate_score", s_test), pl.Series("kept", kept),
                pl.Series("escalation_reason", [None if k else r for k, r in zip(kept, router.gate_.reasons(test), strict=True)], dtype=pl.String),
            )  # fmt: skip
    return results, sweeps, test, best


def arm_summary(
    name: str, results: dict, sweep: pl.DataFrame, test: pl.DataFrame, router, split, args
) -> dict:
    """One arm of the cascade matrix: its calibrated result on test, the test curve, cost, reasons."""
    from slmlab.route import apgr, perfect_gate_share, share_at_agreement

    learned = results["learned"]
    return {
        "arm": name,
        "share_of_calls_at_90": learned["share_of_calls"], "agreement": learned["agreement"],
        "ci": learned["ci"], "kept_calls": learned["test_kept"], "threshold": learned["threshold"],
        "val": learned["val"], "calibrated_on": "val", "target_lower_bound": args.target,
        "best_share_on_test_curve_at_90": share_at_agreement(sweep, 0.9), "apgr": apgr(sweep),
        "all_slm_agreement_test": float(test.get_column("agreement").mean()),
        "perfect_gate_share_at_90_test": perfect_gate_share(test.get_column("agreement").fill_null(0).to_list(), 0.9),
        "all_slm_agreement_by_action_test": {
            r["ref_action_name"]: {"calls": r["n"], "agreement": r["a"]}
            for r in test.group_by("ref_action_name").agg(pl.len().alias("n"), pl.col("agreement").mean().alias("a")).sort("n", "ref_action_name", descending=True).to_dicts()
        },
        "gate_features": list(router.features),
        "gate_coef": dict(zip(router.features, router.gate_.coef_.tolist(), strict=True)),
        "gates": results,
        "escalation_reasons_test": {
            r["escalation_reason"]: r["len"]
            for r in test.filter(~pl.col("kept")).group_by("escalation_reason").len().sort("len", "escalation_reason", descending=True).to_dicts()
        },
        "savings_test": cascade_savings(split, test, args),
    }  # fmt: skip


def run_cascade(split: pl.DataFrame, args, out: Path) -> dict:
    """Generate, score and gate the val and test calls; calibrate on val, report test. Two arms: the agent
    adapter alone, and the agent adapter with the specialists answering again where it took their action.
    The arm of the headline is the one whose calibrated gate keeps more validation calls."""
    from slmlab.route.gate import GATE_FEATURES
    from slmlab.specialize import tools_for

    adapter = agent_adapter(out, args)
    specialists = train_specialists(split, args, out) if args.specialists else {}
    tools = tools_for(split)
    agent, spec, timing = {}, {}, {}
    for name in ("test", "val"):
        calls = split.filter(pl.col("split") == name)
        n = args.n_val if name == "val" and args.n_val is not None else args.n_eval
        if n:
            # a seeded shuffle then the first n: a larger n keeps these calls (cached answers reused)
            calls = calls.sample(fraction=1.0, shuffle=True, seed=args.seed).head(n)
        outs, t_gen = generate_answers(calls, adapter, tools, args)
        constrained, t_con = constrained_answers(calls, outs, adapter, tools, args)
        start = time.perf_counter()
        agent[name] = score_answers(calls, outs, constrained, tools, args)
        t_score = time.perf_counter() - start
        timing[name] = {"calls": calls.height, "generate_s": t_gen, "constrained_s": t_con,
                        "constrained_calls": sum(c is not None for c in constrained), "score_s": t_score}  # fmt: skip
        print(f"[{name}] {calls.height} calls: generated in {t_gen:.0f}s, constrained {t_con:.0f}s")
        if specialists:
            again, clusters, t_spec = specialist_answers(calls, outs, specialists, args)
            answers = [a if a is not None else g for g, a in zip(outs, again, strict=True)]
            fixed = [None if a is not None else c for c, a in zip(constrained, again, strict=True)]
            # the action's probability stays the agent adapter's (it chose the route); the rest is read
            # off the answer that is kept
            spec[name] = (
                score_answers(calls, answers, fixed, tools, args)
                .drop("p_action")
                .join(agent[name].select("call_id", "p_action"), on="call_id")
                .with_columns(pl.Series("cluster", clusters), pl.Series("specialist", [float(c > 0) for c in clusters]))
            )  # fmt: skip
            timing[name] |= {"specialist_s": t_spec, "specialist_calls": sum(a is not None for a in again)}
            print(f"[{name}] specialists answered {timing[name]['specialist_calls']} calls in {t_spec:.0f}s")
    pl.concat([agent["val"], agent["test"]], how="diagonal_relaxed").write_parquet(
        out / "cascade_scores.parquet"
    )
    arms = {}
    res, sweeps, test, router = gate_arm(agent["val"], agent["test"], args, {0: str(adapter)}, GATE_FEATURES,
                                         ("p_action", "lp_args_min", "lp_mean", "lp_min"))  # fmt: skip
    router.save(out / "cascade_router")
    test.write_parquet(out / "cascade_test.parquet")
    sweeps["learned"].write_csv(out / "cascade_sweep.csv")
    arms["agent"] = arm_summary("agent", res, sweeps["learned"], test, router, split, args)
    if specialists:
        routes = {0: str(adapter), **{i: str(specialists[n]) for i, n in enumerate(specialists, start=1)}}
        res, sweeps, test_s, router_s = gate_arm(spec["val"], spec["test"], args, routes,
                                                 (*GATE_FEATURES, "specialist"), ("lp_args_min",))  # fmt: skip
        router_s.save(out / "cascade_router_specialists")
        test_s.write_parquet(out / "cascade_test_specialists.parquet")
        arms["agent+specialists"] = arm_summary(
            "agent+specialists", res, sweeps["learned"], test_s, router_s, split, args
        )
    pick = max(arms, key=lambda a: (arms[a]["val"].get("kept") or 0, a == "agent"))
    return {
        "adapter": str(adapter), "specialists": {k: str(v) for k, v in specialists.items()},
        "timing": timing, "generation": {"batch": args.gen_batch_size, "max_new_tokens": args.max_new_tokens},
        "test_calls": agent["test"].height, "val_calls": agent["val"].height,
        "arms": arms, "headline_arm": pick,
        "headline_rule": "the arm whose calibrated gate keeps more validation calls (ties: the agent arm)",
    }  # fmt: skip


def cascade_savings(split: pl.DataFrame, test: pl.DataFrame, args) -> dict:
    """Cost and latency of the cascade on the test calls: SLM on every call (`SelfHostedSLM` defaults,
    the SLM's measured answer lengths), GPT-4o's logged cost and latency added on the escalated ones."""
    from slmlab.savings.cascade import cascade_break_even_volume, cascade_costs, cascade_summary
    from slmlab.savings.model import SelfHostedSLM

    calls = split.join(test.select("call_id", "kept", "output_tokens", "escalation_reason").rename(
        {"output_tokens": "slm_output_tokens"}), on="call_id", how="inner", maintain_order="right")  # fmt: skip
    # tau-bench logs no tokens, costs or latencies: count tokens with the bundled tokenizer and price
    # them at the dated GPT-4o list price (flagged as estimated); latency stays unknown (null).
    from slmlab.collect.pricing import estimate_cost
    from slmlab.runtime.tokens import fill_missing_tokens

    calls = estimate_cost(fill_missing_tokens(calls))
    spec = SelfHostedSLM()
    per_call = cascade_costs(
        calls, ~calls.get_column("kept"), spec, slm_output_tokens=calls.get_column("slm_output_tokens").to_list(),
        reasons=calls.get_column("escalation_reason").to_list(),
    )  # fmt: skip
    out = cascade_summary(per_call)
    out["cost_estimated_calls"] = (
        int(calls.get_column("cost_estimated").sum()) if "cost_estimated" in calls.columns else None
    )
    out["break_even_calls_per_month_dedicated_l4"] = cascade_break_even_volume(
        per_call, spec, dedicated_gpu=True
    )
    out["slm_spec"] = {"gpu": spec.gpu, "usd_per_hour": spec.usd_per_hour, "utilization": spec.utilization}
    return out


def run_baselines(split: pl.DataFrame, out: Path, args, headline: str = "agent") -> dict:
    """ClusterRouter (prompt-only: it predicts the next action, the agent adapter answers what it
    routes, the router's class probability is the threshold) and RandomRouter, on the same answers."""
    import numpy as np

    from slmlab.route import ClusterRouter, RandomRouter, apgr, cascade_sweep, share_at_agreement

    test = pl.read_parquet(out / "cascade_test.parquet")
    arms_file = {
        "agent": out / "cascade_test.parquet",
        "agent+specialists": out / "cascade_test_specialists.parquet",
    }
    actions = pick_actions(split, "actions", 1)
    train = with_clusters(split.filter(pl.col("split") == "train"), actions)
    router = ClusterRouter().fit(train, routes=list(range(len(actions))))
    calls = split.filter(pl.col("split") == "test").join(test.select("call_id"), on="call_id", how="semi")
    calls = calls.join(test.select("call_id", "agreement", "gate_score"), on="call_id", maintain_order="left")
    _, proba, _ = router.decide(calls)
    y = calls.get_column("agreement").to_numpy()
    rand = RandomRouter(seed=args.seed).score(calls)
    others = {}
    for arm, path in arms_file.items():
        if arm != headline and path.exists():
            t = calls.select("call_id").join(pl.read_parquet(path), on="call_id", how="left")
            others[f"cascade ({arm} arm)"] = cascade_sweep(
                t.get_column("gate_score").to_numpy(), t.get_column("agreement").to_numpy()
            )
    if headline != "agent":
        t = calls.select("call_id").join(pl.read_parquet(arms_file[headline]), on="call_id", how="left")
        calls = calls.with_columns(
            t.get_column("gate_score"), t.get_column("agreement").alias("agreement_headline")
        )
    y_head = calls.get_column("agreement_headline" if headline != "agent" else "agreement").to_numpy()
    sweeps = {
        "cascade": cascade_sweep(calls.get_column("gate_score").to_numpy(), y_head),
        "cluster_router": cascade_sweep(proba, y),
        "random": cascade_sweep(rand, y, thresholds=np.linspace(0, 1, 51)),
    }
    out_sweeps = {}
    for name, sw in {**sweeps, **others}.items():
        sw.write_csv(
            out / f"sweep_{name.replace(' ', '_').replace('(', '').replace(')', '').replace('+', '_')}.csv"
        )
        out_sweeps[name if name != "cascade" else f"cascade ({headline} arm)"] = sw
    res = {}
    for name, sw in sweeps.items():
        res[name] = {"apgr": apgr(sw), "share_at_90": share_at_agreement(sw, 0.9),
                     "curve": sw.select("slm_share", "slm_agreement", "quality").to_dicts()}  # fmt: skip
    # "ahead at every share": at each kept share on the cascade's curve, the others' agreement there
    grid = np.linspace(0.05, 1.0, 20)

    def at(sw: pl.DataFrame, share: float) -> float | None:
        ok = sw.filter(pl.col("slm_share") >= share - 1e-9).sort("slm_share")
        return None if ok.is_empty() else ok.row(0, named=True)["slm_agreement"]

    table = [{"share": float(g), **{n: at(sw, g) for n, sw in sweeps.items()}} for g in grid]
    # strictly ahead: a tie (e.g. every router at 0% agreement) is not "ahead"
    res["ahead_at_every_share"] = all(
        r["cascade"] is not None
        and all(r[o] is None or r["cascade"] > r[o] for o in ("cluster_router", "random"))
        for r in table
    )
    res["by_share"] = table
    res["other_arms"] = {
        n: {"apgr": apgr(sw), "share_at_90": share_at_agreement(sw, 0.9)} for n, sw in others.items()
    }
    from slmlab.route.cascade import plot_cascade_curves

    plot_cascade_curves(out_sweeps).write_html(RESULTS / "taubench_swap_curve.html", include_plotlyjs="cdn")
    return res


JUDGED = RESULTS / "taubench_text_judged.jsonl"


def judge_sample(out: Path, n: int, seed: int) -> Path:
    """Text-reply pairs to judge by hand, written with the metric's similarity and `human_agrees` null.

    Two sources, so both verdicts occur often enough: every SLM reply to a val / test call where GPT-4o
    answered in text (what the metric grades in the benchmark), then, up to `n`, pairs of GPT-4o's own
    replies at the same turn of two trials of one task (same conversation state, sometimes a different
    answer). Files: `taubench_text_to_judge.jsonl` (to fill in) -> `taubench_text_judged.jsonl`.
    """
    from slmlab.evaluate.metrics import text_similarity

    calls = load_calls()
    ref = calls.select("call_id", "response_text")
    rows = []
    if (out / "cascade_scores.parquet").exists():
        scores = pl.read_parquet(out / "cascade_scores.parquet").filter(pl.col("name_args_exact").is_null())
        for r in scores.join(ref, on="call_id").sort("call_id").iter_rows(named=True):
            rows.append({"source": "slm_vs_gpt4o", "call_id": r["call_id"], "reference": r["response_text"],
                         "candidate": r["pred_text"], "similarity": round(float(r["text_similarity"] or 0.0), 4)})  # fmt: skip
    text = calls.filter(pl.col("tool_name").is_null() & pl.col("response_text").is_not_null())
    text = text.with_columns(pl.col("session_id").str.extract(r"trial(\d+)").alias("trial"))
    a = text.filter(pl.col("trial") == "0").select("task", "step", "call_id", "response_text")
    b = text.filter(pl.col("trial") == "1").select("task", "step", pl.col("response_text").alias("other"))
    pairs = a.join(b, on=["task", "step"]).filter(pl.col("response_text") != pl.col("other"))
    pairs = pairs.sample(min(max(n - len(rows), 0), pairs.height), seed=seed)
    if pairs.height:
        sims = text_similarity(pairs["response_text"].to_list(), pairs["other"].to_list(), "auto")
        for r, sim in zip(pairs.iter_rows(named=True), sims, strict=True):
            rows.append({"source": "gpt4o_trial0_vs_trial1", "call_id": r["call_id"], "reference": r["response_text"],
                         "candidate": r["other"], "similarity": round(float(sim), 4)})  # fmt: skip
    path = RESULTS / "taubench_text_to_judge.jsonl"
    with path.open("w") as fh:
        for r in rows:
            fh.write(json.dumps(r | {"human_agrees": None}, ensure_ascii=False) + "\n")
    return path


def judged_check() -> dict | None:
    """How often the stated metric's verdict (cosine >= threshold) matches the hand verdicts."""
    from slmlab.route.gate import TEXT_AGREEMENT_THRESHOLD, text_agrees

    if not JUDGED.exists():
        return None
    pairs = [json.loads(line) for line in JUDGED.read_text().splitlines() if line.strip()]
    pairs = [p for p in pairs if p.get("human_agrees") is not None]
    metric = [bool(m) for m in text_agrees([p["similarity"] for p in pairs])]
    human = [bool(p["human_agrees"]) for p in pairs]
    tp = sum(m and h for m, h in zip(metric, human, strict=True))
    fp = sum(m and not h for m, h in zip(metric, human, strict=True))
    fn = sum(h and not m for m, h in zip(metric, human, strict=True))
    sweep = {}
    for t in (0.6, 0.7, 0.75, 0.8, 0.85, 0.9):
        v = text_agrees([p["similarity"] for p in pairs], t)
        sweep[str(t)] = round(float(sum(a == b for a, b in zip(v, human, strict=True)) / len(pairs)), 4)
    return {"pairs": len(pairs), "threshold": TEXT_AGREEMENT_THRESHOLD, "human_agree": sum(human),
            "metric_agree": int(sum(metric)), "accuracy": sum(m == h for m, h in zip(metric, human, strict=True)) / len(pairs),
            "false_accepts": fp, "false_rejects": fn, "true_accepts": tp, "accuracy_by_threshold": sweep}  # fmt: skip


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _gate_rows(gates: dict) -> str:
    return "\n".join(
        f"| {name} | {g['threshold']:.4g} | {_pct(g['val'].get('share'))} ({g['val'].get('kept')}) at "
        f"{_pct(g['val'].get('agreement'))}, LB {_pct(g['val'].get('lower'))} | {_pct(g['share_of_calls'])} "
        f"({g['test_kept']}) | {_pct(g['agreement'])} | "
        + ("—" if not g["ci"] else f"{_pct(g['ci'][0])}–{_pct(g['ci'][1])}")
        + " |"
        for name, g in gates.items()
    )


def readme_text(r: dict) -> str:
    """The README section, generated from `taubench_swap.json` (so the text and the figures agree)."""
    c, run = r["cascade"], r.get("cascade_run", {})
    arms = r.get("cascade_arms") or {c.get("arm", "agent"): c}
    cr, rr, cmp_ = r.get("cluster_router", {}), r.get("random_router", {}), r.get("comparison", {})
    t = run.get("timing", {}).get("test", {})
    gen = run.get("generation", {})
    lo, hi = (c.get("ci") or [None, None])[:2]
    arm_rows = "\n".join(
        f"| {name} | {_pct(a.get('val', {}).get('share'))} ({a.get('val', {}).get('kept')}) | "
        f"{_pct(a['share_of_calls_at_90'])} ({a['kept_calls']}) | {_pct(a['agreement'])} | "
        + ("—" if not a.get("ci") else f"{_pct(a['ci'][0])}–{_pct(a['ci'][1])}")
        + f" | {_pct((a.get('best_share_on_test_curve_at_90') or {}).get('slm_share'))} | {a.get('apgr', float('nan')):.3f} | "
        f"{_pct(a.get('all_slm_agreement_test'))} |"
        for name, a in arms.items()
    )
    gate_tables = "\n\n".join(
        f"Gates of the {name} arm:\n\n| gate | threshold | validation: kept share (calls) at agreement, Wilson LB "
        f"| test: kept share (calls) | test agreement | 95% CI |\n|---|---|---|---|---|---|\n{_gate_rows(a.get('gates', {}))}"
        for name, a in arms.items()
    )
    names = list(arms)
    by_action = {}
    for name, a in arms.items():
        for act, v in a.get("all_slm_agreement_by_action_test", {}).items():
            by_action.setdefault(act, {"calls": v["calls"]})[name] = v["agreement"]
    acts = "\n".join(
        f"| `{act}` | {v['calls']} | " + " | ".join(_pct(v.get(n)) for n in names) + " |"
        for act, v in by_action.items()
    )
    sav = c.get("savings_test", {})
    tm = r.get("text_metric_check") or {}
    goal_met = (c.get("share_of_calls_at_90") or 0) >= 0.4
    spec = run.get("specialists") or {}
    ceilings = {n: a.get("perfect_gate_share_at_90_test") for n, a in arms.items()}
    ceiling = (
        "Even a perfect gate (one that knew which answers agree) keeps at most "
        + ", ".join(f"{_pct(v)} ({n})" for n, v in ceilings.items() if v is not None)
        + " of the test calls at 90% agreement: the SLM's own agreement, not the gate, bounds the share, and a "
        "40% share needs an SLM that agrees with GPT-4o on at least 36% of all calls. "
        if any(v is not None for v in ceilings.values())
        else ""
    )
    return f"""### The cascade on tau-bench: the SLM answers first, GPT-4o only where the gate escalates (`benchmarks/bench_taubench_swap.py`)

Two arms on SmolLM2-135M, the experiment matrix of the cascade. **agent**: one LoRA for the whole agent
(`{run.get("adapter", "?")}`; every action, at most {r.get("train", {}).get("cap_per_action", "?")} train calls per action, all
14 tools in a 576-token prompt with the evidence note) answers every held-out call. **agent+specialists**: the
same agent adapter answers first; where its answer takes a lookup action, that lookup's own adapter
({", ".join(f"`{k}`" for k in spec)}; trained on the train calls of that action only, with only its tool in
the prompt, one epoch) answers again, and that answer is kept or escalated; the action's probability stays
the agent adapter's. Each arm's gate (logistic regression over {", ".join(c.get("gate_features", []))}) is
fitted and calibrated on the validation split ({run.get("val_calls")} calls, 5-fold cross-fitted by task,
threshold = the lowest whose Wilson lower bound on the kept calls reaches 90%) and applied unchanged to the
test split ({run.get("test_calls")} calls). The headline arm is picked on validation ({run.get("headline_rule")}): **{c.get("arm")}**.
Split: `{r["split"]["file"]}` (fingerprint `{r["split"]["fingerprint"]}`), made once with `split_by_session`
(task-grouped, stratified by action, seed {r["split"]["seed"]}).

**Result (test split): the cascade keeps {_pct(c.get("share_of_calls_at_90"))} of all held-out calls on the SLM
({c.get("kept_calls")} of {run.get("test_calls")}) at {_pct(c.get("agreement"))} agreement (95% CI {_pct(lo)}–{_pct(hi)}).**
Goal ≥ 40% at ≥ 90%: {"met" if goal_met else "NOT met"}. {ceiling}APGR: cascade {c.get("apgr", float("nan")):.2f},
`ClusterRouter` {cr.get("apgr", float("nan")):.2f}, random {rr.get("apgr", float("nan")):.2f}; share at ≥ 90% on the test curves: cluster
router {_pct((cr.get("share_at_90") or {}).get("slm_share"))}, random {_pct((rr.get("share_at_90") or {}).get("slm_share"))}. Cascade ahead
of both at every share (20 points, 5–100%): {cmp_.get("ahead_at_every_share")}. Curves: `benchmarks/results/taubench_swap_curve.html`.

| arm | validation: calibrated kept share (calls) | test: kept share (calls) | test agreement | 95% CI | best test-curve share at ≥ 90% (uncalibrated) | APGR | agreement if the SLM answered everything |
|---|---|---|---|---|---|---|---|
{arm_rows}

{gate_tables}

Agreement on every test call, by GPT-4o's action (exact name + arguments for tool calls, MiniLM cosine ≥
{tm.get("threshold", 0.8)} for text replies):

| action | test calls | {" | ".join(names)} |
|---|---|{"---|" * len(names)}
{acts}

Text-reply metric check: {tm.get("pairs", 0)} hand-judged pairs (`benchmarks/results/taubench_text_judged.jsonl`); the
metric's verdict matches the hand verdict on {_pct(tm.get("accuracy"))} ({tm.get("false_accepts")} false accepts,
{tm.get("false_rejects")} false rejects; accuracy by threshold {tm.get("accuracy_by_threshold")}).

Cost of the headline arm on the test calls (tokens counted with the bundled tokenizer, GPT-4o list price:
tau-bench logs no costs; SLM at the `SelfHostedSLM` defaults, an L4 at $0.80/h, 50% utilization): before
${sav.get("cost_before_usd", 0):.2f}, after ${sav.get("cost_after_usd", 0):.2f} (saved {_pct(sav.get("saved_share"))});
cost per call ${sav.get("cost_per_call_before_usd") or 0:.5f} → ${sav.get("cost_per_call_after_usd") or 0:.5f};
escalation share {_pct(sav.get("escalation_share"))}, break-even escalation share {_pct(sav.get("break_even_escalation_share"))}.
Why calls escalated (the gate's weakest signal): {c.get("escalation_reasons_test")}.

Bundle: `export_bundle(..., cascade=router)` writes the gate and threshold (`cascade/`), the adapters its
routes name and the vLLM multi-LoRA command (`{(r.get("bundle") or {}).get("serve")}`); loaded back in a fresh process
(threshold {(r.get("bundle") or {}).get("fresh_process_threshold")}).

Evaluation time: the test split took {t.get("generate_s", 0):.0f} s to generate with the agent adapter (batch
{gen.get("batch", "?")}, up to {gen.get("max_new_tokens", "?")} new tokens; answers already in the generation cache are read back), {t.get("specialist_s", 0):.0f} s for
the specialists ({t.get("specialist_calls")} calls), {t.get("constrained_s", 0):.0f} s of constrained re-decoding ({t.get("constrained_calls")} answers) and {t.get("score_s", 0):.0f} s to score,
on {r["machine"]["cpu"]} ({r["machine"]["cores"]} cores, native bf16 {r["machine"]["native_bf16"]}), load average at the end
{[round(x, 1) for x in r["machine"]["load_avg_at_end"]]} (about {r["machine"]["cores"]} is this benchmark alone).
"""


def export_cascade_bundle(out: Path, router_dir: Path) -> dict:
    """The cascade as a deployable bundle (gate + threshold + the agent adapter, vLLM multi-LoRA command),
    checked by loading it back in a fresh process."""
    import subprocess
    import sys

    from slmlab.pipeline.bundle import export_bundle

    path = export_bundle("bench-taubench-cascade", out / "bundle", cascade=router_dir)
    manifest = json.loads((path / "bundle.json").read_text())
    code = "import sys; from slmlab.pipeline.bundle import load_cascade; r = load_cascade(sys.argv[1]); print(r.threshold)"
    res = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return {"path": str(path), "cascade": manifest["cascade"] | {"gate": None}, "serve": manifest["serve"],
            "fresh_process_threshold": res.stdout.strip()}  # fmt: skip


def training_info(out: Path, adapter: str | None = None) -> dict:
    """What the evaluated agent adapter was trained on: steps, examples seen, seconds (from history.jsonl,
    up to the checkpoint's step when a checkpoint was evaluated)."""
    path = out / "ft-agent" / "bench_training.json"
    info = json.loads(path.read_text()) if path.exists() else {}
    hist = out / "ft-agent" / "history.jsonl"
    if hist.exists():
        rows = [json.loads(line) for line in hist.read_text().splitlines() if line.strip()]
        last = int(Path(adapter).name.split("-")[-1]) if adapter and "step-" in str(adapter) else None
        rows = [r for r in rows if last is None or r["step"] <= last]
        seen = [i for r in rows for i in r.get("example_ids") or []]
        info |= {"steps_evaluated": len(rows), "examples_seen": len(seen), "unique_examples_seen": len(set(seen)),
                 "train_seconds": sum(r.get("step_s") or 0 for r in rows),
                 "mean_tokens_per_s": sum(r.get("tokens") or 0 for r in rows) / max(sum(r.get("step_s") or 0 for r in rows), 1e-9),
                 "epoch_at_checkpoint": rows[-1]["epoch"] if rows else None}  # fmt: skip
    return info


def machine_info() -> dict:
    import os
    import platform

    from slmlab.runtime.models import cpu_has_native_bf16

    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), platform.processor())  # fmt: skip
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "native_bf16": cpu_has_native_bf16(),
        "load_avg_at_end": os.getloadavg(),
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=by_scale("smollm2-135m", "smollm2-135m", "Qwen/Qwen2.5-1.5B-Instruct"))
    p.add_argument("--method", default="lora", choices=("lora", "qlora"), help="qlora: nf4 base")
    p.add_argument("--stage", default="all", choices=("all", "train", "cascade", "router", "judge", "report"))
    p.add_argument("--cap-per-action", type=int, default=by_scale(20, 200, 100000),
                   help="agent adapter: most train calls per action (bounds CPU training time)")  # fmt: skip
    p.add_argument("--steps", type=int, default=-1, help="optimizer steps (> 0 overrides --epochs)")
    p.add_argument("--epochs", type=float, default=by_scale(1.0, 1.0, 2.0))
    p.add_argument("--batch-size", type=int, default=by_scale(1, 1, 4), help="packed rows per step")
    p.add_argument("--gen-batch-size", type=int, default=by_scale(8, 8, 32))
    p.add_argument("--lr", type=float, default=by_scale(1e-3, 1e-3, 2e-4))
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=96, help="a lookup call is ~40 tokens, a reply more")
    p.add_argument("--target", type=float, default=0.9, help="agreement the gate is calibrated to")
    p.add_argument("--readme", default="/work/notes/readme_14.md", help="where --stage report writes")
    p.add_argument("--adapter", default=None, help="agent adapter folder (default: the trained one)")
    p.add_argument("--n-eval", type=int, default=None, help="sample this many val / test calls (all)")
    p.add_argument("--n-val", type=int, default=None, help="sample this many val calls (default: --n-eval)")
    p.add_argument("--max-constrained", type=int, default=by_scale(0, 0, 400),
                   help="most schema-invalid answers re-decoded under the constraint")  # fmt: skip
    p.add_argument(
        "--specialists",
        nargs="*",
        default=list(LOOKUPS),
        help="actions that get a specialist adapter behind the agent adapter (the per-action arm)",
    )
    p.add_argument(
        "--specialist-epochs",
        type=float,
        default=None,
        help="epochs of every specialist (default: --epochs, two for get_reservation_details)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=".slmlab/bench-taubench-swap")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if not SHARED.exists():
        raise SystemExit(f"{SHARED} not found: this benchmark needs the shared tau-bench logs")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    split = load_split(args.seed)
    print(split.group_by("split").len().sort("split"))
    agent = out / "ft-agent"
    if args.stage in ("all", "train") and not (agent / "adapter_model.safetensors").exists():
        train_agent_adapter(split, args, out)
    if args.stage in ("all", "train"):
        train_specialists(split, args, out)
    if args.stage == "train":
        return
    if args.stage == "report":
        r = json.loads((RESULTS / "taubench_swap.json").read_text())
        for name, arm in r.get("cascade_arms", {}).items():  # results written before the ceiling was reported
            test_file = out / (
                "cascade_test_specialists.parquet" if name == "agent+specialists" else "cascade_test.parquet"
            )
            if "perfect_gate_share_at_90_test" not in arm and test_file.exists():
                from slmlab.route import perfect_gate_share

                agreed = pl.read_parquet(test_file).get_column("agreement").fill_null(0).to_list()
                arm["perfect_gate_share_at_90_test"] = perfect_gate_share(agreed, 0.9)
        if r.get("cascade", {}).get("arm") in r.get("cascade_arms", {}):
            r["cascade"]["perfect_gate_share_at_90_test"] = r["cascade_arms"][r["cascade"]["arm"]].get(
                "perfect_gate_share_at_90_test"
            )
        r["text_metric_check"] = judged_check()
        router_dir = out / (
            "cascade_router_specialists"
            if r["cascade"].get("arm") == "agent+specialists"
            else "cascade_router"
        )
        if (router_dir / "router.json").exists():
            r["bundle"] = export_cascade_bundle(out, router_dir)
        # first (uncached) generation passes, as their logs recorded them: a re-run reads the cache
        import re

        r["generation_logs"] = sorted(
            {m for log in out.glob("*.log") for m in re.findall(r"\[(?:test|val)\] \d+ calls: generated in \d+s", log.read_text(errors="replace"))}
        )  # fmt: skip
        (RESULTS / "taubench_swap.json").write_text(json.dumps(r, indent=1, default=str))
        Path(args.readme).write_text(readme_text(r))
        print(readme_text(r))
        return
    if args.stage == "judge":
        print(judge_sample(out, 60, args.seed))
        return
    results_path = RESULTS / "taubench_swap.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    if args.stage in ("all", "cascade"):
        run = run_cascade(split, args, out)
        results["cascade_arms"] = run.pop("arms")
        results["cascade_run"] = run
        results["cascade"] = dict(results["cascade_arms"][run["headline_arm"]])
    if args.stage in ("all", "cascade", "router"):
        base = run_baselines(split, out, args, results.get("cascade", {}).get("arm", "agent"))
        results["cluster_router"] = base.pop("cluster_router")
        results["random_router"] = base.pop("random")
        results["cascade"]["curve"] = base.pop("cascade")
        results["comparison"] = base
    results["split"] = {"file": str(SPLIT_FILE.relative_to(RESULTS.parent.parent)), "fingerprint": split_fingerprint(),
                        "calls": split.group_by("split").len().sort("split").to_dicts(), "seed": args.seed}  # fmt: skip
    results["machine"] = machine_info()
    results["train"] = {
        "cap_per_action": args.cap_per_action,
        **training_info(out, results.get("cascade_run", {}).get("adapter")),
    }
    results["text_metric_check"] = judged_check()
    results_path.write_text(json.dumps(results, indent=1, default=str))
    print(json.dumps(results["cascade"], indent=1, default=str)[:3000])


if __name__ == "__main__":
    main()
