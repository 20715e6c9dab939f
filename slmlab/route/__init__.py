"""Step 7b, route: send each live call to its cluster's small model, or keep it on the LLM when unsure.

RouteLLM's pattern: a `Router` base class with one abstract scoring method, `score(calls)` (higher = safer
to send to the small model), and `route(calls, threshold)` shared in the base; a name -> class registry
(`ROUTERS`, `register_router`, `select_router`); a `RandomRouter` baseline on every plot.
`ClusterRouter` sees only the prompt, never the response: it assigns a call to a cluster (nearest centroid
or logistic regression on hashed TF-IDF or embeddings of the latest prompt turns) and so to that
cluster's SLM and adapter; only clusters whose verdict is "swap" go to the SLM, and only when the
router's confidence clears the threshold.

`replay` pushes logged calls through a router and attaches the measured agreement, latency and cost per
call; `threshold_sweep` traces quality against the share of calls kept on the LLM, summarized by
`call_share_for_quality` and `apgr` (average performance gap recovered), as in RouteLLM, and
`share_at_agreement` (the share of calls an SLM takes at a given agreement).

`replay_by_agent` runs that replay on a multi-agent log, one router per agent (split by session, cluster,
fit, replay the held-out calls), with each agent's cost before (the logged cost) and after;
`score_routed` measures a small model on a sample of the routed calls, so agreement is never assumed.

Usage:
    >>> from slmlab.route import ClusterRouter, replay, threshold_sweep
    >>> router = ClusterRouter().fit(train_calls, routes=verdicts_table)  # doctest: +SKIP
    >>> router.route(new_calls).select("call_id", "routed_to", "route_cluster", "adapter")  # doctest: +SKIP
    >>> router.save("runs/demo/router"); load_router("runs/demo/router")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import plotly.graph_objects as go
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


# ---------------------------------------------------------------- replay and threshold sweeps


def _slm_outcomes(
    calls: pl.DataFrame, router: Router, scores: pl.DataFrame, clusters: np.ndarray
) -> pl.DataFrame:
    """Per call, the measured agreement / tokens / latency of the SLM configuration its cluster routes to."""
    info = router.routes.select(
        pl.col("cluster").cast(pl.Int64).alias("route_cluster"), pl.col("model").alias("_model"),
        pl.col("experiment").alias("_experiment"), pl.col("adapter").alias("_adapter"),
    )  # fmt: skip
    base = pl.DataFrame(
        {"call_id": calls.get_column("call_id"), "route_cluster": pl.Series(clusters, dtype=pl.Int64)}
    )
    base = base.with_row_index("_i").join(info, on="route_cluster", how="left")
    sc = scores.select(
        "call_id",
        *[
            pl.col(c) if c in scores.columns else pl.lit(None, dtype=pl.String).alias(c)
            for c in ("model", "experiment", "adapter")
        ],
        pl.col("agreement").alias("slm_agreement"),
        pl.col("output_tokens").alias("slm_output_tokens")
        if "output_tokens" in scores.columns
        else pl.lit(None, dtype=pl.Int64).alias("slm_output_tokens"),
        pl.col("latency_ms").alias("slm_latency_ms")
        if "latency_ms" in scores.columns
        else pl.lit(None, dtype=pl.Float64).alias("slm_latency_ms"),
    )
    # Match the route's model/experiment (and adapter for "tuned") where the routes name them.
    joined = base.join(sc, on="call_id", how="left").filter(
        (pl.col("_model").is_null() | (pl.col("model") == pl.col("_model")))
        & (pl.col("_experiment").is_null() | (pl.col("experiment") == pl.col("_experiment")))
        & (
            (pl.col("_experiment") != "tuned")
            | pl.col("_adapter").is_null()
            | (pl.col("adapter") == pl.col("_adapter"))
        )
    )
    best = joined.sort("slm_agreement", descending=True, nulls_last=True).unique("_i", keep="first")
    out = base.select("_i").join(
        best.select("_i", "slm_agreement", "slm_output_tokens", "slm_latency_ms"), on="_i", how="left"
    )
    return out.sort("_i").drop("_i")


def replay(
    calls: pl.DataFrame,
    router: Router,
    scores: pl.DataFrame,
    prices: pl.DataFrame | None = None,
    threshold: float | None = None,
    slm_cost_per_mtok: float | None = None,
) -> pl.DataFrame:
    """Held-out logged calls through the router, with what each decision would have cost and scored.

    Args:
        calls: logged calls (call table; prompt columns are all the router reads).
        router: a fitted router.
        scores: per-call evaluation scores (`slmlab.evaluate.score_calls` / `run_experiments`); the row of
            the route's model and experiment gives an SLM-routed call its measured agreement.
        prices: LLM price table (`slmlab.collect.pricing.load_prices()`) for calls without a logged cost.
        threshold: routing threshold (default: the router's).
        slm_cost_per_mtok: a simple USD per million tokens (prompt + output) for SLM calls; None leaves
            SLM cost to the savings step (`slmlab.savings`).

    Returns:
        call_id, cluster (when logged), route_cluster, route_score, routed_to, slm_model, experiment, adapter,
        agreement (1.0 for calls kept on the LLM by definition; the measured score for SLM calls, null where
        that call was not evaluated), measured (bool), slm_output_tokens, slm_latency_ms, llm_cost_usd,
        replay_cost_usd, replay_latency_ms.
    """
    routed = router.route(calls, threshold)
    outcome = _slm_outcomes(calls, router, scores, routed.get_column("route_cluster").to_numpy())
    df = pl.concat([routed, outcome], how="horizontal")
    if prices is not None and ("cost_usd" not in df.columns or df.get_column("cost_usd").null_count()):
        from slmlab.collect.pricing import estimate_cost

        df = estimate_cost(df, prices)
    for col, dtype in (
        ("cost_usd", pl.Float64),
        ("latency_ms", pl.Float64),
        ("input_tokens", pl.Int64),
        ("output_tokens", pl.Int64),
    ):
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=dtype).alias(col))
    slm = pl.col("routed_to") == "slm"
    slm_tokens = pl.col("input_tokens").fill_null(0) + pl.coalesce(
        pl.col("slm_output_tokens"), pl.col("output_tokens")
    ).fill_null(0)
    slm_cost = (
        slm_tokens * slm_cost_per_mtok / 1e6
        if slm_cost_per_mtok is not None
        else pl.lit(None, dtype=pl.Float64)
    )
    df = df.with_columns(
        pl.when(slm).then(pl.col("slm_agreement")).otherwise(1.0).alias("agreement"),
        (~slm | pl.col("slm_agreement").is_not_null()).alias("measured"),
        pl.col("cost_usd").alias("llm_cost_usd"),
        pl.when(slm).then(slm_cost).otherwise(pl.col("cost_usd")).alias("replay_cost_usd"),
        pl.when(slm)
        .then(pl.col("slm_latency_ms"))
        .otherwise(pl.col("latency_ms"))
        .alias("replay_latency_ms"),
    )
    keep = ["call_id"] + (["cluster"] if "cluster" in df.columns else []) + list(ROUTE_COLUMNS)
    keep += [
        "agreement",
        "measured",
        "slm_output_tokens",
        "slm_latency_ms",
        "llm_cost_usd",
        "replay_cost_usd",
        "replay_latency_ms",
    ]
    return df.select(keep)


def threshold_sweep(
    calls: pl.DataFrame,
    router: Router,
    scores: pl.DataFrame,
    thresholds: Sequence[float] | None = None,
    missing_agreement: float = 0.0,
) -> pl.DataFrame:
    """Quality (mean agreement with the LLM) against the share of calls kept on the LLM, per threshold.

    The router scores the calls once; each threshold is then a numpy comparison. An SLM-routed call that
    was not evaluated counts as `missing_agreement` (0.0: an unmeasured answer is assumed wrong).

    Returns:
        threshold, llm_share, slm_share, quality, slm_agreement (mean agreement of the SLM-routed calls
        alone), n, plus quality_all_llm (1.0) and quality_all_slm (every call on its SLM route), which
        `apgr` and `call_share_for_quality` use.
    """
    clusters, s, ok = router.decide(calls)
    outcome = _slm_outcomes(calls, router, scores, clusters)
    a = outcome.get_column("slm_agreement").cast(pl.Float64).fill_null(missing_agreement).to_numpy()
    if thresholds is None:
        finite = s[ok & np.isfinite(s)]
        qs = np.unique(np.quantile(finite, np.linspace(0, 1, 41))) if finite.size else np.array([])
        thresholds = np.concatenate([[-np.inf], qs, [np.inf]])
    rows = []
    n = len(s)
    for t in thresholds:
        to_slm = ok & (s >= t)
        q = float(np.where(to_slm, a, 1.0).mean()) if n else float("nan")
        rows.append(
            {
                "threshold": float(t),
                "llm_share": 1 - to_slm.mean() if n else 1.0,
                "slm_share": to_slm.mean() if n else 0.0,
                "quality": q,
                "slm_agreement": float(a[to_slm].mean()) if to_slm.any() else None,
                "n": n,
            }
        )
    out = pl.DataFrame(rows).with_columns(
        pl.lit(1.0).alias("quality_all_llm"),
        pl.lit(float(a.mean()) if n else float("nan")).alias("quality_all_slm"),
    )
    return out.sort("llm_share", "quality")


def _curve(sweep: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(llm_share, PGR) points with the all-SLM (0, 0) and all-LLM (1, 1) endpoints, sorted by share."""
    weak, strong = float(sweep["quality_all_slm"][0]), float(sweep["quality_all_llm"][0])
    gap = strong - weak
    share = np.concatenate([[0.0], sweep["llm_share"].to_numpy(), [1.0]])
    qual = np.concatenate([[weak], sweep["quality"].to_numpy(), [strong]])
    pgr = (qual - weak) / gap if gap > 0 else np.ones_like(qual)
    order = np.lexsort((pgr, share))
    return share[order], pgr[order], weak, strong


def apgr(sweep: pl.DataFrame) -> float:
    """Average performance gap recovered (RouteLLM): area under PGR vs share of calls kept on the LLM.

    PGR = (quality - quality_all_slm) / (quality_all_llm - quality_all_slm). The curve runs from all-SLM
    (share 0, PGR 0) to all-LLM (share 1, PGR 1); between swept points it is linear. A random router
    scores about 0.5; a perfect one close to 1.

    Example:
        >>> sw = pl.DataFrame({"llm_share": [0.5], "quality": [0.75], "quality_all_llm": [1.0], "quality_all_slm": [0.5]})
        >>> apgr(sw)
        0.5
    """
    share, pgr, _, _ = _curve(sweep)
    # Upper envelope: at one share a router can always pick its best threshold.
    xs, ys = [], []
    for x, y in zip(share, pgr, strict=True):
        if xs and x == xs[-1]:
            ys[-1] = max(ys[-1], y)
        else:
            xs.append(x)
            ys.append(y)
    return float(np.trapezoid(ys, xs))


def share_at_agreement(sweep: pl.DataFrame, level: float = 0.9) -> dict[str, float | None]:
    """The largest share of calls an SLM takes while its routed calls agree with the LLM at >= `level`.

    Example:
        >>> sweep = pl.DataFrame({"threshold": [0.0, 0.5, 0.9], "slm_share": [0.4, 0.25, 0.1],
        ...                       "slm_agreement": [0.7, 0.92, 1.0]})
        >>> share_at_agreement(sweep, 0.9)
        {'level': 0.9, 'slm_share': 0.25, 'slm_agreement': 0.92, 'threshold': 0.5}
    """
    ok = sweep.filter(pl.col("slm_agreement") >= level).sort("slm_share", descending=True)
    if ok.is_empty():
        return {"level": level, "slm_share": 0.0, "slm_agreement": None, "threshold": None}
    row = ok.row(0, named=True)
    return {
        "level": level,
        "slm_share": float(row["slm_share"]),
        "slm_agreement": float(row["slm_agreement"]),
        "threshold": float(row["threshold"]),
    }


def call_share_for_quality(
    sweep: pl.DataFrame, levels: Sequence[float] = (0.5, 0.8, 0.95), relative_to: str = "gap"
) -> pl.DataFrame:
    """The smallest share of calls kept on the LLM that reaches each quality level (RouteLLM's CPT).

    Args:
        levels: targets as fractions.
        relative_to: "gap" (RouteLLM: a level of the performance gap recovered between all-SLM and
            all-LLM) or "llm" (a level of the LLM's own quality, agreement 1.0).

    Returns:
        level, llm_share (null when no swept threshold reaches the level), threshold, quality.

    Example:
        >>> sw = pl.DataFrame({"threshold": [0.9, 0.5], "llm_share": [0.2, 0.6], "quality": [0.7, 0.9],
        ...                    "quality_all_llm": [1.0, 1.0], "quality_all_slm": [0.5, 0.5]})
        >>> call_share_for_quality(sw, [0.5])["llm_share"].to_list()
        [0.6]
    """
    weak, strong = float(sweep["quality_all_slm"][0]), float(sweep["quality_all_llm"][0])
    rows = []
    ordered = sweep.sort("llm_share")
    for level in levels:
        target = weak + level * (strong - weak) if relative_to == "gap" else level * strong
        hit = ordered.filter(pl.col("quality") >= target - 1e-12)
        if hit.height:
            r = hit.row(0, named=True)
            rows.append(
                {
                    "level": level,
                    "llm_share": r["llm_share"],
                    "threshold": r.get("threshold"),
                    "quality": r["quality"],
                }
            )
        else:
            rows.append({"level": level, "llm_share": None, "threshold": None, "quality": None})
    return pl.DataFrame(
        rows,
        schema={"level": pl.Float64, "llm_share": pl.Float64, "threshold": pl.Float64, "quality": pl.Float64},
    )


def plot_quality_vs_llm_share(sweep: pl.DataFrame, random_sweep: pl.DataFrame | None = None) -> go.Figure:
    """Quality (agreement with the LLM) vs share of calls kept on the LLM, with the random router.

    Example:
        >>> plot_quality_vs_llm_share(threshold_sweep(test, router, scores), threshold_sweep(test, RandomRouter(), scores))  # doctest: +SKIP
    """
    fig = go.Figure()
    fig.add_scatter(
        x=sweep["llm_share"].to_list(), y=sweep["quality"].to_list(), mode="lines+markers",
        name=f"cluster router (APGR {apgr(sweep):.2f})",
        customdata=sweep["threshold"].to_list() if "threshold" in sweep.columns else None,
        hovertemplate="LLM share %{x:.1%}<br>quality %{y:.3f}<br>threshold %{customdata:.3f}<extra></extra>",
    )  # fmt: skip
    if random_sweep is not None:
        fig.add_scatter(
            x=random_sweep["llm_share"].to_list(), y=random_sweep["quality"].to_list(), mode="lines",
            name=f"random router (APGR {apgr(random_sweep):.2f})", line_dash="dash",
        )  # fmt: skip
    fig.update_layout(
        title="Quality vs share of calls kept on the LLM",
        xaxis_title="share of calls kept on the LLM",
        yaxis_title="agreement with the LLM",
        xaxis_tickformat=".0%",
    )
    return fig


# ---------------------------------------------------------------- replay per agent of a multi-agent log

_EMPTY_SCORES = {"call_id": pl.String, "agreement": pl.Float64}
# The per-agent table of `replay_by_agent`, after the agent column: the whole log, the fit, then the
# held-out replay (costs in USD; agreement only over SLM-routed calls that were scored).
AGENT_TABLE_COLUMNS = (
    "log_calls", "log_cost_usd", "log_calls_without_cost", "train_calls", "clusters", "swap_clusters",
    "calls", "calls_without_cost", "calls_cost_estimated", "cost_before_usd", "cost_after_usd", "saved_usd",
    "saved_share", "slm_calls", "slm_share", "measured_calls", "unmeasured_calls", "slm_agreement",
)  # fmt: skip


@dataclass
class AgentReplay:
    """The held-out replay of a multi-agent log, one cluster router per agent (from `replay_by_agent`).

    Attributes:
        by: the column that names an agent (e.g. "agent", or "model" for tau2-bench's six agent models).
        held_out: agent -> its held-out calls (whole sessions, `split == "test"`), every call-table column.
        routers: agent -> the router fitted on its training calls (a `RandomRouter` that routes nothing
            where an agent had no cluster to swap).
        clusters: agent -> cluster table of its training calls (`describe_clusters`) with a `swap` column.
        tools: agent -> tool schemas inferred from its *training* calls (for prompting an SLM).
        agents: one row per agent: the whole log before splitting (log_calls, log_cost_usd,
            log_calls_without_cost) and the fit (train_calls, clusters, swap_clusters).
        spec: the self-hosted SLM cost model (`slmlab.savings.SelfHostedSLM`).
        scores: the SLM scores the replay used (empty: no SLM evaluated, every routed call unmeasured).
        calls: one row per replayed call (set by `with_scores`): the agent, call_id, session_id, the route
            columns, agreement / measured as `replay` gives them, cost_before_usd, cost_after_usd.
        table: one row per agent (set by `with_scores`, columns listed in `replay_by_agent`).
        total: the table's sums and overall shares.
    """

    by: str
    held_out: dict[str, pl.DataFrame]
    routers: dict[str, Router]
    clusters: dict[str, pl.DataFrame]
    tools: dict[str, list[dict[str, Any]]]
    agents: pl.DataFrame
    spec: Any
    scores: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_EMPTY_SCORES))
    calls: pl.DataFrame = field(default_factory=pl.DataFrame)
    table: pl.DataFrame = field(default_factory=pl.DataFrame)
    total: dict[str, Any] = field(default_factory=dict)

    def with_scores(self, scores: pl.DataFrame | None = None) -> AgentReplay:
        """A copy replayed with these SLM scores: `scores`, `calls`, `table` and `total` filled anew.

        The routers are not refitted, so scoring a sample (`score_routed`) and replaying again is cheap.
        Scores of several SLM configurations at once would make the per-call agreement ambiguous (replay
        keeps the best), so they must name one (model, experiment).
        """
        from slmlab.savings import slm_cost_per_call

        scores = scores if scores is not None and scores.height else pl.DataFrame(schema=_EMPTY_SCORES)
        configs = [c for c in ("model", "experiment", "adapter") if c in scores.columns]
        if configs and scores.select(configs).unique().height > 1:
            raise ValueError(
                "scores hold several SLM configurations; filter them to one (model, experiment, adapter)"
            )
        per_call = []
        for agent, test in self.held_out.items():
            if test.is_empty():
                continue
            rep = replay(test, self.routers[agent], scores)
            slm_out = rep.get_column("slm_output_tokens").fill_null(test.get_column("output_tokens"))
            slm_cost = slm_cost_per_call(
                test.get_column("input_tokens").fill_null(0).to_numpy(),
                slm_out.fill_null(0).to_numpy(),
                self.spec,
            )
            estimated = test.get_column("cost_estimated") if "cost_estimated" in test.columns else None
            before = pl.col("cost_before_usd")
            per_call.append(
                rep.select(
                    pl.lit(agent, dtype=pl.String).alias(self.by),
                    "call_id",
                    *ROUTE_COLUMNS,
                    "agreement",
                    "measured",
                    "slm_output_tokens",
                )
                .with_columns(
                    test.get_column("session_id"),
                    test.get_column("cost_usd").cast(pl.Float64).alias("cost_before_usd"),
                    (estimated if estimated is not None else pl.lit(False))
                    .fill_null(False)
                    .alias("cost_estimated"),
                    pl.Series("slm_cost_usd", slm_cost, dtype=pl.Float64),
                )
                .with_columns(
                    # Calls without a known LLM cost stay out of before and after alike (like with like).
                    pl.when(before.is_null())
                    .then(None)
                    .when(pl.col("routed_to") == "slm")
                    .then(pl.col("slm_cost_usd"))
                    .otherwise(before)
                    .alias("cost_after_usd")
                )
            )
        out = dataclasses.replace(
            self, scores=scores, calls=pl.concat(per_call) if per_call else pl.DataFrame()
        )
        out.table, out.total = _agent_table(out)
        return out


def _agent_table(result: AgentReplay) -> tuple[pl.DataFrame, dict[str, Any]]:
    by = result.by
    slm = pl.col("routed_to") == "slm"
    if result.calls.height:
        replayed = result.calls.group_by(by).agg(
            pl.len().alias("calls"),
            pl.col("cost_before_usd").is_null().sum().alias("calls_without_cost"),
            pl.col("cost_estimated").sum().alias("calls_cost_estimated"),
            pl.col("cost_before_usd").sum().alias("cost_before_usd"),
            pl.col("cost_after_usd").sum().alias("cost_after_usd"),
            slm.sum().alias("slm_calls"),
            (slm & pl.col("measured")).sum().alias("measured_calls"),
            (slm & ~pl.col("measured")).sum().alias("unmeasured_calls"),
            pl.col("agreement").filter(slm & pl.col("measured")).mean().alias("slm_agreement"),
        )
    else:
        counts = ("calls", "calls_without_cost", "calls_cost_estimated")
        replayed = pl.DataFrame(
            schema={by: pl.String}
            | dict.fromkeys(counts, pl.Int64)
            | dict.fromkeys(("cost_before_usd", "cost_after_usd"), pl.Float64)
            | dict.fromkeys(("slm_calls", "measured_calls", "unmeasured_calls"), pl.Int64)
            | {"slm_agreement": pl.Float64}
        )
    table = (
        result.agents.join(replayed, on=by, how="left")
        .with_columns(
            pl.col("calls", "calls_without_cost", "calls_cost_estimated", "slm_calls")
            .fill_null(0)
            .cast(pl.Int64),
            pl.col("measured_calls", "unmeasured_calls").fill_null(0).cast(pl.Int64),
            pl.col("cost_before_usd", "cost_after_usd").fill_null(0.0),
        )
        .with_columns((pl.col("cost_before_usd") - pl.col("cost_after_usd")).alias("saved_usd"))
        .with_columns(
            pl.when(pl.col("cost_before_usd") > 0)
            .then(pl.col("saved_usd") / pl.col("cost_before_usd"))
            .alias("saved_share"),
            pl.when(pl.col("calls") > 0).then(pl.col("slm_calls") / pl.col("calls")).alias("slm_share"),
        )
        .select(by, *AGENT_TABLE_COLUMNS)
        .sort(by)
    )
    sums = {
        c: table.get_column(c).sum()
        for c in ("log_calls", "log_cost_usd", "calls", "cost_before_usd", "cost_after_usd", "saved_usd")
    }
    sums |= {c: int(table.get_column(c).sum()) for c in ("slm_calls", "measured_calls", "unmeasured_calls")}
    measured = result.calls.filter(slm & pl.col("measured")) if result.calls.height else result.calls
    total = sums | {
        "agents": table.height,
        "saved_share": sums["saved_usd"] / sums["cost_before_usd"] if sums["cost_before_usd"] else None,
        "slm_share": sums["slm_calls"] / sums["calls"] if sums["calls"] else None,
        "slm_agreement": float(measured.get_column("agreement").mean()) if measured.height else None,
    }
    return table, total


def replay_by_agent(
    calls: pl.DataFrame,
    by: str = "agent",
    scores: pl.DataFrame | None = None,
    spec: Any = None,
    *,
    test_size: float = 0.3,
    seed: int = 0,
    clusterer: Any = None,
    router: Router | None = None,
    min_suitability: float = 0.6,
    min_calls: int = 20,
) -> AgentReplay:
    """Replay a multi-agent log per agent: split, cluster, route held-out calls, price before and after.

    For each agent (each value of `by`): whole sessions are split into train and held-out
    (`slmlab.specialize.splits.split_by_session`, no deduplication, so every logged call is replayed or trained on),
    the training calls are clustered (`TaskClusterer`, TF-IDF by default: fast and offline), clusters with
    `suitability >= min_suitability` are marked swap (what the unattended pipeline accepts), a
    `ClusterRouter` is fitted on the training calls, and the held-out calls go through `replay`.

    Costs: *before* is each held-out call's `cost_usd` as the call table has it (the logged cost; an
    estimate only where the table already holds one, counted in `calls_cost_estimated`); *after* keeps
    LLM calls at that cost and prices SLM-routed calls with `slmlab.savings.slm_cost_per_call` (measured
    SLM output lengths where scored, else the logged ones; no fixed engineering cost). Calls without a
    known cost stay out of both sums (`calls_without_cost`). Agreement is only ever measured: an SLM-routed
    call counts as measured when `scores` holds it (`score_routed`, `slmlab.evaluate.run_experiments`),
    otherwise it is unmeasured and `slm_agreement` stays null.

    Args:
        calls: a call table (`call_id`, `session_id`, `messages`, responses, tokens, `cost_usd`, `by`).
        by: the column naming an agent; for tau2-bench use the agent calls and `by="model"`.
        scores: per-call SLM scores for one (model, experiment); None: no SLM evaluated.
        spec: `slmlab.savings.SelfHostedSLM` (default: its defaults, an L4 at 50% utilization).
        test_size: share of each agent's calls held out (approximate: sessions are not cut).
        seed: the split's seed; the same seed holds out the same calls, so saved scores stay valid.
        clusterer: an unfitted `TaskClusterer` (copied per agent); default `TaskClusterer(embedder="tfidf")`.
        router: an unfitted router (copied per agent); default `ClusterRouter()`.
        min_suitability: clusters at or above this suitability are sent to the SLM.
        min_calls: agents with fewer training calls are not clustered (everything stays on the LLM).

    Returns:
        An `AgentReplay`; its `table` has one row per agent: log_calls, log_cost_usd and
        log_calls_without_cost (the whole log), train_calls, clusters, swap_clusters, then over the
        held-out calls: calls, calls_without_cost, calls_cost_estimated, cost_before_usd, cost_after_usd,
        saved_usd, saved_share, slm_calls, slm_share, measured_calls, unmeasured_calls, slm_agreement.

    Example:
        >>> agents = tau2_calls.filter(pl.col("agent") == "agent")  # doctest: +SKIP
        >>> result = replay_by_agent(agents, by="model")  # doctest: +SKIP
        >>> scores = score_routed(result, "smollm2-135m", n_per_cluster=2, max_clusters=3)  # doctest: +SKIP
        >>> result.with_scores(scores).table  # doctest: +SKIP
    """
    from slmlab.cluster import TaskClusterer, describe_clusters
    from slmlab.runtime.chat_format import tools_from_calls
    from slmlab.savings import SelfHostedSLM
    from slmlab.specialize.splits import check_leakage, split_by_session

    if by not in calls.columns:
        raise ValueError(f"the call table has no {by!r} column to group agents by")
    calls = calls.with_columns(pl.col(by).cast(pl.String).fill_null("unknown"))
    cost = pl.col("cost_usd").cast(pl.Float64)
    log = (
        calls.group_by(by)
        .agg(
            pl.len().cast(pl.Int64).alias("log_calls"),
            cost.sum().alias("log_cost_usd"),
            cost.is_null().sum().cast(pl.Int64).alias("log_calls_without_cost"),
        )
        .sort(by)
    )
    template_c = clusterer if clusterer is not None else TaskClusterer(embedder="tfidf")
    template_r = router if router is not None else ClusterRouter()
    held, routers, tables, tools, fits = {}, {}, {}, {}, []
    for agent in log.get_column(by).to_list():
        part = calls.filter(pl.col(by) == agent)
        split = split_by_session(part, test_size=test_size, val_size=0.0, seed=seed, dedupe=False)
        check_leakage(split)
        train = split.filter(pl.col("split") == "train")
        held[agent] = split.filter(pl.col("split") == "test")
        tools[agent] = tools_from_calls(train.get_column("response_tool_calls").to_list())
        table = pl.DataFrame(schema={"cluster": pl.Int32, "swap": pl.Boolean})
        if train.height >= max(min_calls, 2):
            labels = copy.deepcopy(template_c).fit(train).labels_
            train = train.with_columns(pl.Series("cluster", labels, dtype=pl.Int32))
            table = describe_clusters(train)
            suitable = (pl.col("cluster") >= 0) & (pl.col("suitability") >= min_suitability)
            table = table.with_columns(suitable.alias("swap"))
        swap = table.filter(pl.col("swap")).get_column("cluster").to_list()
        if swap and table.height >= 2:  # the router needs two classes (noise counts as one)
            routers[agent] = copy.deepcopy(template_r).fit(train, routes=swap)
        else:  # nothing to swap: a router that keeps every call on the LLM
            routers[agent] = RandomRouter(swap_only=True)
        tables[agent] = table
        fits.append(
            {
                by: agent,
                "train_calls": train.height,
                "clusters": int((table.get_column("cluster") >= 0).sum()),
                "swap_clusters": len(swap),
            }
        )
    fit_info = pl.DataFrame(
        fits, schema={by: pl.String, "train_calls": pl.Int64, "clusters": pl.Int64, "swap_clusters": pl.Int64}
    )
    result = AgentReplay(
        by=by, held_out=held, routers=routers, clusters=tables, tools=tools,
        agents=log.join(fit_info, on=by, how="left"),
        spec=spec if spec is not None else SelfHostedSLM(),
    )  # fmt: skip
    return result.with_scores(scores)


def score_routed(
    result: AgentReplay,
    model: Any = "smollm2-135m",
    n_per_cluster: int = 2,
    max_clusters: int | None = None,
    agents: Sequence[str] | None = None,
    budget: Any = None,
    max_new_tokens: int = 64,
    seed: int = 0,
    batch_size: int = 4,
    cache: bool = True,
    embedder: Any = "tfidf",
) -> pl.DataFrame:
    """Real SLM scores for a seeded sample of the SLM-routed held-out calls of each agent.

    Per agent, the largest routed clusters first (at most `max_clusters`), `n_per_cluster` routed calls
    each are prompted zero-shot (`build_prompt` with the agent's tools inferred from its training calls),
    generated greedily and scored against the logged answer (`score_calls`, experiment "base"). Feed the
    result to `AgentReplay.with_scores`; calls left out of the sample stay unmeasured.

    Args:
        result: from `replay_by_agent`.
        model: a model reference for `TransformersGenerator` (default the bundled SmolLM2-135M) or any
            `Generator` (an endpoint).
        n_per_cluster: routed calls scored per cluster; max_clusters: clusters per agent (None: all).
        agents: only these agents (None: all).
        budget: `PromptBudget`; default a short one (system 600 chars, 4 turns, 512 tokens) for CPU.
        max_new_tokens: generation budget (a tau2 tool call takes ~30-60 tokens; fewer truncate it).

    Returns:
        `score_calls` rows (call_id, model, experiment, agreement, ...).

    Example:
        >>> scores = score_routed(result, "smollm2-135m", n_per_cluster=1, max_clusters=1, max_new_tokens=16)  # doctest: +SKIP
    """
    from slmlab.evaluate.experiments import build_prompt
    from slmlab.evaluate.metrics import score_calls
    from slmlab.runtime.chat_format import PromptBudget
    from slmlab.runtime.generate import Generator, TransformersGenerator

    budget = budget or PromptBudget(max_system_chars=600, max_message_chars=400, max_turns=4, max_tokens=512)
    samples = []
    for agent, test in result.held_out.items():
        if (agents is not None and agent not in agents) or test.is_empty():
            continue
        routed = result.routers[agent].route(test).filter(pl.col("routed_to") == "slm")
        sizes = (
            routed.group_by("route_cluster").len().sort(["len", "route_cluster"], descending=[True, False])
        )
        for c in sizes.get_column("route_cluster").head(max_clusters or sizes.height).to_list():
            part = routed.filter(pl.col("route_cluster") == c)
            samples.append((agent, part.sample(min(n_per_cluster, part.height), seed=seed)))
    if not samples:
        return pl.DataFrame(schema=_EMPTY_SCORES)
    gen = model if isinstance(model, Generator) else TransformersGenerator(model, batch_size=batch_size)
    tok = getattr(gen, "tokenizer", None)
    out = []
    for agent in dict.fromkeys(a for a, _ in samples):
        sample = pl.concat([s for a, s in samples if a == agent]).with_columns(
            pl.col("route_cluster").alias("cluster")
        )
        prompts = [build_prompt(r, budget, tok, result.tools[agent]) for r in sample.to_dicts()]
        gens = gen.generate(prompts, max_new_tokens=max_new_tokens, progress=False, cache=cache)
        out.append(
            score_calls(
                sample,
                gens,
                model=gen.name,
                experiment="base",
                embedder=embedder,
                tools_fallback=result.tools[agent],
            )  # fmt: skip
        )
    return pl.concat(out, how="diagonal_relaxed")


__all__ = [
    "AGENT_TABLE_COLUMNS",
    "ROUTERS",
    "AgentReplay",
    "ClusterRouter",
    "HashedTfidf",
    "RandomRouter",
    "Router",
    "apgr",
    "call_share_for_quality",
    "share_at_agreement",
    "load_router",
    "plot_quality_vs_llm_share",
    "register_router",
    "replay",
    "replay_by_agent",
    "score_routed",
    "select_router",
    "threshold_sweep",
]

from slmlab.route.routed import observed_calls_per_month, routed_calls  # noqa: E402, F401  (public API)
