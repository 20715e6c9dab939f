"""Step 7a, evaluate: how often does a small model give the LLM's answer on held-out calls of a cluster?

`metrics` scores one generation against one logged answer (tool name, arguments, JSON and schema validity,
text similarity) and summarizes with bootstrap intervals; `experiments` runs the base / ICL / tuned matrix
per accepted cluster and candidate model and turns it into verdicts; `judge` is an optional LLM judge.

Usage:
    >>> from slmlab.evaluate import run_experiments, summarize_scores, verdicts, plot_experiment_heatmap
    >>> scores = run_experiments(calls, clusters, ["smollm2-135m"], adapters)  # doctest: +SKIP
    >>> summary = summarize_scores(scores)  # doctest: +SKIP
    >>> verdicts(summary, swap_at=0.9, min_eval=20)  # doctest: +SKIP
"""

from slmlab.evaluate.experiments import (
    EXPERIMENTS,
    VERDICTS,
    StepInputs,
    accepted_clusters,
    adapter_base_model,
    build_prompt,
    cluster_task_ari,
    clusters_from_task_label,
    find_adapters,
    load_step_inputs,
    plot_experiment_heatmap,
    run_experiments,
    verdicts,
)
from slmlab.evaluate.judge import LLMJudge
from slmlab.evaluate.metrics import (
    METRICS,
    argument_f1,
    bootstrap_ci,
    schema_valid,
    score_calls,
    summarize_scores,
    text_similarity,
    text_vectors,
    token_f1,
)
from slmlab.runtime.chat_format import calls_exact_match, canonical_call, normalize_json

__all__ = [
    "EXPERIMENTS",
    "LLMJudge",
    "METRICS",
    "VERDICTS",
    "accepted_clusters",
    "adapter_base_model",
    "argument_f1",
    "bootstrap_ci",
    "build_prompt",
    "calls_exact_match",
    "canonical_call",
    "cluster_task_ari",
    "clusters_from_task_label",
    "find_adapters",
    "StepInputs",
    "load_step_inputs",
    "normalize_json",
    "plot_experiment_heatmap",
    "run_experiments",
    "schema_valid",
    "score_calls",
    "summarize_scores",
    "text_similarity",
    "text_vectors",
    "token_f1",
    "verdicts",
]
