"""Reader `langfuse`: Langfuse observation exports (JSONL, a JSON list, `{"data": [...]}` pages of the public
API, or traces with nested `observations`).

Observations with `type == "GENERATION"` are calls; SPAN, EVENT, AGENT, TOOL, CHAIN, RETRIEVER, EVALUATOR,
EMBEDDING and GUARDRAIL observations are skipped. Fields, as the public API returns them
(`fern/apis/server/definition/commons.yml` `Observation` / `ObservationsView`, `observations-v2.yml`):
* prompt `input`: a message list, `{"messages": [...], "tools"|"functions": [...]}` (the Langfuse OpenAI
  integration), a plain string, or any of these as JSON text (the v2 API returns `input`/`output` as
  strings unless `parseIoAsJson=true`); messages in OpenAI form, LangChain form, or OTel `role` + `parts`
  form (spans ingested over OTLP);
  Any prompt shape of `slmlab.collect.messages.prompt_messages` is read: Gemini `contents`, LlamaIndex
  `args` / `blocks`, OpenAI Responses input items, a single message object;
* answer `output`: an assistant message, a string, a chat completion (`choices`), a list of messages (every
  tool call of every message is kept: koog logs one message per call), OpenAI Agents SDK Responses items
  (`function_call`, `message` with `output_text`), Vercel AI SDK parts (`tool-call` with `toolCallId` /
  `toolName`) or `{response: {messages}}`, Gemini `candidates` (`slmlab.collect.messages.answer_of`);
* model `model` (v1) or `providedModelName` (v2);
* tokens `usageDetails`, summed the way Langfuse reports them (`reduceUsageOrCostDetails`): input = every
  key containing "input" (Langfuse stores `input` without the cached part and `input_cached_tokens` /
  `input_cache_read` beside it, see `packages/shared/src/server/ingestion/types.ts`), output likewise;
  cached `input_cached_tokens`, `input_cache_read` or `cache_read_input_tokens`; else the deprecated
  `usage` (`input`/`output`) or `promptTokens`/`completionTokens`;
* cost `costDetails.total`, else `totalCost` (v2), `calculatedTotalCost` (deprecated), `usage.totalCost`;
  a logged cost is kept as logged;
* timing `startTime`/`endTime` (else `latency`, seconds); status `level == "ERROR"` with `statusMessage`;
* observations nested in a trace document are numbered across the file and carry their JSON path
  (`$.observations[3]`) into the quarantine;
* session `sessionId` (v2 observations, or the enclosing trace), else `traceId`; parent
  `parentObservationId`; agent `metadata.agent`, else the name of the nearest AGENT observation above it in
  the file, else the metadata's `langgraph_node`, else the observation `name`.

Usage:
    >>> from slmlab.collect import ingest
    >>> ingest("observations.json", format="langfuse")  # doctest: +SKIP
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
    register_reader,
    response_fields,
    span_ms,
    to_json,
)
from slmlab.collect.messages import answer_of, prompt_messages
from slmlab.collect.shapes import Ancestry, json_value, openai_tools, text_ids

# usageDetails keys Langfuse and its SDKs use for prompt tokens served from a cache.
CACHED_KEYS = (
    "input_cached_tokens",
    "input_cache_read",
    "cache_read_input_tokens",
    "input_cache_read_tokens",
)


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _usage(record: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    """(input, output, cached) tokens of an observation."""
    ud = {k: as_int(v) for k, v in _d(record.get("usageDetails")).items()}
    ud = {k: v for k, v in ud.items() if v is not None}
    ins = [v for k, v in ud.items() if "input" in k and k != "total"]
    outs = [v for k, v in ud.items() if "output" in k and k != "total"]
    cached = next((ud[k] for k in CACHED_KEYS if k in ud), None)
    if ins or outs:
        return (sum(ins) if ins else None), (sum(outs) if outs else None), cached
    u = _d(record.get("usage"))
    in_tok = as_int(u.get("input", u.get("promptTokens", record.get("promptTokens"))))
    out_tok = as_int(u.get("output", u.get("completionTokens", record.get("completionTokens"))))
    if not in_tok and not out_tok:  # the deprecated `usage` is derived from usageDetails: zeros = not logged
        return None, None, cached
    return in_tok, out_tok, cached


def _cost(record: dict[str, Any]) -> float | None:
    for v in (
        _d(record.get("costDetails")).get("total"),
        record.get("totalCost"),
        record.get("calculatedTotalCost"),
        _d(record.get("usage")).get("totalCost"),
    ):
        c = as_float(v)
        if c is not None:
            return c
    return None


class LangfuseReader(Reader):
    """Langfuse GENERATION observations."""

    name = "langfuse"
    description = "Langfuse observations (type GENERATION; input, output, usageDetails, costDetails)"

    def sniff(self, path: Path, head: str) -> bool:
        rec = first_json(head)
        if isinstance(rec, dict) and "type" in rec and ("traceId" in rec or "observations" in rec):
            return True
        return '"GENERATION"' in head and '"traceId"' in head

    def _observations(self, ctx: Context) -> Iterator[Record]:
        # A trace document keeps its `observations` (and its sessionId): not unwrapped as a list of records.
        # Observations nested in traces are numbered 1, 2, ... across the file, with their JSON path.
        n = 0
        for rec in iter_json_records(ctx.path, list_keys=("data", "records", "items")):
            obs = rec.obj.get("observations") if isinstance(rec.obj, dict) else None
            if rec.error is None and isinstance(obs, list) and "type" not in rec.obj:  # a trace
                base = rec.where or "$"
                for i, o in enumerate(obs):
                    if isinstance(o, dict) and rec.obj.get("sessionId") and not o.get("sessionId"):
                        o = {**o, "sessionId": rec.obj["sessionId"]}
                    n += 1
                    jsonl = rec.raw is not None or rec.shared_line
                    yield Record(
                        rec.line if jsonl else n, obj=o, where=f"{base}.observations[{i}]", shared_line=jsonl
                    )
            else:
                n += 1
                yield rec

    def records(self, ctx: Context) -> Iterator[Record]:
        tree = Ancestry()  # agent names live on AGENT observations above the generation
        for rec in self._observations(ctx):
            o = rec.obj
            if rec.error is None and isinstance(o, dict):
                agent = o.get("name") if str(o.get("type", "")).upper() == "AGENT" else None
                tree.add(o.get("id"), o.get("parentObservationId"), agent=agent)
        ctx.state["tree"] = tree
        yield from self._observations(ctx)

    def calls(self, record: Any, ctx: Context, line: int) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise BadRecord(f"observation is a {type(record).__name__}, expected an object")
        if str(record.get("type", "")).upper() != "GENERATION":
            raise SkipRecord(f"observation type {record.get('type')!r}")
        inp = json_value(record.get("input"))
        tools = None
        if isinstance(inp, dict):
            tools = openai_tools(inp.get("tools") or inp.get("functions"))
        messages = prompt_messages(inp, "GENERATION input")
        out = record.get("output")
        text, tool_calls, finish = answer_of(out)
        if out is None and record.get("level") != "ERROR":
            raise BadRecord("GENERATION has no output (expected a message, a string or a completion)")
        in_tok, out_tok, cached = _usage(record)
        meta_in = _d(json_value(record.get("metadata")))
        params = record.get("modelParameters")
        meta = {"name": record.get("name")} | ({"model_parameters": params} if params else {})
        for k in ("environment", "promptName", "promptVersion"):
            if record.get(k) is not None:
                meta[k] = record[k]
        is_err = record.get("level") == "ERROR"
        oid = record.get("id")
        tree: Ancestry = ctx.state.get("tree") or Ancestry()
        latency = span_ms(record.get("startTime"), record.get("endTime"))
        if latency is None and as_float(record.get("latency")) is not None:
            latency = as_float(record["latency"]) * 1000.0
        return [
            text_ids(
                {
                    "call_id": oid,
                    "session_id": record.get("sessionId") or record.get("traceId"),
                    "parent_id": record.get("parentObservationId"),
                    "agent": meta_in.get("agent")
                    or tree.inherit(oid, "agent")
                    or meta_in.get("langgraph_node")
                    or record.get("name")
                    or "agent",
                    "timestamp": record.get("startTime"),
                    "model": str(record.get("model") or record.get("providedModelName") or "unknown"),
                    "messages": to_json(messages),
                    "tools": to_json(tools) if tools else None,
                    **response_fields(text, tool_calls),
                    "input_tokens": in_tok,
                    "cached_input_tokens": cached,
                    "output_tokens": out_tok,
                    "latency_ms": latency,
                    "cost_usd": _cost(record),
                    "status": "error" if is_err else "ok",
                    "error": (record.get("statusMessage") or "error") if is_err else None,
                    "finish_reason": finish,
                    "metadata": to_json(meta),
                }
            )
        ]


register_reader(LangfuseReader)
