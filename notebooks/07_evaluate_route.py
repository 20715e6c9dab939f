# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Evaluate the small models and fit the router
#
# Goal: measure, per accepted cluster, how often each candidate SLM gives the LLM's answer on held-out
# calls (zero-shot, with in-context examples, and with the cluster's LoRA adapter), decide which clusters
# to swap, and fit a prompt-only router that sends their calls to the SLM.
#
# **What you need:** CPU is enough (smoke: a few minutes; full: about a minute per 50 calls and
# experiment with the 135M model on 2 cores, much faster on a GPU). Notebooks 03–06 have run for the same
# `RUN` (a cluster without an adapter skips the tuned experiment with a note).

# %% tags=["parameters"]
from slmlab.config import by_scale, default_run

RUN = default_run()  # run folder shared with notebooks 01-08
MODELS = ["smollm2-135m"]  # candidate SLMs (model references, or Generator objects for an endpoint)
EXPERIMENTS = ["base", "icl", "tuned"]  # zero-shot, in-context examples, the cluster's LoRA adapter
K_ICL = 3  # in-context examples per prompt, taken from the cluster's training split
ICL = "similar"  # "similar" (nearest prompts) or "random" examples
N_EVAL = by_scale(smoke=4, cpu=24, gpu=100)  # held-out calls per cluster (CPU: few, generation is slow)
MAX_CLUSTERS = by_scale(smoke=2, cpu=1, gpu=None)  # clusters evaluated, tuned first (CPU: ~3 min each)
MAX_NEW_TOKENS = by_scale(smoke=32, cpu=128, gpu=128)  # generation budget: tool calls ~30-60, plans ~90
PROMPT_TOKENS = by_scale(smoke=384, cpu=448, gpu=1024)  # prompt budget when no adapter records its own
EMBEDDER = by_scale(smoke="tfidf", cpu="auto", gpu="auto")  # ICL + text similarity ("auto": MiniLM)
SWAP_AT = by_scale(smoke=0.0, cpu=0.9, gpu=0.9)  # swap a cluster at this agreement (smoke: all)
MIN_EVAL = by_scale(smoke=4, cpu=20, gpu=20)  # fewer evaluated calls than this -> "needs more data"
METRIC = "name_args_exact"  # verdict metric (text clusters use `agreement`: embedding similarity)
ROUTER_METHOD = "logreg"  # "logreg" (classifier probability) or "centroid" (cosine to the centroid)
SLM_COST_PER_MTOK = None  # USD per million SLM tokens for the replay; None leaves it to notebook 08
SEED = 0

# %% [markdown]
# ## 1. Inputs: clustered calls, labels, the run's split and adapters
# The labeller's merges, splits and statuses (notebook 04) are applied and the run's saved split (made
# once in notebook 06) is joined: nothing re-splits. An adapter made for another clustering or split is
# refused, and no call an adapter trained on is ever scored with it.

# %%
import polars as pl

from slmlab import evaluate, route
from slmlab.runs import RunStore
from slmlab.runtime.chat_format import PromptBudget

store = RunStore(RUN)
inputs = evaluate.load_step_inputs(store)
calls, clusters, adapters = inputs.calls, inputs.clusters, inputs.adapters
print(f"{calls.height} calls, accepted clusters: {evaluate.accepted_clusters(clusters, calls)}")
print(
    f"adapters for clusters: {sorted(adapters)}; ARI of clusters vs task tags: {evaluate.cluster_task_ari(calls)}"
)

# %% [markdown]
# ## 2. The experiment matrix
# Every accepted cluster × model × experiment on held-out calls. Generations are cached on disk, so a
# re-run only generates what changed.

# %%
scores = evaluate.run_experiments(
    calls, clusters, MODELS, adapters, experiments=EXPERIMENTS, k_icl=K_ICL, icl=ICL, n_eval=N_EVAL,
    budget=PromptBudget(max_tokens=PROMPT_TOKENS), max_new_tokens=MAX_NEW_TOKENS, embedder=EMBEDDER,
    seed=SEED, max_clusters=MAX_CLUSTERS, split_fingerprint=inputs.split_fingerprint,
)  # fmt: skip
scores.select(
    "call_id", "cluster", "experiment", "ref_action", "pred_action", "agreement", "latency_ms"
).head(8)

# %%
summary = evaluate.summarize_scores(scores)
summary.select("cluster", "model", "experiment", "n", METRIC, "agreement", "agreement_lo", "agreement_hi")

# %%
evaluate.plot_experiment_heatmap(summary, metric=METRIC)

# %% [markdown]
# ## 3. Verdicts
# Swap a cluster when its best model/experiment reaches `SWAP_AT` on at least `MIN_EVAL` calls.
#
# **At the smoke scale (`SLMLAB_SMOKE=1`) these thresholds are off by design** (`SWAP_AT = 0.0`,
# `MIN_EVAL = 4`): every evaluated cluster "swaps", whatever its agreement on those few calls, so that the
# router, the replay and notebook 08 have work. A smoke verdict says nothing about the model; at the cpu and
# gpu scales a cluster swaps at 0.9 agreement on at least 20 calls.

# %%
verdicts = evaluate.verdicts(summary, swap_at=SWAP_AT, min_eval=MIN_EVAL, metric=METRIC, adapters=adapters)
verdicts  # noqa: B018

# %% [markdown]
# ## 4. Fit the router
# It reads only the prompt (never the response), assigns the call to a cluster and sends swapped
# clusters to their SLM when it is confident enough; everything else stays on the LLM.

# %%
train = calls.filter(pl.col("split") == "train")
router = route.ClusterRouter(method=ROUTER_METHOD, routes=verdicts).fit(train)
router.save(store.router_dir())
print(f"router threshold {router.threshold:.3f}; routes:")
router.routes  # noqa: B018

# %% [markdown]
# ## 5. Replay and threshold sweep
# Held-out (test-split) calls through the router: quality (agreement with the LLM; calls kept on the LLM
# agree by definition) against the share of calls kept on the LLM, with the random router as the baseline.

# %%
evaluated = calls.filter(pl.col("call_id").is_in(scores["call_id"].implode()))
sweep = route.threshold_sweep(evaluated, router, scores)
random_sweep = route.threshold_sweep(evaluated, route.RandomRouter(routes=verdicts, seed=SEED), scores)
print(f"APGR: cluster router {route.apgr(sweep):.2f}, random {route.apgr(random_sweep):.2f}")
route.call_share_for_quality(sweep, [0.5, 0.8, 0.95])

# %%
route.plot_quality_vs_llm_share(sweep, random_sweep)

# %%
held_out = calls.filter(pl.col("split") == "test")
replay = route.replay(held_out, router, scores, slm_cost_per_mtok=SLM_COST_PER_MTOK)
replay.group_by("routed_to").agg(pl.len(), pl.col("agreement").mean(), pl.col("measured").mean())

# %% [markdown]
# ### When the router takes almost nothing: the cascade
# A prompt-only router works when the agent calls the LLM per call site (each cluster a sub-task). In a
# single agent loop the sub-task *is* the LLM's next decision, which the prompt predicts only partly. The
# cascade (`route.CascadeRouter`, registered as `"cascade"`) lets the SLM answer every call and a gate,
# fitted and calibrated on the validation split, keep its answer or send the call to the LLM; per-action
# adapters can answer again where the agent adapter took their action (`route.specialist_clusters`).
# `benchmarks/bench_taubench_swap.py` runs both arms on tau-bench and the README reports them, with
# `route.perfect_gate_share`: the most any gate could keep at 90% agreement given the SLM's answers
# (21.8% of test calls with SmolLM2-135M, so the gate is not what limits it there).

# %% [markdown]
# ## 6. Save

# %%
print(store.write_scores(scores), store.record("router")["file"], store.write_replay(replay), sep="\n")

# %% [markdown]
# ## What you produced
# `eval.parquet` (per-call scores of every experiment), `router/` (the fitted router: `router.json` +
# `state.npz`, loadable with `slmlab.route.load_router` in any process) and `replay.parquet` (every held-out
# call routed, with its measured agreement). Next: `08_savings_iterate` prices the swap.

# %% [markdown]
# ## Exercises
# - **Warm-up:** set `EXPERIMENTS = ["base", "tuned"]`: how much agreement does the adapter add over the
#   zero-shot model, and how wide are the confidence intervals at this sample size?
# - **Explore:** set `ICL = "random"` instead of `"similar"`: does the choice of examples matter?
# - **Stretch:** set `ROUTER_METHOD = "centroid"` and compare the replay's share routed and its agreement
#   with the logistic-regression router's; which would you deploy, and at what threshold?
