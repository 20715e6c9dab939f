# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Select candidate small models
#
# Goal: for each cluster accepted in notebook 04, find the small models that fit your GPU, your licence
# rules and the cluster's shape, and see how the best one answers before any training.
#
# **What you need:** CPU, 2–5 minutes (the probe runs the bundled 135M model on CPU; on a GPU it runs the
# top-ranked model, which then downloads once). Notebooks 03 and 04 have run for the same `RUN`; without
# labels from notebook 04, the clusters with the highest suitability are used.

# %% tags=["parameters"]
from slmlab.config import by_scale, default_run

RUN = default_run()  # run folder shared with notebooks 01-08
TRAIN_GPU = "cpu"  # where you fine-tune: "cpu", "T4", "L4", "A10G", "4090", "A100 40GB/80GB", "H100", "H200"
MODE = "qlora"  # "qlora" (4-bit base + LoRA), "lora", "full", or "inference" (use zero-shot, no training)
LICENSES = None  # None = any licence; or e.g. ["permissive"], ["commercial"], ["apache-2.0", "mit"]
MAX_PARAMS_B = None  # drop candidates above this many billion parameters; None = no cap
PROMPT_TOKENS = by_scale(smoke=384, cpu=448, gpu=1024)  # prompt budget in tokens, as in notebooks 06-07
FALLBACK_TOP = 3  # clusters to rank when notebook 04 marked none as "slm_candidate"
MEMORY_MODELS = [  # models compared in the memory chart
    "smollm2-135m",
    "Qwen/Qwen2.5-0.5B-Instruct",
    "Qwen/Qwen3-1.7B",
    "meta-llama/Llama-3.2-3B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct",
]
PROBE_MODEL = None  # None = the top-ranked model of the top cluster; or a name like "smollm2-135m"
PROBE_CALLS = by_scale(smoke=5, cpu=8, gpu=20)  # calls of the top cluster the probe runs on
PROBE_MAX_NEW_TOKENS = by_scale(smoke=48, cpu=64, gpu=128)  # generation limit per call

# %% [markdown]
# ## 1. The clusters to find models for
# The clusters you marked "slm_candidate" in notebook 04 (or the most suitable ones), with the numbers that
# decide the choice: prompt length (context), answer length and shape (a tool call needs tool calling).

# %%
import polars as pl

from slmlab import select
from slmlab.runs import RunStore
from slmlab.runtime.chat_format import PromptBudget

cands = select.load_candidates(RUN, fallback_top=FALLBACK_TOP)
print(f"{cands.clusters.height} clusters, chosen by {cands.source}")
cands.clusters.select(
    "cluster", "name", "size", "output_shape", "p90_input_tokens", "mean_output_tokens", "suitability"
)

# %% [markdown]
# ## 2. The catalog
# SLMs people use for agents, with the numbers the memory estimate needs and published benchmark figures
# (each with its source in `bench_notes` / `source`; empty where none was published). Add your own models
# with `select.load_catalog(extra=[...])`.

# %%
catalog = select.load_catalog()
catalog.select(
    "hub_id",
    "params_b",
    "context_length",
    "license",
    "tool_calling",
    "mmlu",
    "ifeval",
    "gsm8k",
    "bfcl",
    "date",
)

# %% [markdown]
# ## 3. Memory: what fits where
# Estimated peak memory to fine-tune each model at 2k tokens: LoRA on bf16 or int8 weights, QLoRA on nf4.
# The dashed line is what your GPU can use. The estimate is checked against measured footprints in the tests.

# %%
gpu = select.get_gpu(TRAIN_GPU)
memory = select.memory_table(MEMORY_MODELS, ("bf16", "int8", "nf4"), context_tokens=2048, mode="qlora")
select.plot_memory(memory, gpu)

# %%
print(select.estimate_memory("Qwen/Qwen2.5-7B-Instruct", mode="qlora", context_tokens=2048).assumptions)

# %% [markdown]
# ## 4. Ranking per cluster
# Each candidate is checked for memory, context, licence and tool calling; the score prefers the smallest
# model whose quality clears the cluster's difficulty bar (see `select.rank_models`). On a CPU the bundled
# 135M model ranks first, so the laptop path needs no download.

# %%
ranking = select.rank_models(
    cands.clusters,
    gpu,
    catalog,
    licenses_allowed=LICENSES,
    mode=MODE,
    max_params_b=MAX_PARAMS_B,
    max_prompt_tokens=PROMPT_TOKENS,
)
select.best_per_cluster(ranking).select(
    "cluster", "cluster_name", "hub_id", "params_b", "train_gb", "quality", "bar", "score"
)

# %% [markdown]
# All candidates of the top cluster, with the reason each excluded one is out:

# %%
top = cands.clusters.get_column("cluster")[0]
ranking.filter(pl.col("cluster") == top).select(
    "rank",
    "hub_id",
    "params_b",
    "train_gb",
    "fits",
    "context_ok",
    "license_ok",
    "tool_ok",
    "score",
    "reasons",
)

# %% [markdown]
# ## 5. Zero-shot probe
# The top model, untrained, on a few calls of the top cluster, with prompts built exactly as training will
# build them. Expect little from a small model here: this is the baseline notebook 06 improves on.

# %%
top_calls = cands.calls.filter(pl.col("cluster") == top)
probe = select.zero_shot_probe(
    top_calls,
    PROBE_MODEL or select.best_model(ranking, top),
    n=PROBE_CALLS,
    budget=PromptBudget(max_tokens=PROMPT_TOKENS),
    max_new_tokens=PROBE_MAX_NEW_TOKENS,
)
select.probe_summary(probe)

# %%
probe.select("logged_action", "generated_action", "tool_match", "json_valid", "generated_text", "latency_ms")

# %% [markdown]
# ## 6. Save the ranking
# Notebook 06 reads the top-ranked model of each cluster from here.

# %%
RunStore(RUN).write_ranking(ranking)

# %% [markdown]
# ## What you produced / next notebook
# - `ranking.parquet` in the run folder: every (cluster, candidate) with fits / context / licence / tool
#   checks, the reasons for exclusions, the score and the rank.
# - A first look at how the best candidate does before training.
#
# Next: **06_specialize_model** fine-tunes the top-ranked model of each cluster on the LLM's own answers.

# %% [markdown]
# ## Exercises
# - **Warm-up:** set `TRAIN_GPU = "T4"`: which candidates fit for QLoRA, and which only for inference?
# - **Explore:** set `LICENSES = ["apache-2.0"]` and `MAX_PARAMS_B = 1.0`: how does the ranking change, and
#   what do the exclusion reasons say?
# - **Stretch:** set `PROBE_MODEL` to the second-ranked candidate and compare its zero-shot probe with the
#   top one's; what would you need to see before skipping fine-tuning (`MODE = "inference"`)?
