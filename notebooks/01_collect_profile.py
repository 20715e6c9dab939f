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
# # 01 · Collect and profile the agent's calls
#
# Goal: read the agent's logs into one canonical call table and see where the calls, tokens, money and
# time go — and which prompts repeat, the first sign of sub-tasks a small model could take over.
#
# **What you need:** CPU, under a minute for the 3,000 demo calls (a million calls: a few minutes).

# %% tags=["parameters"]
from slmlab.config import default_run, is_smoke
from slmlab.demo.synth import demo_logs_path

RUN = default_run()  # run folder shared by notebooks 01-08
LOG_PATH = demo_logs_path()  # a log file or folder; default: the generated demo logs in data/
FORMAT = "auto"  # "auto" or a reader: openai, openai_batch, otel_genai, openinference, langfuse, langsmith, tau_bench, tau2_bench, toolbench
MAX_CALLS = 500 if is_smoke() else None  # keep only the first calls (None = all)
CALLS_PER_DAY = (
    None  # your production volume for the monthly estimate; None = the rate seen in the timestamps
)
TEMPLATE_PREFIX_CHARS = 50  # prompt prefix that defines a template (digits masked)
MIN_TEMPLATE_SHARE = 0.01  # list templates covering at least this share of calls

# %% [markdown]
# ## 1. Ingest the logs
# The format is detected per file; malformed records go to a quarantine file with the reason, never
# silently dropped (`read = ingested + quarantined`). Missing costs are estimated from the price table.

# %%
import polars as pl

from slmlab.collect import profile
from slmlab.collect import ingest
from slmlab.runs import RunStore

pl.Config(tbl_rows=30, tbl_cols=14, fmt_str_lengths=80, tbl_width_chars=220)
store = RunStore(RUN)
print(f"reading {LOG_PATH} ...", flush=True)  # a few seconds for the demo's 3,000 calls
res = ingest(LOG_PATH, format=FORMAT, quarantine=store.quarantine_path())
print(res.summary)

# %% [markdown]
# ## 2. The canonical call table
# One row per LLM call (`slmlab.schema.CALL_SCHEMA`); every later notebook reads this file.

# %%
calls = res.calls.head(MAX_CALLS) if MAX_CALLS else res.calls
print(f"wrote {calls.height:,} calls to {store.write_calls(calls)}")
calls.select("call_id", "session_id", "step", "agent", "model", "tool_name", "input_tokens", "output_tokens",
             "cost_usd", "latency_ms", "status").head(8)  # fmt: skip

# %% [markdown]
# ## 3. Totals and the monthly bill
# The monthly estimate extrapolates the rate between the first and last timestamp (or uses
# `CALLS_PER_DAY`); `rate basis` says which, and why there is none for a short burst.

# %%
s = profile.summary(calls, calls_per_day=CALLS_PER_DAY)
print(s)

# %% [markdown]
# ## 4. Where the calls, tokens and money go
# Per model and agent, most expensive first: a cheap model's many calls can cost less than an expensive
# model's few.

# %%
profile.profile_calls(calls, by=("model", "agent"))

# %%
profile.plot_cost(calls, by="agent", color="model", metric="cost_usd")

# %%
profile.plot_cost(calls, by="agent", color="model", metric="input_tokens")

# %% [markdown]
# ## 5. Latency
# Successful calls only (time-outs would dominate); `ms_per_output_token` is the decode speed.

# %%
profile.latency_table(calls, by="model")

# %%
profile.plot_latency(calls, by="agent")

# %% [markdown]
# ## 6. Tool calls vs text answers
# Structured outputs (tool arguments, JSON) are the easiest for a small model to learn and to check.

# %%
profile.by_tool(calls)

# %%
profile.plot_response_types(calls, by="agent")

# %% [markdown]
# ## 7. Repeated prompts
# Calls that open with the same system prompt (dates and numbers masked) share a template. A few
# templates covering most calls means a few recurring sub-tasks; one template can still serve several
# sub-tasks (a worker choosing between tools), which is what clustering (notebook 03) separates.

# %%
templates = profile.detect_templates(calls, min_share=MIN_TEMPLATE_SHARE, prefix_chars=TEMPLATE_PREFIX_CHARS)
templates.select("template", "calls", "share_calls", "cum_share", "agents", "distinct_prompts", "example")

# %%
profile.plot_template_concentration(calls, prefix_chars=TEMPLATE_PREFIX_CHARS)

# %%
profile.plot_calls_over_time(calls, every="6h", by="agent")

# %% [markdown]
# ## What you produced / next notebook
# `calls.parquet` (the canonical call table) and `quarantine.jsonl` (malformed records) in the run folder,
# and a first picture of the workload: totals, monthly cost, the costly agents, and how concentrated the
# prompts are. Next: `02_curate_calls` redacts personal data and drops failed and duplicate calls.

# %% [markdown]
# ## Exercises
# - **Warm-up:** set `MAX_CALLS = 100` and re-run: which figures of the summary scale with the number of
#   calls, and which (shares, mean tokens) barely move?
# - **Explore:** set `CALLS_PER_DAY = 50_000` (a production volume): which agent costs most per month,
#   and how much of it is input tokens?
# - **Stretch:** point `LOG_PATH` at a log export of your own agent (any format in the README table) and
#   read the quarantine: every malformed record is listed with its file, line and reason.
