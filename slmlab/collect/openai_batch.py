"""Reader `openai_batch`: OpenAI Batch API output files joined with their input files by `custom_id`.

Input lines: `{"custom_id", "method", "url", "body": {model, messages, tools}}`; output lines:
`{"id", "custom_id", "response": {"status_code", "body": <chat completion>}, "error"}`. Give the output
file, the input file or both; the other one is found (1) among the other paths of the same `ingest` call,
else (2) beside it in the same folder (any `*.jsonl` / `*.jsonl.gz` whose first line is a batch request or
response). An input file given alone reads the output file beside it (reported as "found beside").
Input files are companions: they yield no records of their own when their output is read; an input file
without any output file is quarantined as a whole (one record: "no output file"). An output line whose
`custom_id` has no input line, or whose `custom_id` appears on several input lines (the join would be a
guess), is quarantined. A failed request (`error`, or status >= 400) becomes an error call. Estimated
costs of these calls use the Batch API price (`batch_factor` in `prices.csv`: 50% of the list price).

Usage:
    >>> from slmlab.collect import ingest
    >>> ingest(["batch_input.jsonl", "batch_output.jsonl"]).summary  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slmlab.collect.base import (
    LOG_SUFFIXES,
    READ_ERRORS,
    BadRecord,
    Context,
    Reader,
    Record,
    first_json,
    iter_jsonl,
    open_text_bytes,
    read_head,
    register_reader,
)
from slmlab.collect.openai import chat_completion_row


def _kind(path: Path) -> str | None:
    try:
        rec = first_json(read_head(path, 1 << 16))
    except READ_ERRORS:
        return None
    if not isinstance(rec, dict) or "custom_id" not in rec:
        return None
    if "body" in rec and "method" in rec:
        return "input"
    if "response" in rec or "error" in rec:
        return "output"
    return None


class OpenAIBatchReader(Reader):
    """Batch API output lines joined with their requests."""

    name = "openai_batch"
    priority = 30
    description = "OpenAI Batch API output (+ input) JSONL, joined by custom_id"

    def sniff(self, path: Path, head: str) -> bool:
        rec = first_json(head)
        return isinstance(rec, dict) and "custom_id" in rec and ("body" in rec or "response" in rec)

    def _beside(self, path: Path, kind: str) -> list[Path]:
        return sorted(
            p
            for p in path.parent.iterdir()
            if p != path and p.name.lower().endswith(LOG_SUFFIXES) and p.is_file() and _kind(p) == kind
        )

    def _inputs(self, path: Path, all_paths: list[Path]) -> list[Path]:
        """The input files of an output file: those beside it, else the input files given with it.

        Batches reuse custom ids (`request-1` in every batch), so inputs of other folders never mix in."""
        beside = self._beside(path, "input")
        return beside or [p for p in all_paths if p != path and _kind(p) == "input"]

    def companions(self, path: Path) -> list[Path]:
        """An input file's output files beside it (read through the join when not given)."""
        return self._beside(path, "output") if _kind(path) == "input" else []

    def records(self, ctx: Context) -> Iterator[Record]:
        kind = _kind(ctx.path)
        if kind == "input":
            outputs = [p for p in ctx.all_paths if p != ctx.path and _kind(p) == "output"]
            if any(ctx.path in self._inputs(p, ctx.all_paths) for p in outputs):
                return  # a companion of an output file: read through the join
            raise BadRecord("batch input file without an output file (pass the output file too)")
        # Index input lines by custom_id as (file, byte offset): the requests are read back on demand, so a
        # batch of 50k long prompts is not held in memory twice; a gzipped input keeps its lines in memory.
        index: dict[str, Any] = {}
        dups: dict[str, int] = {}
        for p in self._inputs(ctx.path, ctx.all_paths):
            with open_text_bytes(p) as f:
                gz = not isinstance(f, io.BufferedReader)
                offset = 0
                for raw in f:
                    try:
                        cid = json.loads(raw).get("custom_id")
                    except (ValueError, AttributeError, RecursionError):
                        cid = None
                    if cid is not None:
                        key = str(cid)
                        if key in index:
                            dups[key] = dups.get(key, 1) + 1
                        else:
                            index[key] = raw if gz else (p, offset)
                    offset += len(raw)
        ctx.state["index"], ctx.state["dups"] = index, dups
        yield from iter_jsonl(ctx.path)

    def calls(self, record: Any, ctx: Context, line: int) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise BadRecord(f"line is a JSON {type(record).__name__}, expected an object")
        cid = record.get("custom_id")
        if cid is None:
            raise BadRecord("missing custom_id")
        if str(cid) in ctx.state["dups"]:
            raise BadRecord(
                f"custom_id {cid!r} is on {ctx.state['dups'][str(cid)]} input lines: which request this "
                "output answers cannot be told (custom_id must be unique within a batch)"
            )
        where = ctx.state["index"].get(str(cid))
        if where is None:
            raise BadRecord(
                f"no batch input line for custom_id {cid!r} (pass the input file or put it beside)"
            )
        if isinstance(where, bytes):
            request = json.loads(where).get("body")
        else:
            with open(where[0], "rb") as f:
                f.seek(where[1])
                request = json.loads(f.readline()).get("body")
        resp = record.get("response") if isinstance(record.get("response"), dict) else None
        body = resp.get("body") if resp else None
        status = resp.get("status_code") if resp else None
        err = record.get("error")
        if isinstance(status, int) and status >= 400:
            err = err or (body.get("error") if isinstance(body, dict) else None) or f"status_code {status}"
            body = None
        wrapper = {"error": err, "metadata": {"custom_id": cid, "batch_request_id": record.get("id")}}
        row = chat_completion_row(request, body, wrapper)
        row["call_id"] = row["call_id"] if row["call_id"] and body else f"batch:{cid}"
        row["session_id"] = f"batch:{cid}"
        if row["status"] == "error" and row.get("cost_usd") is None:
            row["cost_usd"] = 0.0  # the Batch API bills completed requests only (failed, expired: nothing)
        return [row]


register_reader(OpenAIBatchReader)
