"""Shapes shared by the trace readers (otel_genai, openinference, langfuse, langsmith): tool schemas in
OpenAI form, text out of content parts, JSON text decoded, and agent / session inherited from an ancestor.

Trace formats store the same things several ways: a tool is `{"type": "function", "function": {...}}`
(OpenAI chat), `{"type": "function", "name", "parameters"}` (OTel `gen_ai.tool.definitions`, OpenAI
Responses), `{"name", "input_schema"}` (Anthropic, LangChain's ChatAnthropic); values arrive as objects or as
JSON text (Langfuse's v2 API returns `input`/`output` as strings). The canonical call table wants one form
(`slmlab.schema`): OpenAI chat tool schemas and plain text answers.

Usage:
    >>> openai_tools([{"name": "get_weather", "input_schema": {"type": "object"}}])[0]["function"]["name"]
    'get_weather'
"""

from __future__ import annotations

import json
from typing import Any

from slmlab.collect.record import BadRecord
from slmlab.schema import message_text

# Deepest ancestor chain walked when inheriting a fact (guards against cyclic parent links in bad logs).
MAX_DEPTH = 256


def json_value(v: Any) -> Any:
    """`v` decoded when it is JSON text of an object or a list; anything else unchanged.

    Example:
        >>> json_value('[{"role": "user"}]'), json_value("plain text")
        ([{'role': 'user'}], 'plain text')
    """
    if isinstance(v, str):
        s = v.lstrip()
        if s[:1] in ("{", "["):
            try:
                return json.loads(s)
            except ValueError:
                return v
    return v


def text_of(content: Any) -> str | None:
    """The text of a message content: a string, or the text parts of a part list (OpenAI, Anthropic and
    LangChain blocks all use `{"type": "text", "text": ...}`); None for no content.

    Example:
        >>> text_of([{"type": "text", "text": "It is 14 °C."}, {"type": "tool_use", "name": "x"}])
        'It is 14 °C.'
    """
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return message_text({"content": content})
    if isinstance(content, dict) and isinstance(content.get("text"), str):
        return content["text"]
    return json.dumps(content, ensure_ascii=False, default=str)


def openai_tool(tool: Any) -> Any:
    """One tool definition in OpenAI chat form (`{"type": "function", "function": {name, description,
    parameters}}`); definitions without a function name (built-in tools) are kept as they are."""
    tool = json_value(tool)
    if not isinstance(tool, dict):
        return tool
    if isinstance(tool.get("function"), dict):
        return tool
    if not isinstance(tool.get("name"), str):
        return tool
    fn: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description") is not None:
        fn["description"] = tool["description"]
    params = tool.get("parameters", tool.get("input_schema", tool.get("inputSchema")))
    if params is not None:
        fn["parameters"] = json_value(params)
    return {"type": "function", "function": fn}


def openai_tools(tools: Any) -> list[Any] | None:
    """A list of tool definitions in OpenAI chat form, or None when there are none.

    Example:
        >>> openai_tools('[{"type": "function", "name": "f", "parameters": {"type": "object"}}]')
        [{'type': 'function', 'function': {'name': 'f', 'parameters': {'type': 'object'}}}]
    """
    tools = json_value(tools)
    if not tools:
        return None
    if not isinstance(tools, list):
        tools = [tools]
    return [openai_tool(t) for t in tools]


class Ancestry:
    """Parent links and facts (agent name, session id) of the spans / observations of one file.

    Agent and conversation ids usually sit on an agent span (`invoke_agent`, an OpenInference AGENT span, a
    Langfuse AGENT observation) above the LLM call rather than on the call itself; a call inherits them from
    its nearest ancestor that has them.

    Example:
        >>> tree = Ancestry()
        >>> tree.add("root", None, agent="planner")
        >>> tree.add("llm", "root")
        >>> tree.inherit("llm", "agent")
        'planner'
    """

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.facts: dict[str, dict[str, Any]] = {}

    def add(self, node: Any, parent: Any, **facts: Any) -> None:
        if not node:
            return
        node = str(node)
        if parent:
            self.parent[node] = str(parent)
        kept = {k: v for k, v in facts.items() if v not in (None, "")}
        if kept:
            self.facts.setdefault(node, {}).update(kept)

    def inherit(self, node: Any, key: str) -> Any:
        """The fact `key` of the nearest ancestor of `node` (the node itself excluded) that has it."""
        cur = self.parent.get(str(node)) if node else None
        for _ in range(MAX_DEPTH):
            if cur is None:
                return None
            v = self.facts.get(cur, {}).get(key)
            if v is not None:
                return v
            cur = self.parent.get(cur)
        return None


def id_text(v: Any, what: str) -> str | None:
    """An id or name column value as text (numbers become text); None when absent.

    Raises:
        BadRecord: the log holds an object or a list where an id belongs.

    Example:
        >>> id_text(42, "traceId"), id_text("", "traceId")
        ('42', None)
    """
    if v is None or v == "":
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)
    raise BadRecord(f"{what} is a {type(v).__name__}, expected text")


def text_ids(row: dict[str, Any]) -> dict[str, Any]:
    """`row` with its id and name columns as text (`id_text`), the finish reason as text."""
    for k in ("call_id", "session_id", "parent_id", "agent"):
        row[k] = id_text(row.get(k), k)
    fr = row.get("finish_reason")
    if fr is not None and not isinstance(fr, str):
        row["finish_reason"] = json.dumps(fr, ensure_ascii=False, default=str)
    return row
