"""Per-call agreement of a small model's answer with the LLM's logged answer, and bootstrap summaries.

`score_calls(reference_calls, generations)` gives one row per call:

| column | meaning |
|---|---|
| action_match | both made a tool call, or both answered in text |
| name_match | same action: first tool name (structured, or written in the text: `slmlab.actions`), or "respond" for text (function-name accuracy) |
| name_args_exact | same tool calls with the same arguments after JSON normalization (null for text turns) |
| arg_f1 | F1 of (tool, key, value) pairs (null for text turns) |
| json_valid | the answer's tool calls (or JSON text, when the reference is JSON) parse (null otherwise) |
| schema_valid | the answer's tool calls validate against the logged tool schema (null without tool calls) |
| text_similarity | embedding (or TF-IDF) cosine of the two texts (text turns only) |
| token_f1 | SQuAD-style token F1 of the two texts (text turns only) |
| agreement | one 0..1 number per call: name_args_exact for tool turns, text_similarity for text turns (0 on an action mismatch) |
| output_tokens, latency_ms, mean_logprob | measured on the generation |

Usage:
    >>> from slmlab.evaluate import score_calls, summarize_scores
    >>> scores = score_calls(test_calls, generations, model="smollm2-135m", experiment="base")  # doctest: +SKIP
    >>> summarize_scores(scores)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from slmlab.runtime.chat_format import (
    arguments_object,
    calls_exact_match,
    normalize_json,
    tools_from_calls,
)
from slmlab.runtime.generate import Generation
from slmlab.schema import TEXT_ACTION, parse_tool_calls

METRICS = (
    "action_match",
    "name_match",
    "name_args_exact",
    "arg_f1",
    "json_valid",
    "schema_valid",
    "text_similarity",
    "token_f1",
    "agreement",
)


# ---------------------------------------------------------------- JSON normalization and tool-call metrics


def _pairs(calls: list[dict[str, Any]]) -> Counter:
    out: Counter = Counter()
    for call in calls:
        args = normalize_json(arguments_object(call.get("arguments")))
        if isinstance(args, dict):
            for k, v in args.items():
                out[(call.get("name"), k, json.dumps(v, sort_keys=True, ensure_ascii=False))] += 1
        else:
            out[(call.get("name"), None, json.dumps(args, ensure_ascii=False))] += 1
    return out


def argument_f1(reference: list[dict[str, Any]], predicted: list[dict[str, Any]]) -> float:
    """F1 over (tool name, argument key, normalized value) pairs.

    Calls without arguments on both sides score 1.0 when the names agree, else 0.0.

    Example:
        >>> ref = [{"name": "f", "arguments": '{"a": 1, "b": 2}'}]
        >>> argument_f1(ref, [{"name": "f", "arguments": '{"a": 1, "b": 3}'}])
        0.5
    """
    ref, pred = _pairs(reference), _pairs(predicted)
    if not ref and not pred:
        return float(
            sorted(c.get("name") or "" for c in reference) == sorted(c.get("name") or "" for c in predicted)
        )
    common = sum((ref & pred).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(pred.values()), common / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def schema_valid(
    predicted: list[dict[str, Any]], tools: list[dict[str, Any]], inferred: bool = False
) -> bool:
    """Every predicted call names an offered tool and its arguments fit that tool's parameter schema.

    With `inferred=True` (schemas guessed by `chat_format.tools_from_calls` because the log has none) only
    the tool name and the presence of required arguments are checked, since inferred types are guesses.

    Example:
        >>> tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
        ...     "properties": {"x": {"type": "integer"}}, "required": ["x"]}}}]
        >>> schema_valid([{"name": "f", "arguments": '{"x": 1}'}], tools), schema_valid([{"name": "f", "arguments": '{"x": "a"}'}], tools)
        (True, False)
    """
    by_name = {}
    for tool in tools or []:
        fn = tool.get("function", tool)
        by_name[fn.get("name")] = fn.get("parameters") or {}
    if not predicted:
        return False
    for call in predicted:
        name, args = call.get("name"), arguments_object(call.get("arguments"))
        if name not in by_name or not isinstance(args, dict):
            return False
        params = by_name[name]
        if inferred:
            if any(r not in args for r in params.get("required") or []):
                return False
            continue
        import jsonschema

        try:
            jsonschema.validate(args, params or {"type": "object"})
        except jsonschema.ValidationError:
            return False
        except jsonschema.SchemaError:
            if any(r not in args for r in params.get("required") or []):
                return False
    return True


# ---------------------------------------------------------------- text metrics

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def _tokens(text: str) -> list[str]:
    return _PUNCT.sub(" ", (text or "").lower()).split()


def token_f1(reference: str, predicted: str) -> float:
    """SQuAD-style token F1 (lower-cased, punctuation removed); two empty texts score 1.0.

    Example:
        >>> round(token_f1("Your flight is booked.", "the flight is booked"), 3)
        0.75
    """
    ref, pred = _tokens(reference), _tokens(predicted)
    if not ref and not pred:
        return 1.0
    common = sum((Counter(ref) & Counter(pred)).values())
    if common == 0:
        return 0.0
    p, r = common / len(pred), common / len(ref)
    return 2 * p * r / (p + r)


def _load_embedder(embedder: Any) -> Any:
    """An object with `.embed(texts) -> np.ndarray`: the given one, `slmlab.cluster.embed`'s default, or None (TF-IDF)."""
    if embedder is None or embedder == "tfidf":
        return None
    if hasattr(embedder, "embed"):
        return embedder
    try:
        from slmlab.cluster.embed import select_embedder
    except ImportError:
        return None
    key = None if embedder == "auto" else embedder
    if key not in _EMBEDDERS:  # loading a sentence-transformer takes seconds: once per process
        _EMBEDDERS[key] = select_embedder(key)
    return _EMBEDDERS[key]


_EMBEDDERS: dict[Any, Any] = {}


def text_vectors(
    texts: Sequence[str], embedder: Any = "auto", fit_texts: Sequence[str] | None = None
) -> np.ndarray:
    """L2-normalized vectors for texts: the embedder's when available, else TF-IDF (fit on `fit_texts` + texts).

    `embedder` is "auto" (`slmlab.cluster.embed.select_embedder()` when that module exists), "tfidf", a name for
    `select_embedder`, or an object with `.embed(texts)`.

    Example:
        >>> v = text_vectors(["book a flight", "book a flight", "cancel"], embedder="tfidf")
        >>> round(float(v[0] @ v[1]), 3)
        1.0
    """
    texts = [t or "" for t in texts]
    model = _load_embedder(embedder)
    if model is not None:
        vecs = np.asarray(model.embed(list(texts)), dtype=np.float32)
    else:
        from sklearn.feature_extraction.text import TfidfVectorizer

        vec = TfidfVectorizer(sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
        corpus = list(fit_texts or []) + list(texts)
        if not any(t.strip() for t in corpus):
            return np.zeros((len(texts), 1), dtype=np.float32)
        vec.fit(corpus)
        vecs = vec.transform(texts).toarray().astype(np.float32)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs / np.where(norms == 0, 1, norms)


def text_similarity(
    references: Sequence[str], predictions: Sequence[str], embedder: Any = "auto"
) -> np.ndarray:
    """Cosine similarity of each reference text with its prediction, clipped to [0, 1].

    Example:
        >>> text_similarity(["hello there"], ["hello there"], embedder="tfidf").round(3).tolist()
        [1.0]
    """
    if not len(references):
        return np.zeros(0)
    vecs = text_vectors(list(references) + list(predictions), embedder)
    n = len(references)
    sims = np.einsum("ij,ij->i", vecs[:n], vecs[n:])
    empty = np.array(
        [
            not (r or "").strip() and not (p or "").strip()
            for r, p in zip(references, predictions, strict=True)
        ]
    )
    sims = np.where(empty, 1.0, sims)
    return np.clip(sims, 0.0, 1.0)


def _is_json_text(text: str | None) -> bool:
    t = (text or "").strip()
    if not t or t[0] not in "[{":
        return False
    try:
        json.loads(t)
    except json.JSONDecodeError:
        return False
    return True


# ---------------------------------------------------------------- per-call table


def _as_generations(generations: Any, n: int) -> list[Generation]:
    if isinstance(generations, pl.DataFrame):
        out = []
        for row in generations.iter_rows(named=True):
            tc = row.get("tool_calls")
            out.append(
                Generation(
                    text=row.get("text") or "",
                    tool_calls=json.loads(tc) if isinstance(tc, str) else list(tc or []),
                    valid_json=bool(row.get("valid_json", True)),
                    output_tokens=int(row.get("output_tokens") or 0),
                    latency_ms=float(row.get("latency_ms") or 0.0),
                    mean_logprob=row.get("mean_logprob"),
                )
            )
        generations = out
    generations = list(generations)
    if len(generations) != n:
        raise ValueError(
            f"{len(generations)} generations for {n} reference calls; pass one per call, in order"
        )
    return generations


def score_calls(
    reference_calls: pl.DataFrame,
    generations: Sequence[Generation] | pl.DataFrame,
    model: str | None = None,
    experiment: str | None = None,
    embedder: Any = "auto",
    tools_fallback: list[dict[str, Any]] | None = None,
    judge: Any = None,
) -> pl.DataFrame:
    """Score each generation against the LLM's logged answer to the same prompt.

    Args:
        reference_calls: the calls whose prompts were generated for (call table rows, in order).
        generations: one `Generation` per call (or a frame with text/tool_calls/... columns).
        model: the small model's label (column `model`); experiment: e.g. "base", "icl", "tuned".
        embedder: for `text_similarity`: "auto" (slmlab.cluster.embed when present, else TF-IDF), "tfidf", or
            an object with `.embed(texts)`.
        tools_fallback: tool schemas to validate against when a call logs none (default: inferred from
            the reference calls' tool calls with `chat_format.tools_from_calls`, checking names and
            required arguments only).
        judge: an optional `LLMJudge`; adds `judge_score` for text turns.

    Returns:
        One row per call: call_id, session_id, cluster, split, reward (when present), model, experiment,
        ref_action, pred_action, the metrics of `METRICS`, output_tokens, latency_ms, mean_logprob,
        pred_text, pred_tool_calls.

    Example:
        >>> import json
        >>> tc = json.dumps([{"id": "1", "name": "f", "arguments": json.dumps({"x": 1})}])
        >>> calls = pl.DataFrame({"call_id": ["a"], "session_id": ["s"], "response_text": [None],
        ...     "response_tool_calls": [tc]})
        >>> g = Generation(text="", tool_calls=[{"name": "f", "arguments": '{"x": 1.0}'}])
        >>> score_calls(calls, [g], embedder="tfidf")["name_args_exact"].to_list()
        [1.0]
    """
    gens = _as_generations(generations, reference_calls.height)
    cols = reference_calls.columns
    ref_calls_json = reference_calls.get_column("response_tool_calls").to_list()
    ref_texts = (
        reference_calls.get_column("response_text").to_list()
        if "response_text" in cols
        else [None] * len(gens)
    )
    tools_json = reference_calls.get_column("tools").to_list() if "tools" in cols else [None] * len(gens)
    inferred_tools = tools_fallback if tools_fallback is not None else tools_from_calls(ref_calls_json)
    rows: dict[str, list[Any]] = {m: [] for m in METRICS}
    rows.update(ref_action=[], pred_action=[], pred_text=[], pred_tool_calls=[])
    text_pairs: list[tuple[int, str, str]] = []
    for i, (g, ref_json, ref_text, tools_raw) in enumerate(
        zip(gens, ref_calls_json, ref_texts, tools_json, strict=True)
    ):
        # A reference call written in its text (ReAct, HTTP line, name(args): `slmlab.actions`) is a tool
        # call too; the generation's text is then read the same way, so names and arguments compare.
        ref = parse_tool_calls(ref_json, ref_text)
        text_ref = bool(ref) and not parse_tool_calls(ref_json)
        pred = [c for c in g.tool_calls] or (parse_tool_calls(None, g.text or "") if text_ref else [])
        text_pred = bool(pred) and not g.tool_calls
        ref_action = ref[0].get("name") if ref else TEXT_ACTION
        pred_action = (pred[0].get("name") or "<invalid>") if pred else TEXT_ACTION
        action_match = bool(ref) == bool(pred)
        rows["ref_action"].append(ref_action)
        rows["pred_action"].append(pred_action)
        rows["pred_text"].append(g.text)
        rows["pred_tool_calls"].append(json.dumps(pred, ensure_ascii=False) if pred else None)
        rows["action_match"].append(float(action_match))
        rows["name_match"].append(float(ref_action == pred_action))
        if text_pred:
            json_ok = None  # a text action is judged by name and arguments, not as JSON output
        elif pred:
            json_ok = g.valid_json and all(
                isinstance(arguments_object(c.get("arguments")), dict) for c in pred
            )
        elif _is_json_text(ref_text):
            json_ok = _is_json_text(g.text)
        else:
            json_ok = None
        rows["json_valid"].append(None if json_ok is None else float(json_ok))
        if pred and not text_pred:
            logged = json.loads(tools_raw) if tools_raw else None
            ok = schema_valid(pred, logged or inferred_tools, inferred=not logged)
            rows["schema_valid"].append(float(ok))
        else:
            rows["schema_valid"].append(None)
        if ref:
            exact = float(calls_exact_match(ref, pred)) if pred else 0.0
            rows["name_args_exact"].append(exact)
            rows["arg_f1"].append(argument_f1(ref, pred) if pred else 0.0)
            rows["text_similarity"].append(None)
            rows["token_f1"].append(None)
            rows["agreement"].append(exact)
        else:
            rows["name_args_exact"].append(None)
            rows["arg_f1"].append(None)
            if pred:
                rows["text_similarity"].append(0.0)
                rows["token_f1"].append(0.0)
                rows["agreement"].append(0.0)
            else:
                rows["token_f1"].append(token_f1(ref_text or "", g.text))
                rows["text_similarity"].append(None)  # filled in one batch below
                rows["agreement"].append(None)
                text_pairs.append((i, ref_text or "", g.text))
    if text_pairs:
        sims = text_similarity([r for _, r, _ in text_pairs], [p for _, _, p in text_pairs], embedder)
        for (i, _, _), s in zip(text_pairs, sims, strict=True):
            rows["text_similarity"][i] = float(s)
            rows["agreement"][i] = float(s)
    keep = [c for c in ("call_id", "session_id", "cluster", "split", "reward", "task_label") if c in cols]
    out = reference_calls.select(keep).with_columns(
        pl.lit(model, dtype=pl.String).alias("model"),
        pl.lit(experiment, dtype=pl.String).alias("experiment"),
        *[pl.Series(k, v, dtype=pl.String) for k, v in rows.items() if k in ("ref_action", "pred_action")],
        *[pl.Series(m, rows[m], dtype=pl.Float64) for m in METRICS],
        pl.Series("output_tokens", [g.output_tokens for g in gens], dtype=pl.Int64),
        pl.Series("latency_ms", [g.latency_ms for g in gens], dtype=pl.Float64),
        pl.Series("mean_logprob", [g.mean_logprob for g in gens], dtype=pl.Float64),
        pl.Series("pred_text", rows["pred_text"], dtype=pl.String),
        pl.Series("pred_tool_calls", rows["pred_tool_calls"], dtype=pl.String),
    )
    if judge is not None:
        ref_msgs = (
            reference_calls.get_column("messages").to_list() if "messages" in cols else [None] * len(gens)
        )
        idx = [i for i, _, _ in text_pairs]
        scores = judge.score(
            [ref_msgs[i] for i in idx], [ref_texts[i] or "" for i in idx], [gens[i].text for i in idx]
        )
        judged = [None] * len(gens)
        for i, s in zip(idx, scores, strict=True):
            judged[i] = None if s is None or np.isnan(s) else float(s)
        out = out.with_columns(pl.Series("judge_score", judged, dtype=pl.Float64))
    return out


# ---------------------------------------------------------------- summaries with bootstrap intervals


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, ci: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (NaNs dropped); (nan, nan) when empty.

    Example:
        >>> lo, hi = bootstrap_ci(np.array([0.0, 1.0] * 50))
        >>> 0.39 < lo < 0.5 < hi < 0.61
        True
    """
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    alpha = (1 - ci) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def summarize_scores(
    scores: pl.DataFrame,
    by: Sequence[str] = ("cluster", "model", "experiment"),
    metrics: Sequence[str] = METRICS,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pl.DataFrame:
    """Mean of each metric per group with a seeded percentile-bootstrap confidence interval.

    Columns: the `by` columns, `n`, and per metric `<m>`, `<m>_lo`, `<m>_hi` (means over calls where the
    metric is defined), mean `output_tokens` and `latency_ms`; where scores carry the session `reward`,
    also `n_success` and `agreement_success` (agreement on sessions the agent solved, reward >= 1).

    Example:
        >>> s = pl.DataFrame({"cluster": [0, 0], "model": ["m", "m"], "experiment": ["base", "base"],
        ...                   "agreement": [1.0, 0.0]})
        >>> summarize_scores(s, metrics=["agreement"])["agreement"].to_list()
        [0.5]
    """
    by = [b for b in by if b in scores.columns]
    metrics = [m for m in metrics if m in scores.columns]
    rows = []
    groups = scores.partition_by(by, as_dict=True, maintain_order=True) if by else {(): scores}
    for key, g in groups.items():
        row: dict[str, Any] = dict(zip(by, key, strict=True))
        row["n"] = g.height
        for m in metrics:
            v = g.get_column(m).cast(pl.Float64).fill_null(float("nan")).to_numpy()
            ok = v[~np.isnan(v)]
            row[m] = float(ok.mean()) if ok.size else None
            lo, hi = bootstrap_ci(v, n_boot, ci, seed)
            row[f"{m}_lo"] = None if math.isnan(lo) else lo
            row[f"{m}_hi"] = None if math.isnan(hi) else hi
        for extra in ("output_tokens", "latency_ms"):
            if extra in g.columns:
                row[f"mean_{extra}"] = g.get_column(extra).cast(pl.Float64).mean()
        if "reward" in g.columns and g.get_column("reward").is_not_null().any() and "agreement" in g.columns:
            ok = g.filter(pl.col("reward") >= 1)
            row["n_success"] = ok.height
            row["agreement_success"] = ok.get_column("agreement").mean() if ok.height else None
        rows.append(row)
    out = pl.DataFrame(rows, infer_schema_length=None)
    return out.sort(by) if by and out.height else out
