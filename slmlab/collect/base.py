"""The reader interface and registry: `Reader`, `register_reader`, `READERS` and `detect_format`.

A *reader* turns one log format into canonical call rows (`slmlab.schema.CALL_SCHEMA`). The driver
(`slmlab.collect.driver.ingest`) walks files, asks each reader for its *records* (a JSONL line, a
trajectory, a simulation, a span, ...), turns every record into zero or more calls, and never crashes on
bad input: a record that cannot be read goes to the quarantine JSONL with a reason naming file and line,
so that always `read == ingested + quarantined`.

Counting rules (documented here once, tested in tests/test_collect.py):
* a *record* is the unit a format logs: one JSONL line (openai, openai_batch output, one OTLP document per
  line counts each span), one trajectory (tau_bench), one simulation (tau2_bench), one span (otel_genai,
  openinference), one observation (langfuse), one run (langsmith), one `train_messages` list (toolbench);
* a record that is fine but is not an LLM call (an OTel tool span, a Langfuse SPAN, a LangSmith chain run)
  is *skipped*: it counts as ingested (read without error) and yields 0 calls; `summary.skipped` counts them;
* a record whose call ids were already ingested in this run (the same log passed twice, a proxy that logged
  a retry twice) is quarantined as a duplicate: the first copy wins, the second is kept in quarantine;
* non-UTF-8 bytes in a JSONL line quarantine that line only; the rest of the file is read;
* a file that cannot be read (permissions, truncated or corrupt gzip) counts one quarantined record at the
  point where reading stopped; the records before it are kept and the other files are read.

This module also re-exports the reading (`slmlab.collect.files`) and row (`slmlab.collect.values`)
helpers, so `from slmlab.collect.base import ...` keeps working for readers written against it.

Usage:
    >>> sorted(READERS)[:2]  # doctest: +SKIP
    ['langfuse', 'langsmith']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from slmlab.collect.files import (  # noqa: F401  (re-exported for readers)
    HEAD_BYTES,
    LIST_KEYS,
    LOG_SUFFIXES,
    MAX_RAW_CHARS,
    READ_ERRORS,
    first_json,
    is_jsonl,
    iter_json_records,
    iter_jsonl,
    iter_jsonl_blocks,
    json_layout,
    jsonl_record,
    load_document,
    open_text_bytes,
    parse_json,
    raw_text,
    read_head,
    read_head_bytes,
    unwrap,
)
from slmlab.collect.record import BadRecord, Context, Record, SkipRecord, UnknownFormatError  # noqa: F401
from slmlab.collect.values import (  # noqa: F401  (re-exported for readers)
    args_json,
    as_float,
    as_int,
    history_message,
    model_from_filename,
    openai_tool_calls,
    require_messages,
    response_fields,
    span_ms,
    timestamp_column,
    to_datetime,
    to_json,
    to_openai_tool_calls,
)

_raw = raw_text  # the old private name

# A reader's fast path: (a block of JSONL lines, the first one's number) -> a row or None per line.
FastRows = Callable[[list[bytes], int], list[list[Any] | None]]


class Reader:
    """Base class of a log-format reader.

    Subclasses set `name`, implement `sniff` (is this file mine?) and `calls` (one record → call rows),
    and override `records` when a record is not simply one JSONL line / one element of a JSON list.
    Rows are dicts keyed by `CALL_SCHEMA` columns; missing keys become nulls, `step` may be None (the
    driver numbers calls within their session in reading order), `timestamp` may be a datetime, an ISO
    string or epoch seconds/ms/us/ns. `call_id` may be None: the driver then uses `ctx.fallback_id(line)`.
    """

    name: str = ""
    description: str = ""
    # Sniffing order (lower first): unambiguous markers first, the generic request/response shape last.
    priority: int = 50

    def sniff(self, path: Path, head: str) -> bool:
        """True if the file whose first `HEAD_BYTES` are `head` is in this format."""
        raise NotImplementedError

    def records(self, ctx: Context) -> Iterator[Record]:
        """The file's records; default: JSONL lines, or the elements of a JSON list / wrapper object."""
        yield from iter_json_records(ctx.path)

    def calls(self, record: Any, ctx: Context, line: int) -> list[dict[str, Any]]:
        """Call rows of one parsed record; raise `BadRecord` (quarantine) or `SkipRecord` (not a call)."""
        raise NotImplementedError

    def companions(self, path: Path) -> list[Path]:
        """Files this one needs read with it (a Batch API input's output file beside it); default none."""
        return []

    def fast_rows(self, ctx: Context) -> FastRows | None:
        """Optional column-wise fast path for a JSONL file; None (the default) reads record by record.

        The callable gets a block of lines (`iter_jsonl_blocks`) and the first one's number and returns,
        aligned with them, one canonical row per line: a list of values in `CALL_SCHEMA` order (`ROW_INDEX`
        gives positions; `session_id` already defaulted to `call_id`, `step` may be None) or None where the
        line does not fit the fast shape. The driver sends every None line (blank and bad lines included)
        through the per-line parsing of `iter_jsonl` and `calls`, so the fast path only has to be right
        where it answers, and must then answer exactly as `calls` would.
        """
        return None


READERS: dict[str, Reader] = {}


def register_reader(reader: Reader | type[Reader]) -> Reader:
    """Add a reader (instance or class) to `READERS` under its `name`; later ones may replace earlier.

    Example:
        >>> class Mine(Reader):
        ...     name = "mine"
        ...     def sniff(self, path, head): return '"my_log"' in head
        ...     def calls(self, record, ctx, line): return []
        >>> register_reader(Mine).name
        'mine'
        >>> _ = READERS.pop("mine")
    """
    inst = reader() if isinstance(reader, type) else reader
    if not isinstance(inst, Reader):
        raise TypeError(f"{type(inst).__name__} is not a slmlab.collect.Reader subclass")
    if not inst.name:
        raise ValueError("a reader needs a non-empty `name`")
    READERS[inst.name] = inst
    return inst


def sniff_format(path: Path, head: str, readers: Iterable[str] | None = None) -> str | None:
    """Name of the first reader (by priority) whose `sniff` accepts `head`, or None."""
    names = list(readers) if readers is not None else sorted(READERS, key=lambda n: READERS[n].priority)
    for name in names:
        try:
            if READERS[name].sniff(path, head):
                return name
        except Exception:  # noqa: BLE001 - a sniff must never take the ingest down
            continue
    return None


def detect_format(path: str | os.PathLike, readers: Iterable[str] | None = None) -> str:
    """Name of the first registered reader whose `sniff` accepts the file.

    Raises:
        UnknownFormatError: naming the file, why it was not recognised and every format tried.
        OSError, EOFError: the file cannot be read.

    Example:
        >>> detect_format("tests/fixtures/logs/openai/calls.jsonl")  # doctest: +SKIP
        'openai'
    """
    from slmlab.collect.files import describe_unrecognised

    p = Path(path)
    head_bytes = read_head_bytes(p)
    name = sniff_format(p, head_bytes.decode("utf-8", errors="replace"), readers)
    if name is not None:
        return name
    names = list(readers) if readers is not None else sorted(READERS, key=lambda n: READERS[n].priority)
    raise UnknownFormatError(
        f"{p}: {describe_unrecognised(p, head_bytes)}; no reader recognised it (tried: {', '.join(names)}); "
        "pass format=<name> to force one, or a reader of your own (see 'Bring your own format')"
    )


def __getattr__(name: str) -> Any:
    """The driver's names (`ingest`, `IngestSummary`, ...), still importable from here."""
    from slmlab.collect import driver

    if hasattr(driver, name):
        return getattr(driver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
