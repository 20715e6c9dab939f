"""Step 3, cluster: group agent calls into recurring sub-tasks and describe each as an SLM candidate.

Pipeline (each part swappable, scikit-learn style): feature parts of each call (`features`: what is
embedded) -> `Embedder` (`slmlab.cluster.embed`) -> optional reducer (PCA/UMAP) -> clusterer (HDBSCAN, k-means,
agglomerative) -> a prompt-only assigner for live calls (`TaskClusterer.predict`).

- `features.py`: `call_states`, `FeatureEncoder`, `prompt_features`, `prompt_texts`, the feature parts.
- `model.py`: `TaskClusterer`, `assign_clusters`, `cluster_quality`.
- `describe.py`: `describe_clusters` (the `CLUSTER_SCHEMA` table), `suitability`, c-TF-IDF keywords.
- `plots.py`: `map_coords`, `plot_cluster_map`.

Usage:
    >>> from slmlab.cluster import TaskClusterer, assign_clusters, describe_clusters
    >>> clustered = assign_clusters(calls, TaskClusterer())  # doctest: +SKIP
    >>> table = describe_clusters(clustered)  # doctest: +SKIP
"""

from slmlab.cluster.describe import c_tf_idf_keywords, describe_clusters, suitability
from slmlab.cluster.features import (
    DEFAULT_FEATURES,
    DEFAULT_PROMPT_FEATURES,
    FEATURE_PARTS,
    FeatureEncoder,
    call_states,
    prompt_features,
    prompt_parts,
    prompt_texts,
)
from slmlab.cluster.model import (
    TaskClusterer,
    assign_clusters,
    attach_truth,
    cluster_quality,
    select_clusterer,
    select_reducer,
)
from slmlab.cluster.plots import map_coords, plot_cluster_map

__all__ = [
    "DEFAULT_FEATURES",
    "DEFAULT_PROMPT_FEATURES",
    "FEATURE_PARTS",
    "FeatureEncoder",
    "TaskClusterer",
    "assign_clusters",
    "attach_truth",
    "c_tf_idf_keywords",
    "call_states",
    "cluster_quality",
    "describe_clusters",
    "map_coords",
    "plot_cluster_map",
    "prompt_features",
    "prompt_parts",
    "prompt_texts",
    "select_clusterer",
    "select_reducer",
    "suitability",
]
