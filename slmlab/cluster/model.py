"""`TaskClusterer`: features -> optional reducer -> clusterer, plus a prompt-only assigner for live calls.

Usage:
    >>> from slmlab.cluster import TaskClusterer
    >>> tc = TaskClusterer(embedder="tfidf").fit(calls)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from slmlab.cluster.features import (
    DEFAULT_FEATURES,
    EMBED_MAX_CHARS,
    FeatureEncoder,
    call_states,
    parse_features,
    prompt_parts,
)
from slmlab.config import require


def select_reducer(reducer: Any, n_components: int = 10, random_state: int = 0) -> Any:
    """None (no reduction), "pca", "umap" (needs `slmlab[embed]`) or any object with `fit_transform`.

    Example:
        >>> type(select_reducer("pca")).__name__
        'PCA'
    """
    if reducer is None or (isinstance(reducer, str) and reducer.lower() == "none"):
        return None
    if not isinstance(reducer, str):
        return reducer
    if reducer.lower() == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=n_components, random_state=random_state)
    if reducer.lower() == "umap":
        umap = require("umap", "embed")
        return umap.UMAP(
            n_components=n_components,
            n_neighbors=15,
            min_dist=0.0,
            metric="cosine",
            random_state=random_state,
        )
    raise ValueError(f"unknown reducer {reducer!r}; use None, 'pca', 'umap' or an object with fit_transform")


def select_clusterer(
    clusterer: Any, min_cluster_size: int = 10, n_clusters: int = 20, random_state: int = 0
) -> Any:
    """ "hdbscan" or "auto" (sklearn.cluster.HDBSCAN), "kmeans", "agglomerative" or any object with `fit_predict`.

    Example:
        >>> type(select_clusterer("kmeans", n_clusters=3)).__name__
        'KMeans'
    """
    if not isinstance(clusterer, str):
        return clusterer
    from sklearn import cluster as skc

    name = clusterer.lower()
    if name in ("hdbscan", "auto"):
        # min_samples below min_cluster_size keeps small but dense sub-tasks out of the noise.
        # copy=True: the future default of sklearn 1.10 (stated, so 1.9 does not warn); the input is reused
        return skc.HDBSCAN(
            min_cluster_size=min_cluster_size, min_samples=max(2, min_cluster_size // 2), copy=True
        )
    if name == "kmeans":
        return skc.KMeans(n_clusters=n_clusters, n_init=3, random_state=random_state)
    if name in ("minibatch_kmeans", "minibatchkmeans"):
        return skc.MiniBatchKMeans(
            n_clusters=n_clusters, n_init=3, random_state=random_state, batch_size=4096
        )
    if name == "agglomerative":
        return skc.AgglomerativeClustering(n_clusters=n_clusters, linkage="ward")
    raise ValueError(
        f"unknown clusterer {clusterer!r}; use 'hdbscan', 'kmeans', 'agglomerative' or an object"
    )


class TaskClusterer:
    """Cluster agent calls into recurring sub-tasks; assign live calls from the prompt alone.

    `fit` embeds the calls with `features` (offline it may use the response, default
    "prompt_state+system+action"), partitions them by the action taken and splits each action by the
    situation it was taken in (or, flat, reduces and clusters them all). It then trains a prompt-only
    assigner — a logistic regression (or k-NN) on the prompt-only parts of `features` with the fitted
    labels as targets, noise (-1) included — which `predict` uses, so a router can send a live call to
    its cluster before the LLM answers.

    Args:
        features: feature parts joined by "+" (`slmlab.cluster.features`): "last_user", "system",
            "last_message", "prompt_state", "action".
        embedder: name, path or `Embedder` for the text blocks (default the bundled MiniLM).
        reducer: None, "pca" (default), "umap" or an sklearn-style object with `fit_transform`. With the
            two-stage strategy it reduces each action's situation blocks before the split; flat, all blocks.
        clusterer: "auto" (default), "hdbscan", "kmeans", "agglomerative", "minibatch_kmeans" or an object with
            `fit_predict`. In two stages, "auto" splits each action with Ward candidates (k = 2..8, the best
            silhouette) and "hdbscan" with HDBSCAN; flat, "auto" is HDBSCAN.
        min_cluster_size: smallest cluster HDBSCAN keeps; None (default) derives it from the number of
            points clustered (`derived_min_cluster_size`: sqrt(n)/2 within [3, 50], per action in two stages).
        n_clusters: clusters for k-means / agglomerative.
        n_components: reducer output dimensions.
        weights: feature block weights, overriding `features.DEFAULT_WEIGHTS`.
        assigner: "auto" (default: "logreg" up to `AUTO_KNN_ABOVE` clusters, else "knn", since a logistic
            regression's fit grows with classes x dimensions: minutes for hundreds of clusters on 2 cores),
            "logreg" or "knn", the prompt-only model behind `predict`.
        max_chars: texts are cut to this many characters before embedding (`features.EMBED_MAX_CHARS`).
        random_state: seed for the reducer, k-means and the assigner.
        strategy: "auto" (default: "partition" when the features include the action and the clusterer is
            "auto" or "hdbscan", else "flat"), "partition" (two stages: the action taken, then the situation it was
            taken in) or "flat" (one reducer + clusterer over all calls).

    Attributes (after fit):
        labels_: cluster id per call (-1 = unassigned), int32.
        confidence_: per call, in [0, 1], how clearly it belongs to its cluster rather than the next one
            (1 - d(own centroid) / d(nearest other) in the space it was clustered in; 1 for an action with
            one cluster; halved for calls HDBSCAN called noise and the split placed; 0 unassigned).
        splits_: per action (two stages), the split decision: calls, min_cluster_size, silhouette, clusters.
        n_clusters_: number of clusters (noise excluded).
        centroids_: (n_clusters_, dim) mean feature vector of each cluster, in the clustering space.
        vectors_: the clustering-space vectors of the fitted calls.
        call_ids_: the fitted calls' ids (when the frame has `call_id`).
        encoder_, prompt_encoder_: the fitted `FeatureEncoder`s of `features` and of its prompt-only parts.

    Example:
        >>> tc = TaskClusterer(features="prompt_state", embedder="tfidf", clusterer="kmeans", n_clusters=5)
        >>> tc.fit(calls).labels_.shape  # doctest: +SKIP
    """

    def __init__(
        self,
        features: str = DEFAULT_FEATURES,
        embedder: Any = None,
        reducer: Any = "pca",
        clusterer: Any = "auto",
        min_cluster_size: int | None = None,
        n_clusters: int = 20,
        n_components: int = 10,
        weights: dict[str, float] | None = None,
        assigner: str = "auto",
        max_chars: int = EMBED_MAX_CHARS,
        random_state: int = 0,
        strategy: str = "auto",
    ) -> None:
        self.features = features
        self.embedder = embedder
        self.reducer = reducer
        self.clusterer = clusterer
        self.min_cluster_size = min_cluster_size
        self.n_clusters = n_clusters
        self.n_components = n_components
        self.weights = weights
        self.assigner = assigner
        self.max_chars = max_chars
        self.random_state = random_state
        self.strategy = strategy

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """The constructor parameters (scikit-learn convention)."""
        keys = (
            "features embedder reducer clusterer min_cluster_size n_clusters n_components weights assigner "
            "max_chars random_state strategy"
        ).split()
        return {k: getattr(self, k) for k in keys}

    def set_params(self, **params: Any) -> TaskClusterer:
        for key, value in params.items():
            if key not in self.get_params():
                raise ValueError(f"unknown parameter {key!r}")
            setattr(self, key, value)
        return self

    def _encode(self, calls: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
        parse_features(self.features)
        states = call_states(calls, self.max_chars)
        self.encoder_ = FeatureEncoder(self.features, self.embedder, self.weights, self.max_chars)
        x = self.encoder_.fit_transform(calls, states)
        p_features = "+".join(prompt_parts(self.features))
        if p_features == self.features:
            self.prompt_encoder_, xp = self.encoder_, x
        else:
            self.prompt_encoder_ = FeatureEncoder(p_features, self.embedder, self.weights, self.max_chars)
            xp = self.prompt_encoder_.fit_transform(calls, states)
        return x, xp, states

    def _uses_partition(self) -> bool:
        if self.strategy not in ("auto", "partition", "flat"):
            raise ValueError(f"strategy must be 'auto', 'partition' or 'flat', not {self.strategy!r}")
        if self.strategy == "flat":
            return False
        has_action = "action" in parse_features(self.features)
        if self.strategy == "partition" and not has_action:
            raise ValueError("strategy='partition' needs the 'action' feature part")
        return has_action and (self.strategy == "partition" or self.clusterer in ("auto", "hdbscan"))

    def fit(self, calls: pl.DataFrame, y: Any = None) -> TaskClusterer:
        """Cluster `calls` (a call table); sets `labels_`, `confidence_`, `centroids_`, `n_clusters_`."""
        if calls.height < 2:
            raise ValueError("need at least 2 calls to cluster")
        x, xp, states = self._encode(calls)
        if self._uses_partition():
            labels, confidence, vectors = self._fit_partition(x, states)
        else:
            labels, confidence, vectors = self._fit_flat(x)
        self.vectors_ = np.asarray(vectors, dtype=np.float32)
        self.labels_ = _relabel_by_size(labels)
        self.confidence_ = np.where(self.labels_ >= 0, np.clip(confidence, 0.0, 1.0), 0.0)
        self.n_clusters_ = int(self.labels_.max() + 1) if (self.labels_ >= 0).any() else 0
        self.centroids_ = (
            np.stack([self.vectors_[self.labels_ == c].mean(axis=0) for c in range(self.n_clusters_)])
            if self.n_clusters_
            else np.zeros((0, self.vectors_.shape[1]), np.float32)
        )
        self.call_ids_ = calls.get_column("call_id").to_list() if "call_id" in calls.columns else None
        self.assigner_ = self._fit_assigner(xp, self.labels_)
        return self

    def _fit_flat(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One reducer + clusterer over all calls (the prompt-only path, and any non-HDBSCAN clusterer)."""
        n = x.shape[0]
        reducer = select_reducer(self.reducer, min(self.n_components, x.shape[1], n - 1), self.random_state)
        self.reducer_ = reducer
        z = np.asarray(reducer.fit_transform(x) if reducer is not None else x, dtype=np.float32)
        self.clusterer_ = select_clusterer(
            self.clusterer,
            self.min_cluster_size or derived_min_cluster_size(n),
            max(1, min(self.n_clusters, n)),
            self.random_state,
        )
        labels = np.asarray(self.clusterer_.fit_predict(z), dtype=np.int64)
        return labels, _margin_confidence(z, labels), z

    def _fit_partition(
        self, x: np.ndarray, states: pl.DataFrame
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Two stages: partition by the action taken, then split each action by the situation it was taken in.

        Stage 1 is exact: calls that took different actions never share a cluster (the action is a
        one-hot, so no distance weighting can keep hundreds of actions apart once reduced; the partition
        does). Stage 2 clusters each action's calls on the prompt blocks (PCA + HDBSCAN with a minimum
        size derived from the action's own size) and keeps the split only when it is clearly separated
        (silhouette >= `SPLIT_MIN_SILHOUETTE`); HDBSCAN's noise inside a kept split joins its nearest
        sub-cluster, at lower confidence. An action taken once is unassigned (-1): nothing recurs.
        """
        situation = self._situation_columns()
        xs = x[:, situation] if situation is not None else x
        actions = states.get_column("action").to_list()
        groups: dict[str, list[int]] = {}
        for i, a in enumerate(actions):
            groups.setdefault(a, []).append(i)
        n = x.shape[0]
        labels = np.full(n, -1, dtype=np.int64)
        confidence = np.zeros(n, dtype=np.float64)
        self.splits_: dict[str, dict[str, float]] = {}
        next_id = 0
        for action, idx in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            idx_a = np.asarray(idx)
            sub, conf, info = self._split_group(xs[idx_a], n)
            self.splits_[action] = info
            labels[idx_a] = sub + next_id
            confidence[idx_a] = conf
            next_id += int(sub.max()) + 1
        self.reducer_ = None
        self.clusterer_ = None
        return labels, confidence, x

    def _situation_columns(self) -> np.ndarray | None:
        """Columns of the feature matrix that describe the situation (all blocks but the action one-hot)."""
        cols = [np.arange(a, b) for name, (a, b) in self.encoder_.block_slices_.items() if name != "action"]
        return np.concatenate(cols) if cols else None

    def _split_group(self, xg: np.ndarray, n_total: int) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        """Sub-cluster ids (0..k-1), confidence and a record of the decision for one action's calls."""
        from sklearn import cluster as skc
        from sklearn.metrics import silhouette_score

        n = xg.shape[0]
        # The smallest sub-task follows the size of the whole log, not of the action: a 30-call action in a
        # 3,000-call log is one sub-task, not three (splitting each action at its own scale over-split the
        # text-action log: 121 clusters for 39 sub-tasks).
        m = self.min_cluster_size or derived_min_cluster_size(n_total)
        info: dict[str, float] = {"calls": float(n), "min_cluster_size": float(m), "silhouette": float("nan")}
        one = (np.zeros(n, dtype=np.int64), np.ones(n), {**info, "clusters": 1.0})
        if n < 2 * m or xg.shape[1] == 0:
            return one
        reducer = select_reducer(self.reducer, min(self.n_components, xg.shape[1], n - 1), self.random_state)
        z = np.asarray(reducer.fit_transform(xg) if reducer is not None else xg, dtype=np.float32)
        sample = np.arange(n)
        if n > 3000:  # silhouette is quadratic; a seeded sample estimates it
            sample = np.random.default_rng(self.random_state).choice(n, 3000, replace=False)
        if self.clusterer == "hdbscan":
            sub = np.asarray(
                skc.HDBSCAN(min_cluster_size=m, min_samples=max(2, m // 2), copy=True).fit_predict(z),
                dtype=np.int64,
            )
            kept = sub >= 0
            k = len(set(sub[kept].tolist()))
            if k < 2:
                return one
            s_kept = sample[kept[sample]]
            sil = float(silhouette_score(z[s_kept], sub[s_kept]))
        else:
            # Ward candidates k = 2..8 (each sub-cluster >= m calls); the best silhouette wins.
            best: tuple[float, np.ndarray] | None = None
            fit_idx = sample
            for k in range(2, min(8, n // m) + 1):
                cand = skc.AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(z[fit_idx])
                if np.bincount(cand).min() < m * len(fit_idx) / n:
                    continue
                sil_k = float(silhouette_score(z[fit_idx], cand))
                if best is None or sil_k > best[0]:
                    best = (sil_k, cand)
            if best is None:
                return one
            sil, cand = best
            k = int(cand.max()) + 1
            centroids = np.stack([z[fit_idx][cand == c].mean(axis=0) for c in range(k)])
            sub = np.linalg.norm(z[:, None, :] - centroids[None, :, :], axis=2).argmin(axis=1)
            kept = np.ones(n, dtype=bool)
        info = {**info, "silhouette": sil, "clusters": float(k), "noise_share": float(1 - kept.mean())}
        if sil < SPLIT_MIN_SILHOUETTE:
            return (*one[:2], {**info, "clusters": 1.0, "rejected": 1.0})
        centroids = np.stack([z[sub == c].mean(axis=0) for c in range(k)])
        d = np.linalg.norm(z[:, None, :] - centroids[None, :, :], axis=2)
        nearest = d.argmin(axis=1)
        conf = _margin_from_distances(d)
        conf = np.where(kept, conf, 0.5 * conf)  # HDBSCAN called these noise: placed, but less sure
        return np.where(kept, sub, nearest), conf, info

    def _fit_assigner(self, xp: np.ndarray, labels: np.ndarray) -> Any:
        classes = np.unique(labels)
        if len(classes) < 2:
            return int(classes[0]) if len(classes) else -1
        kind = self.assigner
        if kind == "auto":
            kind = "logreg" if len(classes) <= AUTO_KNN_ABOVE else "knn"
        if kind == "knn":
            from sklearn.neighbors import KNeighborsClassifier

            model = KNeighborsClassifier(n_neighbors=min(15, len(labels)), weights="distance")
        elif kind == "logreg":
            from sklearn.linear_model import LogisticRegression

            model = LogisticRegression(max_iter=300, C=3.0, random_state=self.random_state)
        else:
            raise ValueError(f"assigner must be 'auto', 'logreg' or 'knn', not {self.assigner!r}")
        return model.fit(xp, labels)

    def prompt_features(self, calls: pl.DataFrame) -> np.ndarray:
        """The prompt-only feature matrix `predict` uses (the router's input)."""
        self._check_fitted()
        return self.prompt_encoder_.transform(calls)

    def predict(self, calls: pl.DataFrame) -> np.ndarray:
        """Cluster id (-1 = noise) of each call, from its prompt only (no response needed)."""
        self._check_fitted()
        if isinstance(self.assigner_, int):
            return np.full(calls.height, self.assigner_, dtype=np.int32)
        return self.assigner_.predict(self.prompt_features(calls)).astype(np.int32)

    def predict_proba(self, calls: pl.DataFrame) -> np.ndarray:
        """Probability of each cluster (columns in `assigner_.classes_` order, noise first) per call."""
        self._check_fitted()
        if isinstance(self.assigner_, int):
            return np.ones((calls.height, 1))
        return self.assigner_.predict_proba(self.prompt_features(calls))

    def predict_with_confidence(self, calls: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """`predict` and the assigner's probability of the chosen cluster (0 for unassigned calls)."""
        self._check_fitted()
        if isinstance(self.assigner_, int):
            labels = np.full(calls.height, self.assigner_, dtype=np.int32)
            return labels, np.where(labels >= 0, 1.0, 0.0)
        proba = self.assigner_.predict_proba(self.prompt_features(calls))
        classes = np.asarray(self.assigner_.classes_)
        labels = classes[proba.argmax(axis=1)].astype(np.int32)
        return labels, np.where(labels >= 0, proba.max(axis=1), 0.0)

    def fit_predict(self, calls: pl.DataFrame, y: Any = None) -> np.ndarray:
        """Fit and return `labels_` (the clustering of `calls` with all of `features`)."""
        return self.fit(calls).labels_

    def _check_fitted(self) -> None:
        if not hasattr(self, "labels_"):
            raise RuntimeError("TaskClusterer is not fitted; call fit(calls) first")

    def __repr__(self) -> str:
        return (
            f"TaskClusterer(features={self.features!r}, embedder={self.embedder!r}, reducer={self.reducer!r}, "
            f"clusterer={self.clusterer!r}, min_cluster_size={self.min_cluster_size})"
        )


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0..k-1 by decreasing size (noise stays -1), so ids are stable and readable."""
    out = np.full(labels.shape, -1, dtype=np.int32)
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = ids[np.lexsort((ids, -counts))]
    for new, old in enumerate(order):
        out[labels == old] = new
    return out


# The "auto" assigner switches from logistic regression to k-NN above this many clusters.
AUTO_KNN_ABOVE = 40

# A split of one action by situation is kept only when its sub-clusters are this well separated (mean
# silhouette in the reduced prompt space). Below it, the split cuts a continuum of user wordings rather than
# distinct sub-tasks; see the design note of the cluster benchmark.
SPLIT_MIN_SILHOUETTE = 0.25


def derived_min_cluster_size(n: int) -> int:
    """HDBSCAN's smallest cluster for `n` points: sqrt(n)/2, within [3, 50].

    Grows with the data (a sub-task of a 10,000-call action needs more calls than one of 40), but slowly,
    so the rare sub-tasks of a large log are not swallowed into noise as a fixed share would.

    Example:
        >>> derived_min_cluster_size(100), derived_min_cluster_size(2500), derived_min_cluster_size(10**6)
        (5, 25, 50)
    """
    return int(min(50, max(3, round(np.sqrt(max(n, 1)) / 2))))


def _margin_from_distances(d: np.ndarray) -> np.ndarray:
    """1 - d(nearest) / d(second nearest), per row of a (n, k) distance matrix; 1 when k == 1."""
    if d.shape[1] < 2:
        return np.ones(d.shape[0])
    two = np.sort(d, axis=1)[:, :2]
    return 1.0 - two[:, 0] / np.maximum(two[:, 1], 1e-12)


def _margin_confidence(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per call: how much closer it is to its own cluster's centroid than to the next one (0 for noise)."""
    ids = sorted(set(labels[labels >= 0].tolist()))
    if not ids:
        return np.zeros(len(labels))
    centroids = np.stack([z[labels == c].mean(axis=0) for c in ids])
    d = np.linalg.norm(z[:, None, :] - centroids[None, :, :], axis=2)
    own = np.searchsorted(ids, np.maximum(labels, ids[0]))
    if d.shape[1] < 2:
        conf = np.ones(len(labels))
    else:
        d_own = d[np.arange(len(labels)), own]
        d_other = np.where(np.arange(d.shape[1])[None, :] == own[:, None], np.inf, d).min(axis=1)
        conf = np.clip(1.0 - d_own / np.maximum(d_other, 1e-12), 0.0, 1.0)
    return np.where(labels >= 0, conf, 0.0)


def assign_clusters(calls: pl.DataFrame, clusterer: TaskClusterer | None = None) -> pl.DataFrame:
    """`calls` with an Int32 `cluster` column (-1 = noise).

    An unfitted clusterer (or None, the defaults) is fit on `calls`; a clusterer fitted on exactly these
    calls gives its `labels_`; otherwise new calls are assigned with `predict` (prompt only).

    Example:
        >>> out = assign_clusters(calls, TaskClusterer(embedder="tfidf"))  # doctest: +SKIP
    """
    clusterer = clusterer if clusterer is not None else TaskClusterer()
    if not hasattr(clusterer, "labels_"):
        clusterer.fit(calls)
        labels, confidence = clusterer.labels_, clusterer.confidence_
    elif (
        getattr(clusterer, "call_ids_", None) is not None
        and "call_id" in calls.columns
        and calls.get_column("call_id").to_list() == clusterer.call_ids_
    ):
        labels, confidence = clusterer.labels_, clusterer.confidence_
    else:
        labels, confidence = clusterer.predict_with_confidence(calls)
    return calls.with_columns(
        pl.Series("cluster", labels, dtype=pl.Int32),
        pl.Series("cluster_confidence", np.asarray(confidence, dtype=np.float64), dtype=pl.Float64),
    )


def cluster_quality(labels: Any, truth: Any) -> dict[str, float]:
    """Agreement of cluster labels with ground truth: ARI, NMI, homogeneity, completeness, counts.

    Noise (-1) counts as one more cluster, as BERTopic's outlier topic does, so a clustering cannot look
    good by calling hard calls noise; `noise_share` reports how many there are.

    Example:
        >>> cluster_quality([0, 0, 1, 1], ["a", "a", "b", "b"])["ari"]
        1.0
    """
    from sklearn import metrics

    labels = np.asarray(labels)
    truth = np.asarray(truth)
    if labels.shape != truth.shape:
        raise ValueError(f"labels ({labels.shape}) and truth ({truth.shape}) differ in length")
    return {
        "ari": float(metrics.adjusted_rand_score(truth, labels)),
        "nmi": float(metrics.normalized_mutual_info_score(truth, labels)),
        "homogeneity": float(metrics.homogeneity_score(truth, labels)),
        "completeness": float(metrics.completeness_score(truth, labels)),
        "n_clusters": int(len(set(labels[labels >= 0].tolist()))),
        "noise_share": float(np.mean(labels < 0)) if labels.size else 0.0,
    }


def attach_truth(calls: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """`calls` with a `truth` column from a `call_id, task_label` table (null where unknown).

    Joins on `call_id`; where curation hashed the ids so that nothing matches, it falls back to the log
    line: row i of a label file written by `slmlab.demo.synth` belongs to line i + 1 of its log
    (`source_line`). For measuring quality only; never a clustering input.

    Example:
        >>> calls = pl.DataFrame({"call_id": ["h1"], "source_line": [2]})
        >>> attach_truth(calls, pl.DataFrame({"call_id": ["a", "b"], "task_label": ["x", "y"]}))["truth"][0]
        'y'
    """
    labels = labels.select("call_id", pl.col("task_label").alias("truth"))
    out = calls.join(labels, on="call_id", how="left")
    if out["truth"].null_count() == out.height and "source_line" in calls.columns:
        by_line = labels.with_row_index("source_line", offset=1).select(
            pl.col("source_line").cast(pl.Int64), "truth"
        )
        out = calls.join(by_line, on=pl.col("source_line").cast(pl.Int64), how="left")
    return out
