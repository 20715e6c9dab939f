"""Reader `langsmith`: LangSmith run exports (JSONL or JSON list of runs).

Runs with `run_type == "llm"` are calls; chain/tool/retriever runs are skipped. Prompt: `inputs.messages`
(a list, or a batch list of lists: the first is used), with messages plain `{role, content}`, LangChain
serialised (`{"lc": 1, "type": "constructor", "id": [..., "HumanMessage"], "kwargs": {...}}`) or
`{"type": "human", "data": {...}}`; response: `outputs.generations[0][0].message` (or `.text`) or an
OpenAI completion in `outputs` (`choices`). Model: `extra.invocation_params.model` / `model_name`,
`extra.metadata.ls_model_name`, then the outputs. Tokens: `prompt_tokens` / `completion_tokens`, else the
usage in the outputs; cost `total_cost`; session `trace_id`; parent `parent_run_id`; agent
`extra.metadata.agent` (or `langgraph_node`), else the run name.

Usage:
    >>> from slmlab.collect import ingest
    >>> ingest("runs.jsonl", format="langsmith")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slmlab.collect.base import (
    BadRecord,
    Context,
    Reader,
    SkipRecord,
    as_float,
    as_int,
    first_json,
    openai_tool_calls,
    register_reader,
    response_fields,
    span_ms,
    to_json,
    to_openai_tool_calls,
)

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
    msg: dict[str, Any] = {"role": role, "content": body.get("content")}
    calls = lc_tool_calls(body)
    if calls:
        msg["tool_calls"] = to_openai_tool_calls(calls)
    for k in ("tool_call_id", "name"):
        if body.get(k):
            msg[k] = body[k]
    return msg


def lc_tool_calls(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Canonical tool calls of a LangChain message (`tool_calls` with `args`, or OpenAI ones in extras)."""
    if body.get("tool_calls"):
        return openai_tool_calls(body["tool_calls"])
    extra = body.get("additional_kwargs") or {}
    if extra.get("tool_calls"):
        return openai_tool_calls(extra["tool_calls"])
    if extra.get("function_call"):
        return openai_tool_calls([extra["function_call"]])
    return []


def lc_messages(msgs: Any, what: str) -> list[dict[str, Any]]:
    if msgs is None:
        raise BadRecord(f"missing {what}")
    if isinstance(msgs, list) and msgs and isinstance(msgs[0], list):
        msgs = msgs[0]  # a batch of prompts: LangSmith logs [[...]] for a single chat call
    if not isinstance(msgs, list):
        raise BadRecord(f"{what} is {type(msgs).__name__}, expected a list of messages")
    return [lc_message(m) for m in msgs]


def _usage(d: Any) -> dict[str, Any]:
    return d if isinstance(d, dict) else {}


class LangSmithReader(Reader):
    """LangSmith run exports."""

    name = "langsmith"
    description = "LangSmith runs (run_type llm; inputs.messages, outputs.generations)"

    def sniff(self, path: Path, head: str) -> bool:
        rec = first_json(head)
        if isinstance(rec, dict):
            return "run_type" in rec
        return '"run_type"' in head

    def calls(self, record: Any, ctx: Context, line: int) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise BadRecord(f"run is a {type(record).__name__}, expected an object")
        if record.get("run_type") != "llm":
            raise SkipRecord(f"run_type {record.get('run_type')!r}")
        inputs = record.get("inputs") if isinstance(record.get("inputs"), dict) else {}
        outputs = record.get("outputs") if isinstance(record.get("outputs"), dict) else {}
        prompt = inputs.get("messages", inputs.get("prompts"))
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
            prompt = [{"role": "user", "content": prompt[0]}]
        messages = lc_messages(prompt, "inputs.messages")
        text, tool_calls, finish, usage_meta = None, [], None, {}
        gens = outputs.get("generations")
        if isinstance(gens, list) and gens:
            g = gens[0][0] if isinstance(gens[0], list) and gens[0] else gens[0]
            if isinstance(g, dict):
                if g.get("message") is not None:
                    msg = g["message"]
                    body = msg.get("kwargs", msg.get("data", msg)) if isinstance(msg, dict) else {}
                    m = lc_message(msg)
                    text, tool_calls = m.get("content"), openai_tool_calls(m.get("tool_calls"))
                    usage_meta = _usage(body.get("usage_metadata"))
                else:
                    text = g.get("text")
                finish = (g.get("generation_info") or {}).get("finish_reason")
        elif isinstance(outputs.get("choices"), list) and outputs["choices"]:
            ch = outputs["choices"][0]
            m = ch.get("message") or {}
            text, tool_calls, finish = (
                m.get("content"),
                openai_tool_calls(m.get("tool_calls")),
                ch.get("finish_reason"),
            )
        elif record.get("error") is None:
            raise BadRecord("llm run has no outputs.generations or outputs.choices")
        extra = record.get("extra") if isinstance(record.get("extra"), dict) else {}
        params = _usage(extra.get("invocation_params"))
        meta_in = _usage(extra.get("metadata"))
        llm_out = _usage(outputs.get("llm_output"))
        tu = _usage(llm_out.get("token_usage")) or _usage(outputs.get("usage"))
        model = (
            params.get("model")
            or params.get("model_name")
            or meta_in.get("ls_model_name")
            or llm_out.get("model_name")
            or outputs.get("model")
            or inputs.get("model")
            or "unknown"
        )
        in_tok = as_int(record.get("prompt_tokens"))
        out_tok = as_int(record.get("completion_tokens"))
        in_tok = (
            in_tok if in_tok is not None else as_int(tu.get("prompt_tokens", usage_meta.get("input_tokens")))
        )
        out_tok = (
            out_tok
            if out_tok is not None
            else as_int(tu.get("completion_tokens", usage_meta.get("output_tokens")))
        )
        cached = as_int(_usage(usage_meta.get("input_token_details")).get("cache_read"))
        if cached is None:
            cached = as_int(_usage(tu.get("prompt_tokens_details")).get("cached_tokens"))
        tools = params.get("tools") or inputs.get("tools")
        err = record.get("error")
        meta = {
            k: meta_in[k]
            for k in ("ls_provider", "ls_model_type", "langgraph_node", "thread_id")
            if k in meta_in
        }
        if record.get("tags"):
            meta["tags"] = record["tags"]
        rid = record.get("id")
        return [
            {
                "call_id": str(rid) if rid else f"{ctx.path.name}:{line}",
                "session_id": meta_in.get("thread_id") or record.get("trace_id"),
                "parent_id": record.get("parent_run_id"),
                "agent": meta_in.get("agent")
                or meta_in.get("langgraph_node")
                or record.get("name")
                or "agent",
                "timestamp": record.get("start_time"),
                "model": str(model),
                "messages": to_json(messages),
                "tools": to_json(tools) if tools else None,
                **response_fields(text, tool_calls),
                "input_tokens": in_tok,
                "cached_input_tokens": cached,
                "output_tokens": out_tok,
                "latency_ms": span_ms(record.get("start_time"), record.get("end_time")),
                "cost_usd": as_float(record.get("total_cost")),
                "status": "error" if err else "ok",
                "error": str(err) if err else None,
                "finish_reason": finish,
                "metadata": to_json(meta) if meta else None,
            }
        ]


register_reader(LangSmithReader)
