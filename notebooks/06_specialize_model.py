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
# # 06 · Specialize a small model
#
# Goal: fine-tune a small model with LoRA / QLoRA on the LLM's own answers for one recurring sub-task
# (cluster), and see what it learned next to the LLM and the untuned model.
#
# **What you need:** CPU is enough for SmolLM2-135M (smoke run: ~2 minutes; the CPU default of 40 steps: ~5 min on
# 2 cores); a GPU for 0.5B+ models or QLoRA at speed. Notebooks 01–03 (and ideally 04–05) have run for
# the same `RUN`.

# %% tags=["parameters"]
from slmlab.config import by_scale, default_run

RUN = default_run()  # run folder shared with notebooks 01-08
CLUSTERS = None  # cluster ids to tune; None = the top accepted / most suitable tool-calling cluster
BASE_MODEL = by_scale(smoke="smollm2-135m", cpu="smollm2-135m", gpu=None)  # None = notebook 05's choice
METHOD = "lora"  # "lora" (fp32/bf16 base) or "qlora" (nf4 base via bitsandbytes)
STEPS = by_scale(smoke=3, cpu=40, gpu=300)  # optimizer steps
BATCH_ROWS = 1  # packed rows per step (each row holds several calls)
MAX_LEN = by_scale(smoke=640, cpu=1024, gpu=2048)  # tokens per packed row
PROMPT_TOKENS = by_scale(smoke=384, cpu=448, gpu=1024)  # prompt budget: system head, tools, latest turns
MAX_CALLS_PER_SPLIT = by_scale(smoke=16, cpu=100_000, gpu=100_000)  # cap on the cluster's calls per split
LR = 1e-3  # LoRA learning rate (high: few steps, small model)
LORA_R = 16  # LoRA rank
SAVE_EVERY = 20  # checkpoint every N steps; re-running the cell resumes from the last one
N_SHOW = 3  # held-out calls shown side by side
TEST_SIZE, VAL_SIZE, SEED = 0.2, 0.1, 0  # the run's one split (made here once; every later step reads it)

# %% [markdown]
# ## 1. Pick the cluster and the base model
# The labeller's accepted clusters come first (notebook 04), else the most suitable tool-calling one;
# the base model is the ranking's first choice for it (notebook 05).

# %%
from slmlab.specialize import pick_targets

target = pick_targets(RUN, clusters=CLUSTERS, base_model=BASE_MODEL)[0]
dict(
    cluster=target.cluster,
    name=target.name,
    base_model=target.base_model,
    calls=target.calls.height,
    source=target.source,
)

# %% [markdown]
# ## 2. The run's split, made once
# Whole conversations go to one side, stratified by action, over all curated calls of the run. It is
# saved (`split.parquet`) and every later step (ICL examples, evaluation, the router, the replay) reads
# it; this cluster's split is a filter of it. Re-running this cell returns the saved split unchanged.

# %%
import polars as pl

from slmlab.runs import RunStore
from slmlab.specialize.splits import apply_split, check_leakage, make_run_split, split_summary

store = RunStore(RUN)
run_split = make_run_split(store, test_size=TEST_SIZE, val_size=VAL_SIZE, seed=SEED)
split = check_leakage(apply_split(target.calls, run_split))
split_summary(split)

# %% [markdown]
# ## 3. SFT data from the LLM's answers
# Prompts are fitted to the budget: the system head, the latest turns, and a short note of what the
# dropped turns held (the calls made, the ids no call has used yet, snippets around other ids). On the
# tau-bench lookups that note took a CPU-tuned 135M model from 54% to 89% exact reservation lookups.
# The loss sees only the LLM's answer. `n_prompt` / `n_target` are token counts.

# %%
from slmlab.runtime.chat_format import PromptBudget
from slmlab.runtime.models import load_tokenizer
from slmlab.specialize import build_sft_dataset

budget = PromptBudget(
    max_system_chars=300, max_message_chars=600, max_turns=6, max_tokens=PROMPT_TOKENS, max_evidence_chars=400
)
capped = split.filter(pl.int_range(pl.len()).over("split") < MAX_CALLS_PER_SPLIT)
tokenizer = load_tokenizer(target.base_model)
data = build_sft_dataset(capped, tokenizer, budget, max_len=MAX_LEN, progress=True)
data.to_frame().group_by("split").agg(pl.len(), pl.col("n_prompt").mean(), pl.col("n_target").mean())

# %% [markdown]
# ## 4. Memory before training

# %%
from slmlab.specialize import memory_stats

memory_stats()

# %% [markdown]
# ## 5. Train
# Packed rows, checkpoints every `SAVE_EVERY` steps; if the kernel dies, re-run this cell to resume.
# The adapter records its provenance (cluster and split fingerprints) and `training_calls.json`, the ids
# of the calls it saw, so notebook 07 can refuse it for another clustering and prove it scores unseen calls.

# %%
from slmlab.specialize import FinetuneConfig, finetune
from slmlab.specialize.provenance import adapter_provenance

out_dir = store.adapter_dir(target.cluster)
config = FinetuneConfig(
    base_model=target.base_model, method=METHOD, r=LORA_R, alpha=2 * LORA_R, lr=LR, max_steps=STEPS, batch_size=BATCH_ROWS,
    max_len=MAX_LEN, save_every=SAVE_EVERY, warmup_steps=min(5, STEPS // 3), output_dir=str(out_dir), cluster_id=target.cluster,
)  # fmt: skip
result = finetune(data, config=config, provenance=adapter_provenance(store, target.cluster, split))
dict(
    steps=result.steps,
    train_loss=result.train_loss,
    eval_loss=result.eval_loss,
    wall_s=round(result.wall_time_s),
    adapter=str(result.adapter_dir),
)

# %%
from slmlab.specialize import plot_history

plot_history(result.history, f"LoRA on cluster {target.cluster} ({target.name})")

# %% [markdown]
# ## 6. Memory after training
# Peak = `torch.cuda.max_memory_allocated` on a GPU, peak process RSS on a CPU.

# %%
dict(peak_mb=round(result.peak_memory_mb), model_mb=round(result.model_memory_mb), **memory_stats())

# %% [markdown]
# ## 7. LLM vs base SLM vs tuned SLM on held-out calls

# %%
from slmlab.runtime.generate import TransformersGenerator
from slmlab.specialize import call_prompts, side_by_side

test = capped.filter(pl.col("split") == "test").head(N_SHOW)
prompts = call_prompts(test, tokenizer, data.budget, data.tools)
base = TransformersGenerator(target.base_model, batch_size=N_SHOW, name="base")
tuned = TransformersGenerator(
    target.base_model, adapter=str(result.adapter_dir), batch_size=N_SHOW, name="tuned"
)
side_by_side(test, prompts, {"base": base, "tuned": tuned}, max_new_tokens=48)

# %% [markdown]
# ## What you produced / next notebook
# - The run's split (`split.parquet`): call_id -> train / val / test, read by every later step.
# - A LoRA adapter in `adapters/cluster_<id>` with `slmlab_adapter.json` (base model, cluster and split
#   fingerprints, data hash, hyper-parameters, prompt budget, tool list, metrics), `training_calls.json`
#   (the ids of its training and validation calls), its `history.jsonl` and checkpoints.
# - Next: **07_evaluate_route** scores the tuned model against the LLM on the held-out sessions and
#   decides which clusters to route to it.

# %% [markdown]
# ## Exercises
# - **Warm-up:** double `STEPS` and re-run: training resumes from the last checkpoint; does the eval loss
#   keep falling?
# - **Explore:** try `LORA_R = 8` and `LORA_R = 32`: trainable parameters, step time and loss side by side.
# - **Stretch:** on a GPU, set `METHOD = "qlora"` and `BASE_MODEL = None` (notebook 05's choice); compare
#   the memory before and after training with the estimate of notebook 05.
