"""Reader `otel_genai`: OpenTelemetry GenAI semantic-convention spans in OTLP JSON.

A file is one OTLP JSON document (`{"resourceSpans": [{"resource", "scopeSpans": [{"spans": [...]}]}]}`)
or JSONL of such documents. A record is one span. Spans with `gen_ai.operation.name` in chat /
text_completion / generate_content (or carrying `gen_ai.request.model` and messages) are calls; other
spans (`invoke_agent`, `execute_tool`, HTTP, DB) are *skipped*, not quarantined: they are valid telemetry,
just not LLM calls. Spans with OpenInference attributes (`openinference.span.kind`) are read with the
`openinference` mapping, since Phoenix/OpenInference instrumentations also export OTLP.

Messages: the current convention's JSON attributes `gen_ai.system_instructions`, `gen_ai.input.messages`
and `gen_ai.output.messages` (role + typed `parts`), or the older span events `gen_ai.system.message`,
`gen_ai.user.message`, `gen_ai.assistant.message`, `gen_ai.tool.message` and `gen_ai.choice`.
Tokens: `gen_ai.usage.input_tokens` / `output_tokens` (`gen_ai.usage.cache_read.input_tokens` cached).
Agent: `gen_ai.agent.name`, else the resource's `service.name`; session: `gen_ai.conversation.id`, else
the trace id.

Usage:
    >>> from slmlab.collect import ingest
    >>> ingest("traces.json", format="otel_genai")  # doctest: +SKIP
"""

from __future__ import annotations

import json
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
    iter_json_records,
    openai_tool_calls,
    register_reader,
    response_fields,
    to_json,
    to_openai_tool_calls,
)

CHAT_OPERATIONS = ("chat", "text_completion", "generate_content", "completion")


def any_value(v: Any) -> Any:
    """Decode an OTLP JSON `AnyValue` (`{"stringValue": ...}`, `intValue` as text, arrays, kv-lists)."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return as_int(v["intValue"])
    if "doubleValue" in v:
        return as_float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [any_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return attributes((v["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def attributes(attrs: Any) -> dict[str, Any]:
    """OTLP `[{"key", "value": AnyValue}]` (or an already flat dict) as a plain dict."""
    if isinstance(attrs, dict):
        return attrs
    if not isinstance(attrs, list):
        raise BadRecord(f"attributes is {type(attrs).__name__}, expected a list of key/value pairs")
    return {a["key"]: any_value(a.get("value")) for a in attrs if isinstance(a, dict) and "key" in a}


def _json_attr(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def parts_message(m: dict[str, Any]) -> list[dict[str, Any]]:
    """One GenAI-convention message (`role` + typed `parts`) as OpenAI messages (tool results split out)."""
    parts = m.get("parts")
    if parts is None:  # already OpenAI-like
        return [m]
    texts, calls, out = [], [], []
    for p in parts if isinstance(parts, list) else []:
        t = p.get("type") if isinstance(p, dict) else None
        if t == "text":
            texts.append(str(p.get("content", "")))
        elif t == "tool_call":
            calls.append({"id": p.get("id"), "name": p.get("name"), "arguments": p.get("arguments")})
        elif t == "tool_call_response":
            resp = p.get("response", p.get("result"))
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": p.get("id"),
                    "content": resp if isinstance(resp, str) else to_json(resp),
                }
            )
    if texts or calls or not out:
        msg: dict[str, Any] = {"role": m.get("role", "user"), "content": "\n".join(texts) if texts else None}
        if calls:
            msg["tool_calls"] = to_openai_tool_calls(openai_tool_calls(calls))
        out.insert(0, msg)
    return out


_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}


def _event_body(ev: dict[str, Any]) -> dict[str, Any]:
    a = attributes(ev.get("attributes") or [])
    body = dict(a)
    for k in ("gen_ai.event.content", "body"):
        if k in a:
            v = _json_attr(a[k])
            body = v if isinstance(v, dict) else {"content": v}
    if isinstance(body.get("message"), str):
        body["message"] = _json_attr(body["message"])
    return body


def genai_call(a: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """Prompt/response columns of one GenAI span from its attributes and events."""
    messages: list[dict[str, Any]] = []
    out_text, tool_calls, finish = None, [], None
    system = _json_attr(a.get("gen_ai.system_instructions"))
    if system:
        texts = (
            [p.get("content", "") for p in system if isinstance(p, dict)]
            if isinstance(system, list)
            else [str(system)]
        )
        messages.append({"role": "system", "content": "\n".join(texts)})
    inp = _json_attr(a.get("gen_ai.input.messages"))
    outp = _json_attr(a.get("gen_ai.output.messages"))
    if inp is not None:
        if not isinstance(inp, list):
            raise BadRecord("gen_ai.input.messages is not a JSON list")
        for m in inp:
            messages.extend(parts_message(m))
        if isinstance(outp, list) and outp:
            first = parts_message(outp[0])[0]
            out_text = first.get("content")
            tool_calls = openai_tool_calls(first.get("tool_calls"))
            finish = outp[0].get("finish_reason")
    else:
        for ev in events:
            name = ev.get("name")
            body = _event_body(ev)
            if name in _EVENT_ROLES:
                msg = {"role": body.get("role", _EVENT_ROLES[name]), "content": body.get("content")}
                if body.get("tool_calls"):
                    msg["tool_calls"] = to_openai_tool_calls(
                        openai_tool_calls(_json_attr(body["tool_calls"]))
                    )
                if name == "gen_ai.tool.message":
                    msg["tool_call_id"] = body.get("id")
                messages.append(msg)
            elif name == "gen_ai.choice" and out_text is None and not tool_calls:
                m = body.get("message") if isinstance(body.get("message"), dict) else body
                out_text = m.get("content")
                tool_calls = openai_tool_calls(_json_attr(m.get("tool_calls")))
                finish = body.get("finish_reason")
    if not messages:
        raise BadRecord("GenAI span has no input messages (attributes or events)")
    if finish is None:
        fr = a.get("gen_ai.response.finish_reasons")
        finish = fr[0] if isinstance(fr, list) and fr else fr
    return {"messages": to_json(messages), **response_fields(out_text, tool_calls), "finish_reason": finish}


class OtelGenAIReader(Reader):
    """OTLP JSON spans following the OpenTelemetry GenAI semantic conventions."""

    name = "otel_genai"
    priority = 10
    description = "OpenTelemetry GenAI spans (OTLP JSON resourceSpans)"

    def sniff(self, path: Path, head: str) -> bool:
        return '"resourceSpans"' in head

    def records(self, ctx: Context) -> Iterator[Record]:
        n = 0
        for doc in iter_json_records(ctx.path, list_keys=()):
            if doc.error is not None:
                yield doc
                continue
            rs_list = doc.obj.get("resourceSpans") if isinstance(doc.obj, dict) else None
            if not isinstance(rs_list, list):
                yield Record(
                    doc.line, error="no resourceSpans list in this OTLP document", raw=doc.raw or doc.obj
                )
                continue
            for rs in rs_list:
                res = attributes(((rs or {}).get("resource") or {}).get("attributes") or [])
                for ss in (rs or {}).get("scopeSpans") or []:
                    for span in (ss or {}).get("spans") or []:
                        n += 1
                        # JSONL: the document's line; one document: the span's index in it.
                        yield Record(doc.line if doc.raw is not None else n, obj=(res, span))

    def calls(self, record: Any, ctx: Context, line: int) -> list[dict[str, Any]]:
        res, span = record
        if not isinstance(span, dict):
            raise BadRecord(f"span is a {type(span).__name__}, expected an object")
        a = attributes(span.get("attributes") or [])
        events = [e for e in span.get("events") or [] if isinstance(e, dict)]
        op = a.get("gen_ai.operation.name")
        start, end = as_int(span.get("startTimeUnixNano")), as_int(span.get("endTimeUnixNano"))
        status = span.get("status") or {}
        is_error = status.get("code") in (2, "STATUS_CODE_ERROR", "ERROR") or a.get("error.type") is not None
        base = {
            "call_id": span.get("spanId"),
            "session_id": None,
            "parent_id": span.get("parentSpanId") or None,
            "agent": a.get("gen_ai.agent.name") or res.get("service.name") or "agent",
            "timestamp": start,
            "latency_ms": (end - start) / 1e6 if start and end else None,
            "status": "error" if is_error else "ok",
            "error": (status.get("message") or a.get("error.type")) if is_error else None,
        }
        if "openinference.span.kind" in a and op is None:
            from slmlab.collect.openinference import flat_call

            row = flat_call(a)
            row.update({k: v for k, v in base.items() if v is not None or k not in row})
            row["session_id"] = row.get("session_id") or span.get("traceId")
            return [row]
        is_chat = op in CHAT_OPERATIONS or (
            op is None and "gen_ai.request.model" in a and ("gen_ai.input.messages" in a or events)
        )
        if not is_chat:
            raise SkipRecord(f"span {span.get('name')!r} is not an LLM call (operation {op!r})")
        if not span.get("spanId"):
            raise BadRecord("span has no spanId")
        row = base | genai_call(a, events)
        model = a.get("gen_ai.response.model") or a.get("gen_ai.request.model") or "unknown"
        meta = {
            k: a[k]
            for k in (
                "gen_ai.provider.name",
                "gen_ai.system",
                "gen_ai.response.id",
                "gen_ai.request.temperature",
            )
            if k in a
        }
        meta["trace_id"] = span.get("traceId")
        row.update(
            {
                "session_id": a.get("gen_ai.conversation.id") or span.get("traceId"),
                "model": str(model),
                "tools": to_json(_json_attr(a["gen_ai.tool.definitions"]))
                if a.get("gen_ai.tool.definitions")
                else None,
                "input_tokens": as_int(a.get("gen_ai.usage.input_tokens")),
                "cached_input_tokens": as_int(
                    a.get("gen_ai.usage.cache_read.input_tokens", a.get("gen_ai.usage.cached_input_tokens"))
                ),
                "output_tokens": as_int(a.get("gen_ai.usage.output_tokens")),
                "metadata": to_json(meta),
            }
        )
        return [row]


register_reader(OtelGenAIReader)
