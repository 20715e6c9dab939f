"""The experiment matrix: every accepted cluster x candidate SLM x {base, ICL, tuned}, scored against the LLM.

- **base**: zero-shot on the fitted prompt (`chat_format.fit_messages`, the same rendering as training).
- **icl**: `k_icl` examples from the cluster's *training* split put before the conversation as prior
  user/assistant turns, chosen by embedding similarity to the prompt or at random.
- **tuned**: the cluster's LoRA adapter, merged into the weights before generating.

Only held-out calls (`split == "test"`) are scored, and the split is checked for leakage first.

Usage:
    >>> from slmlab.evaluate import run_experiments, summarize_scores, verdicts
    >>> scores = run_experiments(calls, clusters, ["smollm2-135m"], adapters={3: "runs/demo/adapters/cluster_3"})  # doctest: +SKIP
    >>> verdicts(summarize_scores(scores))  # doctest: +SKIP
"""

from __future__ import annotations

import gc
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl

from slmlab.evaluate.metrics import score_calls, text_vectors
from slmlab.runs import RunStore
from slmlab.runtime.chat_format import (
    PromptBudget,
    count_prompt_tokens,
    fit_messages,
    recent_turns_text,
    render_target,
    tools_from_calls,
)
from slmlab.runtime.generate import Generator
from slmlab.schema import parse_messages, parse_tool_calls
from slmlab.specialize.provenance import assert_not_trained_on, check_adapter

EXPERIMENTS = ("base", "icl", "tuned")
VERDICTS = ("swap", "keep_llm", "needs_more_data")


# ---------------------------------------------------------------- prompts


def call_tools(tools_json: str | None, fallback: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """The tool schemas of a call: the logged ones, else `fallback` (inferred from the log's tool calls)."""
    return json.loads(tools_json) if tools_json else fallback


def build_prompt(
    row: Mapping[str, Any],
    budget: PromptBudget,
    tokenizer: Any = None,
    tools_fallback: list[dict[str, Any]] | None = None,
    examples: Sequence[Mapping[str, Any]] = (),
    icl_extra_tokens: int = 384,
    example_chars: int = 500,
) -> list[dict[str, str]]:
    """The fitted chat prompt for one logged call, optionally with in-context examples.

    Examples (rows of the same cluster's training split) become prior user/assistant turns after the
    system message: the user turn shows the example's latest prompt text, the assistant turn its logged
    answer rendered exactly like a training target. With a tokenizer, the lowest-ranked examples are
    dropped until the prompt fits `budget.max_tokens + icl_extra_tokens`.
    """
    tools = call_tools(row.get("tools"), tools_fallback)
    base = fit_messages(parse_messages(row["messages"]), tools, budget, tokenizer)
    if not examples:
        return base
    shots: list[dict[str, str]] = []
    for ex in examples:
        target = render_target(ex.get("response_text"), parse_tool_calls(ex.get("response_tool_calls")))
        shots.append({"role": "user", "content": recent_turns_text(ex["messages"], max_chars=example_chars)})
        shots.append({"role": "assistant", "content": target})
    head = [
        {"role": "system", "content": base[0]["content"] + "\n\nExamples of earlier, similar turns follow."}
    ]
    prompt = head + shots + base[1:]
    if tokenizer is not None:
        limit = budget.max_tokens + icl_extra_tokens
        while shots and count_prompt_tokens(prompt, tokenizer) > limit:
            shots = shots[:-2]
            prompt = head + shots + base[1:]
    return prompt


def _select_examples(
    test: pl.DataFrame, train: pl.DataFrame, k: int, how: str, embedder: Any, rng: random.Random
) -> list[list[dict[str, Any]]]:
    """For each test row, `k` training rows of its cluster: most similar prompts first, or random."""
    if k <= 0 or train.is_empty():
        return [[] for _ in range(test.height)]
    train_rows = train.select("messages", "response_text", "response_tool_calls").to_dicts()
    if how == "random":
        return [rng.sample(train_rows, min(k, len(train_rows))) for _ in range(test.height)]
    if how != "similar":
        raise ValueError(f"icl must be 'similar' or 'random', not {how!r}")
    train_text = [recent_turns_text(m) for m in train.get_column("messages").to_list()]
    test_text = [recent_turns_text(m) for m in test.get_column("messages").to_list()]
    vecs = text_vectors(train_text + test_text, embedder)
    sims = vecs[len(train_text) :] @ vecs[: len(train_text)].T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return [[train_rows[j] for j in row] for row in order]


# ---------------------------------------------------------------- data preparation


def clusters_from_task_label(calls: pl.DataFrame) -> pl.DataFrame:
    """Use the log's own task tags (`task_label`, e.g. Data Flywheel `workload_id`) as clusters.

    Replaces `cluster` with a dense integer code per label (sorted by label; unlabelled calls -> -1).

    Example:
        >>> clusters_from_task_label(pl.DataFrame({"task_label": ["b", "a", None]}))["cluster"].to_list()
        [1, 0, -1]
    """
    labels = sorted(calls.get_column("task_label").drop_nulls().unique().to_list())
    codes = {lab: i for i, lab in enumerate(labels)}
    return calls.with_columns(
        pl.col("task_label").replace_strict(codes, default=-1, return_dtype=pl.Int32).alias("cluster")
    )


def cluster_task_ari(calls: pl.DataFrame) -> float | None:
    """Adjusted Rand index of the clusters against the log's `task_label` tags (None without tags).

    Uses `slmlab.cluster.cluster_quality` when that module provides it, else scikit-learn.

    Example:
        >>> cluster_task_ari(pl.DataFrame({"cluster": [0, 0, 1, 1], "task_label": ["a", "a", "b", "b"]}))
        1.0
    """
    if "task_label" not in calls.columns or "cluster" not in calls.columns:
        return None
    tagged = calls.filter(pl.col("task_label").is_not_null())
    if tagged.height < 2:
        return None
    try:
        from slmlab.cluster import cluster_quality

        quality = cluster_quality(tagged)
        value = quality.get("ari") if isinstance(quality, dict) else getattr(quality, "ari", None)
        if value is not None:
            return float(value)
    except (ImportError, TypeError, ValueError, KeyError, AttributeError):
        pass
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(tagged["task_label"].to_list(), tagged["cluster"].to_list()))


def accepted_clusters(clusters: pl.DataFrame | Sequence[int] | None, calls: pl.DataFrame) -> list[int]:
    """Cluster ids to evaluate: `status == "slm_candidate"` rows of a cluster table, a list, or every cluster."""
    if clusters is None:
        return sorted(c for c in calls.get_column("cluster").unique().to_list() if c is not None and c >= 0)
    if isinstance(clusters, pl.DataFrame):
        if "status" in clusters.columns:
            acc = clusters.filter(pl.col("status") == "slm_candidate")
            if acc.height:
                return sorted(acc.get_column("cluster").to_list())
            print("no cluster is marked slm_candidate: evaluating every cluster")
        return sorted(c for c in clusters.get_column("cluster").to_list() if c >= 0)
    return sorted(int(c) for c in clusters)


def _require_split(calls: pl.DataFrame) -> pl.DataFrame:
    from slmlab.specialize.splits import check_leakage

    if "split" not in calls.columns:
        raise ValueError(
            "the calls have no `split` column: join the run's saved split first "
            "(`slmlab.specialize.splits.apply_split(calls, RunStore(run).read_split())`); evaluation never re-splits"
        )
    return check_leakage(calls)


def adapter_base_model(adapter_dir: str | Path) -> str | None:
    """The base model an adapter folder was trained on (its `slmlab_adapter.json`, else peft's config)."""
    folder = Path(adapter_dir)
    for name, keys in (
        ("slmlab_adapter.json", ("base_model", "model")),
        ("adapter_config.json", ("base_model_name_or_path",)),
    ):
        path = folder / name
        if path.exists():
            meta = json.loads(path.read_text())
            for k in keys:
                if meta.get(k):
                    return str(meta[k])
    return None


def adapter_prompt_setup(
    adapter_dir: str | Path, budget: PromptBudget, tools: list[dict[str, Any]] | None
) -> tuple[PromptBudget, list[dict[str, Any]] | None]:
    """The prompt budget and tool list an adapter was trained with (its `slmlab_adapter.json`), so the
    tuned model is evaluated on prompts rendered exactly like its training data; else the given ones."""
    path = Path(adapter_dir) / "slmlab_adapter.json"
    if not path.exists():
        return budget, tools
    meta = json.loads(path.read_text())
    saved = meta.get("prompt_budget") or {}
    known = set(PromptBudget.__dataclass_fields__)
    if saved:
        budget = PromptBudget(**{k: v for k, v in saved.items() if k in known})
    return budget, meta["tools"] if meta.get("tools") is not None else tools


def _adapter_fits(adapter_dir: str | Path, model: str) -> bool:
    base = adapter_base_model(adapter_dir)
    if base is None:
        return True
    from slmlab.runtime.models import resolve_model

    names = {model, Path(model).name}
    try:
        names |= {resolve_model(model), Path(resolve_model(model)).name}
    except (FileNotFoundError, OSError):
        pass
    return base in names or Path(base).name in names


def find_adapters(folder: str | Path) -> dict[int, Path]:
    """Adapter folders of a run (`artefact("adapters") / "cluster_<id>"`), by cluster id.

    Example:
        >>> find_adapters("/nonexistent")
        {}
    """
    root = Path(folder)
    out: dict[int, Path] = {}
    for sub in sorted(root.glob("cluster_*")) if root.is_dir() else []:
        tail = sub.name.removeprefix("cluster_")
        if tail.lstrip("-").isdigit() and any(
            (sub / f).exists() for f in ("slmlab_adapter.json", "adapter_config.json")
        ):
            out[int(tail)] = sub
    return out


@dataclass(frozen=True)
class StepInputs:
    """What notebook 07 needs from steps 3-6 of a run.

    Attributes:
        calls: the clustered calls with the labeller's merges applied and the run's saved split joined.
        clusters: the labeller's cluster table (with statuses), else step 3's.
        adapters: cluster id -> adapter folder (each is checked against `split_fingerprint` when used).
        split_fingerprint: the fingerprint of the run's split, which every adapter must have trained on.
    """

    calls: pl.DataFrame
    clusters: pl.DataFrame
    adapters: dict[int, Path]
    split_fingerprint: str


def load_step_inputs(run: str | RunStore = "demo") -> StepInputs:
    """Read a run's labelled calls, the saved split (made by notebook 06; nothing re-splits), the cluster
    table and the adapters.

    Raises:
        slmlab.runs.MissingArtefactError: the split or the clustered calls are missing (names the notebook).
        slmlab.specialize.splits.LeakageError: the split leaks (a session on both sides).
    """
    from slmlab.label import load_labelled_clusters
    from slmlab.specialize.splits import apply_split

    store = run if isinstance(run, RunStore) else RunStore(run)
    calls, clusters = load_labelled_clusters(store)
    calls = _require_split(apply_split(calls, store.read_split()))
    return StepInputs(calls, clusters, find_adapters(store.adapters_dir()), store.split_fingerprint())


# ---------------------------------------------------------------- the matrix


def run_experiments(
    calls: pl.DataFrame,
    clusters: pl.DataFrame | Sequence[int] | None = None,
    models: Sequence[str | Generator] = ("smollm2-135m",),
    adapters: Mapping[int, str | Path] | None = None,
    experiments: Sequence[str] = EXPERIMENTS,
    k_icl: int = 3,
    icl: str = "similar",
    n_eval: int | None = None,
    budget: PromptBudget | None = None,
    max_new_tokens: int = 128,
    cluster_source: str = "cluster",
    embedder: Any = "auto",
    cache: bool = True,
    seed: int = 0,
    batch_size: int = 8,
    int8: bool = False,
    progress: bool = True,
    max_clusters: int | None = None,
    split_fingerprint: str | None = None,
) -> pl.DataFrame:
    """Generate and score every accepted cluster x model x experiment on held-out calls.

    Args:
        calls: call table with `cluster` and the run's saved `split` (`slmlab.specialize.splits.apply_split`;
            a table without one is refused: nothing re-splits). Leakage raises `LeakageError`.
        clusters: cluster table (rows with status "slm_candidate" are evaluated), ids, or None for all.
        models: model references for `TransformersGenerator`, or `Generator` objects (an endpoint).
        adapters: cluster id -> LoRA adapter folder, for the "tuned" experiment (a cluster without one, or
            with an adapter trained on another base model, skips "tuned" with a printed note).
        experiments: any of "base", "icl", "tuned".
        k_icl: in-context examples per prompt; icl: "similar" (embedding nearest) or "random".
        n_eval: at most this many test calls per cluster (seeded sample); None for all.
        budget: prompt budget (use the one the adapters were trained with).
        max_new_tokens: generation budget.
        cluster_source: "cluster", or "task_label" to evaluate the log's own task tags instead.
        embedder: for ICL retrieval and text similarity ("auto", "tfidf" or an embedder object).
        cache: reuse earlier generations from the on-disk cache.
        seed: sampling of eval calls and random ICL examples.
        batch_size, int8: passed to `TransformersGenerator` for model references.
        max_clusters: evaluate at most this many accepted clusters: those with an adapter first, then the
            largest (CPU and smoke runs).
        split_fingerprint: the run's split fingerprint (`StepInputs.split_fingerprint`); an adapter trained
            on another split is refused. Every adapter is also refused when it was trained for other calls
            of its cluster (`StaleAdapterError`), and no scored call may be one of its training calls.

    Returns:
        Per-call scores (`score_calls` columns) with `model`, `experiment` and `adapter`.
    """
    unknown = set(experiments) - set(EXPERIMENTS)
    if unknown:
        raise ValueError(f"unknown experiments {sorted(unknown)}; choose from {EXPERIMENTS}")
    budget = budget or PromptBudget()
    adapters = {int(k): v for k, v in (adapters or {}).items()}
    if cluster_source == "task_label":
        calls = clusters_from_task_label(calls)
        clusters = None
    elif cluster_source != "cluster":
        raise ValueError("cluster_source must be 'cluster' or 'task_label'")
    calls = _require_split(calls)
    ids = accepted_clusters(clusters, calls)
    if max_clusters is not None and len(ids) > max_clusters:
        # Clusters with an adapter first (the tuned experiment is the point), then the largest.
        tuned = [c for c in adapters if c in ids] if "tuned" in experiments else []
        sizes = (
            calls.filter(pl.col("cluster").is_in(ids))
            .group_by("cluster")
            .len()
            .with_columns(pl.col("cluster").is_in(tuned).alias("_tuned"))
            .sort(["_tuned", "len", "cluster"], descending=[True, True, False])
        )
        ids = sorted(sizes.get_column("cluster").head(max_clusters).to_list())
    rng = random.Random(seed)
    tools_fallback = tools_from_calls(calls.get_column("response_tool_calls").to_list())
    tests, examples = [], []
    for c in ids:
        test = calls.filter((pl.col("cluster") == c) & (pl.col("split") == "test"))
        if n_eval is not None and test.height > n_eval:
            test = test.sample(n_eval, seed=seed)
        if test.is_empty():
            print(f"cluster {c}: no held-out calls, skipped")
            continue
        tests.append(test)
        if "icl" in experiments:
            train = calls.filter((pl.col("cluster") == c) & (pl.col("split") == "train"))
            examples.extend(_select_examples(test, train, k_icl, icl, embedder, rng))
    if not tests:
        return pl.DataFrame()
    test_all = pl.concat(tests, how="diagonal_relaxed")
    results = []
    gen_kw = {"max_new_tokens": max_new_tokens, "progress": progress, "cache": cache}
    score_kw = {"embedder": embedder, "tools_fallback": tools_fallback}
    for model in models:
        gen = model if isinstance(model, Generator) else _local_generator(model, batch_size, int8)
        tok = getattr(gen, "tokenizer", None)
        rows = test_all.to_dicts()
        runs: list[tuple[pl.DataFrame, list, Generator, str, str | None]] = []
        if "base" in experiments:
            prompts = [build_prompt(r, budget, tok, tools_fallback) for r in rows]
            runs.append((test_all, prompts, gen, "base", None))
        if "icl" in experiments:
            prompts = [
                build_prompt(r, budget, tok, tools_fallback, ex) for r, ex in zip(rows, examples, strict=True)
            ]
            runs.append((test_all, prompts, gen, "icl", None))
        for sub, prompts, g, experiment, adapter in runs:
            outs = g.generate(prompts, **gen_kw)
            sc = score_calls(sub, outs, model=gen.name, experiment=experiment, **score_kw)
            results.append(sc.with_columns(pl.lit(adapter, dtype=pl.String).alias("adapter")))
        if "tuned" in experiments:
            for c in test_all.get_column("cluster").unique(maintain_order=True).to_list():
                adapter = adapters.get(int(c))
                if adapter is None or not Path(adapter).exists():
                    print(f"cluster {c}: no adapter, tuned experiment skipped")
                    continue
                if isinstance(model, str) and not _adapter_fits(adapter, model):
                    base_model = adapter_base_model(adapter)
                    print(f"cluster {c}: adapter {adapter} was trained on {base_model}, not {model}; skipped")
                    continue
                sub = test_all.filter(pl.col("cluster") == c)
                check_adapter(adapter, int(c), calls, split_fingerprint)
                assert_not_trained_on(adapter, sub.get_column("call_id").to_list())
                tuned = gen.with_adapter(adapter)
                ttok = getattr(tuned, "tokenizer", None)
                t_budget, t_tools = adapter_prompt_setup(adapter, budget, tools_fallback)
                prompts = [build_prompt(r, t_budget, ttok, t_tools) for r in sub.to_dicts()]
                outs = tuned.generate(prompts, **gen_kw)
                sc = score_calls(sub, outs, model=gen.name, experiment="tuned", **score_kw)
                results.append(sc.with_columns(pl.lit(str(adapter), dtype=pl.String).alias("adapter")))
                del tuned
                gc.collect()
        if not isinstance(model, Generator):
            del gen
            gc.collect()
    return pl.concat(results, how="diagonal_relaxed") if results else pl.DataFrame()


def _local_generator(model: str, batch_size: int, int8: bool) -> Generator:
    from slmlab.runtime.generate import TransformersGenerator

    return TransformersGenerator(model, batch_size=batch_size, int8=int8)


# ---------------------------------------------------------------- reading the matrix


def _value_col(summary: pl.DataFrame, metric: str) -> pl.Expr:
    """The metric where defined for the group, else `agreement` (text clusters have no tool metrics)."""
    fallback = "agreement" if "agreement" in summary.columns else metric
    return pl.coalesce(pl.col(metric), pl.col(fallback))


def plot_experiment_heatmap(
    summary: pl.DataFrame, metric: str = "name_args_exact", cluster_names: Mapping[int, str] | None = None
) -> go.Figure:
    """Heat map of `metric` (falling back to agreement for text clusters): clusters x (model · experiment).

    Each cell shows the mean, its bootstrap interval and the number of evaluated calls.

    Example:
        >>> plot_experiment_heatmap(summarize_scores(scores))  # doctest: +SKIP
    """
    lo = (
        pl.coalesce(pl.col(f"{metric}_lo"), pl.col("agreement_lo"))
        if "agreement_lo" in summary.columns
        else pl.col(f"{metric}_lo")
    )
    hi = (
        pl.coalesce(pl.col(f"{metric}_hi"), pl.col("agreement_hi"))
        if "agreement_hi" in summary.columns
        else pl.col(f"{metric}_hi")
    )
    df = summary.with_columns(
        _value_col(summary, metric).alias("_v"),
        lo.alias("_lo"),
        hi.alias("_hi"),
        (pl.col("model") + " · " + pl.col("experiment")).alias("_x"),
    )
    xs = df.get_column("_x").unique(maintain_order=True).to_list()
    ys = sorted(df.get_column("cluster").unique().to_list())
    z = [[None] * len(xs) for _ in ys]
    text = [[""] * len(xs) for _ in ys]
    for r in df.iter_rows(named=True):
        i, j = ys.index(r["cluster"]), xs.index(r["_x"])
        z[i][j] = r["_v"]
        if r["_v"] is not None:
            text[i][j] = f"{r['_v']:.2f}<br>[{r['_lo'] or 0:.2f}, {r['_hi'] or 0:.2f}]<br>n={r['n']}"
    names = cluster_names or {}
    labels = [f"{c}: {names[c]}" if c in names else str(c) for c in ys]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=xs, y=labels, text=text, texttemplate="%{text}", colorscale="RdYlGn", zmin=0, zmax=1,
            colorbar={"title": metric},
        )
    )  # fmt: skip
    fig.update_layout(
        title=f"Agreement with the LLM on held-out calls ({metric}; agreement for text clusters)",
        xaxis_title="model · experiment",
        yaxis_title="cluster",
        yaxis_type="category",
        height=max(300, 60 * len(ys) + 150),
    )
    return fig


def verdicts(
    summary: pl.DataFrame,
    swap_at: float = 0.9,
    min_eval: int = 20,
    metric: str = "name_args_exact",
    adapters: Mapping[int, str | Path] | None = None,
) -> pl.DataFrame:
    """Per cluster, the best model/experiment and a verdict: swap, keep on the LLM, or needs more data.

    A cluster is "swap" when its best mean `metric` (agreement for text clusters) reaches `swap_at` on at
    least `min_eval` held-out calls; "needs_more_data" when fewer calls were evaluated; else "keep_llm".
    Ties go to the cheaper experiment (base, then tuned, then ICL, whose prompts are longer).

    Returns:
        cluster, verdict, model, experiment, adapter, value, lo, hi, n.

    Example:
        >>> s = pl.DataFrame({"cluster": [0, 0], "model": ["m", "m"], "experiment": ["base", "tuned"], "n": [30, 30],
        ...     "name_args_exact": [0.5, 0.95], "name_args_exact_lo": [0.3, 0.9], "name_args_exact_hi": [0.7, 1.0]})
        >>> verdicts(s).select("verdict", "experiment").row(0)
        ('swap', 'tuned')
    """
    cost_rank = {"base": 0, "tuned": 1, "icl": 2}
    lo = f"{metric}_lo" if f"{metric}_lo" in summary.columns else None
    hi = f"{metric}_hi" if f"{metric}_hi" in summary.columns else None
    has_agree = "agreement" in summary.columns
    df = summary.with_columns(
        _value_col(summary, metric).alias("value"),
        (
            pl.coalesce(pl.col(lo), pl.col("agreement_lo"))
            if lo and has_agree
            else pl.col(lo)
            if lo
            else pl.lit(None)
        ).alias("lo"),
        (
            pl.coalesce(pl.col(hi), pl.col("agreement_hi"))
            if hi and has_agree
            else pl.col(hi)
            if hi
            else pl.lit(None)
        ).alias("hi"),
        pl.col("experiment").replace_strict(cost_rank, default=9, return_dtype=pl.Int32).alias("_rank"),
    )
    best = (
        df.sort(["cluster", "value", "_rank"], descending=[False, True, False], nulls_last=True)
        .group_by("cluster", maintain_order=True)
        .first()
    )
    adapters = {int(k): str(v) for k, v in (adapters or {}).items()}
    verdict = (
        pl.when(pl.col("n") < min_eval)
        .then(pl.lit("needs_more_data"))
        .when(pl.col("value") >= swap_at)
        .then(pl.lit("swap"))
        .otherwise(pl.lit("keep_llm"))
    )
    out = best.with_columns(
        verdict.alias("verdict"),
        pl.struct("cluster", "experiment")
        .map_elements(
            lambda s: adapters.get(s["cluster"]) if s["experiment"] == "tuned" else None,
            return_dtype=pl.String,
        )
        .alias("adapter"),
    )
    return out.select("cluster", "verdict", "model", "experiment", "adapter", "value", "lo", "hi", "n")
