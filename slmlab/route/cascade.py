"""The cascade router: the SLM answers every call first; a calibrated gate keeps its answer or escalates.

Unlike `ClusterRouter`, which must guess the sub-task from the prompt before any model runs, the cascade
asks the SLM (one adapter for the whole agent, or an adapter per action behind it) and judges the answer
it gave: its gate (`slmlab.route.gate.CascadeGate`) reads the token probability of the action and of each
argument value, schema validity, id evidence in the prompt and agreement with a decoding constrained to
the tools' schemas, and the threshold is calibrated on validation calls to a target agreement
(`calibrate_threshold`). It is a `Router` like the others: `route`, `threshold_sweep`, `replay`, `save` /
`load_router` work unchanged; `score(calls)` reads the gate features from the call table's columns (add
them with `gate_features` and a join on `call_id`).

Usage:
    >>> from slmlab.route import CascadeRouter
    >>> router = CascadeRouter(routes={0: "runs/x/adapters/agent"}).fit(val_with_features, agreed=val_agreed)  # doctest: +SKIP
    >>> router.route(test_with_features).get_column("routed_to").value_counts()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from slmlab.actions import TEXT_ACTION
from slmlab.route.gate import (
    GATE_FEATURES,
    CascadeGate,
    calibrate_threshold,
    cross_fit_scores,
    wilson_interval,
)
from slmlab.route.routers import Router, register_router

CASCADE_CLUSTER = 0  # the one route of an agent-level cascade: the agent's SLM answers every call


def specialist_clusters(generations: Sequence[Any], specialists: Sequence[str]) -> list[int]:
    """Per call, the route that gives the cascade's answer: the agent adapter answers first, and where its
    answer takes an action that has a specialist adapter, that adapter answers again (`1 +` the action's
    index in `specialists`); every other call keeps the agent's answer (`CASCADE_CLUSTER`).

    Example:
        >>> from slmlab.runtime.generate import Generation
        >>> gens = [Generation(text="hi"), Generation(text="", tool_calls=[{"name": "lookup", "arguments": "{}"}])]
        >>> specialist_clusters(gens, ["lookup"])
        [0, 1]
    """
    index = {name: i + 1 for i, name in enumerate(specialists)}
    out = []
    for gen in generations:
        calls = gen.tool_calls or []
        name = calls[0].get("name") if calls else TEXT_ACTION
        out.append(index.get(name, CASCADE_CLUSTER))
    return out


@register_router("cascade")
class CascadeRouter(Router):
    """SLM first, LLM where the gate's score of the SLM's own answer is below the calibrated threshold.

    Args:
        threshold: gate score at or above which the SLM's answer is kept; None: calibrated at `fit`.
        routes: the SLM route(s) (see `Router`); default one route, cluster 0, that every call takes.
        target: agreement the calibration aims at (the Wilson lower bound on the fit calls).
        feature: gate on this single feature instead of the logistic regression (for comparison).
        features: the features the regression reads.
        C: regularization of the regression.
        folds: cross-fitting folds when calibrating on the calls the gate is fitted on.

    Attributes:
        gate_: the fitted `CascadeGate`; calibration_: what `calibrate_threshold` returned.

    Example:
        >>> feats = {f: [0.0, 1.0] * 20 for f in GATE_FEATURES}
        >>> calls = pl.DataFrame({"call_id": [str(i) for i in range(40)], **feats})
        >>> r = CascadeRouter(target=0.8).fit(calls, agreed=[0, 1] * 20)
        >>> r.route(calls)["routed_to"].to_list()[:2]
        ['llm', 'slm']
    """

    def __init__(
        self,
        threshold: float | None = None,
        routes: Any = None,
        target: float = 0.9,
        feature: str | None = None,
        features: Sequence[str] = GATE_FEATURES,
        C: float = 1.0,
        folds: int = 5,
    ) -> None:
        super().__init__(threshold if threshold is not None else float("inf"), routes)
        if self.routes.is_empty():
            self.routes = Router(routes=[CASCADE_CLUSTER]).routes
        self.auto_threshold = threshold is None
        self.target, self.feature, self.features, self.C, self.folds = (
            target,
            feature,
            tuple(features),
            C,
            folds,
        )
        self.gate_ = CascadeGate(self.features, feature, C)
        self.calibration_: dict[str, Any] = {}

    def assign(self, calls: pl.DataFrame) -> np.ndarray:
        """Every call takes the cascade's route (the first swapped cluster), unless it has a `cluster`
        column naming per-action routes."""
        clusters = self.routes.get_column("cluster").to_list()
        if len(clusters) > 1 and "cluster" in calls.columns:
            return super().assign(calls)
        return np.full(calls.height, clusters[0] if clusters else CASCADE_CLUSTER)

    def fit(
        self,
        calls: pl.DataFrame,
        routes: Any = None,
        agreed: Sequence[float] | None = None,
        calibrate_on: pl.DataFrame | None = None,
        calibrate_agreed: Sequence[float] | None = None,
        groups: Any = None,
    ) -> CascadeRouter:
        """Fit the gate on `calls` (gate-feature columns) and their 0/1 `agreed`, then calibrate.

        The threshold is calibrated on `calibrate_on` when given (calls the gate was not fitted on), else
        on out-of-fold scores of `calls` themselves (`folds`-fold cross-fitting, by `groups` when given),
        so the gate never grades its own training calls.
        """
        super().fit(calls, routes)
        if agreed is None:
            if "agreement" not in calls.columns:
                raise ValueError("fit needs `agreed` (0/1 per call) or an `agreement` column")
            agreed = calls.get_column("agreement").fill_null(0.0).to_list()
        self.gate_ = CascadeGate(self.features, self.feature, self.C).fit(calls, agreed)
        if calibrate_on is not None:
            if calibrate_agreed is None:
                calibrate_agreed = calibrate_on.get_column("agreement").fill_null(0.0).to_list()
            cal_scores, cal_y = self.gate_.score(calibrate_on), calibrate_agreed
        elif self.feature is not None:
            cal_scores, cal_y = self.gate_.score(calls), agreed
        else:
            cal_scores = cross_fit_scores(self.gate_, calls, agreed, folds=self.folds, groups=groups)
            cal_y = agreed
        self.calibration_ = calibrate_threshold(cal_scores, cal_y, self.target)
        if self.auto_threshold:
            self.threshold = self.calibration_["threshold"]
        return self

    def score(self, calls: pl.DataFrame) -> np.ndarray:
        missing = [
            f for f in (self.features if self.feature is None else (self.feature,)) if f not in calls.columns
        ]
        if missing:
            raise ValueError(
                f"the cascade's gate needs the feature column(s) {missing}: add them with "
                "slmlab.route.gate.gate_features(calls, generations, tools, max_new_tokens)"
            )
        return self.gate_.score(calls)

    # -- persistence
    def _config(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold, "target": self.target, "feature": self.feature,
            "features": list(self.features), "C": self.C, "folds": self.folds,
        }  # fmt: skip

    def _arrays(self) -> dict[str, np.ndarray]:
        g = self.gate_
        arrays = {"mean": g.mean_, "scale": g.scale_, "coef": g.coef_, "intercept": np.array([g.intercept_])}
        return {k: v for k, v in arrays.items() if v is not None}

    def _set_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        g = self.gate_
        g.mean_, g.scale_, g.coef_ = arrays.get("mean"), arrays.get("scale"), arrays.get("coef")
        g.intercept_ = float(arrays["intercept"][0]) if "intercept" in arrays else 0.0
        self.auto_threshold = False


def cascade_sweep(
    scores: Sequence[float], agreed: Sequence[float], thresholds: Sequence[float] | None = None
) -> pl.DataFrame:
    """Kept share and agreement (with Wilson CI) of the SLM's answers per gate threshold.

    A call above the threshold keeps the SLM's answer (its measured agreement); below, the LLM answers
    (agreement 1 by definition). `quality` is the mean over all calls, as in `threshold_sweep`, so the
    cascade's curve sits on the same plot as `ClusterRouter`'s and `RandomRouter`'s.

    Returns:
        threshold, slm_share, llm_share, kept, slm_agreement, ci_low, ci_high, quality, n,
        quality_all_llm, quality_all_slm (the columns `apgr` and `share_at_agreement` read).

    Example:
        >>> sw = cascade_sweep([0.9, 0.8, 0.1], [1, 1, 0], thresholds=[0.5])
        >>> sw.select("slm_share", "slm_agreement").row(0)
        (0.6666666666666666, 1.0)
    """
    s = np.asarray(scores, dtype=float)
    y = (np.asarray(agreed, dtype=float) >= 0.5).astype(float)
    n = len(s)
    if thresholds is None:
        qs = np.unique(np.quantile(s[np.isfinite(s)], np.linspace(0, 1, 51))) if n else np.array([])
        thresholds = np.concatenate([qs, [np.inf]])
    rows = []
    for t in thresholds:
        keep = s >= t
        k = int(keep.sum())
        hits = int(y[keep].sum())
        lo, hi = wilson_interval(hits, k)
        rows.append(
            {
                "threshold": float(t), "slm_share": k / n if n else 0.0, "llm_share": 1 - k / n if n else 1.0,
                "kept": k, "slm_agreement": hits / k if k else None, "ci_low": lo if k else None,
                "ci_high": hi if k else None, "quality": float(np.where(keep, y, 1.0).mean()) if n else 1.0, "n": n,
            }
        )  # fmt: skip
    out = pl.DataFrame(
        rows, schema_overrides={"slm_agreement": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64}
    )
    return out.with_columns(
        pl.lit(1.0).alias("quality_all_llm"),
        pl.lit(float(y.mean()) if n else float("nan")).alias("quality_all_slm"),
    ).sort("llm_share", "quality")


def plot_cascade_curves(sweeps: Mapping[str, pl.DataFrame], level: float = 0.9) -> Any:
    """Agreement of the calls kept on the SLM vs the share of all calls kept, one line per router, with
    the target level as a dashed line (the cascade, `ClusterRouter` and `RandomRouter` on one plot).

    Example:
        >>> fig = plot_cascade_curves({"cascade": cascade_sweep([0.9, 0.1], [1, 0])})
        >>> fig.layout.xaxis.title.text
        'share of all calls kept on the SLM'
    """
    import plotly.graph_objects as go

    from slmlab.route.replay import apgr

    fig = go.Figure()
    for name, sw in sweeps.items():
        sw = sw.filter(pl.col("slm_agreement").is_not_null()).sort("slm_share")
        fig.add_scatter(
            x=sw["slm_share"].to_list(), y=sw["slm_agreement"].to_list(), mode="lines+markers",
            name=f"{name} (APGR {apgr(sw):.2f})" if sw.height else name,
        )  # fmt: skip
    fig.add_hline(y=level, line_dash="dash", annotation_text=f"{level:.0%} agreement")
    fig.update_layout(
        title="Agreement of the SLM's kept answers vs share of calls kept on the SLM",
        xaxis_title="share of all calls kept on the SLM", yaxis_title="agreement with the LLM (kept calls)",
        xaxis_tickformat=".0%", yaxis_tickformat=".0%",
    )  # fmt: skip
    return fig


__all__ = ["CASCADE_CLUSTER", "CascadeRouter", "cascade_sweep", "plot_cascade_curves", "specialist_clusters"]
