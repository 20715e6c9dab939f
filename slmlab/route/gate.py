"""The cascade's gate: from the SLM's own answer, decide whether to keep it or escalate the call to the LLM.

`gate_features(calls, generations, tools)` reads, per call, what the SLM's answer says about itself:

| feature | meaning |
|---|---|
| `is_text` | the answer is a text reply (no tool call) |
| `p_action` | probability of the action: the tokens up to the end of the tool name (or the first token of a reply) |
| `lp_args_min` | smallest summed log-probability of one argument value's tokens (0 without arguments) |
| `lp_mean`, `lp_min` | mean and smallest token log-probability of the whole answer |
| `schema_valid` | the tool call parses and validates against the tool's JSON schema (1 for a reply) |
| `ids_in_prompt` | share of id-like argument values (`chat_format.ID_RE`) that occur in the prompt (1 without ids) |
| `truncated` | the answer hit the token limit |
| `constrained_agrees` | the answer equals the decoding constrained to the tools' schemas (1 where not run) |

`CascadeGate` is a logistic regression over these (scikit-learn, standardized), or a single feature
(`CascadeGate(feature="p_action")`) for comparison. `calibrate_threshold` picks, on validation calls, the
lowest gate threshold whose Wilson lower bound on the kept calls' agreement reaches the target: the
threshold that keeps the most calls while the agreement is statistically at or above it.

Agreement (what the gate learns to predict and what the sweep measures): a tool call agrees when name and
arguments match the LLM's exactly; a text reply when `text_agrees` holds: embedding cosine (MiniLM, else
TF-IDF) of the two replies >= `TEXT_AGREEMENT_THRESHOLD`, a threshold checked against hand-judged pairs
(`benchmarks/results/taubench_text_judged.jsonl`).

Usage:
    >>> from slmlab.route.gate import CascadeGate, calibrate_threshold, gate_features
    >>> feats = gate_features(val_calls, generations, tools)  # doctest: +SKIP
    >>> gate = CascadeGate().fit(feats, agreed)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from slmlab.runtime.chat_format import ID_RE, arguments_object

GATE_FEATURES = (
    "is_text", "p_action", "lp_args_min", "lp_mean", "lp_min", "schema_valid", "ids_in_prompt",
    "truncated", "constrained_agrees",
)  # fmt: skip
# A text reply agrees with the LLM's when the cosine of their embeddings reaches this (see module doc).
TEXT_AGREEMENT_THRESHOLD = 0.8


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (95% by default); (0, 1) for n = 0.

    Example:
        >>> [round(x, 3) for x in wilson_interval(90, 100)]
        [0.826, 0.945]
    """
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def text_agrees(similarity: Any, threshold: float = TEXT_AGREEMENT_THRESHOLD) -> np.ndarray:
    """The binary text-reply verdict from `score_calls`' `text_similarity` (null -> False)."""
    s = np.asarray([np.nan if v is None else v for v in np.atleast_1d(similarity)], dtype=float)
    return np.nan_to_num(s, nan=-1.0) >= threshold


def binary_agreement(scores: pl.DataFrame, threshold: float = TEXT_AGREEMENT_THRESHOLD) -> pl.DataFrame:
    """`scores` (from `score_calls`) with `agreement` made 0/1: exact tool match, or `text_agrees`."""
    sim = scores.get_column("text_similarity").to_list()
    agrees_text = text_agrees(sim, threshold)
    exact = scores.get_column("name_args_exact").cast(pl.Float64).to_numpy()
    is_text_ref = scores.get_column("name_args_exact").is_null().to_numpy()
    agreed = np.where(is_text_ref, agrees_text.astype(float), np.nan_to_num(exact, nan=0.0))
    # a text reference answered with a tool call (or the reverse) has similarity 0 / exact 0 already
    return scores.with_columns(
        pl.col("agreement").alias("agreement_raw"), pl.Series("agreement", agreed, dtype=pl.Float64)
    )


def _span_logprob(ends: list[int], lps: list[float], start: int, stop: int) -> float:
    """Summed log-probability of the tokens that overlap characters [start, stop) of the answer."""
    total, prev = 0.0, 0
    for end, lp in zip(ends, lps, strict=False):
        if end > start and prev < stop:
            total += lp
        prev = end
        if prev >= stop:
            break
    return total


def _tool_schema(tools: list[dict[str, Any]] | None, name: str | None) -> dict[str, Any] | None:
    for tool in tools or []:
        fn = tool.get("function", tool)
        if fn.get("name") == name:
            return fn.get("parameters") or {"type": "object", "properties": {}}
    return None


def schema_ok(call: dict[str, Any], tools: list[dict[str, Any]] | None) -> bool:
    """A tool call names one of `tools` and its arguments validate against that tool's JSON schema."""
    if call.get("name") is None:
        return False
    schema = _tool_schema(tools, call.get("name"))
    if schema is None:
        return False
    try:
        import jsonschema

        jsonschema.validate(arguments_object(call.get("arguments")), schema)
    except ImportError:  # no validator: required keys present is the check
        args = arguments_object(call.get("arguments"))
        return isinstance(args, dict) and all(k in args for k in schema.get("required") or [])
    except Exception:  # noqa: BLE001 - jsonschema.ValidationError / SchemaError: not valid
        return False
    return True


def _values(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in _values(x)]
    if isinstance(obj, list):
        return [v for x in obj for v in _values(x)]
    return [obj]


def answer_features(
    gen: Any, prompt_text: str, tools: list[dict[str, Any]] | None, max_new_tokens: int
) -> dict:
    """The gate features of one generation (see the module table)."""
    text = gen.text or ""
    lps = list(gen.token_logprobs or [])
    ends = list(gen.token_ends or [])
    calls = gen.tool_calls or []
    lp_mean = float(np.mean(lps)) if lps else (gen.mean_logprob or -10.0)
    lp_min = float(np.min(lps)) if lps else lp_mean
    feats = {
        "is_text": float(not calls),
        "lp_mean": lp_mean,
        "lp_min": lp_min,
        "truncated": float(gen.output_tokens >= max_new_tokens),
        "constrained_agrees": 1.0,
    }
    if not calls:
        feats |= {"p_action": math.exp(lps[0]) if lps else 0.0, "lp_args_min": 0.0}
        feats |= {"schema_valid": 1.0, "ids_in_prompt": 1.0}
        return feats
    call = calls[0]
    name = call.get("name")
    at = text.find(json.dumps(name)) if name else -1
    name_end = at + len(json.dumps(name)) if at >= 0 else len(text)
    feats["p_action"] = math.exp(_span_logprob(ends, lps, 0, name_end)) if lps else 0.0
    args = arguments_object(call.get("arguments"))
    arg_lps = []
    for value in _values(args) if isinstance(args, (dict, list)) else []:
        needle = json.dumps(value, ensure_ascii=False)
        pos = text.find(needle, max(name_end, 0))
        if pos >= 0 and lps:
            arg_lps.append(_span_logprob(ends, lps, pos, pos + len(needle)))
    feats["lp_args_min"] = float(min(arg_lps)) if arg_lps else 0.0
    feats["schema_valid"] = float(all(schema_ok(c, tools) for c in calls))
    ids = [str(v) for v in _values(args) if isinstance(v, str) and ID_RE.fullmatch(str(v))]
    feats["ids_in_prompt"] = float(np.mean([i in prompt_text for i in ids])) if ids else 1.0
    return feats


def gate_features(
    calls: pl.DataFrame,
    generations: Sequence[Any],
    tools: list[dict[str, Any]] | None,
    max_new_tokens: int,
    constrained: Sequence[Any | None] | None = None,
) -> pl.DataFrame:
    """One row of gate features per call (`call_id` + `GATE_FEATURES`), from the SLM's generations.

    Args:
        calls: the calls (needs `call_id`, `messages`: the logged prompt, where id evidence is looked up).
        generations: the SLM's `Generation` per call, in order, with token log-probabilities
            (`TransformersGenerator` records them).
        tools: the agent's tool schemas (schema validity).
        max_new_tokens: the generation limit (truncation).
        constrained: per call, the answer decoded under the tool-schema constraint, or None where it was
            not run (`constrained_agrees` is then 1).

    Example:
        >>> from slmlab.runtime.generate import Generation
        >>> g = Generation(text="Hello", token_logprobs=[-0.1], token_ends=[5], output_tokens=1)
        >>> calls = pl.DataFrame({"call_id": ["a"], "messages": ["[]"]})
        >>> gate_features(calls, [g], None, 64)["is_text"].to_list()
        [1.0]
    """
    rows = []
    prompts = calls.get_column("messages").fill_null("").to_list()
    for i, (gen, prompt) in enumerate(zip(generations, prompts, strict=True)):
        feats = answer_features(gen, prompt, tools, max_new_tokens)
        other = constrained[i] if constrained is not None else None
        if other is not None and gen.tool_calls:
            from slmlab.runtime.chat_format import calls_exact_match

            feats["constrained_agrees"] = float(calls_exact_match(gen.tool_calls, other.tool_calls))
        rows.append(feats)
    frame = pl.DataFrame(rows, schema=dict.fromkeys(GATE_FEATURES, pl.Float64))
    return pl.concat([calls.select("call_id"), frame], how="horizontal")


class CascadeGate:
    """P(the SLM's answer agrees with the LLM's | its gate features): a logistic regression, or one feature.

    Args:
        features: the feature columns the regression reads (default `GATE_FEATURES`).
        feature: use this single feature as the score instead of a regression (higher = keep).
        C: inverse regularization strength of the logistic regression.

    Example:
        >>> x = pl.DataFrame({f: [0.0, 1.0, 0.0, 1.0] for f in GATE_FEATURES})
        >>> gate = CascadeGate().fit(x, [0, 1, 0, 1])
        >>> bool(gate.score(x)[1] > gate.score(x)[0])
        True
    """

    def __init__(
        self, features: Sequence[str] = GATE_FEATURES, feature: str | None = None, C: float = 1.0
    ) -> None:
        self.features = tuple(features)
        self.feature = feature
        self.C = C
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.coef_: np.ndarray | None = None
        self.intercept_: float = 0.0

    def _x(self, feats: pl.DataFrame) -> np.ndarray:
        return feats.select([pl.col(f).cast(pl.Float64).fill_null(0.0) for f in self.features]).to_numpy()

    def fit(self, feats: pl.DataFrame, agreed: Sequence[float]) -> CascadeGate:
        """Learn the regression from features and 0/1 agreement (a single-feature gate learns nothing)."""
        if self.feature is not None:
            return self
        from sklearn.linear_model import LogisticRegression

        x = self._x(feats)
        y = (np.asarray(agreed, dtype=float) >= 0.5).astype(int)
        self.mean_ = x.mean(axis=0)
        self.scale_ = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
        if len(np.unique(y)) < 2:  # all agree or none: a constant gate
            self.coef_ = np.zeros(x.shape[1])
            self.intercept_ = 10.0 if y.size and y[0] == 1 else -10.0
            return self
        clf = LogisticRegression(C=self.C, max_iter=2000).fit((x - self.mean_) / self.scale_, y)
        self.coef_, self.intercept_ = clf.coef_[0], float(clf.intercept_[0])
        return self

    def score(self, feats: pl.DataFrame) -> np.ndarray:
        """Per call, how safe it is to keep the SLM's answer (a probability for the regression)."""
        if self.feature is not None:
            return feats.get_column(self.feature).cast(pl.Float64).fill_null(-np.inf).to_numpy()
        if self.coef_ is None or self.mean_ is None or self.scale_ is None:
            raise RuntimeError("fit the gate first")
        z = ((self._x(feats) - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return 1.0 / (1.0 + np.exp(-z))

    def reasons(self, feats: pl.DataFrame) -> list[str]:
        """Per call, the signal that pulls its score down most (why an escalated call escalated): the
        feature with the most negative contribution to the regression, or the single feature."""
        if self.feature is not None:
            return [self.feature] * feats.height
        if self.coef_ is None or self.mean_ is None or self.scale_ is None:
            raise RuntimeError("fit the gate first")
        if not np.any(self.coef_):  # fitted on calls that all agreed (or none did): no signal to name
            return ["constant_gate"] * feats.height
        contrib = ((self._x(feats) - self.mean_) / self.scale_) * self.coef_
        return [self.features[i] for i in contrib.argmin(axis=1)]

    def state(self) -> dict[str, Any]:
        """JSON-able state (what a bundle stores)."""
        return {
            "features": list(self.features), "feature": self.feature, "C": self.C,
            "mean": None if self.mean_ is None else self.mean_.tolist(),
            "scale": None if self.scale_ is None else self.scale_.tolist(),
            "coef": None if self.coef_ is None else self.coef_.tolist(), "intercept": self.intercept_,
        }  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CascadeGate:
        gate = cls(state["features"], state.get("feature"), state.get("C", 1.0))
        for key, attr in (("mean", "mean_"), ("scale", "scale_"), ("coef", "coef_")):
            if state.get(key) is not None:
                setattr(gate, attr, np.asarray(state[key], dtype=float))
        gate.intercept_ = float(state.get("intercept", 0.0))
        return gate


def cross_fit_scores(
    gate: CascadeGate,
    feats: pl.DataFrame,
    agreed: Sequence[float],
    folds: int = 5,
    seed: int = 0,
    groups: Any = None,
) -> np.ndarray:
    """Out-of-fold gate scores (each call scored by a gate fitted without it; by group when given, so the
    calls of one session or task stay in one fold): what calibration on the same calls needs."""
    n = feats.height
    rng = np.random.default_rng(seed)
    if groups is None:
        fold = rng.permutation(n) % folds
    else:
        uniq = list(dict.fromkeys(groups))
        order = rng.permutation(len(uniq)) % folds
        of = dict(zip(uniq, order, strict=True))
        fold = np.array([of[g] for g in groups])
    out = np.zeros(n)
    y = np.asarray(agreed, dtype=float)
    for k in range(folds):
        test = fold == k
        if not test.any():
            continue
        g = CascadeGate(gate.features, gate.feature, gate.C).fit(feats.filter(pl.Series(~test)), y[~test])
        out[test] = g.score(feats.filter(pl.Series(test)))
    return out


def perfect_gate_share(agreed: Sequence[float], level: float = 0.9) -> float:
    """The most calls any gate can keep at `level` agreement: the share a perfect gate keeps (every agreeing
    answer, and as many disagreeing ones as `level` allows). A target share above it needs a better SLM,
    not a better gate.

    Example:
        >>> perfect_gate_share([1] * 18 + [0] * 82)  # the SLM agrees on 18% of calls
        0.2
    """
    n = len(agreed)
    if n == 0:
        return 0.0
    k = int(sum(1 for a in agreed if a >= 0.5))
    disagreeing = min(n - k, math.floor(k * (1 - level) / level + 1e-9))
    return (k + disagreeing) / n


def calibrate_threshold(
    scores: Sequence[float], agreed: Sequence[float], target: float = 0.9, min_kept: int = 1, z: float = 1.96
) -> dict[str, Any]:
    """The lowest gate threshold whose kept calls' agreement has a Wilson lower bound >= `target`.

    Args:
        scores: gate scores of validation calls (out of fold where the gate was fitted on them).
        agreed: their 0/1 agreement.
        target: the agreement the kept calls must reach (statistically: the interval's lower end).
        min_kept: fewest kept calls a threshold may keep.

    Returns:
        threshold (inf when no threshold qualifies: every call escalates), kept, agreement, lower, upper,
        share (of the calls given).

    Example:
        >>> calibrate_threshold([0.9] * 50 + [0.1] * 50, [1] * 50 + [0] * 50, target=0.9)["kept"]
        50
    """
    s = np.asarray(scores, dtype=float)
    y = (np.asarray(agreed, dtype=float) >= 0.5).astype(int)
    order = np.argsort(-s, kind="stable")
    best = {
        "threshold": float("inf"),
        "kept": 0,
        "agreement": None,
        "lower": None,
        "upper": None,
        "share": 0.0,
    }
    hits = np.cumsum(y[order])
    for i in range(len(order)):
        if i + 1 < len(order) and s[order[i + 1]] == s[order[i]]:
            continue  # a threshold keeps every call at its score
        k, n = int(hits[i]), i + 1
        lo, hi = wilson_interval(k, n, z)
        if n >= min_kept and lo >= target:
            best = {"threshold": float(s[order[i]]), "kept": n, "agreement": k / n, "lower": lo, "upper": hi,
                    "share": n / len(order)}  # fmt: skip
    return best


__all__ = [
    "GATE_FEATURES",
    "TEXT_AGREEMENT_THRESHOLD",
    "CascadeGate",
    "answer_features",
    "binary_agreement",
    "calibrate_threshold",
    "cross_fit_scores",
    "gate_features",
    "schema_ok",
    "text_agrees",
    "wilson_interval",
]
