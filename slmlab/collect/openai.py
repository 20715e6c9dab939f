"""Reader `openai`: JSONL of chat-completions request/response pairs, as logging proxies write them.

One line = one call: `{"request": {model, messages, tools?, ...}, "response": {id, model, created,
choices: [{message: {content, tool_calls}, finish_reason}], usage: {prompt_tokens, completion_tokens,
prompt_tokens_details: {cached_tokens}}}}` plus optional proxy keys: `metadata` (agent / agent_name,
session_id / trace_id / conversation_id, step, user, task_label), `latency_ms` / `duration_ms`,
`start_time` / `end_time`, `timestamp`, `error` / `status`, `cost` / `cost_usd` / `response_cost`.
NVIDIA Data Flywheel Blueprint documents (`timestamp`, `workload_id`, `client_id`, `request`, `response`,
tool-call arguments sometimes a parsed object) are the same shape: `workload_id` → `task_label`,
`client_id` → metadata. A line without `response` is kept as an error call when it has an `error`,
quarantined otherwise.

JSONL files take a column-wise fast path (`OpenAIReader.fast_rows`): lines of the common shape are parsed
with orjson, with repeated tool schemas spliced out by their raw bytes, straight into row lists; every
other line goes through `calls`. Both give the same table (tests/test_collect_fastpath.py).

Usage:
    >>> from slmlab.collect import ingest
    >>> ingest("proxy_logs.jsonl", format="openai")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slmlab.collect.base import FastRows, Reader, register_reader
from slmlab.collect.files import first_json, is_jsonl
from slmlab.collect.openai_fast import _fast_row, _RepeatedTools
from slmlab.collect.openai_rows import _ToolsCache, chat_completion_row
from slmlab.collect.record import BadRecord, Context

__all__ = ["OpenAIReader", "chat_completion_row"]


class OpenAIReader(Reader):
    """Chat-completions request/response JSONL (logging proxies, Data Flywheel documents)."""

    name = "openai"
    priority = 90
    description = "OpenAI chat-completions request/response pairs (proxy logs, Data Flywheel)"

    def sniff(self, path: Path, head: str) -> bool:
        rec = first_json(head)
        if rec is None and head.lstrip().startswith(
            "{"
        ):  # a first line longer than the head (a 10 MB answer)
            start = head.lstrip()[:4096]
            return '"request"' in start and ('"response"' in head or '"error"' in head)
        return isinstance(rec, dict) and "request" in rec and ("response" in rec or "error" in rec)

    def calls(self, record: Any, ctx: Context, line: int) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise BadRecord(f"line is a JSON {type(record).__name__}, expected an object")
        if "request" not in record:
            raise BadRecord("missing request")
        tools = ctx.state.setdefault("tools_cache", _ToolsCache())
        row = chat_completion_row(record["request"], record.get("response"), record, tools)
        if row["call_id"] is None:
            row["call_id"] = ctx.fallback_id(line)
        return [row]

    def fast_rows(self, ctx: Context) -> FastRows | None:
        """Column-wise fast path for JSONL logs (see `_fast_row` for the lines it answers)."""
        if not is_jsonl(ctx.path):
            return None
        tools_json = ctx.state.setdefault("tools_cache", _ToolsCache())
        loads = _RepeatedTools().loads
        file_name, source_file, fmt = ctx.key, str(ctx.path), self.name

        def rows(lines: list[bytes], first: int) -> list[list[Any] | None]:
            out: list[list[Any] | None] = []
            append = out.append
            for i, line in enumerate(lines):
                try:
                    append(_fast_row(loads(line), first + i, tools_json, file_name, source_file, fmt))
                except Exception:  # noqa: BLE001 - blank, bad or unusual lines: the per-record path decides
                    append(None)
            return out

        return rows


register_reader(OpenAIReader)
