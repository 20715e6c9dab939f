"""The column-wise fast path of the `openai` reader (`OpenAIReader.fast_rows`): lines of the common shape
parsed with orjson, repeated tool schemas spliced out by their raw bytes, straight into row lists; every
other line is left (None) to the per-record path, which gives the same table (tests/test_collect_fastpath.py).

Usage:
    >>> _RepeatedTools().loads(b'{"a": 1}')
    {'a': 1}
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from slmlab.collect.openai_rows import _META_AGENT, _META_SESSION, _PARAMS, _first, _ToolsCache
from slmlab.collect.values import as_float, as_int, span_ms, to_json

_TOOLS_KEY = b'"tools":'
# Stands in for a spliced-out `tools` value: a JSON string of four NULs. A NUL can only be written
# `\u0000`, so a line holding that value has the 24 bytes `\u0000\u0000\u0000\u0000`; such a line is
# never spliced, and finding the stand-in at request.tools proves the splice landed there.
_NUL_ESCAPE = b"\\u0000" * 4  # a 24-byte needle: searched far faster than one escape
_SPLICED = b'"' + _NUL_ESCAPE + b'"'
_SPLICED_VALUE = "\x00" * 4
_META_DROP = frozenset((*_META_AGENT, "session_id", "step", "task_label"))
_WRAPPER_EXTRA = ("client_id", "user", "trace_id", "conversation_id", "log_type")
_LATENCY_KEYS = ("latency_ms", "duration_ms")
_COST_KEYS = ("cost_usd", "cost", "response_cost")
_ERROR_STATUSES = ("error", "failed", "failure")
_EMPTY: dict[str, Any] = {}
_PARAMS_BY_SHAPE: dict[tuple[str, ...], tuple[str, ...]] = {}  # request keys -> the _PARAMS among them
_DECODER = json.JSONDecoder()
# Wrapper keys the common line does not have: when none is present, their lookups are skipped.
_RARE_WRAPPER = frozenset(("error", "status", "workload_id", "task_label", *_WRAPPER_EXTRA, *_COST_KEYS))


# orjson and json read every JSON text to the same values, but for two things. Integers beyond 64 bits
# become floats in orjson (|x| >= 2**63), and orjson writes floats below 1e-4 as `0.00001` / `1e-9` where
# `json` (hence `to_json`, the careful path) writes `1e-05` / `1e-09`. The fast path therefore leaves a line
# with such a huge float to the per-record path, and writes values holding a float with `to_json`.
_HUGE = 2.0**63


def _json_text(obj: Any) -> str | None:
    """`to_json(obj)` for a value parsed by orjson, or None (leave the line) if it holds a huge float."""
    b = orjson.dumps(obj)
    i = b.find(b"e+")  # orjson and json write floats >= 1e16 as `1e+16`
    while i > 0:
        if 48 <= b[i - 1] <= 57 and abs(float(_number_before(b, i))) >= _HUGE:
            return None
        i = b.find(b"e+", i + 2)
    if b"0.0000" in b or _float_exponent(b, b"e-"):
        return to_json(obj)
    return b.decode()


def _number_before(b: bytes, i: int) -> bytes:
    """The number literal ending in the exponent that starts at `b[i]` (`1.5e+30` for `...1.5e+30,...`)."""
    j = i
    while j and b[j - 1] in b"0123456789.-":
        j -= 1
    k = i + 2
    while k < len(b) and 48 <= b[k] <= 57:
        k += 1
    return b[j:k]


def _float_exponent(b: bytes, marker: bytes) -> bool:
    i = b.find(marker)
    while i > 0:
        if 48 <= b[i - 1] <= 57:
            return True
        i = b.find(marker, i + 2)
    return False


# Types whose orjson text is json's: no float, no container that may hold one (ints are exact in orjson).
_PLAIN = frozenset((str, int, bool, type(None)))
# Types whose str() is the same whichever parser read them.
_TEXTUAL = frozenset((str, int, type(None)))


def _flat(d: dict[str, Any]) -> bool:
    """True if every value of `d` is a str, an int, a bool or None (see `_PLAIN`)."""
    for v in d.values():
        if v.__class__ not in _PLAIN:
            return False
    return True


class _RepeatedTools:
    """Parse a line with orjson, splicing out a `request.tools` value whose raw bytes were seen before.

    Agents send the same tool schemas with every call and they are often half of a line; parsing them again
    and again is most of the parse time. The bytes after `"tools":` are compared (memcmp) with the few
    values seen last; on a match the line is parsed with `_SPLICED` in their place and the cached object
    is put back, but only if that stand-in is found at `request.tools`: then those bytes were that value.
    """

    MAX_VALUES = 8

    def __init__(self) -> None:
        self.values: list[tuple[bytes, Any]] = []  # (raw bytes after `"tools":`, orjson.loads of them)
        self.hits = 0
        self.tries = 0

    def loads(self, line: bytes) -> Any:
        p = line.find(_TOOLS_KEY)
        if p < 0:
            return orjson.loads(line)
        start = p + len(_TOOLS_KEY)
        for raw, obj in self.values:
            if line.startswith(raw, start):
                if _NUL_ESCAPE not in line:
                    try:
                        rec = orjson.loads(line[:start] + _SPLICED + line[start + len(raw) :])
                    except orjson.JSONDecodeError:
                        break
                    req = rec.get("request") if type(rec) is dict else None
                    if type(req) is dict and req.get("tools") == _SPLICED_VALUE:
                        req["tools"] = obj
                        self.hits += 1
                        return rec
                break
        rec = orjson.loads(line)
        if self.tries < 16 or self.hits >= 8 * self.tries:  # stop trying when values do not repeat
            self.tries += 1
            self._learn(line, rec)
        return rec

    def _learn(self, line: bytes, rec: Any) -> None:
        req = rec.get("request") if type(rec) is dict else None
        tools = req.get("tools") if type(req) is dict else None
        if not tools or type(tools) not in (list, dict):
            return
        text = line.decode("utf-8")  # orjson accepted it: valid UTF-8
        start = text.find('"tools":') + len('"tools":')  # the same occurrence as the bytes' find
        i = start
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        try:
            _, end = _DECODER.raw_decode(text, i)
            raw = text[start:end].encode("utf-8")
            obj = orjson.loads(raw)
        except ValueError:
            return
        if obj != tools or any(raw == seen for seen, _ in self.values):
            return  # another key named "tools" came first (a splice there would never verify), or known
        self.values.insert(0, (raw, obj))
        del self.values[self.MAX_VALUES :]


def _fast_row(
    rec: Any, line: int, tools_json: _ToolsCache, file_name: str, source_file: str, fmt: str
) -> list[Any] | None:
    """`OpenAIReader.calls` for the common shape, as one row list in CALL_SCHEMA order; None otherwise.

    Answers only lines with a request object, a response object with choices, no `error`, no error
    `status`, string content, well-formed tool calls and no huge float (see `_HUGE`); every value it writes
    is computed exactly as `chat_completion_row` computes it from `json.loads` of the line
    (tests/test_collect_fastpath.py checks that the two tables are equal).
    """
    if type(rec) is not dict:
        return None
    request = rec.get("request")
    response = rec.get("response")
    if type(request) is not dict or type(response) is not dict:
        return None
    common = _RARE_WRAPPER.isdisjoint(rec)
    if not common:
        if rec.get("error") is not None:
            return None
        status = rec.get("status")
        if status is not None and not (
            (type(status) is int and status < 400)
            or (type(status) is str and status.lower() not in _ERROR_STATUSES)
        ):
            return None
    messages = request.get("messages")
    if type(messages) is not list:
        return None
    flat = True
    for m in messages:
        if type(m) is not dict:
            return None
        if flat:
            for v in m.values():
                if v.__class__ not in _PLAIN:
                    flat = False
                    break
    if flat:
        messages_json = orjson.dumps(messages).decode()
    else:
        messages_json = _json_text(messages)
        if messages_json is None:
            return None
    choices = response.get("choices")
    if type(choices) is not list or not choices:
        return None
    choice = choices[0]
    if type(choice) is not dict:
        return None
    msg = choice.get("message")
    if type(msg) is not dict:
        return None
    text = msg.get("content")
    if text is not None and type(text) is not str:
        return None
    finish = choice.get("finish_reason")
    if finish is not None and type(finish) is not str:
        return None
    raw_calls = msg.get("tool_calls")
    if raw_calls:
        if type(raw_calls) is not list:
            return None
        tool_calls = []
        for tc in raw_calls:
            if type(tc) is not dict:
                return None
            fn = tc.get("function")
            if type(fn) is not dict:
                return None
            name = fn.get("name")
            if type(name) is not str:
                return None
            tc_id = tc.get("id")
            if tc_id is not None and type(tc_id) is not str and type(tc_id) is not int:
                return None
            args = fn.get("arguments")
            if type(args) is not str:  # args_json: objects (Data Flywheel) are serialised, None is "{}"
                args = fn.get("arguments", fn.get("args", fn.get("input")))
                if args is None:
                    args = "{}"
                elif type(args) is not str:
                    args = _json_text(args)
                    if args is None:
                        return None
            try:  # arguments that are not JSON are flagged by the per-record path
                orjson.loads(args)
            except orjson.JSONDecodeError:
                return None
            tool_calls.append({"id": tc_id, "name": name, "arguments": args})
        tc_json, tool_name, n_calls = (
            orjson.dumps(tool_calls).decode(),
            tool_calls[0]["name"],
            len(tool_calls),
        )
        if text == "":
            text = None  # "" next to a tool call is no text answer
    elif msg.get("function_call") is not None:
        return None
    else:
        tc_json = tool_name = None
        n_calls = 0
    usage = response.get("usage")
    if type(usage) is not dict:
        usage = _EMPTY
    details = usage.get("prompt_tokens_details")
    if type(details) is not dict:
        details = _EMPTY
    meta = rec.get("metadata")
    if type(meta) is not dict:
        meta = _EMPTY
    resp_model = response.get("model")
    req_model = request.get("model")
    model = resp_model or req_model or rec.get("model") or "unknown"
    session = meta.get("session_id")
    if not session:
        session = _first(meta, _META_SESSION) or _first(rec, _META_SESSION)
    agent = meta.get("agent")
    if not agent:
        agent = _first(meta, _META_AGENT) or _first(rec, _META_AGENT) or "agent"
    parent = meta.get("parent_id")
    resp_id = response.get("id")
    # Values that become text: str() of a float would differ where orjson read a huge integer as a float.
    if not (
        model.__class__ in _TEXTUAL
        and session.__class__ in _TEXTUAL
        and agent.__class__ in _TEXTUAL
        and parent.__class__ in _TEXTUAL
        and resp_id.__class__ in _TEXTUAL
    ):
        return None
    step = meta["step"] if "step" in meta else rec.get("step")
    if type(step) is not int:
        if type(step) is float and abs(step) >= _HUGE:
            return None
        step = as_int(step)
    n_in = usage["prompt_tokens"] if "prompt_tokens" in usage else usage.get("input_tokens")
    n_out = usage["completion_tokens"] if "completion_tokens" in usage else usage.get("output_tokens")
    n_cached = details.get("cached_tokens")
    if (
        type(n_in) is not int
        or type(n_out) is not int
        or (n_cached is not None and type(n_cached) is not int)
    ):
        for v in (n_in, n_out, n_cached):
            if type(v) is float and abs(v) >= _HUGE:
                return None
        n_in, n_out, n_cached = as_int(n_in), as_int(n_out), as_int(n_cached)
    latency = rec.get("latency_ms")
    if type(latency) is not float:
        latency = _first(rec, _LATENCY_KEYS)
        if type(latency) is float and abs(latency) >= _HUGE:
            return None
        latency = as_float(latency)
        if latency is None and rec.get("start_time") is not None:
            latency = span_ms(rec.get("start_time"), rec.get("end_time"))
    elif abs(latency) >= _HUGE:
        return None
    timestamp = rec.get("timestamp") or rec.get("start_time") or response.get("created")
    if type(timestamp) is float and abs(timestamp) >= _HUGE:
        return None
    extra: dict[str, Any] = {}
    if meta and not _META_DROP.issuperset(meta):
        for k, v in meta.items():
            if k not in _META_DROP:
                extra[k] = v
    if common:
        task_label = meta.get("task_label")
        cost = None
    else:
        task_label = rec.get("workload_id") or rec.get("task_label") or meta.get("task_label")
        cost = _first(rec, _COST_KEYS)
        if type(cost) is float and abs(cost) >= _HUGE:
            return None
        cost = as_float(cost)
        for k in _WRAPPER_EXTRA:
            v = rec.get(k)
            if v is not None:
                extra[k] = v
    if task_label is not None and type(task_label) is not str and type(task_label) is not int:
        return None
    shape = tuple(request)  # the generation parameters this request shape has, in _PARAMS order
    params = _PARAMS_BY_SHAPE.get(shape)
    if params is None:
        params = tuple(k for k in _PARAMS if k in request)
        if len(_PARAMS_BY_SHAPE) < 1024:
            _PARAMS_BY_SHAPE[shape] = params
    for k in params:
        v = request[k]
        if v is not None:
            extra[k] = v
    if req_model and resp_model and req_model != resp_model:
        extra["requested_model"] = req_model
    if not extra:
        extra_json = None
    elif _flat(extra):
        extra_json = orjson.dumps(extra).decode()
    else:
        extra_json = _json_text(extra)
        if extra_json is None:
            return None
    call_id = f"{file_name}:{line}" if resp_id is None else str(resp_id)
    tools = request.get("tools") or request.get("functions")
    # `tools_json(tools)`, with its cache hit (the same spliced object, line after line) checked inline.
    tools_text = tools_json.text if tools is tools_json.obj and tools else tools_json(tools)
    return [
        call_id,
        call_id if session is None else str(session),
        parent,
        step,
        str(agent),
        timestamp,
        str(model),
        messages_json,
        tools_text,
        text,
        tc_json,
        tool_name,
        n_calls,
        n_in,
        n_cached,
        n_out,
        None,  # tokens_estimated
        latency,
        cost,
        None,  # cost_estimated
        "ok",
        None,  # error
        finish,
        None if task_label is None else str(task_label),
        None,  # reward
        fmt,
        source_file,
        line,
        extra_json,
    ]
