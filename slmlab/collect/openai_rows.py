"""Chat-completions request/response pairs as call rows: `chat_completion_row`, shared by the `openai`
and `openai_batch` readers (and the constants the `openai` fast path mirrors, `slmlab.collect.openai_fast`).

Usage:
    >>> row = chat_completion_row({"messages": [{"role": "user", "content": "hi"}]},
    ...     {"id": "c1", "choices": [{"message": {"content": "hello"}}]}, {})
    >>> row["call_id"], row["response_text"]
    ('c1', 'hello')
"""

from __future__ import annotations

from typing import Any

from slmlab.collect.record import BadRecord
from slmlab.collect.values import as_float, as_int, openai_tool_calls, require_messages, span_ms, to_json

_META_SESSION = ("session_id", "conversation_id", "trace_id", "thread_id")
_META_AGENT = ("agent", "agent_name", "agent_id")
# Request keys that are generation parameters worth keeping in metadata.
_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "tool_choice",
    "response_format",
    "seed",
)


def _first(d: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        v = d.get(k)
        if v is not None and v != "":
            return v
    return None


def _error_text(err: Any) -> str | None:
    if err is None or err is False or err == "":
        return None
    if isinstance(err, dict):
        return str(err.get("message") or to_json(err))
    return str(err)


class _ToolsCache:
    """Serialise `tools` once per distinct value: agents send the same schemas with every call."""

    def __init__(self) -> None:
        self.obj: Any = None
        self.text: str | None = None

    def __call__(self, tools: Any) -> str | None:
        if not tools:
            return None
        if tools is self.obj:
            return self.text
        if tools == self.obj:  # deep equality in C is far cheaper than json.dumps
            self.obj = tools  # an equal value: the next call of the same object is an identity hit
            return self.text
        self.obj, self.text = tools, to_json(tools)
        return self.text


def chat_completion_row(
    request: dict[str, Any],
    response: dict[str, Any] | None,
    wrapper: dict[str, Any],
    tools_json: Any = to_json,
) -> dict[str, Any]:
    """A call row from an OpenAI request body, its chat-completion response and the proxy's extra keys.

    Shared by `openai` and `openai_batch`. Raises `BadRecord` on missing or mistyped required fields.
    """
    if not isinstance(request, dict):
        raise BadRecord(f"request is {type(request).__name__}, expected an object")
    messages = require_messages(request.get("messages"), "request.messages")
    meta_in = wrapper.get("metadata") if isinstance(wrapper.get("metadata"), dict) else {}
    err = _error_text(wrapper.get("error"))
    status_val = wrapper.get("status")
    if (
        isinstance(status_val, int)
        and status_val >= 400
        or isinstance(status_val, str)
        and status_val.lower()
        in (
            "error",
            "failed",
            "failure",
        )
    ):
        err = err or f"status {status_val}"
    text = None
    tool_calls: list[dict[str, Any]] = []
    finish = None
    usage: dict[str, Any] = {}
    resp_id = resp_model = created = None
    if response is None:
        if err is None:
            raise BadRecord("no response (and no error) for this request")
    else:
        if not isinstance(response, dict):
            raise BadRecord(f"response is {type(response).__name__}, expected an object")
        choices = response.get("choices")
        resp_err = _error_text(response.get("error"))
        if not isinstance(choices, list) or not choices:
            if err is None and resp_err is None:
                raise BadRecord("response has no choices")
            err = err or resp_err
        else:
            choice = choices[0]
            if not isinstance(choice, dict) or not isinstance(choice.get("message", {}), dict):
                raise BadRecord("response.choices[0].message is not an object")
            msg = choice.get("message") or {}
            text = msg.get("content")
            if text is not None and not isinstance(text, str):
                text = to_json(text)
            tool_calls = openai_tool_calls(msg.get("tool_calls"))
            if not tool_calls and isinstance(msg.get("function_call"), dict):
                tool_calls = openai_tool_calls([msg["function_call"]])
            finish = choice.get("finish_reason")
        usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
        resp_id, resp_model, created = response.get("id"), response.get("model"), response.get("created")
    details = (
        usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    )
    model = resp_model or request.get("model") or wrapper.get("model") or "unknown"
    session = _first(meta_in, _META_SESSION) or _first(wrapper, _META_SESSION)
    agent = _first(meta_in, _META_AGENT) or _first(wrapper, _META_AGENT) or "agent"
    latency = as_float(_first(wrapper, ("latency_ms", "duration_ms")))
    if latency is None and wrapper.get("start_time") is not None:
        latency = span_ms(wrapper.get("start_time"), wrapper.get("end_time"))
    timestamp = wrapper.get("timestamp") or wrapper.get("start_time") or created
    task_label = wrapper.get("workload_id") or wrapper.get("task_label") or meta_in.get("task_label")
    extra: dict[str, Any] = {}
    for k, v in meta_in.items():
        if k not in _META_AGENT and k not in ("session_id", "step", "task_label"):
            extra[k] = v
    for k in ("client_id", "user", "trace_id", "conversation_id", "log_type"):
        if wrapper.get(k) is not None:
            extra[k] = wrapper[k]
    for k in _PARAMS:
        if request.get(k) is not None:
            extra[k] = request[k]
    if request.get("model") and resp_model and request["model"] != resp_model:
        extra["requested_model"] = request["model"]
    tc_json = to_json(tool_calls) if tool_calls else None
    return {
        "call_id": str(resp_id) if resp_id is not None else None,
        "session_id": str(session) if session is not None else None,
        "parent_id": meta_in.get("parent_id"),
        "step": as_int(meta_in.get("step", wrapper.get("step"))),
        "agent": str(agent),
        "timestamp": timestamp,
        "model": str(model),
        "messages": to_json(messages),
        "tools": tools_json(request.get("tools") or request.get("functions")),
        "response_text": text if text != "" or not tool_calls else None,
        "response_tool_calls": tc_json,
        "tool_name": tool_calls[0]["name"] if tool_calls else None,
        "n_tool_calls": len(tool_calls),
        "input_tokens": as_int(usage.get("prompt_tokens", usage.get("input_tokens"))),
        "cached_input_tokens": as_int(details.get("cached_tokens")),
        "output_tokens": as_int(usage.get("completion_tokens", usage.get("output_tokens"))),
        "latency_ms": latency,
        "cost_usd": as_float(_first(wrapper, ("cost_usd", "cost", "response_cost"))),
        "status": "error" if err else "ok",
        "error": err,
        "finish_reason": finish,
        "task_label": str(task_label) if task_label is not None else None,
        "metadata": to_json(extra) if extra else None,
    }
