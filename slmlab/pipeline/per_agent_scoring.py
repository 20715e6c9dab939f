"""Real SLM scores for a sample of the calls a per-agent replay routed to the SLM (`score_routed`).

Usage:
    >>> from slmlab.pipeline.per_agent_scoring import score_routed
    >>> scores = score_routed(result, "smollm2-135m", n_per_cluster=2)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from slmlab.pipeline.per_agent import _EMPTY_SCORES, AgentReplay


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
