"""Reader `openinference`: OpenInference spans as Arize Phoenix exports them.

Records are spans: JSONL, a JSON list, or a `{"data"/"spans": [...]}` wrapper, with attributes either
nested (`{"attributes": {"llm": {"input_messages": [{"message": {...}}]}}}`) or flattened
(`"attributes.llm.input_messages"` dataframe columns, `"llm.input_messages.0.message.role"` keys); both
are flattened to dotted keys first. Spans whose kind (`openinference.span.kind` / `span_kind`) is LLM
are calls; CHAIN, TOOL, RETRIEVER, AGENT ... spans are skipped. Prompt: `llm.input_messages.N.message.*`
(role, content, `contents.M.message_content.text`, `tool_calls.K.tool_call.function.name/arguments`,
`tool_call_id`, `name`); response: `llm.output_messages.0.message.*`; tokens `llm.token_count.prompt /
completion / prompt_details.cache_read`; model `llm.model_name`; tools `llm.tools.N.tool.json_schema`;
session `session.id`, else the trace id.

Usage:
    >>> from slmlab.collect import ingest
    >>> ingest("phoenix_spans.jsonl", format="openinference")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from slmlab.collect.base import (
    BadRecord,
    Context,
    Reader,
    SkipRecord,
    as_float,
    as_int,
    openai_tool_calls,
    register_reader,
    response_fields,
    span_ms,
    to_json,
    to_openai_tool_calls,
)

_MSG = re.compile(r"^llm\.(input|output)_messages\.(\d+)\.message\.(.+)$")


def flatten(obj: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nested dicts/lists as dotted keys (`a.b.0.c`); leaves keep their values."""
    out = {} if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}{k}.", out)
    elif isinstance(obj, list) and obj and all(isinstance(x, (dict, list)) for x in obj):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}{i}.", out)
    else:
        out[prefix[:-1]] = obj
    return out


def _messages(a: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    msgs: dict[int, dict[str, Any]] = {}
    for k, v in a.items():
        m = _MSG.match(k)
        if not m or m.group(1) != kind:
            continue
        msgs.setdefault(int(m.group(2)), {})[m.group(3)] = v
    out = []
    for i in sorted(msgs):
        f = msgs[i]
        content = f.get("content")
        if content is None:
            parts = sorted(
                (int(k.split(".")[1]), v)
                for k, v in f.items()
                if k.startswith("contents.") and k.endswith("message_content.text")
            )
            content = "\n".join(str(v) for _, v in parts) if parts else None
        msg: dict[str, Any] = {"role": f.get("role", "user"), "content": content}
        calls: dict[int, dict[str, Any]] = {}
        for k, v in f.items():
            if k.startswith("tool_calls."):
                _, j, rest = k.split(".", 2)
                key = rest.removeprefix("tool_call.").removeprefix("function.")
                calls.setdefault(int(j), {})[key] = v
        if calls:
            msg["tool_calls"] = to_openai_tool_calls(openai_tool_calls([calls[j] for j in sorted(calls)]))
        for k in ("tool_call_id", "name"):
            if f.get(k) is not None:
                msg[k] = f[k]
        out.append(msg)
    return out


def flat_call(a: dict[str, Any]) -> dict[str, Any]:
    """Call columns from flattened OpenInference attributes (also used for OTLP-exported spans)."""
    prompt = _messages(a, "input")
    if not prompt:
        raise BadRecord("LLM span has no llm.input_messages")
    reply = _messages(a, "output")
    first = reply[0] if reply else {}
    tools = []
    for k in sorted(k for k in a if k.startswith("llm.tools.") and k.endswith("json_schema")):
        v = a[k]
        try:
            tools.append(json.loads(v) if isinstance(v, str) else v)
        except ValueError:
            tools.append(v)
    params = a.get("llm.invocation_parameters")
    meta = {"invocation_parameters": params} if params else {}
    for k in ("llm.provider", "llm.system", "user.id"):
        if a.get(k) is not None:
            meta[k] = a[k]
    return {
        "model": str(a.get("llm.model_name") or "unknown"),
        "messages": to_json(prompt),
        "tools": to_json(tools) if tools else None,
        **response_fields(first.get("content"), openai_tool_calls(first.get("tool_calls"))),
        "input_tokens": as_int(a.get("llm.token_count.prompt")),
        "cached_input_tokens": as_int(a.get("llm.token_count.prompt_details.cache_read")),
        "output_tokens": as_int(a.get("llm.token_count.completion")),
        "session_id": a.get("session.id"),
        "metadata": to_json(meta) if meta else None,
    }


class OpenInferenceReader(Reader):
    """Phoenix / OpenInference span exports."""

    name = "openinference"
    description = "OpenInference spans (Arize Phoenix export: JSONL / JSON records, nested or flat keys)"

    def sniff(self, path: Path, head: str) -> bool:
        return ("openinference" in head or '"span_kind"' in head) and (
            "input_messages" in head or '"LLM"' in head
        )

    def calls(self, record: Any, ctx: Context, line: int) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise BadRecord(f"span is a {type(record).__name__}, expected an object")
        flat = flatten(record)
        a = {k.removeprefix("attributes."): v for k, v in flat.items()}
        kind = a.get("openinference.span.kind") or a.get("span_kind")
        if str(kind).upper() != "LLM":
            raise SkipRecord(f"span kind {kind!r} is not LLM")
        row = flat_call(a)
        span_id = a.get("context.span_id") or a.get("span_id") or a.get("id")
        trace_id = a.get("context.trace_id") or a.get("trace_id")
        status = str(a.get("status_code") or "OK").upper()
        row.update(
            {
                "call_id": str(span_id) if span_id else f"{ctx.path.name}:{line}",
                "session_id": row.get("session_id") or trace_id,
                "parent_id": a.get("parent_id"),
                "agent": a.get("agent.name") or a.get("name") or "agent",
                "timestamp": a.get("start_time"),
                "latency_ms": span_ms(a.get("start_time"), a.get("end_time")),
                "cost_usd": as_float(a.get("llm.cost.total")),
                "status": "error" if status == "ERROR" else "ok",
                "error": a.get("status_message") if status == "ERROR" else None,
            }
        )
        return [row]


register_reader(OpenInferenceReader)
