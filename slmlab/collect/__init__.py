"""Step 1, collect: read real agent logs into the canonical call table (`slmlab.schema.CALL_SCHEMA`).

Readers, by name (format="auto" sniffs each file): `openai` (proxy request/response JSONL, Data Flywheel),
`openai_batch` (Batch API input + output files), `otel_genai` (OpenTelemetry GenAI spans: OTLP JSON, the
SDK's ConsoleSpanExporter output, Jaeger JSON), `openinference` (Arize Phoenix span exports), `langfuse`
(observation exports), `langsmith` (run exports and `{"post", "patch"}` batch payloads), `tau_bench`,
`tau2_bench` and `toolbench` (public agent benchmarks). Malformed records go to a quarantine JSONL;
`read == ingested + quarantined` always.

Bring your own format: subclass `Reader` (`sniff` + `calls`), build rows with the helpers exported here
(`to_json`, `openai_tool_calls`, `response_fields`, `as_int`, `as_float`, `first_json`, ...) and
`register_reader` it (or pass `--reader module:Class` to `slmlab ingest`).

Usage:
    >>> from slmlab.collect import ingest
    >>> res = ingest("logs/", out="calls.parquet")  # doctest: +SKIP
    >>> print(res.summary)  # doctest: +SKIP
    1200 read, 1198 ingested, 2 quarantined (1198 calls)
"""

from slmlab.collect import (  # noqa: F401  (importing registers the readers)
    langfuse,
    langsmith,
    openai,
    openai_batch,
    openinference,
    otel_genai,
    tau2_bench,
    tau_bench,
    toolbench,
)
from slmlab.collect.base import READERS, Reader, detect_format, register_reader
from slmlab.collect.driver import IngestResult, IngestSummary, ingest
from slmlab.collect.files import first_json, iter_json_records, iter_jsonl, parse_json, read_head
from slmlab.collect.record import BadRecord, Context, Record, SkipRecord, UnknownFormatError
from slmlab.collect.shapes import json_value, openai_tools, text_of
from slmlab.collect.values import (
    as_float,
    as_int,
    history_message,
    openai_tool_calls,
    require_messages,
    response_fields,
    span_ms,
    to_datetime,
    to_json,
    to_openai_tool_calls,
)

__all__ = [
    "READERS",
    "BadRecord",
    "Context",
    "IngestResult",
    "IngestSummary",
    "Reader",
    "Record",
    "SkipRecord",
    "UnknownFormatError",
    "as_float",
    "as_int",
    "detect_format",
    "first_json",
    "history_message",
    "ingest",
    "iter_json_records",
    "iter_jsonl",
    "json_value",
    "openai_tool_calls",
    "openai_tools",
    "parse_json",
    "read_head",
    "register_reader",
    "require_messages",
    "response_fields",
    "span_ms",
    "text_of",
    "to_datetime",
    "to_json",
    "to_openai_tool_calls",
]
