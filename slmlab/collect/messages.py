"""Chat messages in the many shapes trace exports store them, read into OpenAI chat form: the prompt
(`prompt_messages`) and the answer (`answer_of`) of one LLM call.

Shapes read (each seen in real exports, see tests/fixtures/logs/README.md):
* OpenAI chat messages and completions (`choices[0].message`), and Responses API items (`message` with
  `output_text` parts, `function_call` with `call_id`, `function_call_output`, `reasoning` skipped);
* LangChain-serialised messages (`{"lc": 1, "id": [..., "AIMessage"], "kwargs"}`, `{type, data}`);
* Vercel AI SDK messages (content parts `text`, `tool-call` `{toolCallId, toolName, args|input}`,
  `tool-result`) and its result object (`{text, toolCalls}`);
* Gemini `contents` / `candidates` (`{role: "user"|"model", parts: [{text}|{functionCall}|
  {functionResponse}]}`); Anthropic `{system, messages}` with `tool_use` blocks;
* OpenTelemetry GenAI messages (`role` + typed `parts`, `slmlab.collect.otlp.parts_message`);
* LlamaIndex `ChatMessage` objects (`blocks: [{block_type: "text", text}]`) and `ChatResponse`
  (`{message, raw}`);
* wrappers: `{messages}`, `{contents}`, `{input, instructions}` (Responses request), LlamaIndex
  `{args: [messages], kwargs}`, a single message object, a plain string.

A list of several answer messages (an agent framework logging one message per tool call, as koog does)
yields every tool call, in order, and the texts joined.

Usage:
    >>> answer_of([{"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}])[1][0]["name"]
    'f'
"""

from __future__ import annotations

from typing import Any

from slmlab.collect.otlp import parts_message
from slmlab.collect.record import BadRecord
from slmlab.collect.shapes import json_value, text_of
from slmlab.collect.values import history_message, openai_tool_calls, to_json

# Content-part types that are tool calls (Anthropic, Vercel AI SDK, OpenAI Responses).
CALL_PARTS = ("tool_use", "tool-call", "function_call")
# Content-part / item types that carry answer text.
TEXT_PARTS = ("text", "output_text", "input_text")

_LC_ROLES = {
    "human": "user",
    "humanmessage": "user",
    "user": "user",
    "ai": "assistant",
    "aimessage": "assistant",
    "aimessagechunk": "assistant",
    "assistant": "assistant",
    "system": "system",
    "systemmessage": "system",
    "tool": "tool",
    "toolmessage": "tool",
    "function": "function",
    "functionmessage": "function",
    "chat": "user",
    "chatmessage": "user",
    "humanmessagechunk": "user",
    "systemmessagechunk": "system",
    "toolmessagechunk": "tool",
    "developer": "system",
}


def lc_message(m: Any) -> dict[str, Any]:
    """One LangChain-serialised, `{type, data}` or plain message as an OpenAI chat message."""
    if isinstance(m, str):
        return {"role": "user", "content": m}
    if not isinstance(m, dict):
        raise BadRecord(f"a message is a {type(m).__name__}, expected an object")
    if m.get("lc") and isinstance(m.get("kwargs"), dict):  # {"lc": 1, "type": "constructor", "id": [...]}
        kind = str((m.get("id") or ["", "HumanMessage"])[-1]).lower()
        body = m["kwargs"]
    elif isinstance(m.get("data"), dict) and "type" in m:  # {"type": "human", "data": {...}}
        kind, body = str(m["type"]).lower(), m["data"]
    else:
        kind, body = str(m.get("role") or m.get("type") or "user").lower(), m
    role = _LC_ROLES.get(kind, body.get("role") or kind)
    if role == "user" and body.get("role") in ("system", "assistant", "tool"):
        role = body["role"]
    content = body.get("content")
    if content is None and isinstance(body.get("blocks"), list):  # LlamaIndex ChatMessage blocks
        texts = [
            str(b.get("text")) for b in body["blocks"] if isinstance(b, dict) and b.get("text") is not None
        ]
        content = "\n".join(texts) if texts else None
    calls = lc_tool_calls(body)
    if isinstance(content, list) and calls:  # tool_use blocks are repeated in tool_calls
        content = [b for b in content if not (isinstance(b, dict) and b.get("type") in CALL_PARTS)] or None
    return history_message(role, content, calls, body)


def lc_tool_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Canonical tool calls of a LangChain message: `tool_calls` (`{name, args, id}`), OpenAI ones in
    `additional_kwargs`, or tool-call content parts (Anthropic `tool_use`, Vercel AI SDK `tool-call`,
    OpenAI Responses `function_call`)."""
    if body.get("tool_calls"):
        return openai_tool_calls(json_value(body["tool_calls"]))
    extra = body.get("additional_kwargs") or {}
    if extra.get("tool_calls"):
        return openai_tool_calls(extra["tool_calls"])
    if extra.get("function_call"):
        return openai_tool_calls([extra["function_call"]])
    content = body.get("content")
    if isinstance(content, list):
        return openai_tool_calls([b for b in content if isinstance(b, dict) and b.get("type") in CALL_PARTS])
    return []


def _gemini_message(m: dict[str, Any]) -> list[dict[str, Any]]:
    """A Gemini `{role, parts: [{text} | {functionCall} | {functionResponse}]}` content as OpenAI messages."""
    texts, calls, out = [], [], []
    for p in m.get("parts") or []:
        if not isinstance(p, dict):
            continue
        fc = p.get("functionCall") or p.get("function_call")
        fr = p.get("functionResponse") or p.get("function_response")
        if isinstance(p.get("text"), str) and not p.get("thought"):
            texts.append(p["text"])
        elif isinstance(fc, dict):
            calls.append({"id": fc.get("id"), "name": fc.get("name"), "arguments": fc.get("args")})
        elif isinstance(fr, dict):
            out.append({"role": "tool", "name": fr.get("name"), "content": to_json(fr.get("response"))})
    role = {"model": "assistant"}.get(str(m.get("role") or "user"), str(m.get("role") or "user"))
    if texts or calls or not out:
        msg = history_message(role, "\n".join(texts) if texts else None, openai_tool_calls(calls), {})
        out.insert(0, msg)
    return out


def _is_gemini(m: Any) -> bool:
    parts = m.get("parts") if isinstance(m, dict) else None
    return isinstance(parts, list) and any(isinstance(p, dict) and "type" not in p for p in parts)


def _responses_item(m: dict[str, Any]) -> dict[str, Any] | None:
    """An OpenAI Responses API input/output item as a chat message (None for reasoning items)."""
    t = m.get("type")
    if t == "function_call":
        return history_message("assistant", None, openai_tool_calls([m]), {})
    if t == "function_call_output":
        out = m.get("output")
        return {
            "role": "tool",
            "tool_call_id": m.get("call_id"),
            "content": out if isinstance(out, str) else to_json(out),
        }
    if t == "reasoning":
        return None
    return None


def _message_list(msgs: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in msgs:
        if isinstance(m, dict) and m.get("type") in ("function_call", "function_call_output", "reasoning"):
            item = _responses_item(m)
            if item is not None:
                out.append(item)
        elif _is_gemini(m):
            out.extend(_gemini_message(m))
        elif isinstance(m, dict) and isinstance(m.get("parts"), list):
            out.extend(parts_message(m))
        else:
            out.append(lc_message(m))
    return out


def prompt_messages(inp: Any, what: str = "input") -> list[dict[str, Any]]:
    """The prompt of one LLM call as OpenAI chat messages, from any of the shapes in the module docstring.

    Raises:
        BadRecord: naming what was found and what was expected.

    Example:
        >>> prompt_messages({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]})
        [{'role': 'user', 'content': 'Hi'}]
    """
    inp = json_value(inp)
    if inp is None:
        raise BadRecord(f"no {what} (expected a message list, a string or an object with messages)")
    if isinstance(inp, str):
        return [{"role": "user", "content": inp}]
    if isinstance(inp, list):
        if not inp:
            raise BadRecord(f"{what} is an empty list (expected messages)")
        if all(isinstance(m, list) for m in inp):  # a batch of prompts: the first is this call's
            return prompt_messages(inp[0], what)
        return _message_list(inp)
    if not isinstance(inp, dict):
        raise BadRecord(f"{what} is a {type(inp).__name__}, expected messages")
    system = inp.get("system") or inp.get("instructions") or inp.get("system_instruction")
    head = (
        [
            {
                "role": "system",
                "content": text_of(json_value(system))
                if not isinstance(system, dict)
                else _gemini_message(system)[0]["content"],
            }
        ]
        if system
        else []
    )
    for key in ("messages", "contents", "input", "prompt", "args", "prompts"):
        if inp.get(key) is not None:
            body = inp[key]
            if key == "args" and isinstance(body, list) and len(body) == 1:
                body = body[0]  # LlamaIndex: args = [messages]
            return head + prompt_messages(body, f"{what}.{key}")
    if "role" in inp or "parts" in inp or inp.get("lc"):
        return head + _message_list([inp])
    if head:
        return head
    raise BadRecord(
        f"{what} is an object with keys {sorted(inp)[:8]}, expected messages (messages, contents, input, "
        "prompt, args or a single {role, content} message)"
    )


def answer_of(out: Any) -> tuple[str | None, list[dict[str, Any]], Any]:
    """(text, canonical tool calls, finish reason) of an LLM call's output, whatever its shape.

    Example:
        >>> answer_of({"role": "assistant", "content": [{"type": "tool-call", "toolCallId": "t1",
        ...     "toolName": "f", "args": {}}]})[1]
        [{'id': 't1', 'name': 'f', 'arguments': '{}'}]
    """
    out = json_value(out)
    if out is None:
        return None, [], None
    if isinstance(out, str):
        return out, [], None
    if isinstance(out, list):
        texts, calls, finish = [], [], None
        for item in out:
            t, c, f = answer_of(item)
            if t:
                texts.append(t)
            calls.extend(c)
            finish = finish or f
        return ("\n".join(texts) if texts else None), calls, finish
    if not isinstance(out, dict):
        return to_json(out), [], None
    if isinstance(out.get("choices"), list):
        ch = out["choices"][0] if out["choices"] and isinstance(out["choices"][0], dict) else {}
        m = ch.get("message") if isinstance(ch.get("message"), dict) else {"content": ch.get("text")}
        t, c, _ = answer_of({"role": "assistant", **m})
        return t, c, ch.get("finish_reason")
    if isinstance(out.get("candidates"), list):  # Gemini response
        cand = out["candidates"][0] if out["candidates"] and isinstance(out["candidates"][0], dict) else {}
        t, c, _ = answer_of(cand.get("content"))
        return t, c, cand.get("finishReason", cand.get("finish_reason"))
    if isinstance(out.get("output"), list):  # Responses API response object
        t, c, _ = answer_of(out["output"])
        return t, c, out.get("status")
    if isinstance(out.get("response"), dict) and not ({"role", "content", "parts"} & set(out)):
        return answer_of(out["response"])  # Vercel AI SDK: {response: {messages | text}}
    if isinstance(out.get("messages"), list) and not ({"role", "content"} & set(out)):
        said = [
            m
            for m in out["messages"]
            if not isinstance(m, dict) or m.get("role") in (None, "assistant", "model")
        ]
        return answer_of(said)
    t = out.get("type")
    if t == "function_call":
        return None, openai_tool_calls([out]), None
    if t == "reasoning":
        return None, [], None
    if t in TEXT_PARTS and isinstance(out.get("text"), str):
        return out["text"], [], None
    if t in CALL_PARTS:
        return None, openai_tool_calls([out]), None
    if "toolCalls" in out or ("text" in out and "role" not in out and "content" not in out):
        calls = openai_tool_calls(json_value(out.get("toolCalls")) or [])
        return out.get("text") or None, calls, out.get("finishReason")
    if _is_gemini(out):
        m = _gemini_message(out)[0]
    elif isinstance(out.get("parts"), list):
        m = parts_message(out)[0]
    elif "message" in out and isinstance(out["message"], dict):
        return answer_of(out["message"])
    else:
        m = lc_message(out)
    return text_of(m.get("content")), openai_tool_calls(m.get("tool_calls")), out.get("finish_reason")
