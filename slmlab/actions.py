"""Which action a call took: its structured tool call, or a tool call the model wrote as text.

Many agents call their tools in the response text rather than through the API's `tool_calls`: ReAct
agents write `Action: search` / `Action Input: {...}`, REST harnesses write `GET url?k=v` or `POST url`
followed by a JSON body, planners write `FINISH([...])`, JSON agents answer `{"action": ..., "action_input":
...}`, and any of these may sit in a code fence. Offline, `parse_text_action` recognizes these and returns
the action's name and arguments; the raw text is kept untouched in the call table (`response_text`), so a
model fine-tuned on the call still learns to write the text its harness parses.

This module is the one definition of "which action did this call take" (`action_of`, `tool_calls_of`);
`slmlab.schema.action_expr` and `slmlab.schema.parse_tool_calls` use it, so clustering, splits, SFT
targets and the metrics treat a text action like a structured tool call.

| format | example | name | arguments |
|---|---|---|---|
| `react` | `Action: search[ramen]`, `Action: search` + `Action Input: {"q": 1}` | `search` | `{"input": "ramen"}` / `{"q": 1}` |
| `http` | `GET https://api.x.com/users/42?fields=a` | `GET api.x.com/users/{id}` | `{"fields": "a"}` (+ the JSON body of a POST) |
| `call` | `FINISH(["a", "b"])`, `search(q="x", k=3)` | `FINISH` / `search` | `{"args": [["a", "b"]]}` / `{"q": "x", "k": 3}` |
| `json` | `{"action": "lookup", "action_input": {"id": 3}}` | `lookup` | `{"id": 3}` |

A ReAct `Final Answer:` (and a JSON action named "Final Answer") is a reply, not a tool call.

Usage:
    >>> from slmlab.actions import action_of, parse_text_action
    >>> parse_text_action("Thought: need the user.\\nAction: get_user\\nAction Input: {\\"id\\": 7}").name
    'get_user'
    >>> action_of(None, 'GET /orders/991?expand=items')
    'GET /orders/{id}'
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# The action of a text answer (no tool call, structured or written): the same label as `schema.TEXT_ACTION`
# (defined here, the earliest module that needs it; schema re-exports it).
TEXT_ACTION = "respond"

HTTP_VERBS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
_FINAL_NAMES = {"final answer", "final_answer", "finalanswer"}

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[ \t]*\n(.*?)```", re.S)
_REACT_ACTION = re.compile(r"^[ \t>*]*Action[ \t]*(?:\d+[ \t]*)?:[ \t]*(.+?)[ \t]*$", re.M | re.I)
_REACT_INPUT = re.compile(r"^[ \t>*]*Action[ \t]*Input[ \t]*(?:\d+[ \t]*)?:[ \t]*", re.M | re.I)
_REACT_FINAL = re.compile(r"^[ \t>*]*Final[ \t]*Answer[ \t]*:", re.M | re.I)
_REACT_STOP = re.compile(r"^[ \t>*]*(?:Observation|Thought|Action)[ \t]*(?:\d+[ \t]*)?:", re.M | re.I)
_HTTP_LINE = re.compile(
    r"^[ \t]*(" + "|".join(HTTP_VERBS) + r")[ \t]+(\S+)[ \t]*(?:HTTP/[\d.]+)?[ \t]*$", re.M
)
_CALL = re.compile(r"^([A-Za-z_][\w.]*)\((.*)\)\s*;?$", re.S)
_BRACKET = re.compile(r"^([A-Za-z_][\w.]*)\[(.*)\]$", re.S)
_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F-]{27,}|[0-9a-fA-F]{16,}|[A-Za-z]{0,4}[-_]?\d{3,}[\w-]*)$"
)
_NAME_KEYS = ("action", "tool", "tool_name", "function", "name", "api", "command")
_ARG_KEYS = ("action_input", "tool_input", "arguments", "args", "parameters", "params", "input", "kwargs")


@dataclass(frozen=True)
class TextAction:
    """One tool call written in a response's text.

    Attributes:
        name: the action's name ("search", "GET api.x.com/users/{id}", "FINISH").
        arguments: its arguments as a JSON-ready dict (positional ones under "args", a bare string
            under "input").
        format: "react", "http", "call" or "json".
        raw: the span of text the call was read from.
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    format: str = "call"
    raw: str = ""

    def as_tool_call(self) -> dict[str, Any]:
        """The call in `response_tool_calls` shape: `{"id", "name", "arguments" (JSON string), "format"}`."""
        return {
            "id": None,
            "name": self.name,
            "arguments": json.dumps(self.arguments, ensure_ascii=False, sort_keys=True),
            "format": f"text:{self.format}",
        }


def _loads(text: str) -> Any:
    """JSON, else a Python literal (single quotes, True/None), else None."""
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _first_json_value(text: str) -> tuple[Any, int] | None:
    """The first JSON object/array at the start of `text` (after whitespace) and where it ends."""
    stripped = text.lstrip()
    if stripped[:1] not in ("{", "["):
        return None
    offset = len(text) - len(stripped)
    try:
        value, end = json.JSONDecoder().raw_decode(stripped)
    except json.JSONDecodeError:
        return None
    return value, offset + end


def _as_arguments(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        parsed = _loads(value) if value.strip()[:1] in ("{", "[") else None
        if isinstance(parsed, dict):
            return parsed
        return {"input": value}
    return {"input": value}


def _call_arguments(inside: str) -> dict[str, Any] | None:
    """Arguments of `name(inside)`: keyword ones by name, positional ones under "args"; None if unparsable."""
    inside = inside.strip()
    if not inside:
        return {}
    try:
        node = ast.parse(f"f({inside})", mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(node, ast.Call):
        return None
    out: dict[str, Any] = {}
    try:
        args = [ast.literal_eval(a) for a in node.args]
        for kw in node.keywords:
            if kw.arg is None:
                return None
            out[kw.arg] = ast.literal_eval(kw.value)
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
        # Not literals (a variable, an expression): keep the source text of each argument.
        args = [ast.get_source_segment(f"f({inside})", a) for a in node.args]
        out = {kw.arg: ast.get_source_segment(f"f({inside})", kw.value) for kw in node.keywords if kw.arg}
    if args:
        out["args"] = args
    return json.loads(json.dumps(out, default=str))


def _http_name(verb: str, url: str) -> tuple[str, dict[str, Any]]:
    parts = urlsplit(url if "://" in url or url.startswith("/") else "//" + url)
    segments = [("{id}" if _ID_SEGMENT.match(s) else s) for s in parts.path.split("/")]
    path = "/".join(segments).rstrip("/") or "/"
    host = parts.netloc.lower()
    return f"{verb} {host}{path}", dict(parse_qsl(parts.query, keep_blank_values=True))


def _react(text: str) -> TextAction | None:
    match = _REACT_ACTION.search(text)
    if not match:
        return None
    final = _REACT_FINAL.search(text)
    if final and final.start() < match.start():
        return None
    head = match.group(1).strip().strip("`*").strip()
    bracket = _BRACKET.match(head) or _CALL.match(head)
    if bracket:
        name, inside = bracket.group(1), bracket.group(2)
        args = _as_arguments(inside) if bracket.re is _BRACKET else (_call_arguments(inside) or {})
    else:
        name, args = head.split()[0] if head.split() else "", {}
        # The input follows on an `Action Input:` line, up to the next Observation/Thought/Action line.
        after = text[match.end() :]
        inp = _REACT_INPUT.search(after)
        if inp and not _REACT_STOP.search(after[: inp.start()]):
            rest = after[inp.end() :]
            value = _first_json_value(rest)
            if value is not None:
                args = _as_arguments(value[0])
            else:
                stop = _REACT_STOP.search(rest)
                args = _as_arguments(rest[: stop.start() if stop else len(rest)].strip().strip("`"))
    name = name.strip().strip("`'\"")
    if not name or name.lower() in _FINAL_NAMES or not re.match(r"^[\w.:/-]+$", name):
        return None
    return TextAction(name, args, "react", text[match.start() : match.end()].strip())


def _http(text: str) -> TextAction | None:
    match = _HTTP_LINE.search(text)
    if not match:
        return None
    verb, url = match.group(1), match.group(2)
    if not (url.startswith("/") or "://" in url or re.match(r"^[\w-]+(\.[\w-]+)+(/|$)", url)):
        return None
    name, args = _http_name(verb, url)
    body = _first_json_value(text[match.end() :])
    raw_end = match.end()
    if body is not None:
        raw_end += body[1]
        if isinstance(body[0], dict):
            args = {**args, **body[0]}
        else:
            args = {**args, "body": body[0]}
    return TextAction(name, args, "http", text[match.start() : raw_end].strip())


def _json_action(value: Any, raw: str) -> TextAction | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):  # {"function": {"name", "arguments"}}
        inner = value["function"]
        if isinstance(inner.get("name"), str):
            return TextAction(inner["name"], _as_arguments(inner.get("arguments")), "json", raw)
    for key in _NAME_KEYS:
        name = value.get(key)
        if not isinstance(name, str) or not name.strip():
            continue
        # "name" alone names many things (a person, a product): it counts only beside an arguments key.
        arg_key = next((k for k in _ARG_KEYS if k in value), None)
        if key == "name" and arg_key is None:
            continue
        if name.strip().lower() in _FINAL_NAMES:
            return None
        if len(name) > 80 or not re.match(r"^[\w.:/ -]+$", name.strip()):
            continue
        return TextAction(name.strip(), _as_arguments(value.get(arg_key) if arg_key else None), "json", raw)
    return None


def _call(text: str) -> TextAction | None:
    match = _CALL.match(text.strip())
    if not match:
        return None
    name = match.group(1)
    if name.split(".")[0] in ("print", "return", "if", "for", "while", "def", "class", "import"):
        return None
    args = _call_arguments(match.group(2))
    if args is None:
        return None
    return TextAction(name, args, "call", text.strip())


def _candidates(text: str) -> list[str]:
    """Spans that may be a whole call: the text, each fenced block, and the last line after prose."""
    spans = [text.strip()]
    spans += [body.strip() for _, body in _FENCE.findall(text)]
    unfenced = _FENCE.sub("", text).strip()
    lines = [ln for ln in unfenced.splitlines() if ln.strip()]
    if len(lines) > 1:
        spans.append(lines[-1].strip())
    return [s for s in spans if s]


def parse_text_action(text: str | None, known_tools: set[str] | None = None) -> TextAction | None:
    """The tool call written in a response's text, or None for a plain reply.

    Recognizes, in this order: a ReAct `Action:` (with `Action Input:` or `tool[input]`), an HTTP-verb line
    (`GET url?k=v`, `POST url` + JSON body), a JSON object with a tool/action key, and a `name(args)` call
    that is the whole response, a fenced block, or the last line after some prose; code fences around any
    of these are looked into.

    Args:
        text: the response text.
        known_tools: where the offered tools are known, a `name(args)` or JSON action must name one of
            them (case-insensitive), which keeps code and prose from reading as calls.

    Example:
        >>> parse_text_action('POST https://api.shop.io/v2/carts/77/items\\n{"sku": "A1", "qty": 2}').arguments
        {'sku': 'A1', 'qty': 2}
        >>> parse_text_action('FINISH(["Paris", "Rome"])').name, parse_text_action("Thanks, done!")
        ('FINISH', None)
    """
    if not text or not text.strip():
        return None
    known = {t.lower() for t in known_tools} if known_tools else None
    for parser in (_react, _http):
        found = parser(text)
        if found is not None:
            return found
    for span in _candidates(text):
        if span[:1] in ("{", "["):
            value = _loads(span)
            found = _json_action(value, span)
        else:
            found = _call(span)
        if found is not None and (known is None or found.name.lower() in known):
            return found
    return None


def text_tool_calls(text: str | None, known_tools: set[str] | None = None) -> list[dict[str, Any]]:
    """The text action of `text` in `response_tool_calls` shape (a list of 0 or 1 calls).

    Example:
        >>> text_tool_calls("Action: lookup[order 5]")[0]["arguments"]
        '{"input": "order 5"}'
    """
    found = parse_text_action(text, known_tools)
    return [found.as_tool_call()] if found is not None else []


def tool_calls_of(tool_calls_json: str | None, response_text: str | None = None) -> list[dict[str, Any]]:
    """A call's tool calls: the structured ones when logged, else the one written in its text (if any).

    Example:
        >>> tool_calls_of(None, "GET /weather?city=Oslo")[0]["name"]
        'GET /weather'
    """
    calls = json.loads(tool_calls_json) if tool_calls_json else []
    if calls:
        return calls
    return text_tool_calls(response_text)


def action_of(tool_name: str | None, response_text: str | None = None) -> str:
    """The action a call took: its first structured tool, else its text action, else `TEXT_ACTION`.

    Example:
        >>> action_of("get_order", None), action_of(None, "Action: search[x]"), action_of(None, "Hello!")
        ('get_order', 'search', 'respond')
    """
    if tool_name:
        return tool_name
    found = parse_text_action(response_text)
    return found.name if found is not None else TEXT_ACTION


def actions_of(tool_names: list[str | None], response_texts: list[str | None]) -> list[str]:
    """`action_of` over two columns (what `schema.action_expr` maps over a frame)."""
    return [action_of(t, r) for t, r in zip(tool_names, response_texts, strict=True)]
