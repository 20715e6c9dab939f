"""Reader registry, record iteration, quarantine and the streaming driver behind `slmlab.collect.ingest`.

A *reader* turns one log format into canonical call rows (`slmlab.schema.CALL_SCHEMA`). The driver walks
files, asks each reader for its *records* (a JSONL line, a trajectory, a simulation, a span, ...), turns
every record into zero or more calls, and never crashes on bad input: a record that cannot be read goes to
the quarantine JSONL with a reason naming file and line, so that always `read == ingested + quarantined`.

Counting rules (documented here once, tested in tests/test_collect.py):
* a *record* is the unit a format logs: one JSONL line (openai, openai_batch output, one OTLP document per
  line counts each span), one trajectory (tau_bench), one simulation (tau2_bench), one span (otel_genai,
  openinference), one observation (langfuse), one run (langsmith), one `train_messages` list (toolbench);
* a record that is fine but is not an LLM call (an OTel tool span, a Langfuse SPAN, a LangSmith chain run)
  is *skipped*: it counts as ingested (read without error) and yields 0 calls; `summary.skipped` counts them;
* a record whose call ids were already ingested in this run (the same log passed twice, a proxy that logged
  a retry twice) is quarantined as a duplicate: the first copy wins, the second is kept in quarantine;
* non-UTF-8 bytes in a JSONL line quarantine that line only; the rest of the file is read.

A reader may add a column-wise fast path for JSONL files (`Reader.fast_rows`): it turns blocks of lines into
row lists and hands every line it does not answer back to the per-record path above, so the counting rules,
quarantine and table are the same either way (`ingest(..., fast=False)` forces the per-record path).

Usage:
    >>> from slmlab.collect import ingest
    >>> res = ingest("logs/")  # doctest: +SKIP
"""

from __future__ import annotations

import gc
import gzip
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from slmlab.schema import CALL_SCHEMA, conform, empty_calls, validate_calls

# Rows per polars chunk: large enough for vectorized work, small enough to bound memory on multi-GB logs
# (10k rows ingest as fast as 50k and peak at about half the memory: benchmarks/bench_ingest.py).
CHUNK_ROWS = 10_000
# Bytes of a JSONL file a reader's fast path parses at a time (whole lines; bounds memory on huge files).
BLOCK_BYTES = 4 << 20
# Bytes of a file's start that readers see to recognise their format.
HEAD_BYTES = 256 * 1024
# A quarantined record keeps at most this many characters of its raw text (a 10 MB bad line stays a line).
MAX_RAW_CHARS = 20_000
# File suffixes a folder scan picks up (README.md, LICENSE next to logs are not logs).
LOG_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")


class BadRecord(ValueError):
    """A record that cannot become a call: the reason goes to the quarantine file."""


class SkipRecord(Exception):
    """A well-formed record that is not an LLM call (tool span, chain run): counted as skipped."""


class UnknownFormatError(ValueError):
    """No reader recognised a file; the message names every format tried."""


@dataclass
class Record:
    """One unit read from a file: a parsed object, or the error that prevented parsing it."""

    line: int  # 1-based JSONL line, or 1-based record index in a JSON document
    obj: Any = None
    error: str | None = None  # set when the record could not be parsed (bad JSON, bad bytes)
    raw: str | None = None  # raw text for the quarantine (JSONL lines; documents are re-serialised)


@dataclass
class Context:
    """What a reader knows besides the record: the file, every path in this ingest, per-file notes."""

    path: Path
    all_paths: list[Path]
    notes: dict[str, Any] = field(default_factory=dict)  # reported in `IngestSummary.notes`
    state: dict[str, Any] = field(default_factory=dict)  # a reader's scratch space for this file


class Reader:
    """Base class of a log-format reader.

    Subclasses set `name`, implement `sniff` (is this file mine?) and `calls` (one record → call rows),
    and override `records` when a record is not simply one JSONL line / one element of a JSON list.
    Rows are dicts keyed by `CALL_SCHEMA` columns; missing keys become nulls, `step` may be None (the
    driver numbers calls within their session in reading order), `timestamp` may be a datetime, an ISO
    string or epoch seconds/ms/ns.
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
    if not inst.name:
        raise ValueError("a reader needs a non-empty `name`")
    READERS[inst.name] = inst
    return inst


def open_text_bytes(path: Path) -> io.BufferedReader | gzip.GzipFile:
    """Open a log file for binary reading, transparently un-gzipping `*.gz`."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_head(path: Path, n: int = HEAD_BYTES) -> str:
    """The first `n` bytes of a file as text (undecodable bytes replaced; only used to recognise formats)."""
    with open_text_bytes(path) as f:
        return f.read(n).decode("utf-8", errors="replace")


def first_json(head: str) -> Any:
    """The first record of a JSONL head (or the element type of a list), or None if it does not parse."""
    text = head.lstrip()
    if not text:
        return None
    line = text.split("\n", 1)[0]
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if isinstance(obj, list):
        return obj[0] if obj else None
    return obj


def detect_format(path: str | os.PathLike, readers: Iterable[str] | None = None) -> str:
    """Name of the first registered reader whose `sniff` accepts the file.

    Raises:
        UnknownFormatError: naming the file and every format tried.

    Example:
        >>> detect_format("tests/fixtures/logs/openai/calls.jsonl")  # doctest: +SKIP
        'openai'
    """
    p = Path(path)
    head = read_head(p)
    names = list(readers) if readers is not None else sorted(READERS, key=lambda n: READERS[n].priority)
    for name in names:
        try:
            if READERS[name].sniff(p, head):
                return name
        except Exception:  # a sniff must never take the ingest down
            continue
    raise UnknownFormatError(
        f"{p}: no reader recognised this file (tried: {', '.join(names)}); pass format=<name> to force one"
    )


# --------------------------------------------------------------------------------------------- records


def jsonl_record(raw: bytes, line: int) -> Record | None:
    """The record of one raw JSONL line (newline included), or None for a blank line (not a record)."""
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Record(line, error=f"not valid UTF-8 ({exc.reason} at byte {exc.start})", raw=_raw(raw))
    try:
        obj = json.loads(text)
    except ValueError as exc:
        return Record(line, error=f"invalid JSON: {exc}", raw=text)
    # json reads an unpaired "\ud800" escape into a str that cannot be stored (polars needs UTF-8): such a
    # line would stop the whole import at the next chunk, so it is quarantined here.
    if ("\\ud" in text or "\\uD" in text) and not _utf8_safe(obj):
        return Record(
            line, error="invalid JSON: an unpaired UTF-16 surrogate escape (\\ud800-\\udfff)", raw=text
        )
    return Record(line, obj=obj, raw=text)


def _utf8_safe(obj: Any) -> bool:
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def iter_jsonl(path: Path) -> Iterator[Record]:
    """JSONL lines, read incrementally in binary; bad UTF-8 or bad JSON yields an error record."""
    with open_text_bytes(path) as f:
        for i, raw in enumerate(f, start=1):
            rec = jsonl_record(raw, i)
            if rec is not None:
                yield rec


def iter_jsonl_blocks(path: Path, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[int, list[bytes], bool]]:
    """`(first line number, lines, ends_with_newline)`: a JSONL file's lines, about `block_bytes` at a time.

    Lines come without their b"\\n"; only the file's last line may have had none (`ends_with_newline`
    False for that last block). A line longer than `block_bytes` makes a block of its own, so memory stays
    bounded by the longest line. Line numbers count exactly as `iter_jsonl` does.
    """
    line = 1
    carry = b""
    with open_text_bytes(path) as f:
        while True:
            data = f.read(block_bytes)
            if not data:
                break
            lines = data.split(b"\n")
            if carry:
                lines[0] = carry + lines[0]  # the line cut by the previous read (copying only that line)
            carry = lines.pop()
            if lines:
                yield line, lines, True
                line += len(lines)
    if carry:
        yield line, [carry], False


def load_document(path: Path) -> tuple[Any, str | None]:
    """Parse a whole JSON document: (obj, None), or (None, reason) when bytes or JSON are broken."""
    with open_text_bytes(path) as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
    try:
        return json.loads(text), None
    except ValueError as exc:
        return None, f"invalid JSON: {exc}"


def is_jsonl(path: Path) -> bool:
    """JSONL if the suffix says so, or if the first non-empty line is a complete JSON value by itself."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson")):
        return True
    head = read_head(path, 1 << 20).lstrip()
    if not head:
        return True
    first, sep, rest = head.partition("\n")
    if not sep or not rest.strip():
        return False  # a one-line file is a document (a JSON list or object)
    try:
        json.loads(first)
    except ValueError:
        return False
    return True


# Keys under which exports wrap their list of records.
LIST_KEYS = ("data", "records", "items", "observations", "runs", "spans")


def iter_json_records(path: Path, list_keys: tuple[str, ...] = LIST_KEYS) -> Iterator[Record]:
    """Records of a JSONL file (one per line) or a JSON document (list elements / a wrapped list / itself)."""
    if is_jsonl(path):
        yield from iter_jsonl(path)
        return
    obj, err = load_document(path)
    if err:
        yield Record(1, error=err, raw=_raw(read_head(path, MAX_RAW_CHARS)))
        return
    if isinstance(obj, dict):
        for key in list_keys:
            if isinstance(obj.get(key), list):
                obj = obj[key]
                break
    items = obj if isinstance(obj, list) else [obj]
    for i, item in enumerate(items, start=1):
        yield Record(i, obj=item)


def _raw(raw: Any) -> str:
    """Raw text for the quarantine, cut to `MAX_RAW_CHARS` (bytes are decoded with replacement)."""
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="backslashreplace")
    elif not isinstance(raw, str):
        try:
            raw = json.dumps(raw, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            raw = repr(raw)
    if len(raw) > MAX_RAW_CHARS:
        raw = raw[:MAX_RAW_CHARS] + f"...[truncated, {len(raw)} chars in all]"
    return raw


# ------------------------------------------------------------------------------------- value helpers


def to_json(obj: Any) -> str | None:
    """Compact JSON text (non-ASCII kept), or None for None."""
    if obj is None:
        return None
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


def args_json(args: Any) -> str:
    """Tool-call arguments as a JSON *string*: parsed objects (Data Flywheel, tau2) are serialised."""
    if args is None:
        return "{}"
    if isinstance(args, str):
        return args
    return json.dumps(args, ensure_ascii=False, separators=(",", ":"))


def openai_tool_calls(tool_calls: Any) -> list[dict[str, Any]]:
    """Canonical `[{"id", "name", "arguments"}]` from OpenAI-shaped or flat tool calls."""
    if not tool_calls:
        return []
    if not isinstance(tool_calls, list):
        raise BadRecord(f"tool_calls is {type(tool_calls).__name__}, expected a list")
    out = []
    for tc in tool_calls:
        if not isinstance(tc, dict):
            raise BadRecord(f"a tool call is {type(tc).__name__}, expected an object")
        fn = tc.get("function") if isinstance(tc.get("function"), dict) else tc
        name = fn.get("name")
        if not isinstance(name, str):
            raise BadRecord("a tool call has no function name")
        args = fn.get("arguments", fn.get("args", fn.get("input")))
        out.append({"id": tc.get("id"), "name": name, "arguments": args_json(args)})
    return out


def to_openai_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Canonical tool calls back into the OpenAI message form (for prompt history)."""
    return [
        {"id": c.get("id"), "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
        for c in calls
    ]


def history_message(
    role: str, content: Any, calls: list[dict[str, Any]], source: dict[str, Any]
) -> dict[str, Any]:
    """A prompt-history message in OpenAI form: role, content, canonical `calls` as OpenAI tool calls, and
    the `tool_call_id` / `name` that `source` (the logged message) carries."""
    msg: dict[str, Any] = {"role": role, "content": content}
    if calls:
        msg["tool_calls"] = to_openai_tool_calls(calls)
    for k in ("tool_call_id", "name"):
        if source.get(k):
            msg[k] = source[k]
    return msg


def response_fields(text: Any, tool_calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The response columns of a row from the answer text and canonical tool calls."""
    if text is not None and not isinstance(text, str):
        text = to_json(text)
    return {
        "response_text": text if text != "" or not tool_calls else None,
        "response_tool_calls": to_json(tool_calls) if tool_calls else None,
        "tool_name": tool_calls[0]["name"] if tool_calls else None,
        "n_tool_calls": len(tool_calls),
    }


def as_int(v: Any) -> int | None:
    """An integer count from ints, integral floats or digit strings; anything else is None."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and math.isfinite(v) and v == int(v):
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    return None


def as_float(v: Any) -> float | None:
    """A float from numbers or numeric strings; anything else is None."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def to_datetime(v: Any) -> datetime | None:
    """UTC datetime from ISO text (naive = UTC), epoch seconds, ms, us or ns, or a datetime."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)
    if isinstance(v, str):
        s = v.strip()
        if not s:
            return None
        if s.lstrip("-").replace(".", "", 1).isdigit():
            return to_datetime(float(s))
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00").replace(" UTC", "+00:00"))
        except ValueError:
            return None
        return dt.astimezone(timezone.utc) if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    if isinstance(v, (int, float)) and math.isfinite(v):
        x = float(v)
        # Pick the unit from the magnitude: seconds ~1.7e9, ms ~1.7e12, us ~1.7e15, ns ~1.7e18.
        for scale in (1.0, 1e3, 1e6, 1e9):
            if abs(x) < 1e11 * scale:
                try:
                    return datetime.fromtimestamp(x / scale, tz=timezone.utc)
                except (OverflowError, OSError, ValueError):
                    return None
    return None


# ISO forms parsed column-wise by polars (`timestamp_column`), the fast one (no fraction) first; anything
# else goes through `to_datetime`.
_ISO_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%.fZ", "%Y-%m-%dT%H:%M:%S%.f+00:00")
_EPOCH_S_MAX = 100_000_000_000  # to_datetime reads integers below 1e11 as epoch seconds


def timestamp_column(values: list[Any]) -> pl.Series:
    """A `timestamp` column (Datetime us, UTC) from raw values, equal to `to_datetime` on each value.

    The common forms are converted in polars, not per row in Python: ISO text ending in `Z` or `+00:00`
    (kept only where formatting the parsed value gives back the very same text, so polars' leniency, leap
    seconds or year 0 never let through a value Python would read differently) and integer epoch seconds.
    Datetimes are taken as UTC (naive) or converted to it; every other value goes through `to_datetime`.

    Example:
        >>> timestamp_column(["2026-11-01T10:00:00Z", 1793527200, None]).to_list()[0].isoformat()
        '2026-11-01T10:00:00+00:00'
    """
    dtype = CALL_SCHEMA["timestamp"]
    n, n_null = len(values), values.count(None)
    frame = pl.DataFrame({"s": [v if type(v) is str else None for v in values]}, schema={"s": pl.String()})
    out = pl.Series("timestamp", [None] * n, dtype=dtype)
    for fmt in _ISO_FORMATS:
        if frame["s"].null_count() == n:
            break
        p = pl.col("s").str.strptime(dtype, fmt, strict=False)
        got = frame.select(
            pl.when((p.dt.strftime(fmt) == pl.col("s")) & (p.dt.year() >= 1)).then(p)
        ).to_series()
        out = out.fill_null(got)
        frame = frame.select(pl.when(got.is_null()).then(pl.col("s")).alias("s"))
    if out.null_count() == n_null:
        return out.alias("timestamp")
    ints = [v if type(v) is int and 0 <= v < _EPOCH_S_MAX else None for v in values]
    if any(v is not None for v in ints):
        epoch = pl.from_epoch(pl.Series(ints, dtype=pl.Int64()), time_unit="s")
        out = out.fill_null(epoch.cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
    if out.null_count() == n_null:
        return out.alias("timestamp")
    # Datetimes a reader passed: naive ones are UTC, aware ones are converted (as polars would convert a
    # column of them; doing it here also lets a column mix zones).
    rest = [
        None
        if v is None or done
        else (v.astimezone(timezone.utc) if v.tzinfo else v.replace(tzinfo=timezone.utc))
        if isinstance(v, datetime)
        else to_datetime(v)
        for v, done in zip(values, out.is_not_null().to_list(), strict=True)
    ]
    rest_s = pl.DataFrame({"timestamp": rest}, schema={"timestamp": dtype}, strict=False).to_series()
    return out.fill_null(rest_s).alias("timestamp")


def span_ms(start: Any, end: Any) -> float | None:
    """Milliseconds between two timestamps (any form `to_datetime` takes), None if either is missing."""
    a, b = to_datetime(start), to_datetime(end)
    if a is None or b is None:
        return None
    return (b - a).total_seconds() * 1000.0


def require_messages(messages: Any, what: str = "messages") -> list[dict[str, Any]]:
    """Check a prompt is a list of message objects (BadRecord naming the field otherwise)."""
    if messages is None:
        raise BadRecord(f"missing {what}")
    if not isinstance(messages, list):
        raise BadRecord(f"{what} is {type(messages).__name__}, expected a list of messages")
    for m in messages:
        if not isinstance(m, dict):
            raise BadRecord(f"{what} holds a {type(m).__name__}, expected message objects")
    return messages


def model_from_filename(stem: str, domains: tuple[str, ...] = ("airline", "retail", "telecom")) -> str:
    """Model name from a results file name: `gpt-4o-airline` → `gpt-4o`, `gpt-4.1_retail` → `gpt-4.1`."""
    for sep in ("_", "-"):
        head, _, tail = stem.rpartition(sep)
        if head and tail.split("-")[0] in domains:
            return head
    return stem


# ----------------------------------------------------------------------------------------- the driver


@dataclass(frozen=True)
class IngestSummary:
    """Counts of one ingest; `read == ingested + quarantined` always.

    Attributes:
        read: records read (see the module docstring for what a record is in each format).
        ingested: records read without error (including `skipped` ones that are not LLM calls).
        quarantined: records written to the quarantine file.
        calls: rows of the call table.
        skipped: ingested records that were not LLM calls (tool spans, chain runs, SPAN observations).
        by_file: per file: format, read, ingested, quarantined, skipped, calls.
        formats: calls per reader name.
        ignored_files: files in scanned folders that no reader recognised (README-like JSON, query lists).
        notes: reader-specific facts worth reporting (e.g. ToolBench `query_count` incl. pruned branches).
    """

    read: int
    ingested: int
    quarantined: int
    calls: int
    by_file: dict[str, dict[str, Any]]
    formats: dict[str, int]
    skipped: int = 0
    ignored_files: tuple[str, ...] = ()
    notes: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        s = f"{self.read} read, {self.ingested} ingested, {self.quarantined} quarantined ({self.calls} calls)"
        if self.skipped:
            s += f"; {self.skipped} non-LLM records skipped"
        return s


class IngestResult:
    """The outcome of `ingest`: the call table, the counts and where malformed records went.

    With `out`, the table was streamed to parquet and `calls` reads it back on first access (`scan()`
    gives a lazy frame without loading it).
    """

    def __init__(
        self,
        summary: IngestSummary,
        quarantine_path: Path,
        calls: pl.DataFrame | None = None,
        out: Path | None = None,
    ):
        self.summary = summary
        self.quarantine_path = quarantine_path
        self.out = out
        self._calls = calls

    @property
    def calls(self) -> pl.DataFrame:
        """The canonical call table (`slmlab.schema.CALL_SCHEMA`)."""
        if self._calls is None:
            self._calls = pl.read_parquet(self.out) if self.out is not None else empty_calls()
        return self._calls

    def scan(self) -> pl.LazyFrame:
        """A lazy view of the call table (reads `out` lazily when the table was streamed there)."""
        if self._calls is None and self.out is not None:
            return pl.scan_parquet(self.out)
        return self.calls.lazy()

    def quarantined(self) -> list[dict[str, Any]]:
        """The quarantine entries of this ingest, parsed."""
        if not self.quarantine_path.exists():
            return []
        with open(self.quarantine_path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def __repr__(self) -> str:
        return f"IngestResult({self.summary}; quarantine={self.quarantine_path})"


def expand_paths(paths: Any) -> tuple[list[Path], set[Path]]:
    """Files to read, sorted within folders; the second set holds files found by scanning a folder."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    scanned: set[Path] = set()
    for p in paths:
        p = Path(p).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.name.lower().endswith(LOG_SUFFIXES))
            files.extend(found)
            scanned.update(found)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"no such log file or folder: {p}")
    seen: set[Path] = set()
    unique = [f for f in files if not (f.resolve() in seen or seen.add(f.resolve()))]
    return unique, scanned


class _Quarantine:
    """Appends `{"source_file", "line", "reason", "raw"}` lines; the reason names file and line."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.f = open(path, "w", encoding="utf-8")
        self.n = 0

    def add(self, file: Path, line: int, reason: str, raw: Any) -> None:
        entry = {
            "source_file": str(file),
            "line": line,
            "reason": f"{file}:{line}: {reason}",
            "raw": _raw(raw),
        }
        self.f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.n += 1

    def close(self) -> None:
        self.f.close()


_COLUMNS = list(CALL_SCHEMA)
# Position of each column in a row list (`Reader.fast_rows`, `_ChunkBuilder.rows`).
ROW_INDEX = {c: i for i, c in enumerate(_COLUMNS)}
_CALL, _SESSION, _STEP = ROW_INDEX["call_id"], ROW_INDEX["session_id"], ROW_INDEX["step"]

# A reader's fast path: (a block of JSONL lines, the first one's number) -> a row or None per line.
FastRows = Callable[[list[bytes], int], list[list[Any] | None]]


class _ChunkBuilder:
    """Collects rows as lists in `CALL_SCHEMA` order and turns every `chunk_rows` into a canonical frame."""

    def __init__(self, finish: Callable[[pl.DataFrame], None], chunk_rows: int):
        self.finish = finish
        self.chunk_rows = chunk_rows
        self.rows: list[list[Any]] = []
        self.session_steps: dict[str, int] = {}

    def add(self, row: dict[str, Any]) -> None:
        session = row.get("session_id") or row["call_id"]
        row["session_id"] = session
        if row.get("step") is None:
            row["step"] = self.session_steps.get(session, 0)
        self.session_steps[session] = row["step"] + 1
        self.rows.append([row.get(c) for c in _COLUMNS])
        if len(self.rows) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        cols: dict[str, Any] = dict(zip(_COLUMNS, zip(*self.rows, strict=True), strict=True))
        self.rows = []
        for c in ("tokens_estimated", "cost_estimated"):
            cols[c] = [bool(v) for v in cols[c]]
        cols["n_tool_calls"] = [v or 0 for v in cols["n_tool_calls"]]
        cols["status"] = [v or "ok" for v in cols["status"]]
        # Timestamps are converted column-wise here, not per row (see `timestamp_column`).
        cols["timestamp"] = timestamp_column(cols["timestamp"])
        self.finish(pl.DataFrame(cols, schema=CALL_SCHEMA, strict=False))


def ingest(
    paths: Any,
    format: str = "auto",
    quarantine: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    prices: Any = None,
    count_missing_tokens: bool = True,
    tokenizer: Any = None,
    chunk_rows: int = CHUNK_ROWS,
    fast: bool = True,
) -> IngestResult:
    """Read agent logs into the canonical call table, quarantining malformed records.

    Args:
        paths: a file, a folder (every `*.json`, `*.jsonl`, `*.ndjson` (optionally `.gz`) inside,
            recursively, sorted) or a list of them.
        format: "auto" (each file's format is sniffed) or a reader name from `READERS`.
        quarantine: path of the quarantine JSONL (default: `<out stem>.quarantine.jsonl` beside `out`,
            else `SLMLAB_HOME/quarantine.jsonl`). It is rewritten by every ingest.
        out: optional parquet path; the table is then streamed there chunk by chunk and `res.calls`
            reads it back on first access (`res.scan()` stays lazy).
        prices: price table for calls without a logged cost (`slmlab.collect.pricing.load_prices()` when None,
            a DataFrame or CSV path to use another, False to leave `cost_usd` null).
        count_missing_tokens: count prompt/completion tokens with `slmlab.runtime.tokens` where the log has
            none (`tokens_estimated=True` on those rows).
        tokenizer: tokenizer for that count (default the bundled SmolLM2 one).
        chunk_rows: rows per polars chunk.
        fast: use a reader's column-wise fast path where it has one (`Reader.fast_rows`; same table and
            quarantine, several times faster); False reads every record through `Reader.calls`.

    Returns:
        An `IngestResult` with `calls`, `summary` and `quarantine_path`.

    Raises:
        UnknownFormatError: an explicitly named file matches no reader, or nothing at all was recognised.
        KeyError: `format` is not a registered reader.

    Example:
        >>> res = ingest("tests/fixtures/logs/openai/calls.jsonl")  # doctest: +SKIP
        >>> str(res.summary)  # doctest: +SKIP
        '5 read, 5 ingested, 0 quarantined (5 calls)'
    """
    from slmlab.config import home_dir

    if format != "auto" and format not in READERS:
        raise KeyError(f"unknown log format {format!r}; known: {', '.join(READERS)}")
    files, scanned = expand_paths(paths)
    out_path = Path(out) if out is not None else None
    if quarantine is not None:
        qpath = Path(quarantine)
    elif out_path is not None:
        qpath = out_path.with_name(out_path.stem + ".quarantine.jsonl")
    else:
        qpath = home_dir() / "quarantine.jsonl"

    price_table = None
    if prices is not False:
        from slmlab.collect.pricing import load_prices

        price_table = (
            prices
            if isinstance(prices, pl.DataFrame)
            else load_prices(None if prices in (None, True) else prices)
        )

    writer = _PartWriter(out_path)

    def finish(df: pl.DataFrame) -> None:
        if count_missing_tokens:
            from slmlab.runtime.tokens import fill_missing_tokens

            df = fill_missing_tokens(df, tokenizer=tokenizer)
        if price_table is not None:
            from slmlab.collect.pricing import estimate_cost

            df = estimate_cost(df, price_table)
        writer.add(conform(df).select(_COLUMNS))

    builder = _ChunkBuilder(finish, chunk_rows)
    q = _Quarantine(qpath)
    by_file: dict[str, dict[str, Any]] = {}
    formats: dict[str, int] = {}
    notes: dict[str, Any] = {}
    ignored: list[str] = []
    seen_ids: set[str] = set()
    gc_was_enabled = gc.isenabled()
    # Parsing allocates millions of small containers that are never cyclic; the cyclic GC would walk them
    # again and again (3-5x slower ingest). Reference counting still frees everything.
    gc.disable()
    try:
        for path in files:
            try:
                name = format if format != "auto" else detect_format(path)
            except UnknownFormatError:
                if path in scanned:
                    ignored.append(str(path))
                    continue
                raise
            reader = READERS[name]
            ctx = Context(path=path, all_paths=files, notes=notes)
            run = _FileRun(path, name, reader, ctx, q, builder, seen_ids)
            fast_rows = reader.fast_rows(ctx) if fast else None
            try:
                if fast_rows is None:
                    for rec in reader.records(ctx):
                        run.process(rec)
                else:
                    run.process_fast(fast_rows)
            except BadRecord as exc:  # a reader may reject a whole file (e.g. batch input without output)
                q.add(path, 0, str(exc), None)
                run.stats["read"] += 1
                run.stats["quarantined"] += 1
            stats = run.stats
            by_file[str(path)] = stats
            formats[name] = formats.get(name, 0) + stats["calls"]
        builder.flush()
    finally:
        q.close()
        if gc_was_enabled:
            gc.enable()
    if not by_file and files:
        raise UnknownFormatError(
            f"none of the {len(files)} files was recognised as a log (tried: {', '.join(READERS)}); "
            "pass format=<name> to force one"
        )
    calls = writer.close()
    tot = {
        k: sum(s[k] for s in by_file.values())
        for k in ("read", "ingested", "quarantined", "skipped", "calls")
    }
    summary = IngestSummary(
        read=tot["read"],
        ingested=tot["ingested"],
        quarantined=tot["quarantined"],
        calls=tot["calls"],
        skipped=tot["skipped"],
        by_file=by_file,
        formats=formats,
        ignored_files=tuple(ignored),
        notes=notes,
    )
    assert summary.read == summary.ingested + summary.quarantined, summary
    return IngestResult(summary, qpath, calls=calls, out=out_path)


class _FileRun:
    """Turns one file's records into rows: counting, quarantine, duplicates (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        name: str,
        reader: Reader,
        ctx: Context,
        q: _Quarantine,
        builder: _ChunkBuilder,
        seen_ids: set[str],
    ):
        self.path, self.name, self.reader, self.ctx = path, name, reader, ctx
        self.q, self.builder, self.seen_ids = q, builder, seen_ids
        self.stats = {"format": name, "read": 0, "ingested": 0, "quarantined": 0, "skipped": 0, "calls": 0}

    def process(self, rec: Record) -> None:
        """One record through `Reader.calls`, into the builder or the quarantine."""
        stats, path = self.stats, self.path
        stats["read"] += 1
        if rec.error is not None:
            self.q.add(path, rec.line, rec.error, rec.raw)
            stats["quarantined"] += 1
            return
        raw = rec.raw if rec.raw is not None else rec.obj
        try:
            rows = self.reader.calls(rec.obj, self.ctx, rec.line)
        except SkipRecord:
            stats["ingested"] += 1
            stats["skipped"] += 1
            return
        except BadRecord as exc:
            self.q.add(path, rec.line, str(exc), raw)
            stats["quarantined"] += 1
            return
        except Exception as exc:  # noqa: BLE001 - any surprise in a record is that record's fault
            self.q.add(path, rec.line, f"{type(exc).__name__}: {exc}", raw)
            stats["quarantined"] += 1
            return
        ids = [r["call_id"] for r in rows]
        dup = next((i for i in ids if i in self.seen_ids), None)
        if dup is None and len(set(ids)) < len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
        if dup is not None:
            self.q.add(path, rec.line, _duplicate_reason(dup), raw)
            stats["quarantined"] += 1
            return
        self.seen_ids.update(ids)
        for r in rows:
            r["source_format"] = self.name
            r["source_file"] = str(path)
            r.setdefault("source_line", rec.line)
            self.builder.add(r)
        stats["ingested"] += 1
        stats["calls"] += len(rows)

    def process_fast(self, fast_rows: FastRows) -> None:
        """A JSONL file through the reader's fast path; the lines it leaves out go through `process`.

        Rows keep file order, and counting, duplicates and step numbering are those of `process`.
        """
        path, q, builder, seen_ids = self.path, self.q, self.builder, self.seen_ids
        read = ingested = dups = 0
        steps = builder.session_steps
        limit = builder.chunk_rows
        for first, lines, ends_with_newline in iter_jsonl_blocks(path, BLOCK_BYTES):
            rows = fast_rows(lines, first)
            last = len(lines) - 1
            out = builder.rows
            for i, row in enumerate(rows):
                if row is None:
                    raw = lines[i] + b"\n" if i < last or ends_with_newline else lines[i]
                    rec = jsonl_record(raw, first + i)
                    if rec is not None:
                        self.process(rec)
                        out = builder.rows  # `process` may have flushed
                    continue
                read += 1
                cid = row[_CALL]
                if cid in seen_ids:
                    raw = lines[i] + b"\n" if i < last or ends_with_newline else lines[i]
                    q.add(path, first + i, _duplicate_reason(cid), raw.decode("utf-8"))
                    dups += 1
                    continue
                seen_ids.add(cid)
                # `_ChunkBuilder.add` for a row list, inlined: this loop runs once per call.
                session = row[_SESSION]
                step = row[_STEP]
                if step is None:
                    row[_STEP] = step = steps.get(session, 0)
                steps[session] = step + 1
                out.append(row)
                ingested += 1
                if len(out) >= limit:
                    builder.flush()
                    out = builder.rows
        self.stats["read"] += read
        self.stats["ingested"] += ingested
        self.stats["calls"] += ingested
        self.stats["quarantined"] += dups


def _duplicate_reason(call_id: str) -> str:
    return f"duplicate call_id {call_id!r} (already ingested in this run)"


_TEXT_COLUMNS = ("messages", "tools", "response_text", "response_tool_calls", "error", "metadata")
_DICT_COLUMNS = [c for c in CALL_SCHEMA if c not in _TEXT_COLUMNS and c != "call_id"]
_STATS_COLUMNS = [c for c in CALL_SCHEMA if c not in _TEXT_COLUMNS]


class _PartWriter:
    """Keeps chunks in memory, or streams them into one parquet file when `out` is given."""

    def __init__(self, out: Path | None):
        self.out = out
        self.parts: list[pl.DataFrame] = []
        self.writer = None

    def add(self, df: pl.DataFrame) -> None:
        if self.out is None:
            self.parts.append(df)
            return
        if self.writer is None:
            import pyarrow.parquet as pq

            self.out.parent.mkdir(parents=True, exist_ok=True)
            table = df.to_arrow()
            self.writer = pq.ParquetWriter(
                self.out,
                table.schema,
                compression="zstd",
                # Dictionaries and min/max statistics only where they pay: not on the long JSON texts.
                use_dictionary=_DICT_COLUMNS,
                write_statistics=_STATS_COLUMNS,
            )
        else:
            table = df.to_arrow()
        self.writer.write_table(table)

    def close(self) -> pl.DataFrame | None:
        if self.out is None:
            df = pl.concat(self.parts, rechunk=True) if self.parts else empty_calls()
            return validate_calls(df)
        if self.writer is None:
            empty_calls().write_parquet(self.out)
        else:
            self.writer.close()
        return None
