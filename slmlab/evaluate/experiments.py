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
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from slmlab.evaluate.inputs import (
    StepInputs,
    _adapter_fits,
    _require_split,
    accepted_clusters,
    adapter_base_model,
    adapter_prompt_setup,
    cluster_task_ari,
    clusters_from_task_label,
    find_adapters,
    load_step_inputs,
)
from slmlab.evaluate.metrics import score_calls
from slmlab.evaluate.prompts import _select_examples, build_prompt, call_tools
from slmlab.evaluate.verdicts import VERDICTS, plot_experiment_heatmap, verdicts
from slmlab.runtime.chat_format import PromptBudget, tools_from_calls
from slmlab.runtime.generate import Generator
from slmlab.specialize.provenance import assert_not_trained_on, check_adapter

EXPERIMENTS = ("base", "icl", "tuned")

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


__all__ = [
    "EXPERIMENTS",
    "VERDICTS",
    "StepInputs",
    "accepted_clusters",
    "adapter_base_model",
    "adapter_prompt_setup",
    "build_prompt",
    "call_tools",
    "cluster_task_ari",
    "clusters_from_task_label",
    "find_adapters",
    "load_step_inputs",
    "plot_experiment_heatmap",
    "run_experiments",
    "verdicts",
]
