"""Ranking of step 5: per cluster and catalog model, the hard checks (memory, context, licence, tool
calls) and a score that prefers the smallest model whose quality clears the cluster's difficulty; and the
clusters to rank, read from the run (`load_candidates`).

Usage:
    >>> import polars as pl
    >>> from slmlab.select.ranking import rank_models
    >>> cl = pl.DataFrame({"cluster": [0], "p90_input_tokens": [900.0], "mean_output_tokens": [40.0],
    ...                    "output_shape": ["tool_call"], "suitability": [0.8]})
    >>> rank_models(cl, "cpu").filter(pl.col("rank") == 1).height
    1
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import polars as pl

from slmlab.runs import RunStore, conform_clusters
from slmlab.select.catalog import GpuSpec, get_gpu, load_catalog
from slmlab.select.memory import MODES, estimate_memory

# Licence groups a `licenses_allowed` list may name instead of single licences.
LICENSE_GROUPS = {"permissive": ("apache-2.0", "mit"), "commercial": ()}

SIZE_WEIGHT = (
    0.35  # how much one decade of parameters (0.1B -> 1B) costs in score, relative to clearing the bar
)
TOOL_BONUS = {"native": 0.10, "prompted": 0.03, "none": -0.10}  # tool-call clusters only
AGENT_BONUS = 0.05  # tool-call clusters: trained on agent trajectories (xLAM, Nemotron-Mini)


def size_prior(params_b: float) -> float:
    """0 at 0.1B parameters, 1 at 10B, log scale: the capability one expects from size alone."""
    return min(1.0, max(0.0, math.log10(max(params_b, 1e-3) / 0.1) / 2))


def quality_prior(row: dict[str, Any], tool_call: bool = False) -> float:
    """0..1 prior of a model's capability: the mean of its size prior and its published benchmark figures.

    Benchmarks (MMLU, IFEval, GSM8K; BFCL counted twice for tool-call clusters) come from different setups, so
    they are averaged, never compared one by one; a model without figures gets its size prior alone.
    """
    marks = [row[b] / 100 for b in ("mmlu", "ifeval", "gsm8k") if row.get(b) is not None]
    if row.get("bfcl") is not None:
        marks += [row["bfcl"] / 100] * (2 if tool_call else 1)
    prior = size_prior(row["params_b"])
    return (prior + sum(marks) / len(marks)) / 2 if marks else prior


def difficulty_bar(suitability: float | None) -> float:
    """The quality a cluster needs: 0.2 for a perfectly repetitive cluster (suitability 1) up to 0.6 (0)."""
    s = 0.5 if suitability is None or math.isnan(suitability) else min(1.0, max(0.0, suitability))
    return 0.2 + 0.4 * (1 - s)


def _license_ok(row: dict[str, Any], allowed: list[str] | None) -> bool:
    if not allowed:
        return True
    names = {a.lower() for a in allowed}
    if "commercial" in names and row["commercial_use"]:
        return True
    for group, members in LICENSE_GROUPS.items():
        if group in names:
            names |= set(members)
    return row["license"].lower() in names


def rank_models(
    clusters: pl.DataFrame,
    gpu: str | GpuSpec = "cpu",
    catalog: pl.DataFrame | None = None,
    licenses_allowed: list[str] | None = None,
    mode: str = "qlora",
    max_params_b: float | None = None,
    prefer_local: bool | None = None,
    lora_r: int = 16,
    max_prompt_tokens: int | None = None,
) -> pl.DataFrame:
    """Rank catalog models for each cluster on one GPU.

    Per (cluster, model):
      - `context_need` = p90_input_tokens + mean_output_tokens; `context_ok` when the model's window holds it.
        With `max_prompt_tokens` (prompts trimmed by a `PromptBudget` before training and serving, as
        `slmlab.specialize` does) the prompt part is capped at that budget.
      - `train_gb` (the chosen `mode` at that sequence length, batch 1, gradient checkpointing) and `infer_gb`
        (same quantization, KV cache for that context); `fits` when both are within the GPU's usable memory
        and, on a CPU, the model is within its training budget (`train_params_budget_b`, time not memory).
      - `license_ok` against `licenses_allowed` (licence ids, or the groups "permissive" / "commercial").
      - `tool_ok`: the cluster answers with tool calls (`output_shape == "tool_call"`) and the model has tool
        calling. With fine-tuning the model learns the `<tool_call>` format from the LLM's own calls, so a
        model without it is penalised, not excluded; in "inference" mode it is excluded.
      - `eligible` = all hard checks pass; `reasons` lists the failing ones.
      - `score` = min(quality / bar, 1) - SIZE_WEIGHT * size + tool bonus, where quality is `quality_prior`,
        the bar `difficulty_bar(suitability)` and size `size_prior(params_b)`. Every model that clears the bar
        scores 1 before the size cost, so the smallest model that clears it wins; tool-call clusters add
        `TOOL_BONUS[tool_calling]` and `AGENT_BONUS` for agent-tuned models (xLAM, Nemotron-Mini).
      - `rank` 1.. among eligible models of the cluster (null for excluded ones). With `prefer_local` (default
        on a CPU) models that load offline (the bundled SmolLM2-135M) rank first, so the laptop path needs no
        download.

    Args:
        clusters: cluster table (`slmlab.schema.CLUSTER_SCHEMA`; needs cluster, p90_input_tokens,
            mean_output_tokens, output_shape, suitability; name optional).
        gpu: a `GpuSpec` or a name from `load_gpus()` ("cpu", "T4", "L4", "A10G", "4090", "A100 40GB", "H100").
        catalog: defaults to `load_catalog()`.
        licenses_allowed: None allows every licence.
        mode: "qlora", "lora", "full" or "inference".
        max_params_b: drop bigger models (a reason, not a silent filter).
        prefer_local: rank offline-loadable models first; None = only on a CPU.
        lora_r: LoRA rank for the training memory estimate.
        max_prompt_tokens: the prompt budget the SLM will see; None = the logged prompt length.

    Returns:
        One row per (cluster, model), sorted by cluster then rank.

    Example:
        >>> cl = pl.DataFrame({"cluster": [0], "p90_input_tokens": [900.0], "mean_output_tokens": [40.0],
        ...                    "output_shape": ["tool_call"], "suitability": [0.8]})
        >>> rank_models(cl, "cpu").filter(pl.col("rank") == 1).get_column("hub_id").item()
        'HuggingFaceTB/SmolLM2-135M-Instruct'
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    spec = get_gpu(gpu)
    cat = catalog if catalog is not None else load_catalog()
    prefer_local = spec.is_cpu if prefer_local is None else prefer_local
    device = "cpu" if spec.is_cpu else "cuda"
    quant = "nf4" if mode == "qlora" else ("bf16" if not spec.is_cpu else "fp32")
    needed = [c for c in ("cluster", "p90_input_tokens", "mean_output_tokens", "output_shape", "suitability")]
    missing = [c for c in needed if c not in clusters.columns]
    if missing:
        raise ValueError(f"the cluster table lacks {missing} (see slmlab.schema.CLUSTER_SCHEMA)")
    clusters = conform_clusters(clusters)  # the other CLUSTER_SCHEMA columns (name) with their defaults
    memo: dict[tuple[str, int], tuple[float, float]] = {}
    rows = []
    for cl in clusters.iter_rows(named=True):
        prompt = cl["p90_input_tokens"] or 0
        if max_prompt_tokens is not None:
            prompt = min(prompt, max_prompt_tokens)
        ctx = int(math.ceil(prompt + (cl["mean_output_tokens"] or 0))) or 1
        tool_call = cl["output_shape"] == "tool_call"
        bar = difficulty_bar(cl["suitability"])
        for m in cat.iter_rows(named=True):
            key = (m["hub_id"], ctx)
            if key not in memo:
                infer = estimate_memory(m, quant, ctx, 1, "inference", device=device)
                train = (
                    infer
                    if mode == "inference"
                    else estimate_memory(m, quant, ctx, 1, mode, lora_r, device=device)
                )
                memo[key] = (train.total_gb, infer.total_gb)
            train_gb, infer_gb = memo[key]
            reasons = []
            need_gb = max(train_gb, infer_gb)
            fits = need_gb <= spec.usable_gb
            if not fits:
                reasons.append(f"needs {need_gb:.1f} GB > {spec.usable_gb:.1f} GB usable on {spec.name}")
            budget = spec.train_params_budget_b
            if budget is not None and mode != "inference" and m["params_b"] > budget:
                fits = False
                reasons.append(
                    f"{m['params_b']:.2f}B params > {budget}B trainable in reasonable time on {spec.name}"
                )
            context_ok = m["context_length"] >= ctx
            if not context_ok:
                reasons.append(f"context {m['context_length']} < {ctx} tokens needed")
            license_ok = _license_ok(m, licenses_allowed)
            if not license_ok:
                reasons.append(f"licence {m['license']} not allowed")
            tool_ok = not tool_call or m["tool_calling"] != "none"
            if not tool_ok and mode == "inference":
                reasons.append("no tool calling (zero-shot use)")
            size_ok = max_params_b is None or m["params_b"] <= max_params_b
            if not size_ok:
                reasons.append(f"{m['params_b']:.2f}B > max_params_b {max_params_b}")
            quality = quality_prior(m, tool_call)
            score = min(quality / bar, 1.0) - SIZE_WEIGHT * size_prior(m["params_b"])
            if tool_call:
                score += TOOL_BONUS[m["tool_calling"]] + (AGENT_BONUS if m["agent_tuned"] else 0.0)
            rows.append(
                {
                    "cluster": cl["cluster"],
                    "cluster_name": cl["name"],
                    "hub_id": m["hub_id"],
                    "local_name": m["local_name"],
                    "family": m["family"],
                    "params_b": m["params_b"],
                    "license": m["license"],
                    "tool_calling": m["tool_calling"],
                    "local": bool(m["bundled"]),
                    "context_need": ctx,
                    "train_gb": round(train_gb, 3),
                    "infer_gb": round(infer_gb, 3),
                    "fits": fits,
                    "context_ok": context_ok,
                    "license_ok": license_ok,
                    "tool_ok": tool_ok,
                    "eligible": not reasons,
                    "quality": round(quality, 4),
                    "bar": round(bar, 4),
                    "score": round(score, 4),
                    "reasons": "; ".join(reasons),
                    "gpu": spec.name,
                    "mode": mode,
                }
            )
    df = pl.DataFrame(rows)
    local_key = pl.when(pl.lit(prefer_local) & pl.col("local")).then(0).otherwise(1)
    df = df.with_columns(
        _elig=pl.when(pl.col("eligible")).then(0).otherwise(1), _local=local_key, _neg=-pl.col("score")
    ).sort(["cluster", "_elig", "_local", "_neg", "params_b"])
    df = df.with_columns(
        rank=pl.when(pl.col("eligible")).then(pl.col("eligible").cum_sum().over("cluster")).otherwise(None)
    ).drop("_elig", "_local", "_neg")
    return df.with_columns(pl.col("rank").cast(pl.Int32))


def best_per_cluster(ranking: pl.DataFrame) -> pl.DataFrame:
    """The top-ranked eligible model of each cluster (one row per cluster)."""
    return ranking.filter(pl.col("rank") == 1).sort("cluster")


def best_model(ranking: pl.DataFrame, cluster: int) -> str:
    """The model reference to load for a cluster's top-ranked candidate: its local name if bundled, else hub id.

    Raises:
        ValueError: no model is eligible for that cluster (see the `reasons` column).
    """
    top = ranking.filter((pl.col("cluster") == cluster) & (pl.col("rank") == 1))
    if top.height == 0:
        raise ValueError(f"no eligible model for cluster {cluster}; see ranking['reasons']")
    row = top.row(0, named=True)
    return row["local_name"] or row["hub_id"]


# ---------------------------------------------------------------------------------------------------------
# Inputs from earlier steps
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidates:
    """The clusters to find models for, and their calls (cluster ids after the labeller's merges/splits).

    Attributes:
        clusters: cluster table rows (`CLUSTER_SCHEMA`), best first.
        calls: the clustered call table with `cluster` mapped through the labels.
        source: "labels" (status "slm_candidate" in notebook 04's labels) or "suitability" (top clusters by
            suitability, when there are no labels or none is accepted).
    """

    clusters: pl.DataFrame
    calls: pl.DataFrame
    source: str


def load_candidates(run: str | RunStore = "demo", fallback_top: int = 3) -> Candidates:
    """Read step 3/4 artefacts of a run: the clusters accepted as SLM candidates and their calls.

    Reads the labelled state through `slmlab.label.load_labelled_calls` (the labeller's merges, splits
    and statuses); when no cluster is marked "slm_candidate", the `fallback_top` clusters with the highest
    suitability (noise -1 excluded).

    Example:
        >>> cands = load_candidates("demo")  # doctest: +SKIP
        >>> cands.clusters.get_column("cluster").to_list()  # doctest: +SKIP
    """
    from slmlab.label import load_labelled_clusters

    calls, clusters = load_labelled_clusters(run)
    accepted = clusters.filter(pl.col("status") == "slm_candidate")
    if accepted.height:
        return Candidates(accepted.sort("suitability", descending=True), calls, "labels")
    top = clusters.filter(pl.col("cluster") >= 0).sort("suitability", descending=True).head(fallback_top)
    return Candidates(top, calls, "suitability")
