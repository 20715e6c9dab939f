"""Routers: the `Router` base class, its name -> class registry, `RandomRouter` and `ClusterRouter`.

RouteLLM's pattern: a `Router` base class with one abstract scoring method, `score(calls)` (higher = safer
to send to the small model), and `route(calls, threshold)` shared in the base; a name -> class registry
(`ROUTERS`, `register_router`, `select_router`); a `RandomRouter` baseline on every plot.
`ClusterRouter` sees only the prompt, never the response: it assigns a call to a cluster (nearest centroid
or logistic regression on hashed TF-IDF or embeddings of the latest prompt turns) and so to that
cluster's SLM and adapter; only clusters whose verdict is "swap" go to the SLM, and only when the
router's confidence clears the threshold.

Usage:
    >>> from slmlab.route.routers import ClusterRouter, select_router
    >>> router = ClusterRouter().fit(train_calls, routes=verdicts_table)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from slmlab.runtime.chat_format import recent_turns_text

ROUTERS: dict[str, type[Router]] = {}
ROUTE_COLUMNS = ("route_cluster", "route_score", "routed_to", "slm_model", "experiment", "adapter")


def register_router(name: str):
    """Class decorator adding a router class to `ROUTERS` under `name`.

    Example:
        >>> @register_router("always_llm")
        ... class AlwaysLLM(Router):
        ...     def score(self, calls):
        ...         return np.full(calls.height, -np.inf)
        >>> "always_llm" in ROUTERS
        True
    """

    def deco(cls: type[Router]) -> type[Router]:
        cls.router_name = name
        ROUTERS[name] = cls
        return cls

    return deco


def _routes_table(routes: Any) -> pl.DataFrame:
    """Normalize routes: a verdicts table (cluster, verdict, model, experiment, adapter), a list of swap
    cluster ids, or a mapping cluster -> adapter folder (all swapped)."""
    cols = {
        "cluster": pl.Int32,
        "swap": pl.Boolean,
        "model": pl.String,
        "experiment": pl.String,
        "adapter": pl.String,
    }
    if routes is None:
        return pl.DataFrame(schema=cols)
    if isinstance(routes, pl.DataFrame):
        df = routes
        if "swap" not in df.columns:
            df = df.with_columns(
                (pl.col("verdict") == "swap").alias("swap")
                if "verdict" in df.columns
                else pl.lit(True).alias("swap")
            )
        for c in cols:
            if c not in df.columns:
                df = df.with_columns(pl.lit(None).alias(c))
        return df.select([pl.col(c).cast(t) for c, t in cols.items()])
    if isinstance(routes, Mapping):
        rows = [
            {"cluster": int(k), "swap": True, "model": None, "experiment": "tuned", "adapter": str(v)}
            for k, v in routes.items()
        ]
        return pl.DataFrame(rows, schema=cols)
    rows = [
        {"cluster": int(c), "swap": True, "model": None, "experiment": None, "adapter": None} for c in routes
    ]
    return pl.DataFrame(rows, schema=cols)


class Router:
    """Base class: subclasses implement `score(calls)`; `route` is shared.

    A router holds `routes`: one row per cluster with `swap` (send to the SLM?), the SLM `model`, the
    `experiment` that won ("base", "icl", "tuned") and the `adapter` folder. `assign(calls)` gives each call
    a cluster (default: the `cluster` column); `eligible` says which calls may go to the SLM at all.
    """

    router_name: ClassVar[str] = "router"

    def __init__(self, threshold: float = 0.5, routes: Any = None) -> None:
        self.threshold = threshold
        self.routes = _routes_table(routes)

    # -- the one method a router must implement
    def score(self, calls: pl.DataFrame) -> np.ndarray:
        """Per call, how safe it is to send it to the small model (higher = safer)."""
        raise NotImplementedError

    def assign(self, calls: pl.DataFrame) -> np.ndarray:
        """Cluster id per call (-1 = none); the base uses the `cluster` column when present."""
        if "cluster" in calls.columns:
            return calls.get_column("cluster").fill_null(-1).cast(pl.Int64).to_numpy()
        return np.full(calls.height, -1)

    def eligible(self, clusters: np.ndarray) -> np.ndarray:
        """Which assigned clusters may go to the SLM: those whose route says swap."""
        swap = self.routes.filter(pl.col("swap")).get_column("cluster").to_numpy()
        return np.isin(clusters, swap)

    def fit(self, calls: pl.DataFrame, routes: Any = None) -> Router:
        """Learn what the router needs from training calls; store the routes. Returns self."""
        if routes is not None:
            self.routes = _routes_table(routes)
        return self

    def decide(self, calls: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`(clusters, scores, eligible)` for a batch of calls (what `route` and the sweep use)."""
        clusters = self.assign(calls)
        return clusters, np.asarray(self.score(calls), dtype=float), self.eligible(clusters)

    def route(self, calls: pl.DataFrame, threshold: float | None = None) -> pl.DataFrame:
        """Add `route_cluster`, `route_score`, `routed_to` ("slm"/"llm"), `slm_model`, `experiment`, `adapter`.

        A call goes to the SLM when its cluster is swapped and its score is at least `threshold`
        (default: the router's own `threshold`).
        """
        thr = self.threshold if threshold is None else threshold
        clusters, scores, ok = self.decide(calls)
        to_slm = ok & (scores >= thr)
        info = self.routes.select(
            pl.col("cluster").cast(pl.Int64).alias("route_cluster"),
            pl.col("model").alias("slm_model"),
            "experiment",
            "adapter",
        )
        out = calls.drop([c for c in ROUTE_COLUMNS if c in calls.columns]).with_columns(
            pl.Series("route_cluster", clusters, dtype=pl.Int64),
            pl.Series("route_score", scores, dtype=pl.Float64),
            pl.Series("routed_to", np.where(to_slm, "slm", "llm"), dtype=pl.String),
        )
        out = out.join(info, on="route_cluster", how="left", maintain_order="left")
        slm = pl.col("routed_to") == "slm"
        return out.with_columns(
            *[
                pl.when(slm).then(pl.col(c)).otherwise(None).alias(c)
                for c in ("slm_model", "experiment", "adapter")
            ]
        )

    # -- persistence: config JSON + arrays in npz, no pickle
    def _config(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def _arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        return None

    def save(self, path: str | Path) -> Path:
        """Write `router.json` (name, config, routes) and `state.npz` into the folder `path`."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "router": self.router_name,
            "format": 1,
            "config": self._config(),
            "routes": self.routes.to_dicts(),
        }
        (folder / "router.json").write_text(json.dumps(meta, indent=1))
        np.savez_compressed(folder / "state.npz", **self._arrays())
        return folder


def load_router(path: str | Path) -> Router:
    """Load a router saved with `Router.save`, in any process (only numpy/json state).

    Example:
        >>> router = load_router("runs/demo/router")  # doctest: +SKIP
    """
    folder = Path(path)
    meta = json.loads((folder / "router.json").read_text())
    cls = ROUTERS[meta["router"]]
    router = cls(**meta["config"])
    router.routes = _routes_table(pl.DataFrame(meta["routes"]) if meta["routes"] else None)
    state = folder / "state.npz"
    if state.exists():
        with np.load(state, allow_pickle=False) as arrays:
            router._set_arrays({k: arrays[k] for k in arrays.files})
    return router


def select_router(router: str | Path | Router, **kwargs: Any) -> Router:
    """A router from a registered name (with constructor kwargs), a saved folder, or a router object.

    Example:
        >>> type(select_router("random", threshold=0.3)).__name__
        'RandomRouter'
    """
    if isinstance(router, Router):
        return router
    if isinstance(router, str) and router in ROUTERS:
        return ROUTERS[router](**kwargs)
    if Path(router).is_dir() and (Path(router) / "router.json").exists():
        return load_router(router)
    raise KeyError(f"unknown router {router!r}; registered: {', '.join(sorted(ROUTERS))}")


@register_router("random")
class RandomRouter(Router):
    """RouteLLM's baseline: a uniform random score per call, the same for a call on every run.

    With `swap_only=False` (default) any call may go to the SLM, so sweeping the threshold sends a random
    share of all calls; with `swap_only=True` only calls of swapped clusters.
    """

    def __init__(
        self, threshold: float = 0.5, routes: Any = None, seed: int = 0, swap_only: bool = False
    ) -> None:
        super().__init__(threshold, routes)
        self.seed = seed
        self.swap_only = swap_only

    def score(self, calls: pl.DataFrame) -> np.ndarray:
        ids = calls.get_column("call_id").to_list() if "call_id" in calls.columns else range(calls.height)
        salt = str(self.seed).encode()
        return np.array(
            [
                int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8, key=salt).digest(), "big")
                / 2**64
                for i in ids
            ]
        )

    def eligible(self, clusters: np.ndarray) -> np.ndarray:
        return super().eligible(clusters) if self.swap_only else np.ones(len(clusters), dtype=bool)

    def _config(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "seed": self.seed, "swap_only": self.swap_only}


class HashedTfidf:
    """TF-IDF over hashed word 1-2 grams: no vocabulary to store, only an idf vector (saves as npz)."""

    def __init__(self, n_features: int = 2**15, ngram_max: int = 1) -> None:
        self.n_features = n_features
        self.ngram_max = ngram_max
        self.idf_: np.ndarray | None = None

    def _counts(self, texts: Sequence[str]) -> Any:
        from sklearn.feature_extraction.text import HashingVectorizer

        hv = HashingVectorizer(
            n_features=self.n_features, ngram_range=(1, self.ngram_max), alternate_sign=False, norm=None,
            token_pattern=r"(?u)\b\w+\b", dtype=np.float32,
        )  # fmt: skip
        return hv.transform(texts)

    def fit(self, texts: Sequence[str]) -> HashedTfidf:
        x = self._counts(texts)
        df = np.bincount(x.indices, minlength=self.n_features)
        self.idf_ = (np.log((1 + x.shape[0]) / (1 + df)) + 1).astype(np.float32)
        return self

    def transform(self, texts: Sequence[str]) -> Any:
        from sklearn.preprocessing import normalize

        x = self._counts(texts)
        x.data = np.log1p(x.data)
        x = x.multiply(self.idf_).tocsr()
        return normalize(x)


@register_router("cluster")
class ClusterRouter(Router):
    """Route by the cluster a prompt belongs to, with a confidence fallback to the LLM.

    Args:
        threshold: minimum confidence to send a call to the SLM; None sets it at `fit`: for "centroid" to
            the `fallback_quantile` of the training calls' cosine (~5% of familiar calls fall back), for
            "logreg" to probability 0.5.
        routes: verdicts table / swap cluster ids / {cluster: adapter} (see `Router`).
        method: "centroid" (nearest cluster centroid, cosine) or "logreg" (logistic regression, with the
            noise cluster -1 as its own class).
        confidence: "auto" (cosine to the centroid for "centroid", class probability for "logreg") or
            "logprob" (the SLM's mean token probability, `exp(mean_logprob)`, from a `mean_logprob` column).
        features: "tfidf" (hashed, fast, nothing to download) or "embed" (sentence embeddings via
            `slmlab.cluster.embed`, else the bundled MiniLM).
        text: what the features read: "tail" (the last `tail_chars` characters of the prompt's JSON: the
            latest turn, tool results and tool names; no parsing, so routing stays >10k calls/s) or
            "turns" (the latest `last_turns` messages, parsed and role-tagged; slower on long prompts).
        ngram_max: 1 for word unigrams, 2 to add bigrams (slower, sometimes more accurate).

    Example:
        >>> calls = pl.DataFrame({"call_id": ["a", "b", "c", "d"], "cluster": [0, 0, 1, 1], "messages": [
        ...     '[{"role": "user", "content": "cancel my flight"}]', '[{"role": "user", "content": "cancel the flight"}]',
        ...     '[{"role": "user", "content": "weather in paris"}]', '[{"role": "user", "content": "weather in rome"}]']})
        >>> r = ClusterRouter(threshold=0.1).fit(calls, routes=[0])
        >>> r.route(calls)["routed_to"].to_list()
        ['slm', 'slm', 'llm', 'llm']
    """

    def __init__(
        self,
        threshold: float | None = None,
        routes: Any = None,
        method: str = "logreg",
        confidence: str = "auto",
        features: str = "tfidf",
        embedder: str = "all-minilm-l6-v2",
        last_turns: int = 2,
        n_features: int = 2**15,
        text: str = "tail",
        tail_chars: int = 400,
        ngram_max: int = 1,
        fallback_quantile: float = 0.05,
        C: float = 10.0,
    ) -> None:
        if method not in ("centroid", "logreg"):
            raise ValueError("method must be 'centroid' or 'logreg'")
        if confidence not in ("auto", "logprob"):
            raise ValueError("confidence must be 'auto' or 'logprob'")
        if features not in ("tfidf", "embed"):
            raise ValueError("features must be 'tfidf' or 'embed'")
        if text not in ("tail", "turns"):
            raise ValueError("text must be 'tail' or 'turns'")
        self.text, self.tail_chars, self.ngram_max = text, tail_chars, ngram_max
        super().__init__(threshold if threshold is not None else 0.0, routes)
        self.auto_threshold = threshold is None
        self.method, self.confidence, self.features = method, confidence, features
        self.embedder, self.last_turns, self.n_features = embedder, last_turns, n_features
        self.fallback_quantile, self.C = fallback_quantile, C
        self.tfidf_: HashedTfidf | None = None
        self.classes_: np.ndarray | None = None
        self.weights_: np.ndarray | None = None  # centroids (k x d) or logreg coefficients
        self.bias_: np.ndarray | None = None
        self._embed_model: Any = None

    # -- features
    def texts(self, calls: pl.DataFrame) -> list[str]:
        """The prompt-only text the router reads for each call (latest turns; never the response)."""
        if self.text == "tail":
            return calls.get_column("messages").fill_null("").str.slice(-self.tail_chars).to_list()
        return [recent_turns_text(m, last=self.last_turns) for m in calls.get_column("messages").to_list()]

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self._embed_model is None:
            try:
                from slmlab.cluster.embed import select_embedder

                self._embed_model = select_embedder(self.embedder)
            except ImportError:
                from slmlab.config import require
                from slmlab.runtime.models import resolve_embedder

                st = require("sentence_transformers", "cluster")
                model = st.SentenceTransformer(resolve_embedder(self.embedder), device="cpu")

                class _ST:
                    def embed(self, t: list[str]) -> np.ndarray:
                        return model.encode(t, batch_size=64, normalize_embeddings=True)

                self._embed_model = _ST()
        v = np.asarray(self._embed_model.embed(texts), dtype=np.float32)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def featurize(self, calls: pl.DataFrame) -> Any:
        """Feature matrix of the calls' prompts (sparse TF-IDF rows or dense embeddings, L2-normalized)."""
        texts = self.texts(calls)
        if self.features == "embed":
            return self._embed(texts)
        if self.tfidf_ is None:
            raise RuntimeError("fit the router first")
        return self.tfidf_.transform(texts)

    # -- learning
    def fit(self, calls: pl.DataFrame, routes: Any = None) -> ClusterRouter:
        """Learn cluster centroids or a classifier from training calls with a `cluster` column."""
        super().fit(calls, routes)
        if self.features == "tfidf":
            self.tfidf_ = HashedTfidf(self.n_features, self.ngram_max).fit(self.texts(calls))
        x = self.featurize(calls)
        y = calls.get_column("cluster").fill_null(-1).cast(pl.Int64).to_numpy()
        if self.method == "centroid":
            keep = y >= 0
            self.classes_ = np.unique(y[keep])
            rows = []
            for c in self.classes_:
                m = np.asarray(x[np.flatnonzero(keep & (y == c))].mean(axis=0)).ravel()
                rows.append(m / max(np.linalg.norm(m), 1e-12))
            self.weights_ = np.vstack(rows).astype(np.float32)
            self.bias_ = np.zeros(len(self.classes_), dtype=np.float32)
        else:
            from sklearn.linear_model import LogisticRegression

            clf = LogisticRegression(C=self.C, max_iter=2000)
            clf.fit(x, y)
            self.classes_ = clf.classes_.astype(np.int64)
            coef, bias = clf.coef_, clf.intercept_
            if len(self.classes_) == 2:  # sklearn stores one row for two classes
                coef, bias = np.vstack([-coef[0] / 2, coef[0] / 2]), np.array([-bias[0] / 2, bias[0] / 2])
            self.weights_, self.bias_ = coef.astype(np.float32), bias.astype(np.float32)
        if self.auto_threshold and self.confidence == "auto":
            if self.method == "logreg":
                # training probabilities of a classifier are over-confident: a quantile of them would
                # reject most new calls, so use the plain decision rule "more likely than not".
                self.threshold = 0.5
            else:
                _, conf = self._predict(x)
                self.threshold = float(np.quantile(conf, self.fallback_quantile)) if len(conf) else 0.0
        return self

    def _predict(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        if self.weights_ is None or self.classes_ is None:
            raise RuntimeError("fit the router first")
        logits = np.asarray(x @ self.weights_.T) + self.bias_
        best = logits.argmax(axis=1)
        if self.method == "centroid":
            conf = logits[np.arange(len(best)), best]
        else:
            z = np.exp(logits - logits.max(axis=1, keepdims=True))
            conf = (z / z.sum(axis=1, keepdims=True))[np.arange(len(best)), best]
        return self.classes_[best], conf

    def predict(self, calls: pl.DataFrame) -> np.ndarray:
        """The cluster each call's prompt belongs to (like `TaskClusterer.predict`)."""
        return self._predict(self.featurize(calls))[0]

    def decide(self, calls: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        clusters, conf = self._predict(self.featurize(calls))
        if self.confidence == "logprob":
            conf = self._logprob_conf(calls)
        return clusters, conf, self.eligible(clusters)

    def _logprob_conf(self, calls: pl.DataFrame) -> np.ndarray:
        if "mean_logprob" not in calls.columns:
            raise ValueError(
                "confidence='logprob' needs a `mean_logprob` column (the SLM's Generation.mean_logprob)"
            )
        lp = calls.get_column("mean_logprob").cast(pl.Float64).fill_null(float("-inf")).to_numpy()
        return np.exp(lp)

    def assign(self, calls: pl.DataFrame) -> np.ndarray:
        return self.predict(calls)

    def score(self, calls: pl.DataFrame) -> np.ndarray:
        if self.confidence == "logprob":
            return self._logprob_conf(calls)
        return self._predict(self.featurize(calls))[1]

    # -- persistence
    def _config(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold, "method": self.method, "confidence": self.confidence,
            "features": self.features, "embedder": self.embedder, "last_turns": self.last_turns,
            "n_features": self.n_features, "fallback_quantile": self.fallback_quantile, "C": self.C,
            "text": self.text, "tail_chars": self.tail_chars, "ngram_max": self.ngram_max,
        }  # fmt: skip

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"classes": self.classes_, "weights": self.weights_, "bias": self.bias_}
        if self.tfidf_ is not None:
            arrays["idf"] = self.tfidf_.idf_
        return {k: v for k, v in arrays.items() if v is not None}

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.classes_, self.weights_, self.bias_ = arrays["classes"], arrays["weights"], arrays["bias"]
        if "idf" in arrays:
            self.tfidf_ = HashedTfidf(self.n_features, self.ngram_max)
            self.tfidf_.idf_ = arrays["idf"]
