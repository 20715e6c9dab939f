"""The canonical call table: one row per LLM call, the shape every pipeline step takes and returns.

Every reader in `slmlab.collect` produces exactly these columns; every later step (curate, cluster,
specialize, evaluate, route, savings) reads them. Nested data (prompt messages, tool schemas, tool calls)
is stored as JSON text in OpenAI chat-completions shape, because real logs carry heterogeneous content
(multimodal parts, provider extras) that a fixed polars struct would reject or silently drop.

Usage:
    >>> from slmlab.schema import CALL_SCHEMA, empty_calls, validate_calls
    >>> validate_calls(empty_calls()).height
    0

Columns (`CALL_SCHEMA`):

| column | type | meaning |
|---|---|---|
| call_id | str | unique id of the call (from the log, else derived from file + line + index) |
| session_id | str | conversation / trace / simulation the call belongs to |
| parent_id | str? | parent span / run / observation id, where the log has one |
| step | i32 | 0-based index of the call within its session |
| agent | str | agent or role name ("agent", "user_simulator", "planner", ...) |
| timestamp | datetime[us, UTC]? | when the call started |
| model | str | model name as logged ("gpt-4o", ...) |
| messages | str | JSON list of OpenAI chat messages sent as the prompt |
| tools | str? | JSON list of OpenAI tool schemas offered to the model, where logged |
| response_text | str? | the text the model returned (None for a pure tool call) |
| response_tool_calls | str? | JSON list `[{"id", "name", "arguments"}]`, arguments a JSON *string* |
| tool_name | str? | name of the first tool called (None for a text answer) |
| n_tool_calls | i32 | number of tool calls in the response |
| input_tokens | i64? | prompt tokens (logged, else counted with a tokenizer) |
| cached_input_tokens | i64? | prompt tokens served from the provider's prompt cache, where logged |
| output_tokens | i64? | completion tokens |
| tokens_estimated | bool | True when tokens were counted by slmlab rather than logged |
| latency_ms | f64? | wall-clock duration of the call |
| cost_usd | f64? | cost of the call in USD |
| cost_estimated | bool | True when cost comes from slmlab's price table rather than the log |
| status | str | "ok" or "error" |
| error | str? | error message for failed calls |
| finish_reason | str? | "stop", "tool_calls", "length", ... |
| task_label | str? | a task tag supplied with the log (workload_id, ground truth); never used by clustering |
| reward | f64? | task success of the session, where the log records it (tau-bench) |
| source_format | str | the reader that produced the row |
| source_file | str | file the row came from |
| source_line | i64 | 1-based line (JSONL) or record index (JSON arrays) in that file |
| metadata | str? | JSON object with anything else worth keeping |
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from slmlab import actions as _actions

CALL_SCHEMA: dict[str, pl.DataType] = {
    "call_id": pl.String(),
    "session_id": pl.String(),
    "parent_id": pl.String(),
    "step": pl.Int32(),
    "agent": pl.String(),
    "timestamp": pl.Datetime("us", "UTC"),
    "model": pl.String(),
    "messages": pl.String(),
    "tools": pl.String(),
    "response_text": pl.String(),
    "response_tool_calls": pl.String(),
    "tool_name": pl.String(),
    "n_tool_calls": pl.Int32(),
    "input_tokens": pl.Int64(),
    "cached_input_tokens": pl.Int64(),
    "output_tokens": pl.Int64(),
    "tokens_estimated": pl.Boolean(),
    "latency_ms": pl.Float64(),
    "cost_usd": pl.Float64(),
    "cost_estimated": pl.Boolean(),
    "status": pl.String(),
    "error": pl.String(),
    "finish_reason": pl.String(),
    "task_label": pl.String(),
    "reward": pl.Float64(),
    "source_format": pl.String(),
    "source_file": pl.String(),
    "source_line": pl.Int64(),
    "metadata": pl.String(),
}

# Columns a reader must fill (never null).
REQUIRED_COLUMNS = (
    "call_id",
    "session_id",
    "step",
    "agent",
    "model",
    "messages",
    "n_tool_calls",
    "tokens_estimated",
    "cost_estimated",
    "status",
    "source_format",
    "source_file",
    "source_line",
)

# The action a call took: the tool it called (structured, or written in its text: `slmlab.actions`), or
# this label for a text answer.
TEXT_ACTION = _actions.TEXT_ACTION


class SchemaError(ValueError):
    """A frame does not follow the canonical call schema."""


def empty_calls() -> pl.DataFrame:
    """An empty call table with the canonical schema."""
    return pl.DataFrame(schema=CALL_SCHEMA)


def conform(df: pl.DataFrame) -> pl.DataFrame:
    """Add missing optional columns as nulls, cast to the canonical types and order the columns.

    Example:
        >>> conform(pl.DataFrame({"call_id": ["a"]})).width == len(CALL_SCHEMA)
        True
    """
    cols = []
    for name, dtype in CALL_SCHEMA.items():
        if name in df.columns:
            cols.append(pl.col(name).cast(dtype))
        elif name in ("tokens_estimated", "cost_estimated"):
            cols.append(pl.lit(False, dtype=dtype).alias(name))
        elif name == "n_tool_calls":
            cols.append(pl.lit(0, dtype=dtype).alias(name))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    extra = [c for c in df.columns if c not in CALL_SCHEMA]
    return df.select(cols + extra)


def validate_calls(df: pl.DataFrame) -> pl.DataFrame:
    """Check that `df` has the canonical columns and types and no nulls in required columns.

    Extra columns (added by later steps, e.g. `cluster`) are allowed. Returns `df` unchanged.

    Raises:
        SchemaError: naming the missing column, wrong type or null required column.
    """
    for name, dtype in CALL_SCHEMA.items():
        if name not in df.columns:
            raise SchemaError(f"call table lacks column {name!r}")
        if df.schema[name] != dtype:
            raise SchemaError(f"column {name!r} is {df.schema[name]}, expected {dtype}")
    for name in REQUIRED_COLUMNS:
        n = df.get_column(name).null_count()
        if n:
            raise SchemaError(f"required column {name!r} has {n} null values")
    return df


def action_expr() -> pl.Expr:
    """Polars expression for the action a call took: its first tool's name, the tool call written in its
    text (`slmlab.actions.action_of`: ReAct, HTTP-verb line, `name(args)`, JSON action), or `"respond"`.

    A frame without `response_text` gets the tool name or `"respond"`, as before text actions.

    Example:
        >>> pl.DataFrame({"tool_name": ["f", None], "response_text": [None, "GET /x?q=1"]}).select(
        ...     action_expr())["action"].to_list()
        ['f', 'GET /x']
    """

    def _actions_of(s: pl.Series) -> pl.Series:
        fields = s.struct.fields
        tools = s.struct.field("tool_name").to_list()
        texts = s.struct.field("response_text").to_list() if "response_text" in fields else [None] * len(s)
        return pl.Series(_actions.actions_of(tools, texts), dtype=pl.String)

    # The regex selects `response_text` only where the frame has it.
    return (
        pl.struct(pl.col("^(tool_name|response_text)$"))
        .map_batches(_actions_of, return_dtype=pl.String)
        .alias("action")
    )


def parse_messages(messages_json: str | None) -> list[dict[str, Any]]:
    """Decode the `messages` column of one row into a list of OpenAI message dicts."""
    return json.loads(messages_json) if messages_json else []


def parse_tool_calls(tool_calls_json: str | None, response_text: str | None = None) -> list[dict[str, Any]]:
    """Decode `response_tool_calls` into `[{"id", "name", "arguments"}]` (arguments a JSON string).

    Given the `response_text` too, a call without structured tool calls yields the tool call written in
    its text (`slmlab.actions.text_tool_calls`, with `"format": "text:<kind>"`), so name and argument
    agreement treat a text action like a structured one; the raw text stays in `response_text`.
    """
    if response_text is None:
        return json.loads(tool_calls_json) if tool_calls_json else []
    return _actions.tool_calls_of(tool_calls_json, response_text)


def message_text(message: dict[str, Any]) -> str:
    """The text of one chat message, joining multimodal text parts and ignoring images."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("text", "input_text", "output_text"):
                parts.append(str(part.get("text", "")))
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return str(content)


# Steps after clustering add a `cluster` column (Int32, -1 = noise / unassigned) and a `cluster_confidence`
# column (Float64 in [0, 1], 0 where unassigned: how clearly the call belongs to its cluster rather than the
# next one; for calls assigned from the prompt alone, the assigner's probability; see
# `slmlab.cluster.TaskClusterer.confidence_`) to the call table (`CLUSTERED_COLUMNS`), and describe
# clusters in a cluster table with these columns (`slmlab.cluster.describe_clusters`):
CLUSTERED_COLUMNS: dict[str, pl.DataType] = {"cluster": pl.Int32(), "cluster_confidence": pl.Float64()}
CLUSTER_SCHEMA: dict[str, pl.DataType] = {
    "cluster": pl.Int32(),  # cluster id, as in the call table
    "name": pl.String(),  # a human name (auto: top keywords / dominant tool; the labeller edits it)
    "size": pl.Int64(),  # number of calls
    "share_calls": pl.Float64(),  # size / all calls
    "share_cost": pl.Float64(),  # cluster cost / total cost (logged or estimated)
    "keywords": pl.List(pl.String()),  # top c-TF-IDF terms
    "exemplars": pl.List(pl.String()),  # call_ids of representative calls
    "dominant_action": pl.String(),  # most frequent action (tool name or "respond")
    "action_share": pl.Float64(),  # share of calls taking the dominant action
    "output_shape": pl.String(),  # "tool_call", "json" or "text"
    "template": pl.String(),  # the shared prompt template (common prefix / system prompt), may be ""
    "mean_input_tokens": pl.Float64(),
    "p90_input_tokens": pl.Float64(),
    "mean_output_tokens": pl.Float64(),
    "suitability": pl.Float64(),  # 0..1, higher = better SLM candidate (repetitive, structured, short)
    "status": pl.String(),  # "unreviewed", "slm_candidate", "keep_llm" or "ignore"
}

CLUSTER_STATUSES = ("unreviewed", "slm_candidate", "keep_llm", "ignore")
