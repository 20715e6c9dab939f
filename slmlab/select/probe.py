"""Zero-shot probe of step 5: a candidate SLM, untrained, on a few of a cluster's calls.

Usage:
    >>> from slmlab.select.probe import zero_shot_probe, probe_summary
    >>> probe_summary(zero_shot_probe(cluster_calls, "smollm2-135m", n=5))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
from typing import Any

import polars as pl

from slmlab.runtime.chat_format import (
    PromptBudget,
    count_prompt_tokens,
    fit_messages,
    render_target,
    tools_from_calls,
)
from slmlab.schema import TEXT_ACTION, conform, parse_messages, parse_tool_calls


def _logged_action(row: dict[str, Any]) -> str:
    return row["tool_name"] or TEXT_ACTION


def zero_shot_probe(
    calls: pl.DataFrame,
    model: Any = "smollm2-135m",
    n: int = 20,
    budget: PromptBudget | None = None,
    max_new_tokens: int = 96,
    seed: int = 0,
    batch_size: int = 4,
) -> pl.DataFrame:
    """Run a candidate SLM, untrained, on a sample of a cluster's calls and compare with what the LLM did.

    Prompts are built exactly as training and evaluation build them (`fit_messages` with the logged tool
    schemas, or schemas inferred from the sample's logged tool calls when the log has none), so the probe shows
    the starting point fine-tuning improves on. Scoring is deliberately minimal; `slmlab.evaluate` has the
    full metrics.

    Args:
        calls: call table rows of one cluster (canonical schema).
        model: a model reference for `TransformersGenerator`, or a ready `slmlab.runtime.generate.Generator`.
        n: calls to sample (all when fewer).
        budget: prompt budget; default `PromptBudget()` (1024 tokens).
        max_new_tokens: generation limit.
        seed: sampling seed.

    Returns:
        One row per probed call: call_id, logged_action, generated_action, tool_match, json_valid (null when the
        model called no tool), args_match (same calls and arguments as the log, via
        `slmlab.runtime.chat_format.calls_exact_match`; null unless the first tool names agree), logged_output,
        generated_text, prompt_tokens, generated_tokens, latency_ms, model.

    Example:
        >>> probe = zero_shot_probe(cluster_calls, "smollm2-135m", n=5)  # doctest: +SKIP
        >>> probe.select(pl.col("tool_match").mean())  # doctest: +SKIP
    """
    from slmlab.runtime.chat_format import calls_exact_match
    from slmlab.runtime.generate import Generator, TransformersGenerator

    if calls.height == 0:
        raise ValueError("no calls to probe")
    budget = budget or PromptBudget()
    rows = conform(calls).to_dicts()  # the call schema's columns, so every row has tools, tool calls, text
    sample = random.Random(seed).sample(rows, min(n, len(rows)))
    gen = model if isinstance(model, Generator) else TransformersGenerator(model, batch_size=batch_size)
    inferred = tools_from_calls([r["response_tool_calls"] for r in rows])
    prompts, tokens = [], []
    for r in sample:
        tools = json.loads(r["tools"]) if r["tools"] else inferred
        msgs = fit_messages(parse_messages(r["messages"]), tools, budget, gen.tokenizer)
        prompts.append(msgs)
        tokens.append(count_prompt_tokens(msgs, gen.tokenizer))
    outs = gen.generate(prompts, max_new_tokens=max_new_tokens, progress=False)
    result = []
    for r, out, n_tok in zip(sample, outs, tokens, strict=True):
        logged_calls = parse_tool_calls(r["response_tool_calls"])
        logged = _logged_action(r)
        generated = (out.tool_calls[0].get("name") or "<invalid>") if out.tool_calls else TEXT_ACTION
        args_match = None
        if out.tool_calls and logged_calls and generated == logged:
            args_match = calls_exact_match(logged_calls, out.tool_calls)
        result.append(
            {
                "call_id": r["call_id"],
                "cluster": r.get("cluster"),  # not a call-schema column: absent on an unclustered table
                "logged_action": logged,
                "generated_action": generated,
                "tool_match": generated == logged,
                "json_valid": (out.valid_json and all(c.get("name") for c in out.tool_calls))
                if out.tool_calls
                else None,
                "args_match": args_match,
                "logged_output": render_target(r["response_text"], logged_calls),
                "generated_text": out.text,
                "prompt_tokens": n_tok,
                "generated_tokens": out.output_tokens,
                "latency_ms": out.latency_ms,
                "model": gen.name,
            }
        )
    schema = {"cluster": pl.Int32, "json_valid": pl.Boolean, "args_match": pl.Boolean}
    return pl.DataFrame(result, schema_overrides=schema)


def probe_summary(probe: pl.DataFrame) -> pl.DataFrame:
    """One row: calls probed, tool-name match rate, JSON validity, argument match, mean tokens and latency."""
    return probe.group_by("model").agg(
        n=pl.len(),
        tool_match=pl.col("tool_match").mean(),
        json_valid=pl.col("json_valid").mean(),
        args_match=pl.col("args_match").cast(pl.Float64).fill_null(0.0).mean(),
        generated_tokens=pl.col("generated_tokens").mean(),
        latency_ms=pl.col("latency_ms").mean(),
    )
