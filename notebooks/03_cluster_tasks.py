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
# # 03 · Cluster the calls into recurring sub-tasks
#
# Goal: group the curated calls into sub-tasks (the same instructions, the same kind of action) and rank
# each as a candidate for a small model.
#
# **What you need:** CPU, under a minute for a few thousand calls with MiniLM (about 20 s for 3,000 on
# 2 cores with native bf16, about 50 s in fp32; seconds on a re-run: the embeddings are cached; seconds
# with `EMBEDDER = "tfidf"`). Notebook 02 has written `curated.parquet`
# for the same `RUN`.

# %% tags=["parameters"]
from slmlab.config import default_run, is_smoke

RUN = default_run()  # run folder shared by notebooks 01-08
EMBEDDER = (
    "tfidf" if is_smoke() else "all-minilm-l6-v2"
)  # "all-minilm-l6-v2" (bundled), "tfidf", or a model id/path
FEATURES = "prompt_state+system+action"  # prompt state, system prompt + the action the LLM took (offline)
REDUCER = "pca"  # None, "pca" or "umap" before clustering (per action, in two stages)
CLUSTERER = "auto"  # "auto" (two stages: action, then situation), "hdbscan", "kmeans" or "agglomerative"
MIN_CLUSTER_SIZE = None  # smallest sub-task (None = derived from the log: sqrt(calls)/2 within [3, 50])
N_CLUSTERS = 20  # clusters for kmeans / agglomerative
MAP_METHOD = "pca"  # 2-D map projection: "pca" (fast) or "umap"
MAX_CALLS = 400 if is_smoke() else None  # cluster only the first calls (None = all)

# %% [markdown]
# ## 1. Load the curated calls

# %%
import polars as pl

from slmlab import cluster as cl
from slmlab.runs import RunStore

store = RunStore(RUN)
calls = store.read_curated(n_rows=MAX_CALLS)
calls.select("call_id", "agent", "tool_name", "input_tokens").head()

# %% [markdown]
# ## 2. What each call is clustered on
# A call is described by its prompt state — the system-prompt template, the role and tool of the last
# message, the last user turn — and, offline, by the action the LLM took (`FEATURES`). Live calls are
# later assigned from the prompt alone (`TaskClusterer.predict`).

# %%
cl.call_states(calls).select("template_id", "last_state", "last_user", "action", "output_shape").head()

# %% [markdown]
# ## 3. Fit the clusterer
# With the defaults, calls are first partitioned by the action they took (a tool called through the API or
# written in the text: `slmlab.actions`), then each action is split by the situation it was taken in where
# the split is clearly separated. Each call gets a `cluster_confidence` in [0, 1].

# %%
clusterer = cl.TaskClusterer(
    features=FEATURES, embedder=EMBEDDER, reducer=REDUCER, clusterer=CLUSTERER,
    min_cluster_size=MIN_CLUSTER_SIZE, n_clusters=N_CLUSTERS,
)  # fmt: skip
print(f"embedding ({EMBEDDER}) and clustering ({CLUSTERER}) {calls.height:,} calls ...", flush=True)
clustered = cl.assign_clusters(calls, clusterer)
{"clusters": clusterer.n_clusters_, "noise_share": float((clustered["cluster"] < 0).mean()),
 "mean_confidence": clustered.filter(pl.col("cluster") >= 0)["cluster_confidence"].mean()}  # fmt: skip

# %% [markdown]
# ## 4. The cluster table
# One row per cluster: size, share of calls and cost, c-TF-IDF keywords, exemplars nearest the centroid,
# dominant action, output shape, template, tokens, and a 0..1 `suitability` (repetitive, structured,
# short context, enough examples; see `slmlab.cluster.suitability`).

# %%
clusters = cl.describe_clusters(clustered, vectors=clusterer.vectors_)
clusters.sort("suitability", descending=True).select(
    "cluster", "name", "size", "share_cost", "action_share", "output_shape", "suitability"
)

# %% [markdown]
# ## 5. The map
# Each point is a call; the best SLM candidate is highlighted.

# %%
best = (
    clusters.filter(pl.col("cluster") >= 0).sort("suitability", descending=True)["cluster"].head(1).to_list()
)
cl.plot_cluster_map(clustered, cl.map_coords(clusterer.vectors_, MAP_METHOD), highlight=best)

# %% [markdown]
# ## 6. Quality against the demo ground truth
# The demo logs come with hidden task labels (never used for clustering). ARI/NMI of the clustering and
# of prompt-only assignment (what a router can do; in-sample here, held-out numbers are in the cluster
# benchmark) are shown when labels are available.

# %%
from slmlab.demo.synth import load_demo_labels

scored = cl.attach_truth(clustered, load_demo_labels()).filter(pl.col("truth").is_not_null())
truth = scored["truth"].to_numpy()
{"calls_with_labels": scored.height,
 "fit": cl.cluster_quality(scored["cluster"].to_numpy(), truth) if scored.height else None,
 "prompt_only": cl.cluster_quality(clusterer.predict(scored), truth) if scored.height else None}  # fmt: skip

# %% [markdown]
# ## 7. Save

# %%
{"clustered": str(store.write_clustered(clustered)), "clusters": str(store.write_clusters(clusters))}

# %% [markdown]
# ## What you produced / next notebook
# - `clustered.parquet`: the curated calls with a `cluster` column (-1 = unassigned) and a
#   `cluster_confidence` (0..1).
# - `clusters.parquet`: the cluster table (`slmlab.schema.CLUSTER_SCHEMA`), every cluster "unreviewed".
#
# Next: **04_label_clusters** reviews the clusters: rename, merge, split, and mark SLM candidates.

# %% [markdown]
# ## Exercises
# - **Warm-up:** set `MIN_CLUSTER_SIZE = 60`: which actions are no longer split by situation?
# - **Explore:** set `CLUSTERER = "kmeans"` and `N_CLUSTERS = 12` (one flat clustering of all calls), and
#   compare the cluster table with the two-stage default's: which sub-tasks does k-means merge or split?
# - **Stretch:** set `FEATURES = "prompt_state"` (the prompt only, not the action the LLM took) and look at
#   the map: why does clustering on the prompt alone mix sub-tasks (the README measures ARI 0.65 -> 0.24)?
