"""What the labeller splits calls by: a call's system prompt (hash, head, near-duplicate template) and the
split key of each call (`split_keys`: action, template or any call column).

Usage:
    >>> import polars as pl
    >>> from slmlab.label.keys import split_keys
    >>> split_keys(pl.DataFrame({"tool_name": ["x", None]}), "action").to_list()
    ['x', 'respond']
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import polars as pl

from slmlab.cluster.templates import TemplateIndex, system_prompt
from slmlab.schema import action_expr, message_text, parse_messages

NONE_KEY = "(none)"  # split key of calls whose split column is null


def system_prompt_hash(messages_json: str | None) -> str | None:
    """A short hash of a call's system prompt (its first system/developer message), or None without one.

    Whitespace is collapsed first, so re-wrapped prompts hash the same; any other edit makes a new
    template.

    Example:
        >>> system_prompt_hash('[{"role": "system", "content": "You book flights."}]')
        'a6e00d9b9cac'
    """
    for msg in parse_messages(messages_json):
        if msg.get("role") in ("system", "developer"):
            text = " ".join(message_text(msg).split())
            return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return None


def system_prompt_head(messages_json: str | None, max_chars: int = 160) -> str:
    """The first `max_chars` characters of a call's system prompt ("" without one)."""
    for msg in parse_messages(messages_json):
        if msg.get("role") in ("system", "developer"):
            return " ".join(message_text(msg).split())[:max_chars]
    return ""


def template_keys(
    messages: Sequence[str | None], examples: dict[str, str] | None = None
) -> tuple[np.ndarray, dict[str, str]]:
    """Template id of each call's system prompt, by near-duplicate matching (`slmlab.cluster.templates.TemplateIndex`),
    so per-call fillers (dates, tiers) do not make a template each. With `examples` (id -> prompt, as returned
    before) calls are matched to those templates; otherwise templates are learnt from `messages`.

    Returns:
        (keys, examples): keys are template ids, "(none)" without a system prompt or a match.
    """
    prompts = [system_prompt(m) for m in messages]
    idx = TemplateIndex.from_examples(examples) if examples is not None else TemplateIndex().fit(prompts)
    keys = [k if k is not None else NONE_KEY for k in idx.match(prompts)]
    return np.array(keys, dtype=object), dict(idx.templates_)


def split_keys(calls: pl.DataFrame, by: str) -> pl.Series:
    """The value each call is split by: `"action"` (tool called or "respond"), `"template"` (system-prompt
    template, see `template_keys`) or any column of the call table; nulls become `"(none)"`.

    Example:
        >>> split_keys(pl.DataFrame({"tool_name": ["x", None]}), "action").to_list()
        ['x', 'respond']
    """
    if by == "action":
        s = calls.select(action_expr()).to_series()
    elif by == "template":
        s = pl.Series(
            "template", template_keys(calls.get_column("messages").to_list())[0].tolist(), pl.String
        )
    elif by in calls.columns:
        s = calls.get_column(by).cast(pl.String)
    else:
        raise ValueError(f"cannot split by {by!r}: use 'action', 'template', 'kmeans' or a call column")
    return s.fill_null(NONE_KEY).alias("key")
