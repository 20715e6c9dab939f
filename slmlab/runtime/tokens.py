"""Token counts for logs that carry none, with a real tokenizer (the bundled SmolLM2 one by default).

Counts from another model's tokenizer differ from the provider's billing count by a few percent, so rows
counted here are marked `tokens_estimated=True` in the call table.

Usage:
    >>> from slmlab.runtime.tokens import count_tokens
    >>> count_tokens(["hello world"])  # doctest: +SKIP
    [2]
"""

from __future__ import annotations

import functools
import json
from typing import Any

import polars as pl

from slmlab.schema import message_text

# Chat-template overhead per message (role markers, separators) and per prompt (the assistant header), as
# in ChatML templates such as SmolLM2's: "<|im_start|>role\n...<|im_end|>\n".
TOKENS_PER_MESSAGE = 4
TOKENS_PER_PROMPT = 3


@functools.lru_cache(maxsize=4)
def default_tokenizer(name: str = "smollm2-135m") -> Any:
    """The (cached) token counter of a bundled or local model.

    Where the model folder has a `tokenizer.json`, it is read with the `tokenizers` library alone: the
    counts are the same as through transformers' fast tokenizer, without the seconds its import costs
    (which dominated ingest of a logged-without-usage file). Otherwise the transformers tokenizer.
    """
    from pathlib import Path

    from slmlab.runtime.models import load_tokenizer, resolve_model

    tokenizer_json = Path(resolve_model(name)) / "tokenizer.json"
    try:
        from tokenizers import Tokenizer
    except ImportError:  # pragma: no cover - tokenizers ships with every transformers install
        Tokenizer = None
    if Tokenizer is not None and tokenizer_json.is_file():
        fast = Tokenizer.from_file(str(tokenizer_json))

        def counts(texts: list[str]) -> list[int]:
            return [len(e.ids) for e in fast.encode_batch(texts, add_special_tokens=False)]

        return counts
    return load_tokenizer(name)


def count_tokens(texts: list[str], tokenizer: Any = None, batch_size: int = 1024) -> list[int]:
    """Number of tokens of each text (no special tokens added).

    Args:
        texts: the texts.
        tokenizer: a Hugging Face tokenizer, a callable `list[str] -> list[int]`, or None for SmolLM2's.
        batch_size: texts per tokenizer call (fast tokenizers batch in Rust).

    Example:
        >>> count_tokens(["a b c", ""], tokenizer=lambda ts: [len(t.split()) for t in ts])
        [3, 0]
    """
    if not texts:
        return []
    tok = tokenizer if tokenizer is not None else default_tokenizer()
    if callable(tok) and not hasattr(tok, "encode"):
        return [int(n) for n in tok(list(texts))]
    out: list[int] = []
    for i in range(0, len(texts), batch_size):
        enc = tok(list(texts[i : i + batch_size]), add_special_tokens=False)["input_ids"]
        out.extend(len(ids) for ids in enc)
    return out


def _message_for_count(m: dict[str, Any]) -> str:
    text = f"{m.get('role', '')}\n{message_text(m)}"
    calls = m.get("tool_calls") or ([m["function_call"]] if m.get("function_call") else [])
    for c in calls:
        fn = (c.get("function") or c) if isinstance(c, dict) else {}
        text += f"\n{fn.get('name', '')} {fn.get('arguments', '')}"
    return text


def _response_for_count(text: str | None, tool_calls_json: str | None) -> str:
    out = text or ""
    for c in json.loads(tool_calls_json) if tool_calls_json else []:
        out += f"\n{c.get('name', '')} {c.get('arguments', '')}"
    return out


def prompt_token_counts(
    messages_json: list[str], tools_json: list[str | None] | None = None, tokenizer: Any = None
) -> list[int]:
    """Prompt tokens of calls given their `messages` (and `tools`) JSON, counting each distinct message once.

    Agent prompts repeat the whole history, so a conversation of n turns has O(n²) message occurrences
    but only O(n) distinct messages; counting per distinct message keeps this linear.
    """
    parsed = [json.loads(m) if m else [] for m in messages_json]
    keys: dict[str, int] = {}
    texts: list[str] = []
    per_call: list[list[int]] = []
    for msgs in parsed:
        idx = []
        for m in msgs:
            t = _message_for_count(m) if isinstance(m, dict) else str(m)
            if t not in keys:
                keys[t] = len(texts)
                texts.append(t)
            idx.append(keys[t])
        per_call.append(idx)
    tools_json = tools_json or [None] * len(parsed)
    tool_keys = {t: None for t in tools_json if t}
    counts = count_tokens(texts + list(tool_keys), tokenizer)
    msg_counts, tool_counts = counts[: len(texts)], dict(zip(tool_keys, counts[len(texts) :], strict=True))
    return [
        sum(msg_counts[i] + TOKENS_PER_MESSAGE for i in idx)
        + TOKENS_PER_PROMPT
        + (tool_counts.get(t, 0) if t else 0)
        for idx, t in zip(per_call, tools_json, strict=True)
    ]


def fill_missing_tokens(calls: pl.DataFrame, tokenizer: Any = None) -> pl.DataFrame:
    """Count `input_tokens`/`output_tokens` where null and mark those rows `tokens_estimated=True`.

    Example:
        >>> import polars as pl
        >>> df = pl.DataFrame({"messages": ['[{"role": "user", "content": "a b"}]'], "tools": [None],
        ...     "response_text": ["c d e"], "response_tool_calls": [None], "input_tokens": [None],
        ...     "output_tokens": [None], "tokens_estimated": [False]},
        ...     schema_overrides={"input_tokens": pl.Int64, "output_tokens": pl.Int64, "tools": pl.String,
        ...     "response_tool_calls": pl.String})
        >>> fill_missing_tokens(df, tokenizer=lambda ts: [len(t.split()) for t in ts]).row(0, named=True)["input_tokens"]
        10
    """
    need_in = calls.get_column("input_tokens").is_null()
    need_out = calls.get_column("output_tokens").is_null()
    if not (need_in.any() or need_out.any()):
        return calls
    df = calls.with_row_index("_row")
    rows_in = df.filter(need_in)
    rows_out = df.filter(need_out)
    in_counts = prompt_token_counts(
        rows_in.get_column("messages").to_list(), rows_in.get_column("tools").to_list(), tokenizer
    )
    out_counts = count_tokens(
        [
            _response_for_count(t, c)
            for t, c in zip(
                rows_out.get_column("response_text"), rows_out.get_column("response_tool_calls"), strict=True
            )
        ],
        tokenizer,
    )
    filled = (
        pl.DataFrame(
            {
                "_row": pl.concat([rows_in.get_column("_row"), rows_out.get_column("_row")]).to_list(),
                "_in": in_counts + [None] * rows_out.height,
                "_out": [None] * rows_in.height + out_counts,
            },
            schema={"_row": pl.UInt32, "_in": pl.Int64, "_out": pl.Int64},
        )
        .group_by("_row")
        .agg(pl.col("_in").max(), pl.col("_out").max())
    )
    return (
        df.join(filled, on="_row", how="left")
        .sort("_row")
        .with_columns(
            pl.col("input_tokens").fill_null(pl.col("_in")),
            pl.col("output_tokens").fill_null(pl.col("_out")),
            (pl.col("tokens_estimated") | pl.col("_in").is_not_null() | pl.col("_out").is_not_null()).alias(
                "tokens_estimated"
            ),
        )
        .drop("_row", "_in", "_out")
    )
