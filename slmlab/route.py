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
`call_share_for_quality` and `apgr` (average performance gap recovered), as in RouteLLM.

Usage:
    >>> from slmlab.route import ClusterRouter, replay, threshold_sweep
    >>> router = ClusterRouter().fit(train_calls, routes=verdicts_table)  # doctest: +SKIP
    >>> router.route(new_calls).select("call_id", "routed_to", "route_cluster", "adapter")  # doctest: +SKIP
    >>> router.save("runs/demo/router"); load_router("runs/demo/router")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import plotly.graph_objects as go
import polars as pl

from slmlab.evaluate.experiments import prompt_text

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
            `slmlab.embed`, else the bundled MiniLM).
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
        return [prompt_text(m, last=self.last_turns) for m in calls.get_column("messages").to_list()]

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self._embed_model is None:
            try:
                from slmlab.embed import select_embedder

                self._embed_model = select_embedder(self.embedder)
            except ImportError:
                from slmlab.config import require
                from slmlab.models import resolve_embedder

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
        prices: LLM price table (`slmlab.pricing.load_prices()`) for calls without a logged cost.
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
        from slmlab.pricing import estimate_cost

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
        threshold, llm_share, slm_share, quality, n, plus quality_all_llm (1.0) and quality_all_slm (every
        call on its SLM route), which `apgr` and `call_share_for_quality` use.
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


__all__ = [
    "ROUTERS",
    "ClusterRouter",
    "HashedTfidf",
    "RandomRouter",
    "Router",
    "apgr",
    "call_share_for_quality",
    "load_router",
    "plot_quality_vs_llm_share",
    "register_router",
    "replay",
    "select_router",
    "threshold_sweep",
]
