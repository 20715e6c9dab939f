"""Reader `toolbench`: ToolBench (ToolLLM) DFSDT answer trees, one JSON file per user query.

Each list in `answer_generation.train_messages` is one LLM call on the chosen path: its prompt plus its
reply (the last message). Replies use the legacy `function_call` API; prompts are kept as logged
(`function_call` / `function` messages), the reply's call becomes `response_tool_calls`. Tools come from
`answer_generation.function`. The model is gpt-3.5-turbo-16k (ToolBench README). A record is one
`train_messages` list; the query's `query_count` (LLM calls including pruned branches, which are not
logged as messages) and `total_tokens` go to each call's metadata and to `IngestSummary.notes`.

Usage:
    >>> from slmlab.collect import ingest
    >>> ingest("toolbench/answer").summary.calls  # doctest: +SKIP
    52
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slmlab.collect.base import (
    BadRecord,
    Context,
    Reader,
    Record,
    load_document,
    openai_tool_calls,
    read_head,
    register_reader,
    require_messages,
    response_fields,
    to_json,
)

TOOLBENCH_MODEL = "gpt-3.5-turbo-16k"


class ToolBenchReader(Reader):
    """ToolBench answer trees: one call per `train_messages` list."""

    name = "toolbench"
    priority = 20
    description = "ToolBench DFSDT answer files ({answer_generation: {train_messages, function}})"

    def sniff(self, path: Path, head: str) -> bool:
        return (
            head.lstrip().startswith("{")
            and '"answer_generation"' in head
            or ('"compare_candidates"' in head and '"forward_args"' in head)
        )

    def records(self, ctx: Context) -> Iterator[Record]:
        doc, err = load_document(ctx.path)
        if err:
            yield Record(1, error=err, raw=read_head(ctx.path, 20_000))
            return
        ag = doc.get("answer_generation") if isinstance(doc, dict) else None
        if not isinstance(ag, dict):
            yield Record(1, error="no answer_generation object", raw=str(doc)[:20_000])
            return
        tm = ag.get("train_messages")
        if tm is None:
            tm = []
        if not isinstance(tm, list):
            yield Record(
                1, error=f"train_messages is {type(tm).__name__}, expected a list", raw=str(tm)[:20_000]
            )
            return
        functions = ag.get("function") if isinstance(ag.get("function"), list) else []
        ctx.state["tools"] = (
            to_json([{"type": "function", "function": f} for f in functions]) if functions else None
        )
        ctx.state["meta"] = {
            "query_id": ctx.path.name.split("_")[0],
            "group": ctx.path.parent.name.split("_")[0],
            "query_count": ag.get("query_count"),
            "total_tokens": ag.get("total_tokens"),
            "finish_type": ag.get("finish_type"),
            "win": doc.get("win"),
        }
        ctx.state["reward"] = None if doc.get("win") is None else float(bool(doc.get("win")))
        tb = ctx.notes.setdefault("toolbench", {"queries": 0, "query_count": 0, "total_tokens": 0})
        tb["queries"] += 1
        tb["query_count"] += int(ag.get("query_count") or 0)
        tb["total_tokens"] += int(ag.get("total_tokens") or 0)
        for i, messages in enumerate(tm, start=1):
            yield Record(i, obj=messages)

    def calls(self, record: Any, ctx: Context, line: int) -> list[dict[str, Any]]:
        msgs = require_messages(record, "train_messages entry")
        if not msgs or msgs[-1].get("role") != "assistant":
            raise BadRecord("train_messages entry does not end with an assistant reply")
        reply = msgs[-1]
        fc = reply.get("function_call")
        tool_calls = (
            openai_tool_calls([fc]) if isinstance(fc, dict) else openai_tool_calls(reply.get("tool_calls"))
        )
        meta = ctx.state["meta"]
        session = f"toolbench/{meta['group']}/{meta['query_id']}"
        return [
            {
                "call_id": f"{session}/{line - 1}",
                "session_id": session,
                "step": line - 1,
                "agent": "agent",
                "model": TOOLBENCH_MODEL,
                "messages": to_json(msgs[:-1]),
                "tools": ctx.state["tools"],
                **response_fields(reply.get("content"), tool_calls),
                "reward": ctx.state["reward"],
                "metadata": to_json(meta),
            }
        ]


register_reader(ToolBenchReader)
