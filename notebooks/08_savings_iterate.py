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
# # 08 · Savings dashboard and iteration
#
# Goal: put a price on the swap — monthly cost before and after, per cluster and per agent, the
# break-even volume — and check next month's logs for drift that calls for re-training.
#
# **What you need:** CPU, about a minute. Notebooks 01–07 have run for the same `RUN` (the replay of
# notebook 07 decides which calls move to an SLM; without it, the accepted clusters of notebook 04 do).

# %% tags=["parameters"]
from slmlab.config import default_run, is_smoke

RUN = default_run()  # run folder shared with notebooks 01-07
SERVE_GPU = "L4 24GB"  # the GPU that serves the SLMs (a name for the plots)
GPU_USD_PER_HOUR = 0.80  # on-demand list price of that GPU
UTILIZATION = 0.5  # share of the GPU's time that is busy: 0.2 means every token costs 5x
PREFILL_TOK_S = 20000  # prompt tokens/s at the serving batch size (vLLM, 1B model, L4)
DECODE_TOK_S = 2000  # generated tokens/s summed over the batch
SLM_PARAMS_B = 0.135  # active parameters of the served SLM, billions (energy estimate)
ENGINEERING_USD_MONTH = 200.0  # fixed monthly cost of running the SLM stack
CALLS_PER_MONTH = None  # None: the whole log's observed rate (the replay holds the test split only)
PRODUCTION_CALLS_PER_MONTH = None  # volume the savings are stated at; None: 10x break-even, rounded (1-2-5)
NEW_LOG_CALLS = 300 if is_smoke() else 1500  # size of "next month's" logs for the drift check

# %% [markdown]
# ## 1. Which calls move to a small model
# The replay of notebook 07 routed every held-out (test-split) call to the SLM or kept it on the LLM;
# the savings are scaled to the whole log's monthly volume.

# %%
import polars as pl

from slmlab import route, savings
from slmlab.collect.pricing import load_prices

replay = savings.load_routed_calls(RUN)
volume = CALLS_PER_MONTH or route.observed_calls_per_month(RUN)
print(f"{replay.height} held-out calls replayed; monthly volume: {volume or 'not known (one month assumed)'}")
replay.group_by("routed_to").len()

# %% [markdown]
# ## 2. The cost model
# LLM prices come from a dated, editable table (logged costs win where the log has them); the SLM
# costs GPU time, inflated by idle time.

# %%
prices = load_prices()
spec = savings.SelfHostedSLM(
    gpu=SERVE_GPU, usd_per_hour=GPU_USD_PER_HOUR, utilization=UTILIZATION, prefill_tok_s=PREFILL_TOK_S,
    decode_tok_s=DECODE_TOK_S, params_b=SLM_PARAMS_B, engineering_usd_month=ENGINEERING_USD_MONTH,
)  # fmt: skip
prices.head(8)

# %%
savings.utilization_table(spec, input_tokens=2700, output_tokens=40)

# %% [markdown]
# ## 3. Savings: total, per cluster, per agent

# %%
result = savings.compute_savings(replay, spec, prices, calls_per_month=volume)
print("\n".join(savings.headline(result, PRODUCTION_CALLS_PER_MONTH or savings.default_scenario(result))))
pl.DataFrame([result.total]).transpose(include_header=True, column_names=["value"])

# %%
savings.cost_table(result)  # rounded; the full table is result.by_cluster

# %%
savings.plot_savings_waterfall(result)

# %%
savings.plot_break_even(savings.break_even_curve(result, spec), result)

# %% [markdown]
# ## 4. Dashboard
# Move the sliders: the figures and the headline update live. The headline states the savings at a
# production volume (the `production calls/month` knob, first set by `PRODUCTION_CALLS_PER_MONTH`) and the
# break-even volume: below it the fixed engineering cost outweighs the per-call savings and the swap costs
# more; above it, it pays. The break-even chart marks the observed volume, the break-even and the scenario.

# %%
dashboard = savings.SavingsDashboard(
    replay, clusters=sorted(replay["cluster"].unique().to_list()), spec=spec, prices=prices,
    swap_clusters=savings.swapped_clusters(replay), calls_per_month=volume,
    scenario_calls_per_month=PRODUCTION_CALLS_PER_MONTH,
)  # fmt: skip
dashboard.widget

# %% [markdown]
# ## 5. Iterate: next month's logs
# The run's latest sessions play next month's logs and are assigned to the existing clusters; calls far
# from every centroid, new prompt templates and new tools signal drift, and the clusters that drifted are
# listed for re-training.

# %%
from slmlab import iterate

drift = iterate.drift_on_latest_sessions(RUN, n_calls=NEW_LOG_CALLS, seed=1)
drift.summary

# %%
iterate.clusters_to_retrain(drift)

# %% [markdown]
# ## 6. Save

# %%
savings.save_savings(
    result, RUN, quality=savings.routed_quality(replay),
    scenario_calls_per_month=dashboard.scenario_calls_per_month,
)  # fmt: skip

# %% [markdown]
# ## What you produced
# `savings.parquet` and `savings.json` in the run folder (per-call costs, totals, break-even and every
# assumption); `slmlab run` turns them into the report's headline. Next: `slmlab export` writes the
# router and adapters as a bundle to serve with vLLM multi-LoRA.

# %% [markdown]
# ## Exercises
# - **Warm-up:** in the dashboard, move the production volume below the break-even: the headline turns
#   from "saves" to "costs more". Why does the fixed engineering cost decide this?
# - **Explore:** set the GPU utilization to 20%: how far does the break-even move, and what does the
#   utilization table of section 2 say about idle GPUs?
# - **Stretch:** price an A100 at $2.50/hour with $2,000/month of engineering: at what volume does the
#   swap pay, and how many calls per second is that?
