"""How a logged call becomes a small model's prompt and target, and how its output becomes a tool call.

Training (`slmlab.specialize`) and evaluation (`slmlab.evaluate`) must render calls identically, so both
use this module. Tool calls use the Hermes / Qwen convention that most open SLMs are trained on:

    <tool_call>
    {"name": "get_user_details", "arguments": {"user_id": "mia_li_3668"}}
    </tool_call>

Agent prompts are long (tau-bench: median 2.7k tokens) and small models on CPU need a budget, so
`fit_messages` keeps what decides the next action: a trimmed system prompt, the tool list, and the latest
turns, dropping older turns first and cutting long tool results in the middle (ids sit at the edges).

Usage:
    >>> render_tool_calls([{"name": "f", "arguments": '{"x": 1}'}])
    '<tool_call>\\n{"name": "f", "arguments": {"x": 1}}\\n</tool_call>'
    >>> parse_response('<tool_call>\\n{"name": "f", "arguments": {"x": 1}}\\n</tool_call>').tool_calls
    [{'name': 'f', 'arguments': '{"x": 1}'}]
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from slmlab.schema import message_text, parse_messages

TOOL_CALL_RE = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def arguments_object(arguments: Any) -> Any:
    """Tool-call arguments as an object: a JSON string is parsed, "" or None is {}, invalid JSON stays text.

    Example:
        >>> arguments_object('{"x": 1}'), arguments_object(None), arguments_object("{oops")
        ({'x': 1}, {}, '{oops')
    """
    if isinstance(arguments, str):
        try:
            return json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            return arguments
    return arguments if arguments is not None else {}


# One definition of "the same tool call", used by the zero-shot probe (step 5) and the metrics (step 7).


def normalize_json(value: Any) -> Any:
    """Canonical form of a JSON value: sorted keys, 1.0 == 1, collapsed whitespace in strings.

    Example:
        >>> normalize_json({"b": 2.0, "a": "  x   y "})
        {'a': 'x y', 'b': 2}
    """
    if isinstance(value, dict):
        return {str(k): normalize_json(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [normalize_json(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        f = float(value)
        if math.isfinite(f) and f == int(f) and abs(f) < 2**53:
            return int(f)
        return round(f, 9)
    if isinstance(value, str):
        return " ".join(value.split())
    return value


def canonical_call(call: dict[str, Any]) -> str:
    """A tool call `{"name", "arguments"}` as one canonical JSON string (for exact comparison).

    Example:
        >>> canonical_call({"name": "f", "arguments": '{"b": 1.0, "a": "x"}'})
        '{"arguments": {"a": "x", "b": 1}, "name": "f"}'
    """
    payload = {"name": call.get("name"), "arguments": normalize_json(arguments_object(call.get("arguments")))}
    return json.dumps(payload, sort_keys=True, ensure_ascii=False)


def calls_exact_match(reference: list[dict[str, Any]], predicted: list[dict[str, Any]]) -> bool:
    """Same multiset of (name, normalized arguments): order of parallel calls does not matter.

    Example:
        >>> calls_exact_match([{"name": "f", "arguments": '{"x": 1}'}], [{"name": "f", "arguments": {"x": 1.0}}])
        True
    """
    return Counter(canonical_call(c) for c in reference) == Counter(canonical_call(c) for c in predicted)


def render_tool_calls(tool_calls: list[dict[str, Any]]) -> str:
    """Render `[{"name", "arguments"}]` (arguments a JSON string or object) as `<tool_call>` blocks."""
    blocks = []
    for call in tool_calls:
        payload = {"name": call.get("name"), "arguments": arguments_object(call.get("arguments"))}
        blocks.append("<tool_call>\n" + json.dumps(payload, ensure_ascii=False) + "\n</tool_call>")
    return "\n".join(blocks)


def render_target(response_text: str | None, tool_calls: list[dict[str, Any]] | None) -> str:
    """The assistant turn a model should produce: its tool calls if any, else its text."""
    if tool_calls:
        return render_tool_calls(tool_calls)
    return response_text or ""


@dataclass
class ParsedResponse:
    """A model's output split into text and tool calls (arguments as canonical JSON strings)."""

    text: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    valid_json: bool = True


def parse_response(output: str) -> ParsedResponse:
    """Split generated text into plain text and `<tool_call>` blocks.

    A block whose JSON does not parse is kept as a tool call named None with `valid_json=False`, so the
    evaluator can count invalid JSON instead of mistaking it for a text answer. A complete JSON object
    whose closing tag was cut by the token limit (`...}}\n</tool`) still counts.

    Example:
        >>> parse_response('<tool_call>\\n{"name": "f", "arguments": {"id": "A1"}}\\n</tool').tool_calls
        [{'name': 'f', 'arguments': '{"id": "A1"}'}]
    """
    calls: list[dict[str, Any]] = []
    valid = True
    for match in TOOL_CALL_RE.finditer(output):
        body = _strip_cut_close_tag(match.group(1).strip())
        try:
            obj = json.loads(body)
            name = obj.get("name") if isinstance(obj, dict) else None
            args = obj.get("arguments", {}) if isinstance(obj, dict) else {}
            args = arguments_object(args)
            calls.append({"name": name, "arguments": json.dumps(args, ensure_ascii=False, sort_keys=True)})
        except (json.JSONDecodeError, AttributeError):
            valid = False
            calls.append({"name": None, "arguments": body})
    text = TOOL_CALL_RE.sub("", output).strip()
    return ParsedResponse(text=text, tool_calls=calls, valid_json=valid)


def _strip_cut_close_tag(body: str) -> str:
    """Drop a trailing prefix of `</tool_call>` (generation stopped inside the closing tag)."""
    cut = body.rfind("<")
    if cut > 0 and "</tool_call>".startswith(body[cut:]) and body[:cut].rstrip().endswith("}"):
        return body[:cut].rstrip()
    return body


def tool_signatures(tools: list[dict[str, Any]] | None) -> str:
    """A compact one-line-per-tool listing of OpenAI tool schemas: `name(arg1, arg2?): description`."""
    lines = []
    for tool in tools or []:
        fn = tool.get("function", tool)
        params = (fn.get("parameters") or {}).get("properties") or {}
        required = set((fn.get("parameters") or {}).get("required") or [])
        args = ", ".join(p if p in required else p + "?" for p in params)
        desc = (fn.get("description") or "").split("\n")[0][:120]
        lines.append(f"{fn.get('name')}({args}): {desc}".rstrip(": "))
    return "\n".join(lines)


def tools_from_calls(tool_calls_json: list[str | None]) -> list[dict[str, Any]]:
    """Infer OpenAI-style tool schemas from logged tool calls, for logs that do not store the schemas.

    Each tool gets the argument names seen in any call; arguments present in every call are required.
    """
    seen: dict[str, dict[str, int]] = {}
    counts: dict[str, int] = {}
    for raw in tool_calls_json:
        for call in json.loads(raw) if raw else []:
            name = call.get("name")
            if not name:
                continue
            counts[name] = counts.get(name, 0) + 1
            args = arguments_object(call.get("arguments"))
            for key in args if isinstance(args, dict) else []:
                seen.setdefault(name, {})[key] = seen.setdefault(name, {}).get(key, 0) + 1
            seen.setdefault(name, {})
    tools = []
    for name in sorted(seen):
        props = {k: {"type": "string"} for k in seen[name]}
        required = [k for k, n in seen[name].items() if n == counts[name]]
        tools.append(
            {
                "type": "function",
                "function": {
                    "name": name,
                    "parameters": {"type": "object", "properties": props, "required": required},
                },
            }
        )
    return tools


def _middle_cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    return text[:half] + " …[cut]… " + text[-half:]


def _to_plain(message: dict[str, Any], max_chars: int) -> dict[str, str]:
    """One logged message as a `{role, content}` pair any chat template accepts."""
    role = message.get("role", "user")
    text = message_text(message)
    if role == "assistant" and message.get("tool_calls"):
        calls = [
            {
                "name": (c.get("function") or c).get("name"),
                "arguments": (c.get("function") or c).get("arguments"),
            }
            for c in message["tool_calls"]
        ]
        text = (text + "\n" if text else "") + render_tool_calls(calls)
    elif role == "assistant" and message.get("function_call"):
        text = (text + "\n" if text else "") + render_tool_calls([message["function_call"]])
    if role in ("tool", "function"):
        name = message.get("name")
        text = f"<tool_response{' name=' + json.dumps(name) if name else ''}>\n{_middle_cut(text, max_chars)}\n</tool_response>"
        role = "user"
    elif role not in ("system", "user", "assistant"):
        role = "user"
    return {"role": role, "content": text}


@dataclass(frozen=True)
class PromptBudget:
    """Limits that keep a long agent prompt inside a small model's context on CPU.

    Attributes:
        max_system_chars: system prompt beyond this is cut in the middle (policies are long and repetitive).
        max_message_chars: a tool result or message beyond this is cut in the middle.
        max_turns: keep at most this many latest non-system messages.
        max_tokens: drop the oldest kept turns until the rendered prompt fits (needs a tokenizer).
        max_evidence_chars: when > 0, ids that occur only in dropped turns (user ids, reservation
            numbers, payment ids: tokens mixing letters and digits) are kept as short snippets in an
            "Earlier in the conversation" note of at most this many characters, so a model can still copy
            an id stated several turns back. 0 keeps the plain latest-turns policy.
    """

    max_system_chars: int = 1200
    max_message_chars: int = 1200
    max_turns: int = 6
    max_tokens: int = 1024
    max_evidence_chars: int = 0


def fit_messages(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    budget: PromptBudget | None = None,
    tokenizer: Any = None,
) -> list[dict[str, str]]:
    """Reduce a logged prompt to plain `{role, content}` messages that fit the budget.

    The system message keeps its head and tail plus the tool list; the latest `max_turns` turns are kept,
    and with a tokenizer the oldest kept turns are dropped until the prompt fits `max_tokens`.
    The result always starts with a system message and ends with the latest turn.
    """
    budget = budget or PromptBudget()
    system = [m for m in messages if m.get("role") == "system"]
    rest = [m for m in messages if m.get("role") != "system"]
    sys_text = _middle_cut("\n".join(message_text(m) for m in system), budget.max_system_chars)
    listing = tool_signatures(tools)
    if listing:
        sys_text = (sys_text + "\n\n" if sys_text else "") + (
            "You can call these tools. To call one, answer with "
            '<tool_call>{"name": ..., "arguments": {...}}</tool_call>\n' + listing
        )
    plain = [_to_plain(m, budget.max_message_chars) for m in rest]
    keep = min(len(plain), budget.max_turns)

    def assemble(k: int) -> list[dict[str, str]]:
        kept = plain[len(plain) - k :] if k else []
        text = sys_text
        if budget.max_evidence_chars > 0:
            note = evidence_note(plain[: len(plain) - k], kept, budget.max_evidence_chars)
            text = (text + "\n\n" if text else "") + note if note else text
        return [{"role": "system", "content": text}] + kept

    if tokenizer is None:
        return assemble(keep)
    while keep > 1 and count_prompt_tokens(assemble(keep), tokenizer) > budget.max_tokens:
        keep -= 1
    return assemble(keep)


# Tokens that look like ids: at least 5 word characters mixing letters (or _) and digits, e.g.
# "mia_li_3668", "4WQ150", "credit_card_7815826", or 5-8 capitals/digits such as the booking code "AQLBTL".
# Plain numbers and ordinary words are not ids.
ID_RE = re.compile(r"\b(?:(?=\w*\d)(?=\w*[A-Za-z])\w{5,}|(?=[0-9]*[A-Z])[A-Z0-9]{5,8})\b")


def evidence_note(dropped: list[dict[str, str]], kept: list[dict[str, str]], max_chars: int) -> str:
    """What the dropped turns held that the next action may need, in at most `max_chars` characters.

    Three kinds of lines, in this order, each only while the budget lasts:

    1. `calls made:` the tool calls of the dropped turns, oldest first, as `name(argument values)`, so the
       model sees which lookups are done.
    2. `not used yet:` ids from *source* messages (dropped messages that earlier calls took ids from, such
       as a user profile listing reservation numbers) that no call has used yet, grouped by the JSON key
       they sit under, in their order there: an agent walking through a list takes the next of these.
    3. snippets around the remaining ids of dropped messages that the kept turns do not show, newest first.

    Example:
        >>> evidence_note([{"role": "user", "content": "my id is mia_li_3668, thanks"}], [], 200)
        'Earlier in the conversation:\\n- user: …my id is mia_li_3668, thanks…'
    """
    if not dropped or max_chars <= 0:
        return ""
    calls_at = [_calls_in(m) for m in dropped + kept]
    values_at = [{v for call in calls for v in _argument_values(call)} for calls in calls_at]
    seen = set(ID_RE.findall(" ".join(m["content"] for m in kept))).union(*values_at)
    lines: list[str] = []
    room = max_chars

    def add(line: str) -> bool:
        nonlocal room
        if len(line) + 1 > room:
            return False
        lines.append(line)
        room -= len(line) + 1
        return True

    made = [call for calls in calls_at[: len(dropped)] for call in calls]
    if made:
        rendered = [f"{c['name']}({', '.join(_argument_values(c))})" for c in made]
        while rendered and not add("- calls made: " + "; ".join(rendered)):
            rendered = rendered[1:]  # keep the newest calls that fit
    later: set[str] = set().union(*values_at[len(dropped) :])  # argument values of calls after message i
    for i in reversed(range(len(dropped))):
        text = dropped[i]["content"]
        if not later & set(ID_RE.findall(text)):
            later |= values_at[i]
            continue
        groups: dict[str, list[str]] = {}
        for match in ID_RE.finditer(text):
            if not _is_json_key(text, match.end()):
                groups.setdefault(_json_key_before(text, match.start()), []).append(match.group(0))
        source = _tool_name(text) or dropped[i]["role"]
        # The list the agent is walking through (most of its ids already used) comes first.
        for key, ids in sorted(groups.items(), key=lambda kv: -len(later & set(kv[1]))):
            fresh = [x for x in dict.fromkeys(ids) if x not in seen]
            seen.update(fresh)
            if fresh:
                add(f"- not used yet ({source}{', ' + key if key else ''}): {', '.join(fresh)}")
        later |= values_at[i]
    for message in reversed(dropped):
        text = message["content"]
        for match in ID_RE.finditer(text):
            if match.group(0) in seen:
                continue
            seen.add(match.group(0))
            snippet = text[max(0, match.start() - 24) : match.end() + 8].replace("\n", " ").strip()
            if not add(f"- {message['role']}: …{snippet}…"):
                break
    return "Earlier in the conversation:\n" + "\n".join(lines) if lines else ""


_KEY_RE = re.compile(r'"(\w+)"\s*:')
_KEY_END_RE = re.compile(r'"\s*:')
_TOOL_NAME_RE = re.compile(r'^<tool_response name="([^"]+)">')


def _calls_in(message: dict[str, str]) -> list[dict[str, Any]]:
    if message["role"] != "assistant" or "<tool_call>" not in message["content"]:
        return []
    return [c for c in parse_response(message["content"]).tool_calls if c["name"]]


def _argument_values(call: dict[str, Any]) -> list[str]:
    args = arguments_object(call.get("arguments"))
    if not isinstance(args, dict):
        return [str(args)]
    return [v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in args.values()]


def _json_key_before(text: str, pos: int) -> str:
    """The nearest JSON key before `pos` (within 120 characters), or ''."""
    keys = _KEY_RE.findall(text[max(0, pos - 120) : pos])
    return keys[-1] if keys else ""


def _is_json_key(text: str, end: int) -> bool:
    return bool(_KEY_END_RE.match(text[end : end + 4]))


def _tool_name(text: str) -> str:
    match = _TOOL_NAME_RE.match(text)
    return match.group(1) if match else ""


def count_prompt_tokens(messages: list[dict[str, str]], tokenizer: Any) -> int:
    """Tokens of `messages` rendered with the tokenizer's chat template and a generation prompt."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return len(ids)


def render_prompt(messages: list[dict[str, str]], tokenizer: Any) -> str:
    """The prompt text for a fitted message list, with the assistant generation prompt appended."""
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


# ------------------------------------------------------------------------- the prompt text of a call
# The one definition of "what a call's prompt says", in the two views the steps use: the last user turn
# (what the agent answers: clustering, the labeller, the drift check) and the latest turns, role-tagged
# (what decides the next action: ICL example retrieval and the prompt-only router). Neither reads the
# response.


def last_user_text(messages_json: str | None) -> str:
    """The text of the last user turn of a call's prompt, else of its last message ("" if empty)."""
    msgs = parse_messages(messages_json)
    for msg in reversed(msgs):
        if msg.get("role") == "user":
            text = message_text(msg)
            if text.strip():
                return text
    return message_text(msgs[-1]) if msgs else ""


def call_prompt_texts(calls: pl.DataFrame, max_chars: int = 1000) -> list[str]:
    """Per call, the text that tells sub-tasks apart: the last user turn (what the agent answers).

    Example:
        >>> calls = pl.DataFrame({"messages": ['[{"role": "user", "content": "hi"}]']})
        >>> call_prompt_texts(calls)
        ['hi']
    """
    return [last_user_text(m)[:max_chars] for m in calls.get_column("messages").to_list()]


def recent_turns_text(messages_json: str | None, last: int = 2, max_chars: int = 1000) -> str:
    """Prompt-only text that decides the next action: the latest `last` non-system messages, role-tagged.

    Used for ICL example retrieval and by the router; never looks at the response.

    Example:
        >>> recent_turns_text('[{"role": "system", "content": "policy"}, {"role": "user", "content": "cancel my trip"}]')
        'user: cancel my trip'
    """
    msgs = [m for m in parse_messages(messages_json) if m.get("role") != "system"][-last:]
    parts = []
    for m in msgs:
        text = message_text(m)
        if m.get("tool_calls"):
            names = [(c.get("function") or c).get("name") for c in m["tool_calls"]]
            text = (text + " " if text else "") + "calls " + " ".join(str(n) for n in names)
        role = m.get("role", "user")
        if role == "tool" and m.get("name"):
            role = f"tool {m['name']}"
        parts.append(f"{role}: {text}")
    out = "\n".join(parts)
    return out if len(out) <= max_chars else out[: max_chars // 2] + " … " + out[-max_chars // 2 :]
