"""Reader `langfuse`: Langfuse observation exports (JSONL, a JSON list, `{"data": [...]}` API pages, or
traces with nested `observations`).

Observations with `type == "GENERATION"` are calls; SPAN/EVENT observations are skipped. Prompt: `input`
as a message list, `{"messages": [...]}` or a plain string; response: `output` as a message, a string, a
chat completion (`choices`) or a list of messages. Tokens: `usageDetails` (`input`, `output`,
`cache_read_input_tokens` / `input_cached_tokens`) or `usage` (`input`/`output`, `promptTokens`/
`completionTokens`); cost: `calculatedTotalCost`, `totalCost` or `costDetails.total` (a logged cost is
kept as logged); `level == "ERROR"` marks an error with `statusMessage`. Session: `sessionId`, else
`traceId`; parent: `parentObservationId`; agent: `metadata.agent`, else the observation `name`.

Usage:
    >>> from slmlab.collect import ingest
    >>> ingest("observations.json", format="langfuse")  # doctest: +SKIP
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
    SkipRecord,
    as_float,
    as_int,
    first_json,
    iter_json_records,
    openai_tool_calls,
    register_reader,
    response_fields,
    span_ms,
    to_json,
)
from slmlab.collect.langsmith import lc_message, lc_messages


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


class LangfuseReader(Reader):
    """Langfuse GENERATION observations."""

    name = "langfuse"
    description = "Langfuse observations (type GENERATION; input, output, usageDetails, costDetails)"

    def sniff(self, path: Path, head: str) -> bool:
        rec = first_json(head)
        if isinstance(rec, dict) and "type" in rec and ("traceId" in rec or "observations" in rec):
            return True
        return '"GENERATION"' in head and '"traceId"' in head

    def records(self, ctx: Context) -> Iterator[Record]:
        for rec in iter_json_records(ctx.path):
            obs = rec.obj.get("observations") if isinstance(rec.obj, dict) else None
            if (
                rec.error is None and isinstance(obs, list) and "type" not in rec.obj
            ):  # a trace with observations
                for o in obs:
                    if isinstance(o, dict):
                        o.setdefault("sessionId", rec.obj.get("sessionId"))
                    yield Record(rec.line, obj=o)
            else:
                yield rec

    def calls(self, record: Any, ctx: Context, line: int) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise BadRecord(f"observation is a {type(record).__name__}, expected an object")
        if str(record.get("type", "")).upper() != "GENERATION":
            raise SkipRecord(f"observation type {record.get('type')!r}")
        inp = record.get("input")
        tools = None
        if isinstance(inp, dict):
            tools = inp.get("tools")
            inp = inp.get("messages", inp.get("prompt"))
        if isinstance(inp, str):
            inp = [{"role": "user", "content": inp}]
        messages = lc_messages(inp, "input")
        out = record.get("output")
        text, tool_calls, finish = None, [], None
        if isinstance(out, str):
            text = out
        elif isinstance(out, dict) and isinstance(out.get("choices"), list) and out["choices"]:
            ch = out["choices"][0]
            m = ch.get("message") or {}
            text, tool_calls, finish = (
                m.get("content"),
                openai_tool_calls(m.get("tool_calls")),
                ch.get("finish_reason"),
            )
        elif isinstance(out, (dict, list)) and out:
            m = lc_message(out[-1] if isinstance(out, list) else out)
            text, tool_calls = m.get("content"), openai_tool_calls(m.get("tool_calls"))
        elif out is None and record.get("level") != "ERROR":
            raise BadRecord("GENERATION has no output")
        ud, u = _d(record.get("usageDetails")), _d(record.get("usage"))
        in_tok = as_int(ud.get("input", u.get("input", u.get("promptTokens"))))
        out_tok = as_int(ud.get("output", u.get("output", u.get("completionTokens"))))
        cached = as_int(
            ud.get("cache_read_input_tokens", ud.get("input_cached_tokens", ud.get("input_cache_read")))
        )
        cost = as_float(record.get("calculatedTotalCost"))
        if cost is None:
            cost = as_float(record.get("totalCost", _d(record.get("costDetails")).get("total")))
        meta_in = _d(record.get("metadata"))
        params = record.get("modelParameters")
        meta = {"name": record.get("name")} | ({"model_parameters": params} if params else {})
        is_err = record.get("level") == "ERROR"
        oid = record.get("id")
        return [
            {
                "call_id": str(oid) if oid else f"{ctx.path.name}:{line}",
                "session_id": record.get("sessionId") or record.get("traceId"),
                "parent_id": record.get("parentObservationId"),
                "agent": meta_in.get("agent") or record.get("name") or "agent",
                "timestamp": record.get("startTime"),
                "model": str(record.get("model") or record.get("providedModelName") or "unknown"),
                "messages": to_json(messages),
                "tools": to_json(tools) if tools else None,
                **response_fields(text, tool_calls),
                "input_tokens": in_tok,
                "cached_input_tokens": cached,
                "output_tokens": out_tok,
                "latency_ms": span_ms(record.get("startTime"), record.get("endTime")),
                "cost_usd": cost,
                "status": "error" if is_err else "ok",
                "error": record.get("statusMessage") if is_err else None,
                "finish_reason": finish,
                "metadata": to_json(meta),
            }
        ]


register_reader(LangfuseReader)
