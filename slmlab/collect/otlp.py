"""OTLP JSON values and GenAI-convention messages, shared by the trace readers (otel_genai, openinference,
langfuse): `any_value` / `attributes` decode opentelemetry-proto's JSON mapping (`{"stringValue": ...}`,
`intValue` as text, arrays, kv-lists), `parts_message` reads a semconv v1.37+ message (`role` + typed
`parts`) as OpenAI messages.

Usage:
    >>> attributes([{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}])
    {'gen_ai.request.model': 'gpt-4o'}
"""

from __future__ import annotations

from typing import Any

from slmlab.collect.record import BadRecord
from slmlab.collect.values import as_float, as_int, openai_tool_calls, to_json, to_openai_tool_calls

_ANY_KINDS = {
    "stringValue": "str",
    "string_value": "str",
    "intValue": "int",
    "int_value": "int",
    "doubleValue": "float",
    "double_value": "float",
    "boolValue": "bool",
    "bool_value": "bool",
    "arrayValue": "array",
    "array_value": "array",
    "kvlistValue": "kvlist",
    "kvlist_value": "kvlist",
    "bytesValue": "bytes",
    "bytes_value": "bytes",
}


def any_value(v: Any) -> Any:
    """Decode an OTLP JSON `AnyValue` (`{"stringValue": ...}`, `intValue` as text, arrays, kv-lists).

    Example:
        >>> any_value({"arrayValue": {"values": [{"intValue": "120"}, {"stringValue": "x"}]}})
        [120, 'x']
    """
    if not isinstance(v, dict):
        return v
    for key, x in v.items():
        kind = _ANY_KINDS.get(key)
        if kind == "str" or kind == "bytes":
            return x
        if kind == "int":
            return otlp_int(x)
        if kind == "float":
            return as_float(x)
        if kind == "bool":
            return bool(x)
        if kind == "array":
            values = x.get("values") if isinstance(x, dict) else None
            return [any_value(y) for y in values] if isinstance(values, list) else []
        if kind == "kvlist":
            values = x.get("values") if isinstance(x, dict) else None
            return attributes(values) if isinstance(values, list) else {}
    return None


def attributes(attrs: Any) -> dict[str, Any]:
    """OTLP `[{"key", "value": AnyValue}]` (or an already flat dict) as a plain dict."""
    if isinstance(attrs, dict):
        return attrs
    if not isinstance(attrs, list):
        raise BadRecord(f"attributes is {type(attrs).__name__}, expected a list of key/value pairs")
    return {
        a["key"]: any_value(a.get("value"))
        for a in attrs
        if isinstance(a, dict) and isinstance(a.get("key"), str)
    }


def parts_message(m: Any) -> list[dict[str, Any]]:
    """One GenAI-convention message (`role` + typed `parts`) as OpenAI messages (tool results split out).

    Example:
        >>> parts_message({"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": 14}]})
        [{'role': 'tool', 'tool_call_id': 'c1', 'content': '14'}]
    """
    if not isinstance(m, dict):
        raise BadRecord(f"a GenAI message is a {type(m).__name__}, expected an object")
    parts = m.get("parts")
    if parts is None:  # not the parts form: an OpenAI-like message
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
            content = resp if isinstance(resp, str) else to_json(resp)
            out.append({"role": "tool", "tool_call_id": p.get("id"), "content": content})
        # reasoning, blob, file, uri and server-tool parts are not part of the text prompt
    if texts or calls or not out:
        msg: dict[str, Any] = {"role": m.get("role", "user"), "content": "\n".join(texts) if texts else None}
        if calls:
            msg["tool_calls"] = to_openai_tool_calls(openai_tool_calls(calls))
        if m.get("name"):
            msg["name"] = m["name"]
        out.insert(0, msg)
    return out


def otlp_int(v: Any) -> int | None:
    """A 64-bit integer as OTLP JSON writes it: a decimal string, a number, or the `{low, high, unsigned}`
    object protobuf.js writes for a Long (OpenTelemetry JS exporters, as Langfuse's OTel tests receive them).

    Example:
        >>> otlp_int({"low": 14, "high": 0, "unsigned": False}), otlp_int("120")
        (14, 120)
    """
    if isinstance(v, dict) and "low" in v and "high" in v:
        low, high = as_int(v.get("low")), as_int(v.get("high"))
        if low is None or high is None:
            return None
        n = ((high & 0xFFFFFFFF) << 32) | (low & 0xFFFFFFFF)
        if not v.get("unsigned") and n >= 1 << 63:
            n -= 1 << 64
        return n
    return as_int(v)


def otlp_id(v: Any) -> Any:
    """A trace or span id as hex text: OTLP JSON's hex string, or a Node.js Buffer `{"type": "Buffer", "data":
    [bytes]}` (protobuf.js output); other values unchanged."""
    if isinstance(v, dict) and v.get("type") == "Buffer" and isinstance(v.get("data"), list):
        try:
            return bytes(v["data"]).hex()
        except (TypeError, ValueError):
            return None
    return v
