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
# # 04 · Label the clusters: name, merge, split, accept
#
# Goal: review the recurring sub-tasks found in notebook 03 — give them names, merge duplicates, split
# mixed ones, and mark which should move to a small model — so later steps train and route only what a
# person (or, unattended, the suitability score) accepted.
#
# **What you need:** CPU, a minute. Notebook 03 has written `clustered.parquet` and `clusters.parquet`
# for the same `RUN`. Labels are saved to `labels.json` in the run folder and survive kernel restarts.

# %% tags=["parameters"]
from slmlab.config import default_run, is_smoke

RUN = default_run()  # run folder shared by notebooks 01-08
MIN_SUITABILITY = 0.6  # unattended: clusters at or above this suitability become SLM candidates
AT_LEAST = 1  # unattended: accept at least this many clusters (the most suitable), so step 5 has work
AUTOSAVE = True  # the labeller saves after every edit, not only on "Save"
MAX_POINTS = 1500 if is_smoke() else 5000  # calls drawn on the 2-D map at most

# %% [markdown]
# ## 1. The clusters of notebook 03

# %%
import polars as pl

from slmlab.runs import RunStore
from slmlab.label import LabelSession, LabelWidget

store = RunStore(RUN)
calls = store.read_clustered()
clusters = store.read_clusters()
clusters.select("cluster", "name", "size", "share_cost", "dominant_action", "output_shape", "suitability")

# %% [markdown]
# ## 2. Open the labelling session
# The saved labels of this run are replayed if they belong to these clusters; if notebook 03 was re-run
# with different clusters, the old file is set aside as `labels.json.stale` and a fresh session starts.

# %%
session = LabelSession.load_or_new(store.labels_path(), clusters, calls)
session  # noqa: B018

# %% [markdown]
# ## 3. Label
# Pick one cluster to read its keywords, template and example calls (the last user turn and the LLM's
# answer); its calls turn red on the map. Then:
# - **Rename**: type a name, click Rename.
# - **Merge selected**: select several clusters (Ctrl/Shift-click) that are the same sub-task.
# - **Split**: one cluster that mixes sub-tasks, by `action` (tool called), `template` (system prompt),
#   `kmeans` (two groups of similar prompts) or a column such as `agent`.
# - **SLM candidate / keep on LLM / ignore**: the decision for the selected clusters.
# - **Undo** any number of steps; **Save** writes `labels.json` (autosave does it after every edit).
#
# The same edits are methods of `session` (`session.rename(3, "seat lookup")`, `session.merge([4, 7])`, ...).

# %%
labeller = LabelWidget(session, store.labels_path(), autosave=AUTOSAVE, max_points=MAX_POINTS)
labeller  # noqa: B018

# %% [markdown]
# ## 4. Unattended: accept by suitability
# When nobody labelled (the main job, `SLMLAB_SMOKE=1`), clusters with a high suitability score
# (repetitive, structured, short) become SLM candidates. Any status set by a person wins: then this
# cell changes nothing.

# %%
accepted = session.accept_suggested(MIN_SUITABILITY, if_unlabelled=True, at_least=AT_LEAST)
session.save(store.labels_path())
print(f"accepted now: {accepted}; SLM candidates: {session.accepted()}")

# %%
session.clusters.filter(pl.col("status") != "unreviewed").select(
    "cluster", "name", "status", "size", "share_calls", "share_cost", "suitability", "note"
)

# %%
session.history  # noqa: B018

# %% [markdown]
# ## What you produced
# `labels.json` in the run folder: the edit log and the status of every cluster. Later steps read it
# with `LabelSession.load(RunStore(RUN).labels_path(), calls)` and map calls through your merges and splits
# with `session.apply(calls)`. Next: `05_select_models` ranks candidate SLMs for the accepted clusters.

# %% [markdown]
# ## Exercises
# - **Warm-up:** rename a cluster in the labeller, then re-run the `session.history` cell: your edit is the
#   last operation, and `labels.json` already has it (autosave).
# - **Explore:** select two clusters with the same dominant action and click **Merge selected**, then
#   **Undo**; split a cluster by `template` and read the parts' example calls.
# - **Stretch:** start a fresh run (`RUN = "mine"` in every notebook, or `SLMLAB_RUN=mine`) with
#   `MIN_SUITABILITY = 0.8`: which clusters are still accepted unattended, and is that what you would pick?
