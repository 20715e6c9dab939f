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

import os
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
    iter_json_records,
    read_head,
    register_reader,
    to_json,
)
from slmlab.collect.openinference import flat_call
from slmlab.collect.otel_dumps import dump_spans, is_console_span, is_jaeger
from slmlab.collect.otel_messages import CONTENT_EVENTS, NO_CONTENT, _event_body, genai_call  # noqa: F401
from slmlab.collect.otlp import any_value, attributes, otlp_id, otlp_int
from slmlab.collect.shapes import Ancestry, text_ids

CHAT_OPERATIONS = ("chat", "text_completion", "generate_content", "completion")
# OpenLLMetry marks LLM spans with `llm.request.type` instead of `gen_ai.operation.name`.
LLM_REQUEST_TYPES = ("chat", "completion")


def _field(obj: dict[str, Any], camel: str, snake: str) -> Any:
    v = obj.get(camel)
    return v if v is not None else obj.get(snake)


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
