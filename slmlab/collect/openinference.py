"""Reader `openinference`: OpenInference spans as Arize Phoenix exports them.

Records are spans: JSONL, a JSON list, or a `{"data": [...]}` page of Phoenix's REST API
(`GET /v1/projects/{project}/spans`: `context.trace_id/span_id`, `span_kind`, `parent_id`, `start_time`,
`end_time`, `status_code`, `status_message`, `events`, and `attributes` flattened to dotted keys with the
span kind moved out to `span_kind`), rows of `px.Client().get_spans_dataframe()` saved as JSON
(`attributes.llm.input_messages` columns holding lists of `{"message.role": ...}` objects), nested
attribute objects, or Phoenix's `/spans/otlpv1` OTLP-style spans (`attributes` as a key/value list). All
are flattened to the dotted keys of the spec first. Spans whose kind (`openinference.span.kind` /
`span_kind`) is LLM are calls; CHAIN, TOOL, RETRIEVER, AGENT, EMBEDDING ... spans are skipped.

Attributes read (OpenInference `spec/semantic_conventions.md` and the Python package
`openinference-semantic-conventions`, `openinference/semconv/trace/__init__.py`):
* prompt `llm.input_messages.N.message.*`: `role`, `content`, or `contents.M.message_content.type|text|
  image.image.url` parts (reasoning parts dropped, `tool_use` parts read as tool calls), `tool_calls.K.
  tool_call.id|function.name|function.arguments`, legacy `function_call_name|function_call_arguments_json`,
  `tool_call_id`, `name`; legacy completions `llm.prompts.N.prompt.text` (older exports: a list of strings);
* answer `llm.output_messages.0.message.*` (same fields) or `llm.choices.N.completion.text`;
  `llm.finish_reason`;
* tools `llm.tools.N.tool.json_schema` (else `tool.name|description|parameters`), as OpenAI tool schemas;
* model `llm.model_name` (else `llm.response.model_name`, `llm.request.model_name`, the invocation
  parameters' `model`); tokens `llm.token_count.prompt|completion|prompt_details.cache_read`; cost
  `llm.cost.total`;
* agent `agent.name` of the span or of its nearest ancestor in the file, else the `metadata` JSON's
  `langgraph_node`, else `graph.node.name`; session `session.id` likewise (else the metadata's
  `thread_id`), else the trace id; status `status_code` ERROR with `status_message` or an `exception` event.
Where a span has no `llm.input_messages`, an OpenAI request body in `input.value` (`{"messages": [...]}`)
is used.

Usage:
    >>> from slmlab.collect import ingest
    >>> ingest("phoenix_spans.jsonl", format="openinference")  # doctest: +SKIP
"""

from __future__ import annotations

import re
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
    openai_tool_calls,
    register_reader,
    response_fields,
    span_ms,
    to_json,
    to_openai_tool_calls,
)
from slmlab.collect.otlp import attributes
from slmlab.collect.shapes import Ancestry, json_value, openai_tool, openai_tools, text_ids, text_of

_MSG = re.compile(r"^llm\.(input|output)_messages\.(\d+)\.message\.(.+)$")
_INDEXED = re.compile(r"^(\d+)\.(.+)$")


def flatten(obj: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nested dicts/lists as dotted keys (`a.b.0.c`); leaves (and lists of scalars) keep their values."""
    out = {} if out is None else out
    if isinstance(obj, dict):
        for k, v in obj.items():
            flatten(v, f"{prefix}{k}.", out)
    elif isinstance(obj, list) and obj and all(isinstance(x, (dict, list)) for x in obj):
        for i, v in enumerate(obj):
            flatten(v, f"{prefix}{i}.", out)
    else:
        out[prefix[:-1]] = obj
    return out


def _unflatten(fields: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys back into nested dicts (for a tool schema that arrived as a nested object)."""
    out: dict[str, Any] = {}
    for k, v in fields.items():
        cur = out
        *path, last = k.split(".")
        for p in path:
            cur = cur.setdefault(p, {}) if isinstance(cur.get(p, {}), dict) else {}
        cur[last] = v
    return out


def _indexed(fields: dict[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """`{prefix}N.rest` keys of `fields` grouped by N."""
    groups: dict[int, dict[str, Any]] = {}
    for k, v in fields.items():
        if k.startswith(prefix):
            m = _INDEXED.match(k[len(prefix) :])
            if m:
                groups.setdefault(int(m.group(1)), {})[m.group(2)] = v
    return groups


def _tool_call(f: dict[str, Any]) -> dict[str, Any]:
    """`tool_call.id|function.name|function.arguments` fields as a flat tool call."""
    return {
        "id": f.get("tool_call.id"),
        "name": f.get("tool_call.function.name"),
        "arguments": f.get("tool_call.function.arguments"),
    }


def _message(f: dict[str, Any]) -> dict[str, Any]:
    """One message from its `message.*` fields (without the `message.` prefix)."""
    content = f.get("content")
    calls = [_tool_call(c) for _, c in sorted(_indexed(f, "tool_calls.").items())]
    texts, parts, part_calls, has_image = [], [], [], False
    for _, c in sorted(_indexed(f, "contents.").items()):
        ctype = c.get("message_content.type")
        if ctype == "tool_use" or "tool_call.function.name" in c:
            part_calls.append(_tool_call(c))
        elif ctype in (None, "text") and c.get("message_content.text") is not None:
            texts.append(str(c["message_content.text"]))
            parts.append({"type": "text", "text": str(c["message_content.text"])})
        elif ctype == "image" and c.get("message_content.image.image.url"):
            has_image = True
            parts.append({"type": "image_url", "image_url": {"url": c["message_content.image.image.url"]}})
        # reasoning, audio and video parts are not part of the text prompt
    if content is None and (texts or has_image):
        content = parts if has_image else "\n".join(texts)
    calls = calls or part_calls  # tool_use parts repeat message.tool_calls when both are recorded
    if not calls and f.get("function_call_name"):
        calls = [{"name": f["function_call_name"], "arguments": f.get("function_call_arguments_json")}]
    msg: dict[str, Any] = {"role": f.get("role") or "user", "content": content}
    if calls:
        msg["tool_calls"] = to_openai_tool_calls(openai_tool_calls(calls))
    for k in ("tool_call_id", "name"):
        if f.get(k) is not None:
            msg[k] = f[k]
    return msg


def _messages(a: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    msgs: dict[int, dict[str, Any]] = {}
    for k, v in a.items():
        m = _MSG.match(k)
        if m and m.group(1) == kind:
            msgs.setdefault(int(m.group(2)), {})[m.group(3)] = v
    return [_message(msgs[i]) for i in sorted(msgs)]


def _texts(a: dict[str, Any], prefix: str, leaf: str) -> list[str]:
    """Legacy completions: `llm.prompts.N.prompt.text` (or a plain list of strings under `llm.prompts`)."""
    plain = a.get(prefix.rstrip("."))
    if isinstance(plain, list):
        return [str(x) for x in plain]
    return [str(g[leaf]) for _, g in sorted(_indexed(a, prefix).items()) if g.get(leaf) is not None]


def _tools(a: dict[str, Any]) -> list[Any] | None:
    tools = []
    for _, f in sorted(_indexed(a, "llm.tools.").items()):
        schema = f.get("tool.json_schema")
        if schema is None:
            nested = {
                k[len("tool.json_schema.") :]: v for k, v in f.items() if k.startswith("tool.json_schema.")
            }
            schema = _unflatten(nested) if nested else None
        if schema is None:
            schema = {
                "name": f.get("tool.name"),
                "description": f.get("tool.description"),
                "parameters": f.get("tool.parameters"),
            }
        tools.append(openai_tool(schema))
    return tools or None


def _request_body(a: dict[str, Any]) -> tuple[list[dict[str, Any]], Any, list[Any] | None]:
    """(messages, answer message, tools) from an OpenAI request/response in `input.value`/`output.value`."""
    req = json_value(a.get("input.value"))
    if not (isinstance(req, dict) and isinstance(req.get("messages"), list)):
        return [], None, None
    msgs = [m if isinstance(m, dict) else {"role": "user", "content": text_of(m)} for m in req["messages"]]
    resp = json_value(a.get("output.value"))
    answer = None
    if isinstance(resp, dict) and isinstance(resp.get("choices"), list) and resp["choices"]:
        answer = (resp["choices"][0] or {}).get("message")
    return msgs, answer, openai_tools(req.get("tools") or req.get("functions"))


def flat_call(a: dict[str, Any]) -> dict[str, Any]:
    """Call columns from flattened OpenInference attributes (also used for OTLP-exported spans)."""
    prompt = _messages(a, "input")
    reply = _messages(a, "output")
    tools = _tools(a)
    first: dict[str, Any] = reply[0] if reply else {}
    if not prompt:
        texts = _texts(a, "llm.prompts.", "prompt.text")
        prompt = [{"role": "user", "content": t} for t in texts]
        choices = _texts(a, "llm.choices.", "completion.text")
        first = {"content": choices[0]} if choices else first
    if not prompt:
        prompt, answer, body_tools = _request_body(a)
        tools = tools or body_tools
        if isinstance(answer, dict) and not reply:
            first = {"content": answer.get("content"), "tool_calls": answer.get("tool_calls")}
    if not prompt:
        raise BadRecord(
            "LLM span has no llm.input_messages (nor llm.prompts or an OpenAI request in input.value)"
        )
    params = json_value(a.get("llm.invocation_parameters"))
    meta: dict[str, Any] = {"invocation_parameters": params} if params else {}
    for k in ("llm.provider", "llm.system", "user.id", "name"):
        if a.get(k) is not None:
            meta["span_name" if k == "name" else k] = a[k]
    model = (
        a.get("llm.model_name")
        or a.get("llm.response.model_name")
        or a.get("llm.request.model_name")
        or (params.get("model") or params.get("model_name") if isinstance(params, dict) else None)
        or "unknown"
    )
    cost = as_float(a.get("llm.cost.total"))
    if cost is None and a.get("llm.cost.prompt") is not None and a.get("llm.cost.completion") is not None:
        cost = (as_float(a["llm.cost.prompt"]) or 0.0) + (as_float(a["llm.cost.completion"]) or 0.0)
    return {
        "model": str(model),
        "messages": to_json(prompt),
        "tools": to_json(tools) if tools else None,
        **response_fields(
            text_of(first.get("content")), openai_tool_calls(json_value(first.get("tool_calls")))
        ),
        "input_tokens": as_int(a.get("llm.token_count.prompt")),
        "cached_input_tokens": as_int(a.get("llm.token_count.prompt_details.cache_read")),
        "output_tokens": as_int(a.get("llm.token_count.completion")),
        "cost_usd": cost,
        "finish_reason": a.get("llm.finish_reason"),
        "session_id": a.get("session.id"),
        "metadata": to_json(meta) if meta else None,
    }


def _lookup(obj: Any, dotted: str) -> Any:
    """The value at a dotted path in a record whose keys may contain dots themselves (Phoenix mixes both)."""
    if not isinstance(obj, dict):
        return None
    if dotted in obj:
        return obj[dotted]
    for k, v in obj.items():
        if isinstance(v, dict) and dotted.startswith(k + "."):
            found = _lookup(v, dotted[len(k) + 1 :])
            if found is not None:
                return found
    return None


def _attrs_as_dict(record: dict[str, Any]) -> dict[str, Any]:
    """A record whose `attributes` is an OTLP key/value list (Phoenix `/spans/otlpv1`) with a dict there."""
    if isinstance(record.get("attributes"), list):
        record = {**record, "attributes": attributes(record["attributes"])}
    return record


def _span_ids(record: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(span id, trace id, parent id) of a Phoenix span in any of its export shapes."""
    span_id = _lookup(record, "context.span_id") or record.get("span_id") or record.get("spanId")
    trace_id = _lookup(record, "context.trace_id") or record.get("trace_id") or record.get("traceId")
    parent = record.get("parent_id") or record.get("parent_span_id") or record.get("parentSpanId")
    return span_id, trace_id, parent


class OpenInferenceReader(Reader):
    """Phoenix / OpenInference span exports."""

    name = "openinference"
    description = "OpenInference spans (Arize Phoenix export: JSONL / JSON records, nested or flat keys)"

    def sniff(self, path: Path, head: str) -> bool:
        return ("openinference" in head or '"span_kind"' in head) and (
            "input_messages" in head or '"LLM"' in head
        )

    def records(self, ctx: Context) -> Iterator[Record]:
        tree = Ancestry()  # agent.name / session.id usually sit on an AGENT or CHAIN span above the LLM span
        for rec in iter_json_records(ctx.path):
            if rec.error is None and isinstance(rec.obj, dict):
                obj = _attrs_as_dict(rec.obj) if isinstance(rec.obj.get("attributes"), list) else rec.obj
                span_id, _, parent = _span_ids(obj)
                tree.add(
                    span_id,
                    parent,
                    agent=_lookup(obj, "attributes.agent.name"),
                    session=_lookup(obj, "attributes.session.id"),
                )
        ctx.state["tree"] = tree
        yield from iter_json_records(ctx.path)

    def calls(self, record: Any, ctx: Context, line: int) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise BadRecord(f"span is a {type(record).__name__}, expected an object")
        record = _attrs_as_dict(record)
        span_id, trace_id, parent = _span_ids(record)
        flat = flatten(record)
        a = {k.removeprefix("attributes."): v for k, v in flat.items()}
        kind = a.get("openinference.span.kind") or a.get("span_kind")
        if str(kind).upper() != "LLM":
            raise SkipRecord(f"span kind {kind!r} is not LLM")
        row = flat_call(a)
        tree: Ancestry = ctx.state.get("tree") or Ancestry()
        meta = json_value(a.get("metadata"))
        meta = meta if isinstance(meta, dict) else {}
        status = str(a.get("status_code") or a.get("status.code") or "OK").upper()
        is_error = status in ("ERROR", "STATUS_CODE_ERROR", "2")
        exc = next(
            (v for k, v in a.items() if k.startswith("events.") and k.endswith("exception.message")), None
        )
        start = a.get("start_time") or a.get("start_time_unix_nano")
        end = a.get("end_time") or a.get("end_time_unix_nano")
        row.update(
            {
                "call_id": span_id or record.get("id") or ctx.fallback_id(line),
                "session_id": row.get("session_id")
                or tree.inherit(span_id, "session")
                or meta.get("thread_id")
                or meta.get("session_id")
                or trace_id,
                "parent_id": parent,
                "agent": a.get("agent.name")
                or tree.inherit(span_id, "agent")
                or meta.get("langgraph_node")
                or a.get("graph.node.name")
                or "agent",
                "timestamp": start,
                "latency_ms": span_ms(start, end),
                "status": "error" if is_error else "ok",
                "error": (a.get("status_message") or a.get("status.message") or exc or "error")
                if is_error
                else None,
            }
        )
        return [text_ids(row)]


register_reader(OpenInferenceReader)
