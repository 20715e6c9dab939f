"""Reader `otel_genai`: OpenTelemetry GenAI semantic-convention spans in OTLP JSON.

Also read: the Python SDK's ConsoleSpanExporter output and Jaeger UI JSON exports (`otel_dumps`).

A file is one OTLP JSON document (`{"resourceSpans": [{"resource", "scopeSpans": [{"spans": [...]}]}]}`) or
JSONL of such documents, as the collector's file exporter writes them; documents holding `resourceLogs`
(GenAI events emitted as log records) may sit in the same file or in a logs-only file of the same ingest.
A record is one span or one log record. Inference spans (`gen_ai.operation.name` chat / text_completion /
generate_content, or OpenLLMetry's `llm.request.type` chat / completion) are calls; `invoke_agent`,
`execute_tool`, embeddings, HTTP and DB spans and all log records are *skipped* (log records that are GenAI
events are read with the span they belong to). Spans with OpenInference attributes
(`openinference.span.kind`) are read with the `openinference` mapping.

The prompt and answer are found in whichever of the convention's generations the span uses:
* current (semconv v1.37+, now open-telemetry/semantic-conventions-genai): the attributes
  `gen_ai.system_instructions`, `gen_ai.input.messages`, `gen_ai.output.messages` (role + typed `parts`:
  `text` with `content`, `tool_call` with `id`/`name`/`arguments`, `tool_call_response` with `id` and
  `response` (`result` before v1.38)), as JSON text or as structured `arrayValue`/`kvlistValue` values; or
  the same attributes on a `gen_ai.client.inference.operation.details` event;
* v1.28-v1.36 events `gen_ai.system.message`, `gen_ai.user.message`, `gen_ai.assistant.message`,
  `gen_ai.tool.message` and `gen_ai.choice` (body fields `content`, `role`, `tool_calls`, `id`,
  `index`, `finish_reason`, `message`), as OTLP log records linked by `spanId` (the official
  instrumentations) or as span events whose body is JSON in `gen_ai.event.content` (Azure AI SDKs);
* v1.26 and older: span events `gen_ai.content.prompt` / `gen_ai.content.completion` with the JSON
  attributes `gen_ai.prompt` / `gen_ai.completion`;
* OpenLLMetry (Traceloop) flattened attributes `gen_ai.prompt.N.role|content|tool_call_id|
  tool_calls.K.id|name|arguments`, `gen_ai.completion.N.*` (+ `finish_reason`) and tools
  `llm.request.functions.N.name|description|parameters`.

Tools: `gen_ai.tool.definitions` (flat `{"type": "function", "name", "description", "parameters"}`),
converted to OpenAI chat tool schemas. Tokens: `gen_ai.usage.input_tokens` / `output_tokens` (deprecated
`gen_ai.usage.prompt_tokens` / `completion_tokens`), cached `gen_ai.usage.cache_read.input_tokens`
(OpenLLMetry `gen_ai.usage.cache_read_input_tokens`). Model: `gen_ai.response.model`, else
`gen_ai.request.model`. Agent: `gen_ai.agent.name` of the span or of its nearest ancestor in the file (the
`invoke_agent` span; OpenLLMetry: `traceloop.entity.name` of a `traceloop.span.kind` agent span), else
the resource's `service.name`; session: `gen_ai.conversation.id` likewise,
else the trace id. Status: span `status.code` 2 (`STATUS_CODE_ERROR`) or `error.type`; the message from
`status.message` or an `exception` event.

OTLP JSON encoding (opentelemetry-proto, `docs/specification.md` "JSON Protobuf Encoding"): attribute
values are `AnyValue` objects, 64-bit integers (`intValue`, `*TimeUnixNano`) are decimal strings, trace and
span ids are hex, enums are integers. Snake-case field names (Phoenix's `/spans/otlpv1`) are accepted too.

Sources checked: open-telemetry/semantic-conventions `docs/gen-ai/gen-ai-spans.md`,
`gen-ai-input-messages.json`, `gen-ai-output-messages.json`, `model/gen-ai/deprecated/events-deprecated.yaml`
and `registry-deprecated.yaml`; open-telemetry/semantic-conventions-genai
`model/gen-ai/gen-ai-{input,output}-messages.json`, `gen-ai-tool-definitions.json`; traceloop/openllmetry
`opentelemetry-instrumentation-openai/.../shared/chat_wrappers.py` (`_set_prompts`, `_set_completions`).

Usage:
    >>> from slmlab.collect import ingest
    >>> ingest("traces.json", format="otel_genai")  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import os
import re
from collections import defaultdict
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
    history_message,
    iter_json_records,
    openai_tool_calls,
    read_head,
    register_reader,
    response_fields,
    to_json,
    to_openai_tool_calls,
)
from slmlab.collect.openinference import flat_call
from slmlab.collect.otel_dumps import dump_spans, is_console_span, is_jaeger
from slmlab.collect.otlp import any_value, attributes, otlp_id, otlp_int, parts_message
from slmlab.collect.shapes import Ancestry, json_value, openai_tools, text_ids, text_of

CHAT_OPERATIONS = ("chat", "text_completion", "generate_content", "completion")
# OpenLLMetry marks LLM spans with `llm.request.type` instead of `gen_ai.operation.name`.
LLM_REQUEST_TYPES = ("chat", "completion")
DETAILS_EVENT = "gen_ai.client.inference.operation.details"
_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
CONTENT_EVENTS = frozenset(
    [*_EVENT_ROLES, "gen_ai.choice", "gen_ai.content.prompt", "gen_ai.content.completion", DETAILS_EVENT]
)
_DETAIL_ATTRS = (
    "gen_ai.system_instructions",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.definitions",
    "gen_ai.response.finish_reasons",
)
_FLAT = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(.+)$")
_FUNCTIONS = re.compile(r"^llm\.request\.functions\.(\d+)\.(name|description|parameters)$")
NO_CONTENT = (
    "GenAI span has no prompt (no gen_ai.input.messages, gen_ai.prompt.* or message events): content "
    "capture was off (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT)"
)


def _field(obj: dict[str, Any], camel: str, snake: str) -> Any:
    v = obj.get(camel)
    return v if v is not None else obj.get(snake)


def _literal(v: Any) -> Any:
    """JSON text, or the Python-literal text the v1.26 spec shows for `gen_ai.prompt` (`[{'role': ...}]`)."""
    out = json_value(v)
    if isinstance(out, str) and out.lstrip()[:1] in ("[", "{"):
        try:
            return ast.literal_eval(out)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return out
    return out


# ------------------------------------------------------------------------------------------ messages


def _parts_text(parts: Any) -> str | None:
    """System instructions: a list of `{"type": "text", "content"}` parts, or plain text."""
    parts = json_value(parts)
    if isinstance(parts, list):
        texts = [str(p.get("content", "")) for p in parts if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(texts) if texts else None
    return text_of(parts)


def _openai_message(m: Any) -> dict[str, Any]:
    """A `{role, content, tool_calls?}` message (deprecated `gen_ai.prompt`, OpenLLMetry) in canonical form."""
    if not isinstance(m, dict):
        return {"role": "user", "content": text_of(m)}
    calls = openai_tool_calls(json_value(m.get("tool_calls")))
    return history_message(m.get("role") or "user", m.get("content"), calls, m)


def _flat_messages(a: dict[str, Any], kind: str) -> list[tuple[dict[str, Any], Any]]:
    """OpenLLMetry's `gen_ai.prompt.N.*` / `gen_ai.completion.N.*` as (message, finish_reason) pairs."""
    fields: dict[int, dict[str, Any]] = {}
    for k, v in a.items():
        m = _FLAT.match(k)
        if m and m.group(1) == kind:
            fields.setdefault(int(m.group(2)), {})[m.group(3)] = v
    out = []
    for i in sorted(fields):
        f = fields[i]
        content = f.get("content")
        parts = json_value(content)  # OpenLLMetry writes list content as JSON text
        if isinstance(parts, list) and parts and all(isinstance(p, dict) and "type" in p for p in parts):
            content = parts
        default_role = "assistant" if kind == "completion" else "user"
        msg: dict[str, Any] = {"role": f.get("role") or default_role, "content": content}
        calls: dict[int, dict[str, Any]] = {}
        for k, v in f.items():
            if k.startswith("tool_calls."):
                _, j, rest = k.split(".", 2)
                if j.isdigit():
                    calls.setdefault(int(j), {})[rest] = v
        if calls:
            msg["tool_calls"] = to_openai_tool_calls(openai_tool_calls([calls[j] for j in sorted(calls)]))
        if f.get("tool_call_id"):
            msg["tool_call_id"] = f["tool_call_id"]
        out.append((msg, f.get("finish_reason")))
    return out


def _flat_functions(a: dict[str, Any]) -> list[dict[str, Any]] | None:
    fields: dict[int, dict[str, Any]] = {}
    for k, v in a.items():
        m = _FUNCTIONS.match(k)
        if m:
            fields.setdefault(int(m.group(1)), {})[m.group(2)] = v
    return openai_tools([fields[i] for i in sorted(fields)]) if fields else None


def _event_body(name: str, a: dict[str, Any], body: Any = None) -> dict[str, Any]:
    """The body of a GenAI event: a log record's body, `gen_ai.event.content` JSON, or its attributes."""
    if body is not None:
        body = json_value(body)
        out = body if isinstance(body, dict) else {"content": body}
        return {**a, **out} if name == DETAILS_EVENT else out
    if "gen_ai.event.content" in a:
        v = json_value(a["gen_ai.event.content"])
        return v if isinstance(v, dict) else {"content": v}
    if name == "gen_ai.content.prompt":
        return {"messages": _literal(a.get("gen_ai.prompt"))}
    if name == "gen_ai.content.completion":
        return {"messages": _literal(a.get("gen_ai.completion"))}
    out = dict(a)
    for k in ("message", "tool_calls"):
        if isinstance(out.get(k), str):
            out[k] = json_value(out[k])
    return out


def _answer(m: Any) -> tuple[Any, list[dict[str, Any]]]:
    """(text, canonical tool calls) of an answer message `{role, content, tool_calls}`."""
    if not isinstance(m, dict):
        return text_of(m), []
    return text_of(m.get("content")), openai_tool_calls(json_value(m.get("tool_calls")))


def genai_call(a: dict[str, Any], events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Prompt/response columns of one GenAI span from its attributes and its (name, body) events."""
    a = dict(a)
    for name, body in events:  # the operation-details event carries the content attributes
        if name == DETAILS_EVENT:
            for k in _DETAIL_ATTRS:
                if a.get(k) is None and body.get(k) is not None:
                    a[k] = body[k]
    messages: list[dict[str, Any]] = []
    out_text, tool_calls, finish = None, [], None
    system = _parts_text(a.get("gen_ai.system_instructions"))
    if system:
        messages.append({"role": "system", "content": system})
    tools = openai_tools(a.get("gen_ai.tool.definitions"))
    if a.get("gen_ai.input.messages") is not None:
        inp = json_value(a["gen_ai.input.messages"])
        if not isinstance(inp, list):
            raise BadRecord("gen_ai.input.messages is not a JSON list of messages")
        for m in inp:
            messages.extend(parts_message(m))
        outp = json_value(a.get("gen_ai.output.messages"))
        if isinstance(outp, list) and outp:
            first = parts_message(outp[0])[0]
            out_text, tool_calls = first.get("content"), openai_tool_calls(first.get("tool_calls"))
            finish = outp[0].get("finish_reason") if isinstance(outp[0], dict) else None
    elif any(_FLAT.match(k) for k in a):  # OpenLLMetry
        messages.extend(m for m, _ in _flat_messages(a, "prompt"))
        reply = _flat_messages(a, "completion")
        if reply:
            (m, finish), *_ = reply
            out_text, tool_calls = _answer(m)
            if m.get("refusal") and out_text is None:
                out_text = m["refusal"]
        tools = tools or _flat_functions(a)
    elif isinstance(a.get("gen_ai.prompt"), str):  # deprecated JSON attributes on the span
        prompt = _literal(a["gen_ai.prompt"])
        messages.extend(_openai_message(m) for m in (prompt if isinstance(prompt, list) else [prompt]))
        reply = _literal(a.get("gen_ai.completion"))
        if reply is not None:
            out_text, tool_calls = _answer(reply[0] if isinstance(reply, list) and reply else reply)
    else:
        choice = None
        for name, body in events:
            if name in _EVENT_ROLES:
                msg = {"role": body.get("role") or _EVENT_ROLES[name], "content": body.get("content")}
                calls = openai_tool_calls(json_value(body.get("tool_calls")))
                if calls:
                    msg["tool_calls"] = to_openai_tool_calls(calls)
                if name == "gen_ai.tool.message" and body.get("id") is not None:
                    msg["tool_call_id"] = body["id"]
                messages.append(msg)
            elif name == "gen_ai.content.prompt":
                prompt = body.get("messages")
                messages.extend(
                    _openai_message(m) for m in (prompt if isinstance(prompt, list) else [prompt])
                )
            elif name == "gen_ai.choice" and (choice is None or as_int(body.get("index")) == 0):
                choice = body
            elif name == "gen_ai.content.completion" and choice is None:
                reply = body.get("messages")
                reply = reply[0] if isinstance(reply, list) and reply else reply
                # OpenLit writes the completion as plain text, not a message list
                choice = {"message": reply if isinstance(reply, dict) else {"content": text_of(reply)}}
        if choice is not None:
            m = choice.get("message") if isinstance(choice.get("message"), dict) else choice
            out_text, tool_calls = _answer(m)
            if not tool_calls:  # the v1.28 choice body keeps tool_calls beside `message`
                tool_calls = openai_tool_calls(json_value(choice.get("tool_calls")))
            finish = choice.get("finish_reason")
    if not messages:
        raise BadRecord(NO_CONTENT)
    if finish is None:
        fr = a.get("gen_ai.response.finish_reasons")
        finish = fr[0] if isinstance(fr, list) and fr else fr
    return {
        "messages": to_json(messages),
        "tools": to_json(tools) if tools else None,
        **response_fields(out_text, tool_calls),
        "finish_reason": finish,
    }


# ------------------------------------------------------------------------------------ file traversal


def _walk(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """("span" | "log", resource attributes, item) for every span and log record of an OTLP document."""
    for top, scope_key, items_key, kind in (
        ("resourceSpans", "scopeSpans", "spans", "span"),
        ("resourceLogs", "scopeLogs", "logRecords", "log"),
    ):
        for rs in _list(doc.get(top)):
            if not isinstance(rs, dict):
                yield kind, {}, rs  # a malformed entry: calls() quarantines it
                continue
            try:
                res = attributes((rs.get("resource") or {}).get("attributes") or [])
            except (BadRecord, AttributeError, TypeError):
                res = {}
            for ss in _list(rs.get(scope_key)):
                if not isinstance(ss, dict):
                    yield kind, res, ss
                    continue
                for item in _list(ss.get(items_key)):
                    yield kind, res, item


def _list(v: Any) -> list[Any]:
    """`v` when it is a list; a malformed non-list value becomes one bad item, absence none."""
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def _is_otlp(obj: Any) -> bool:
    return isinstance(obj, dict) and any(
        isinstance(obj.get(k), list) for k in ("resourceSpans", "resourceLogs")
    )


def _is_doc(obj: Any) -> bool:
    """An OTLP JSON document, a ConsoleSpanExporter span or a Jaeger JSON export."""
    return _is_otlp(obj) or is_console_span(obj) or is_jaeger(obj)


def _items(obj: Any) -> Iterator[tuple[str, dict[str, Any], Any]]:
    return _walk(obj) if _is_otlp(obj) else dump_spans(obj)


def _log_event(item: Any) -> tuple[str | None, str | None, dict[str, Any] | None]:
    """(span id, event name, body) of a log record that is a GenAI event, else (None, None, None)."""
    if not isinstance(item, dict):
        return None, None, None
    try:
        a = attributes(item.get("attributes") or [])
    except BadRecord:
        return None, None, None
    name = _field(item, "eventName", "event_name") or a.get("event.name")
    span_id = otlp_id(_field(item, "spanId", "span_id"))
    if not (isinstance(name, str) and name in CONTENT_EVENTS and span_id):
        return None, None, None
    return str(span_id), name, _event_body(name, a, any_value(item.get("body")) or {})


_FACT_KEYS = {
    "gen_ai.agent.name": "agent",
    "agent.name": "agent",
    "gen_ai.conversation.id": "session",
    "session.id": "session",
}


def _span_facts(item: dict[str, Any]) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    attrs = item.get("attributes")
    pairs = attrs.items() if isinstance(attrs, dict) else None
    if pairs is None and isinstance(attrs, list):
        pairs = ((kv.get("key"), kv.get("value")) for kv in attrs if isinstance(kv, dict))
    kind = entity = None
    for k, v in pairs or ():
        if not isinstance(k, str):
            continue
        if k in _FACT_KEYS:
            facts.setdefault(_FACT_KEYS[k], any_value(v))
        elif k == "traceloop.span.kind":
            kind = any_value(v)
        elif k == "traceloop.entity.name":
            entity = any_value(v)
    if kind == "agent" and entity:  # OpenLLMetry's @agent(name=...) span
        facts.setdefault("agent", entity)
    return facts


class _Index:
    """What a span needs from the rest of its file: ancestors' agent / session, its log-record events."""

    def __init__(self) -> None:
        self.tree = Ancestry()
        self.logs: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)


# Logs-only OTLP files of an ingest, parsed once: (path, size, mtime) -> [(span id, name, body)].
_SIBLING_LOGS: dict[tuple[str, int, int], list[tuple[str, str, dict[str, Any]]]] = {}


def _file_key(p: Path) -> tuple[str, int, int]:
    st = os.stat(p)
    return (str(p), st.st_size, st.st_mtime_ns)


def _sibling_logs(p: Path) -> list[tuple[str, str, dict[str, Any]]]:
    """GenAI log events of another file of the ingest, when it is an OTLP logs-only file."""
    try:
        key = _file_key(p)
    except OSError:
        return []
    if key not in _SIBLING_LOGS:
        events = []
        head = read_head(p, 64 * 1024)
        if '"resourceLogs"' in head and '"resourceSpans"' not in head:
            for doc in iter_json_records(p, list_keys=()):
                if doc.error is None and _is_otlp(doc.obj):
                    for kind, _, item in _walk(doc.obj):
                        span_id, name, body = _log_event(item) if kind == "log" else (None, None, None)
                        if span_id:
                            events.append((span_id, name, body))
        if len(_SIBLING_LOGS) > 4096:
            _SIBLING_LOGS.clear()
        _SIBLING_LOGS[key] = events
    return _SIBLING_LOGS[key]


def _index(ctx: Context) -> _Index:
    """One pass over the file (and over logs-only OTLP files beside it in this ingest)."""
    idx = _Index()
    for doc in iter_json_records(ctx.path, list_keys=()):
        if doc.error is not None or not _is_doc(doc.obj):
            continue
        for kind, _, item in _items(doc.obj):
            if kind == "span" and isinstance(item, dict):
                sid = otlp_id(_field(item, "spanId", "span_id"))
                parent = otlp_id(_field(item, "parentSpanId", "parent_span_id"))
                idx.tree.add(sid, parent, **_span_facts(item))
            elif kind == "log":
                span_id, name, body = _log_event(item)
                if span_id:
                    idx.logs[span_id].append((name, body))
    for p in ctx.all_paths:
        if p != ctx.path and p.name.lower().endswith((".json", ".jsonl", ".ndjson", ".gz")):
            for span_id, name, body in _sibling_logs(p):
                idx.logs[span_id].append((name, body))
    return idx


class OtelGenAIReader(Reader):
    """OTLP JSON spans following the OpenTelemetry GenAI semantic conventions."""

    name = "otel_genai"
    priority = 10
    description = "OpenTelemetry GenAI spans (OTLP JSON resourceSpans, GenAI events as resourceLogs)"

    def sniff(self, path: Path, head: str) -> bool:
        if '"resourceSpans"' in head or ('"resourceLogs"' in head and '"gen_ai.' in head):
            return True
        if '"span_id"' in head and '"SpanKind.' in head and '"context"' in head:  # ConsoleSpanExporter
            return True
        return '"traceID"' in head and '"spanID"' in head and '"operationName"' in head  # Jaeger JSON

    def records(self, ctx: Context) -> Iterator[Record]:
        ctx.state["index"] = _index(ctx)
        n = 0
        for doc in iter_json_records(ctx.path, list_keys=()):
            if doc.error is not None:
                yield doc
                continue
            if not _is_doc(doc.obj):
                if isinstance(doc.obj, dict) and isinstance(doc.obj.get("resourceMetrics"), list):
                    yield Record(doc.line, obj=("skip", None, "an OTLP metrics document"), raw=doc.raw)
                else:
                    yield Record(
                        doc.line,
                        error="no resourceSpans or resourceLogs list in this OTLP document",
                        raw=doc.raw or doc.obj,
                    )
                continue
            console = is_console_span(doc.obj)
            for kind, res, item in _items(doc.obj):
                n += 1
                # JSONL, console spans: the line the document starts on; one document: the span's index.
                yield Record(doc.line if doc.raw is not None or console else n, obj=(kind, res, item))

    def calls(self, record: Any, ctx: Context, line: int) -> list[dict[str, Any]]:
        kind, res, span = record
        if kind == "skip":
            raise SkipRecord(span)
        if kind == "log":
            if not isinstance(span, dict):
                raise BadRecord(f"log record is a {type(span).__name__}, expected an object")
            raise SkipRecord("an OTLP log record (GenAI events are read with their span)")
        if not isinstance(span, dict):
            raise BadRecord(f"span is a {type(span).__name__}, expected an object")
        idx: _Index = ctx.state.get("index") or _Index()
        a = attributes(span.get("attributes") or [])
        span_id = otlp_id(_field(span, "spanId", "span_id"))
        trace_id = otlp_id(_field(span, "traceId", "trace_id"))
        events = []
        for ev in span.get("events") or []:
            if isinstance(ev, dict) and isinstance(ev.get("name"), str):
                events.append((ev["name"], _event_body(ev["name"], attributes(ev.get("attributes") or []))))
        if not any(name in CONTENT_EVENTS for name, _ in events) and span_id:
            events += idx.logs.get(str(span_id), [])
        op = a.get("gen_ai.operation.name")
        start = otlp_int(_field(span, "startTimeUnixNano", "start_time_unix_nano"))
        end = otlp_int(_field(span, "endTimeUnixNano", "end_time_unix_nano"))
        status = span.get("status") if isinstance(span.get("status"), dict) else {}
        code = status.get("code")
        is_error = code in (2, "2", "STATUS_CODE_ERROR", "ERROR") or a.get("error.type") is not None
        exc = next((b for n, b in events if n == "exception"), {})
        base = {
            "call_id": span_id,
            "session_id": None,
            "parent_id": otlp_id(_field(span, "parentSpanId", "parent_span_id")) or None,
            "agent": a.get("gen_ai.agent.name")
            or a.get("agent.name")
            or idx.tree.inherit(span_id, "agent")
            or res.get("service.name")
            or "agent",
            "timestamp": start,
            "latency_ms": (end - start) / 1e6 if start and end else None,
            "status": "error" if is_error else "ok",
            "error": (status.get("message") or exc.get("exception.message") or a.get("error.type"))
            if is_error
            else None,
        }
        if "openinference.span.kind" in a and op is None:
            if str(a["openinference.span.kind"]).upper() != "LLM":
                raise SkipRecord(f"OpenInference span kind {a['openinference.span.kind']!r} is not LLM")
            row = flat_call(a)
            row.update({k: v for k, v in base.items() if v is not None or k not in row})
            row["session_id"] = row.get("session_id") or idx.tree.inherit(span_id, "session") or trace_id
            return [text_ids(row)]
        has_content = (
            "gen_ai.input.messages" in a
            or "gen_ai.prompt" in a
            or any(k.startswith("gen_ai.prompt.") for k in a)
            or any(name in CONTENT_EVENTS for name, _ in events)
        )
        is_chat = op in CHAT_OPERATIONS or (
            op is None
            and (
                a.get("llm.request.type") in LLM_REQUEST_TYPES
                or (("gen_ai.request.model" in a or "gen_ai.system" in a) and has_content)
            )
        )
        if not is_chat:
            raise SkipRecord(f"span {span.get('name')!r} is not an LLM call (operation {op!r})")
        if not span_id:
            raise BadRecord("span has no spanId")
        row = base | genai_call(a, events)
        model = (
            a.get("gen_ai.response.model")
            or a.get("gen_ai.request.model")
            or a.get("llm.response.model")
            or a.get("llm.request.model")
            or "unknown"
        )
        meta = {
            k: a[k]
            for k in (
                "gen_ai.provider.name",
                "gen_ai.system",
                "gen_ai.response.id",
                "gen_ai.request.temperature",
                "gen_ai.request.max_tokens",
            )
            if k in a
        }
        meta["trace_id"] = trace_id
        meta["span_name"] = span.get("name")
        row.update(
            {
                "session_id": a.get("gen_ai.conversation.id")
                or idx.tree.inherit(span_id, "session")
                or trace_id,
                "model": str(model),
                "input_tokens": _first_int(a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
                "cached_input_tokens": _first_int(
                    a, "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"
                ),
                "output_tokens": _first_int(
                    a, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"
                ),
                # not in the convention; Langfuse and LiteLLM export a logged cost under this name
                "cost_usd": as_float(a.get("gen_ai.usage.cost")),
                "metadata": to_json(meta),
            }
        )
        return [text_ids(row)]


def _first_int(a: dict[str, Any], *keys: str) -> int | None:
    for k in keys:
        v = as_int(a.get(k))
        if v is not None:
            return v
    return None


register_reader(OtelGenAIReader)
