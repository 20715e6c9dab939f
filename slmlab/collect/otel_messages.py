"""The prompt and answer of one OpenTelemetry GenAI span, in whichever generation of the semantic
conventions it was written (`genai_call`): v1.37+ `gen_ai.input/output.messages`, v1.28-v1.36 message events,
v1.26 `gen_ai.content.prompt/completion` events, OpenLLMetry's flattened `gen_ai.prompt.N.*` attributes.
See `slmlab.collect.otel_genai` for the sources.

Usage:
    >>> genai_call({"gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Hi",
    ...             "gen_ai.completion.0.content": "Hello"}, [])["response_text"]
    'Hello'
"""

from __future__ import annotations

import ast
import re
from typing import Any

from slmlab.collect.otlp import parts_message
from slmlab.collect.record import BadRecord
from slmlab.collect.shapes import json_value, openai_tools, text_of
from slmlab.collect.values import (
    as_int,
    history_message,
    openai_tool_calls,
    response_fields,
    to_json,
    to_openai_tool_calls,
)

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
