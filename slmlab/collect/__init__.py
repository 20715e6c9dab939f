"""Step 1, collect: read real agent logs into the canonical call table (`slmlab.schema.CALL_SCHEMA`).

Readers, by name (format="auto" sniffs each file): `openai` (proxy request/response JSONL, Data Flywheel),
`openai_batch` (Batch API input + output files), `otel_genai` (OpenTelemetry GenAI spans, OTLP JSON),
`openinference` (Arize Phoenix span exports), `langfuse` (observation exports), `langsmith` (run exports),
`tau_bench`, `tau2_bench` and `toolbench` (public agent benchmarks). Malformed records go to a quarantine
JSONL; `read == ingested + quarantined` always. Add a format with `register_reader`.

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
from slmlab.collect.base import (
    READERS,
    BadRecord,
    IngestResult,
    IngestSummary,
    Reader,
    SkipRecord,
    UnknownFormatError,
    detect_format,
    ingest,
    register_reader,
)

__all__ = [
    "READERS",
    "BadRecord",
    "IngestResult",
    "IngestSummary",
    "Reader",
    "SkipRecord",
    "UnknownFormatError",
    "detect_format",
    "ingest",
    "register_reader",
]
