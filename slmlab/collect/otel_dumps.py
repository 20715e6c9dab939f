"""The two other JSON forms OpenTelemetry spans are commonly saved in, turned into OTLP-shaped spans for
the `otel_genai` reader:

* the Python SDK's `ConsoleSpanExporter` output: `ReadableSpan.to_json()` objects printed one after another
  (pretty-printed, 4-space indent): `{"name", "context": {"trace_id": "0x...", "span_id": "0x..."}, "kind":
  "SpanKind.CLIENT", "parent_id", "start_time"/"end_time" (ISO), "status": {"status_code", "description"},
  "attributes": {...}, "events": [{"name", "timestamp", "attributes"}], "resource": {"attributes"}}`
  (opentelemetry-python `opentelemetry-sdk/src/opentelemetry/sdk/trace/__init__.py`, `ReadableSpan.to_json`);
* a Jaeger UI "Download JSON" trace export: `{"data": [{"traceID", "spans": [{"traceID", "spanID",
  "operationName", "references": [{"refType": "CHILD_OF", "spanID"}], "startTime" (µs), "duration" (µs),
  "tags": [{"key", "type", "value"}], "logs": [{"timestamp", "fields": [...]}], "processID"}],
  "processes": {"p1": {"serviceName", "tags"}}}]}` (jaegertracing/jaeger-ui `packages/jaeger-ui/src/types/
  trace.tsx`, the query service's `model/json` structures).

Each becomes `("span", resource attributes, span)` with an OTLP-style span: `spanId`, `traceId`,
`parentSpanId`, `name`, `startTimeUnixNano`, `endTimeUnixNano`, `status.code` (2 = error), `attributes` and
`events` as plain dicts.

Usage:
    >>> doc = {"name": "chat", "context": {"trace_id": "0x01", "span_id": "0x02"}, "kind": "SpanKind.CLIENT",
    ...        "attributes": {"gen_ai.operation.name": "chat"}, "status": {"status_code": "UNSET"}}
    >>> next(dump_spans(doc))[2]["spanId"]
    '02'
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from slmlab.collect.values import to_datetime


def is_console_span(obj: Any) -> bool:
    """A `ReadableSpan.to_json()` object."""
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("context"), dict)
        and "span_id" in obj["context"]
        and ("kind" in obj or "attributes" in obj)
    )


def is_jaeger(obj: Any) -> bool:
    """A Jaeger JSON trace export (`{"data": [{"traceID", "spans": [...]}]}`) or one trace of it."""
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        return any(isinstance(t, dict) and isinstance(t.get("spans"), list) for t in obj["data"])
    return isinstance(obj, dict) and isinstance(obj.get("spans"), list) and "traceID" in obj


def _hex(v: Any) -> Any:
    return v[2:] if isinstance(v, str) and v.startswith("0x") else v


def _ns(v: Any) -> int | None:
    dt = to_datetime(v)
    return None if dt is None else int(dt.timestamp() * 1_000_000) * 1000


def _console_span(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    ctx = obj.get("context") or {}
    status = obj.get("status") if isinstance(obj.get("status"), dict) else {}
    code = str(status.get("status_code") or "UNSET").upper()
    res = obj.get("resource") if isinstance(obj.get("resource"), dict) else {}
    events = []
    for ev in obj.get("events") or []:
        if isinstance(ev, dict):
            events.append({"name": ev.get("name"), "attributes": ev.get("attributes") or {}})
    span = {
        "spanId": _hex(ctx.get("span_id")),
        "traceId": _hex(ctx.get("trace_id")),
        "parentSpanId": _hex(obj.get("parent_id")),
        "name": obj.get("name"),
        "startTimeUnixNano": _ns(obj.get("start_time")),
        "endTimeUnixNano": _ns(obj.get("end_time")),
        "status": {
            "code": 2 if code in ("ERROR", "STATUSCODE.ERROR") else 0,
            "message": status.get("description"),
        },
        "attributes": obj.get("attributes") if isinstance(obj.get("attributes"), dict) else {},
        "events": events,
    }
    attrs = res.get("attributes") if isinstance(res.get("attributes"), dict) else {}
    return attrs, span


def _tags(tags: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in tags if isinstance(tags, list) else []:
        if isinstance(t, dict) and isinstance(t.get("key"), str):
            out[t["key"]] = t.get("value")
    return out


def _jaeger_span(span: dict[str, Any], processes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    tags = _tags(span.get("tags"))
    parent = next(
        (
            r.get("spanID")
            for r in span.get("references") or []
            if isinstance(r, dict) and r.get("refType") == "CHILD_OF"
        ),
        None,
    )
    start = span.get("startTime")
    dur = span.get("duration")
    start_ns = int(start) * 1000 if isinstance(start, (int, float)) else None
    end_ns = start_ns + int(dur) * 1000 if start_ns is not None and isinstance(dur, (int, float)) else None
    is_err = str(tags.get("otel.status_code", "")).upper() == "ERROR" or tags.get("error") in (True, "true")
    events = []
    for log in span.get("logs") or []:
        if isinstance(log, dict):
            fields = _tags(log.get("fields"))
            name = fields.pop("event", None) or fields.pop("message", None) or "log"
            events.append({"name": name, "attributes": fields})
    proc = processes.get(span.get("processID")) if isinstance(processes, dict) else None
    res = _tags(proc.get("tags")) if isinstance(proc, dict) else {}
    if isinstance(proc, dict) and proc.get("serviceName"):
        res.setdefault("service.name", proc["serviceName"])
    out = {
        "spanId": span.get("spanID"),
        "traceId": span.get("traceID"),
        "parentSpanId": parent,
        "name": span.get("operationName"),
        "startTimeUnixNano": start_ns,
        "endTimeUnixNano": end_ns,
        "status": {"code": 2 if is_err else 0, "message": tags.get("otel.status_description")},
        "attributes": {k: v for k, v in tags.items() if not k.startswith(("otel.status", "span.kind"))},
        "events": events,
    }
    return res, out


def dump_spans(obj: Any) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """`("span", resource attributes, OTLP-style span)` for a console span or a Jaeger export; a malformed
    Jaeger span is passed on as it is (the reader quarantines it)."""
    if is_console_span(obj):
        res, span = _console_span(obj)
        yield "span", res, span
        return
    traces = obj["data"] if isinstance(obj.get("data"), list) else [obj]
    for trace in traces:
        if not isinstance(trace, dict):
            yield "span", {}, trace
            continue
        processes = trace.get("processes") or {}
        for span in trace.get("spans") or []:
            if not isinstance(span, dict):
                yield "span", {}, span
                continue
            yield ("span", *_jaeger_span(span, processes))
