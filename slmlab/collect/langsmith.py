"""Reader `langsmith`: LangSmith run exports (JSONL, a JSON list of runs, or `{"runs": [...]}` pages of
`POST /runs/query`).

Runs with `run_type == "llm"` are calls; chain/tool/retriever/prompt/parser/embedding runs are skipped.
Fields follow the SDK's `Run` schema (langchain-ai/langsmith-sdk `python/langsmith/schemas.py`: `id`,
`trace_id`, `parent_run_id`, `dotted_order`, `start_time`, `end_time`, `inputs`, `outputs`, `extra`,
`error`, `status`, `prompt_tokens`, `completion_tokens`, `total_tokens`, `prompt_token_details`,
`total_cost` (a Decimal, exported as a number or a string), `prompt_cost`, `completion_cost`) and the
shapes LangChain's tracer logs (`langchain_core/tracers`: chat model inputs are
`{"messages": [[dumpd(msg), ...]]}`, outputs are a dumped `LLMResult`):
* prompt `inputs.messages` (a batch list of lists, the first is used, or a flat list), each message
  LangChain-serialised (`{"lc": 1, "type": "constructor", "id": [..., "HumanMessage"], "kwargs": {content,
  tool_calls [{name, args, id}], additional_kwargs.tool_calls (OpenAI form), tool_call_id, name}}`),
  `{"type": "human", "data": {...}}` (`message_to_dict`) or OpenAI `{role, content}` (`wrap_openai`);
  `inputs.prompts` for completion models;
* answer `outputs.generations[0][0].message` (or `.text`), an OpenAI completion in `outputs` (`choices`,
  `wrap_openai`) or `outputs.message` (`wrap_anthropic`); list content (Anthropic blocks) is reduced to its
  text;
* finish reason `generation_info.finish_reason`, else the message's `response_metadata` `finish_reason` /
  `stop_reason`;
* model `extra.invocation_params.model` / `model_name`, `extra.metadata.ls_model_name`, then the outputs
  (`llm_output.model_name`, `response_metadata.model_name`, `model`);
* tools `extra.invocation_params.tools` (or `functions`, or `inputs.tools`), OpenAI or Anthropic form,
  as OpenAI tool schemas;
* tokens `prompt_tokens` / `completion_tokens`, else the message's `usage_metadata`, else
  `llm_output.token_usage` / `outputs.usage`; cached `usage_metadata.input_token_details.cache_read`,
  `prompt_token_details.cache_read` or `prompt_tokens_details.cached_tokens`;
* cost `total_cost` (else `prompt_cost + completion_cost`); status `error` (or `status == "error"`);
* session the thread id LangSmith groups runs by (`extra.metadata` `session_id`, `thread_id` or
  `conversation_id`), else `trace_id`; parent `parent_run_id`; agent `extra.metadata.agent` (or
  `langgraph_node`), else the run name.

Usage:
    >>> from slmlab.collect import ingest
    >>> ingest("runs.jsonl", format="langsmith")  # doctest: +SKIP
"""

from __future__ import annotations

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
    first_json,
    iter_json_records,
    openai_tool_calls,
    register_reader,
    response_fields,
    span_ms,
    to_json,
)
from slmlab.collect.messages import lc_message
from slmlab.collect.shapes import json_value, openai_tools, text_ids, text_of


def lc_messages(msgs: Any, what: str) -> list[dict[str, Any]]:
    if msgs is None:
        raise BadRecord(f"missing {what}")
    if isinstance(msgs, list) and msgs and isinstance(msgs[0], list):
        msgs = msgs[0]  # a batch of prompts: LangSmith logs [[...]] for a single chat call
    if not isinstance(msgs, list):
        raise BadRecord(f"{what} is {type(msgs).__name__}, expected a list of messages")
    return [lc_message(m) for m in msgs]


def _d(d: Any) -> dict[str, Any]:
    return d if isinstance(d, dict) else {}


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _is_batch(obj: Any) -> bool:
    """A `POST /runs/batch` payload: `{"post": [run creates], "patch": [run updates]}`."""
    return (
        isinstance(obj, dict)
        and bool({"post", "patch"} & set(obj))
        and all(isinstance(obj.get(k, []), list) for k in ("post", "patch"))
    )


class LangSmithReader(Reader):
    """LangSmith run exports."""

    name = "langsmith"
    description = "LangSmith runs (run_type llm; inputs.messages, outputs.generations)"

    def sniff(self, path: Path, head: str) -> bool:
        rec = first_json(head)
        if isinstance(rec, dict):
            if _is_batch(rec) or ('"post"' in head[:200] and '"run_type"' in head):
                return True
            return "run_type" in rec or (isinstance(rec.get("runs"), list) and '"run_type"' in head)
        return '"run_type"' in head

    def records(self, ctx: Context) -> Iterator[Record]:
        """Runs; batch payloads (`{"post": [...], "patch": [...]}`) are joined by run id first."""
        patches: dict[str, dict[str, Any]] = {}
        posted: set[str] = set()
        has_batches = False
        for rec in iter_json_records(ctx.path, dict_of_lists=False):
            if rec.error is None and _is_batch(rec.obj):
                has_batches = True
                for p in rec.obj.get("patch") or []:
                    if isinstance(p, dict) and p.get("id") is not None:
                        patches.setdefault(str(p["id"]), {}).update(
                            {k: v for k, v in p.items() if v is not None}
                        )
                for p in rec.obj.get("post") or []:
                    if isinstance(p, dict) and p.get("id") is not None:
                        posted.add(str(p["id"]))
        if not has_batches:
            yield from iter_json_records(ctx.path)
            return
        for rec in iter_json_records(ctx.path, dict_of_lists=False):
            if rec.error is not None or not _is_batch(rec.obj):
                yield rec
                continue
            base = rec.where or "$"
            for i, run in enumerate(rec.obj.get("post") or []):
                rid = str(run.get("id")) if isinstance(run, dict) and run.get("id") is not None else None
                if rid is not None and rid in patches:
                    run = {**run, **patches[rid]}
                yield Record(rec.line, obj=run, where=f"{base}.post[{i}]", shared_line=True)
            for i, p in enumerate(rec.obj.get("patch") or []):
                pid = str(p.get("id")) if isinstance(p, dict) and p.get("id") is not None else None
                kind = "joined patch" if pid is not None and pid in posted else "orphan patch"
                yield Record(rec.line, obj=(kind, p), where=f"{base}.patch[{i}]", shared_line=True)

    def calls(self, record: Any, ctx: Context, line: int) -> list[dict[str, Any]]:
        if isinstance(record, tuple):  # a patch of a batch payload
            kind, patch = record
            if kind == "joined patch":
                raise SkipRecord("the patch of a run read with its post")
            if isinstance(patch, dict) and patch.get("run_type") not in (None, "llm"):
                raise SkipRecord(f"run_type {patch.get('run_type')!r}")
            raise BadRecord(
                f"a patch for run {patch.get('id') if isinstance(patch, dict) else patch!r} without its post "
                "(the run's inputs are in another payload: pass that file too)"
            )
        if not isinstance(record, dict):
            raise BadRecord(f"run is a {type(record).__name__}, expected an object")
        if record.get("run_type") != "llm":
            raise SkipRecord(f"run_type {record.get('run_type')!r}")
        inputs = _d(json_value(record.get("inputs")))
        outputs = _d(json_value(record.get("outputs")))
        prompt = inputs.get("messages", inputs.get("prompts"))
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
            prompt = [{"role": "user", "content": prompt[0]}]
        messages = lc_messages(prompt, "inputs.messages")
        text, tool_calls, finish, usage_meta, resp_meta = None, [], None, {}, {}
        gens = outputs.get("generations")
        if isinstance(gens, list) and gens:
            g = gens[0][0] if isinstance(gens[0], list) and gens[0] else gens[0]
            if isinstance(g, dict):
                if g.get("message") is not None:
                    msg = g["message"]
                    body = _d(msg.get("kwargs", msg.get("data", msg))) if isinstance(msg, dict) else {}
                    m = lc_message(msg)
                    text, tool_calls = text_of(m.get("content")), openai_tool_calls(m.get("tool_calls"))
                    if text is None and not tool_calls:
                        text = g.get("text")
                    usage_meta, resp_meta = _d(body.get("usage_metadata")), _d(body.get("response_metadata"))
                else:
                    text = g.get("text")
                finish = _first(
                    _d(g.get("generation_info")).get("finish_reason"),
                    resp_meta.get("finish_reason"),
                    resp_meta.get("stop_reason"),
                )
        elif isinstance(outputs.get("choices"), list) and outputs["choices"]:
            ch = _d(outputs["choices"][0])
            m = _d(ch.get("message"))
            text, tool_calls, finish = (
                text_of(m.get("content")),
                openai_tool_calls(m.get("tool_calls")),
                ch.get("finish_reason"),
            )
            usage_meta = _d(outputs.get("usage_metadata"))
        elif isinstance(outputs.get("message"), dict):  # wrap_anthropic: {"message": {role, content, ...}}
            m = lc_message(outputs["message"])
            text, tool_calls = text_of(m.get("content")), openai_tool_calls(m.get("tool_calls"))
            usage_meta = _d(outputs["message"].get("usage_metadata")) or _d(outputs.get("usage_metadata"))
            finish = outputs["message"].get("stop_reason")
        elif not record.get("error") and record.get("status") != "error":
            raise BadRecord("llm run has no outputs.generations or outputs.choices")
        extra = _d(record.get("extra"))
        params = _d(extra.get("invocation_params"))
        meta_in = _d(extra.get("metadata"))
        llm_out = _d(outputs.get("llm_output"))
        tu = _d(llm_out.get("token_usage")) or _d(llm_out.get("usage")) or _d(outputs.get("usage"))
        model = (
            params.get("model")
            or params.get("model_name")
            or meta_in.get("ls_model_name")
            or llm_out.get("model_name")
            or resp_meta.get("model_name")
            or outputs.get("model")
            or inputs.get("model")
            or "unknown"
        )
        logged = (record.get("prompt_tokens"), record.get("completion_tokens"))
        if logged == (0, 0) and not (usage_meta or tu):  # the Run defaults, not a count
            record = {**record, "prompt_tokens": None, "completion_tokens": None}
        in_tok = as_int(
            _first(record.get("prompt_tokens"), usage_meta.get("input_tokens"), tu.get("prompt_tokens"))
        )
        out_tok = as_int(
            _first(
                record.get("completion_tokens"), usage_meta.get("output_tokens"), tu.get("completion_tokens")
            )
        )
        cached = as_int(
            _first(
                _d(usage_meta.get("input_token_details")).get("cache_read"),
                _d(record.get("prompt_token_details")).get("cache_read"),
                _d(tu.get("prompt_tokens_details")).get("cached_tokens"),
            )
        )
        cost = as_float(record.get("total_cost"))
        if (
            cost is None
            and record.get("prompt_cost") is not None
            and record.get("completion_cost") is not None
        ):
            cost = (as_float(record["prompt_cost"]) or 0.0) + (as_float(record["completion_cost"]) or 0.0)
        tools = openai_tools(params.get("tools") or params.get("functions") or inputs.get("tools"))
        err = record.get("error")
        is_err = bool(err) or record.get("status") == "error"
        meta = {
            k: meta_in[k]
            for k in ("ls_provider", "ls_model_type", "langgraph_node", "thread_id")
            if k in meta_in
        }
        if record.get("tags"):
            meta["tags"] = record["tags"]
        if record.get("dotted_order"):
            meta["dotted_order"] = record["dotted_order"]
        rid = record.get("id")
        return [
            text_ids(
                {
                    "call_id": rid or ctx.fallback_id(line),
                    "session_id": meta_in.get("session_id")
                    or meta_in.get("thread_id")
                    or meta_in.get("conversation_id")
                    or record.get("trace_id"),
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
                    "cost_usd": cost,
                    "status": "error" if is_err else "ok",
                    "error": (str(err) if err else "error") if is_err else None,
                    "finish_reason": finish,
                    "metadata": to_json(meta) if meta else None,
                }
            )
        ]


register_reader(LangSmithReader)
