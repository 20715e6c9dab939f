"""The prompts of the experiment matrix: a logged call fitted to the prompt budget (`build_prompt`), with
in-context examples from the cluster's training split for the ICL experiment.

Usage:
    >>> from slmlab.evaluate.prompts import build_prompt
    >>> build_prompt({"messages": '[{"role": "user", "content": "hi"}]'}, PromptBudget())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl

from slmlab.evaluate.metrics import text_vectors
from slmlab.runtime.chat_format import (
    PromptBudget,
    count_prompt_tokens,
    fit_messages,
    recent_turns_text,
    render_target,
)
from slmlab.schema import parse_messages, parse_tool_calls


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
