"""Profile a partitioned (sharded) call table lazily: the profile step's numbers without decoding a prompt.

Usage:
    >>> from slmlab.collect.shard_profile import profile_table
    >>> print(profile_table("runs/nov/calls").summary)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from slmlab.collect.shards import ShardedTable
from slmlab.schema import CALL_SCHEMA

# The columns `slmlab.collect.profile` reads (summary, profile_calls, by_tool, latency_table, the plots).
# `response_text` is read only as null / not null there, unless a profile groups by "action" (an action
# can be written in the text: `slmlab.schema.action_expr`). Every other column (prompts, ids, file names)
# stays on disk: a text-free scan never decodes the prompts.
PROFILE_COLUMNS = (
    "session_id",
    "agent",
    "model",
    "timestamp",
    "tool_name",
    "n_tool_calls",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "tokens_estimated",
    "latency_ms",
    "cost_usd",
    "cost_estimated",
    "status",
    "finish_reason",
)


def profile_frame(
    calls: pl.LazyFrame | ShardedTable, keep: Sequence[str] = (), lazy: bool = False
) -> pl.DataFrame | pl.LazyFrame:
    """The call table as the profile functions need it, from a lazy scan: every `CALL_SCHEMA` column, but
    only `PROFILE_COLUMNS` and `keep` read; `response_text` as "" where present (null where absent) unless
    kept; everything else null.

    Memory: collected, a few hundred bytes per call whatever the texts weigh (the prompt column is never
    decoded); `lazy=True` returns the scan itself, for the profile functions to aggregate by streaming.

    Example:
        >>> profile_frame(ShardedTable.open("runs/nov/calls"), keep=("task_label",)).height  # doctest: +SKIP
    """
    lf = calls.scan() if isinstance(calls, ShardedTable) else calls

    def col(c: str, dtype: pl.DataType) -> pl.Expr:
        if c in PROFILE_COLUMNS or c in keep:
            return pl.col(c)
        if c == "response_text":
            return pl.when(pl.col(c).is_not_null()).then(pl.lit("")).alias(c)
        return pl.lit(None, dtype=dtype).alias(c)

    frame = lf.select([col(c, t) for c, t in CALL_SCHEMA.items()])
    return frame if lazy else frame.collect(engine="streaming")


@dataclass(frozen=True)
class TableProfile:
    """`slmlab.collect.profile` on a lazily scanned table: the summary and the per-group table."""

    summary: Any  # slmlab.collect.profile.CallSummary
    by_group: pl.DataFrame
    frame: pl.LazyFrame  # the text-free scan both came from (`.collect()` it for the plots)


def profile_table(
    calls: pl.LazyFrame | ShardedTable | str | os.PathLike,
    by: str | Sequence[str] = ("model", "agent"),
    calls_per_day: float | None = None,
) -> TableProfile:
    """Profile a partitioned (or any lazily scanned) call table without loading its texts (grouping by
    "action" reads `response_text`, where a text answer can name its action).

    Example:
        >>> prof = profile_table("runs/nov/calls")  # doctest: +SKIP
        >>> print(prof.summary)  # doctest: +SKIP
    """
    from slmlab.collect.profile import profile_calls, summary

    if isinstance(calls, (str, os.PathLike)):
        calls = ShardedTable.open(calls)
    groups = [by] if isinstance(by, str) else list(by)
    keep = [g for g in groups if g in CALL_SCHEMA] + (["response_text"] if "action" in groups else [])
    frame = profile_frame(calls, keep=keep, lazy=True)  # aggregated by streaming: memory follows the groups
    return TableProfile(summary(frame, calls_per_day=calls_per_day), profile_calls(frame, by=by), frame)


__all__ = ["PROFILE_COLUMNS", "TableProfile", "profile_frame", "profile_table"]
