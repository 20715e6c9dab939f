"""Row filters of the curate step: failed calls, empty answers, duplicates, who the answer is for, length.

Each filter returns a boolean mask over the call table (True = drop) so `curate` can record a reason per
dropped call. `add_facing` labels each call "human" (its answer goes to a person) or "machine".

Usage:
    >>> import polars as pl
    >>> df = pl.DataFrame({"status": ["ok", "error"]})
    >>> error_mask(df).to_list()
    [False, True]
"""

from __future__ import annotations

import json
import re
import zlib

import numpy as np
import polars as pl

from slmlab.schema import message_text

# Agent names whose answers are read by a person / by a program, whatever the call looks like.
HUMAN_AGENT_HINTS = ("respond", "chat", "concierge", "reply", "front_desk", "frontdesk")
MACHINE_AGENT_HINTS = (
    "planner",
    "router",
    "classif",
    "extract",
    "summar",
    "judge",
    "critic",
    "tool",
    "grader",
)

_USER_TURN = r"\"role\"\s*:\s*\"user\""


def _agent_matches(hints: tuple[str, ...]) -> pl.Expr:
    if not hints:
        return pl.lit(False)
    pattern = "(?i)" + "|".join(re.escape(h) for h in hints)
    return pl.col("agent").str.contains(pattern)


def add_facing(
    calls: pl.DataFrame,
    human_agents: tuple[str, ...] = HUMAN_AGENT_HINTS,
    machine_agents: tuple[str, ...] = MACHINE_AGENT_HINTS,
) -> pl.DataFrame:
    """Add a `facing` column: "human" when the call's answer goes to a person, else "machine".

    A call is human-facing when it answers in text (no tool call) and either its agent name contains one
    of `human_agents` (e.g. "responder"), or its prompt has user turns and its agent name is not a
    machine role (`machine_agents`: planner, router, judge, ...). Tool calls, and text answers of
    pipelines without a user, are machine-facing: the paper converts those first.

    Example:
        >>> df = pl.DataFrame({"agent": ["agent", "agent", "planner"], "n_tool_calls": [0, 1, 0],
        ...     "response_text": ["Hi!", None, "step 1"], "messages": ['[{"role": "user"}]'] * 3})
        >>> add_facing(df)["facing"].to_list()
        ['human', 'machine', 'machine']
    """
    text_answer = (pl.col("n_tool_calls") == 0) & (
        pl.col("response_text").fill_null("").str.strip_chars() != ""
    )
    conversational = pl.col("messages").str.contains(_USER_TURN)
    human = text_answer & (
        _agent_matches(human_agents) | (conversational & ~_agent_matches(machine_agents).fill_null(False))
    )
    return calls.with_columns(
        pl.when(human.fill_null(False)).then(pl.lit("human")).otherwise(pl.lit("machine")).alias("facing")
    )


def error_mask(calls: pl.DataFrame) -> pl.Series:
    """Failed or errored calls (`status != "ok"`)."""
    return calls.select((pl.col("status") != "ok").fill_null(True)).to_series()


def empty_mask(calls: pl.DataFrame) -> pl.Series:
    """Calls that returned neither text nor a tool call."""
    no_text = pl.col("response_text").fill_null("").str.strip_chars() == ""
    no_tools = pl.col("n_tool_calls").fill_null(0) == 0
    return calls.select(no_text & no_tools).to_series()


def too_long_mask(
    calls: pl.DataFrame, max_input_tokens: int | None, max_input_chars: int | None
) -> pl.Series:
    """Calls whose prompt exceeds a token limit (logged or estimated tokens, else chars / 4) or a char limit."""
    expr = pl.lit(False)
    if max_input_tokens is not None:
        tokens = pl.col("input_tokens").fill_null(pl.col("messages").str.len_chars() // 4)
        expr = expr | (tokens > max_input_tokens)
    if max_input_chars is not None:
        expr = expr | (pl.col("messages").str.len_chars() > max_input_chars)
    return calls.select(expr.fill_null(False)).to_series()


def exact_duplicate_mask(calls: pl.DataFrame) -> pl.Series:
    """Calls whose prompt and response are identical to an earlier call (the first one is kept)."""
    key = pl.concat_str(
        [
            pl.col("messages"),
            pl.col("response_text").fill_null(""),
            pl.col("response_tool_calls").fill_null(""),
        ],
        separator="\x1f",
    )
    return calls.select(~key.is_first_distinct()).to_series()


def conversation_parts(messages_json: str) -> list[str]:
    """The non-system turns of a prompt as texts (turn content and tool-call name + arguments).

    The system prompt is left out: every call of an agent shares it, so it would make all calls look alike.
    """
    parts = []
    for m in json.loads(messages_json) if messages_json else []:
        if m.get("role") in ("system", "developer"):
            continue
        text = message_text(m)
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function") or tc
            text += f"\n{fn.get('name', '')} {fn.get('arguments', '')}"
        parts.append(text)
    return parts


_WORD = re.compile(r"\w+")


def _shingles(text: str, k: int = 3) -> list[bytes]:
    words = _WORD.findall(text.lower())
    if len(words) < k:
        return [" ".join(words).encode()]
    return list({" ".join(words[i : i + k]).encode() for i in range(len(words) - k + 1)})


def _crc32(b: bytes) -> int:
    return zlib.crc32(b)


def near_duplicate_mask(calls: pl.DataFrame, threshold: float = 0.9, num_perm: int = 128) -> pl.Series:
    """Calls whose prompt AND response are near-copies of an earlier kept call (MinHash LSH, `datasketch`).

    The prompt signature covers the conversation without the system prompt (word 3-gram shingles); LSH
    finds earlier calls with estimated Jaccard >= `threshold`, and a candidate only counts when the
    responses are that similar too. Requiring both keeps consecutive calls of one session (whose prompts
    differ by one turn) unless they also answered alike, and drops re-runs of a request with the same
    answer. Each distinct turn is hashed once: a prompt's signature is the element-wise minimum of its
    turns' signatures (MinHash of a union), so agent prompts that repeat the session so far stay cheap.

    Example:
        >>> df = pl.DataFrame({"messages": ['[{"role": "user", "content": "book a flight to Paris please"}]'] * 2,
        ...     "response_text": ["Sure, which date?", "Sure, which date?"], "response_tool_calls": [None, None]})
        >>> near_duplicate_mask(df).to_list()
        [False, True]
    """
    from datasketch import MinHash, MinHashLSH

    template = MinHash(num_perm=num_perm, hashfunc=_crc32)
    cache: dict[tuple[str, int], np.ndarray] = {}

    def signature(text: str, k: int) -> np.ndarray:
        hv = cache.get((text, k))
        if hv is None:
            m = MinHash(
                num_perm=num_perm, hashfunc=_crc32, permutations=template.permutations, scheme=template.scheme
            )
            m.update_batch(_shingles(text, k))
            hv = cache[(text, k)] = m.hashvalues
        return hv

    def minhash(hv: np.ndarray) -> MinHash:
        return MinHash(
            num_perm=num_perm,
            hashfunc=_crc32,
            hashvalues=hv,
            permutations=template.permutations,
            scheme=template.scheme,
        )

    # LSH only proposes candidates, each is then checked on its estimated Jaccard: weigh the band layout
    # towards few false negatives, since false positives cost one comparison.
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
    prompts: dict[str, MinHash] = {}
    responses: dict[str, MinHash] = {}
    drop = np.zeros(calls.height, dtype=bool)
    rows = calls.select("messages", "response_text", "response_tool_calls").iter_rows()
    for i, (msgs, text, tools) in enumerate(rows):
        parts = conversation_parts(msgs) or [""]
        prompt = minhash(np.minimum.reduce([signature(p, 3) for p in parts]))
        resp = minhash(signature(f"{text or ''} {tools or ''}", 2))
        if any(
            prompts[j].jaccard(prompt) >= threshold and responses[j].jaccard(resp) >= threshold
            for j in lsh.query(prompt)
        ):
            drop[i] = True
            continue
        key = str(i)
        lsh.insert(key, prompt)
        prompts[key], responses[key] = prompt, resp
    return pl.Series("near_duplicate", drop)
