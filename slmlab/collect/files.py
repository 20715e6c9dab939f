"""Reading log files: opening (gzip by its magic bytes), the head readers sniff, and the three layouts a
JSON log comes in, each turned into `Record`s that never raise on bad content.

Layouts (`json_layout`):
* **jsonl**: one JSON value per line (JSONL / NDJSON); a bad line is one bad record;
* **document**: one JSON document; its records are the elements of a top-level list, of a list under a
  wrapper key (`LIST_KEYS`, e.g. `{"data": [...]}`), of every list of a dict whose values are all lists
  (Phoenix span lists per project, LangSmith `{"post": [...], "patch": [...]}`), else the document itself;
* **stream**: JSON values one after another, pretty-printed or not (two concatenated documents, the
  OpenTelemetry SDK's `ConsoleSpanExporter` output, a pretty-printed `.jsonl`); each value is unwrapped
  like a document and numbered by the line it starts on; after a broken value reading resumes at the
  next line that starts a value.

A UTF-8 byte-order mark is dropped. Nesting deeper than the parser's recursion limit, bad UTF-8 and bad
JSON make an error record (never an exception).

Usage:
    >>> from slmlab.collect.files import first_json
    >>> first_json('[\\n  {"request": {}, "response": {}}\\n]')
    {'request': {}, 'response': {}}
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slmlab.collect.record import Record

# Bytes of a file's start that readers see to recognise their format.
HEAD_BYTES = 256 * 1024
# A quarantined record keeps at most this many characters of its raw text (a 10 MB bad line stays a line).
MAX_RAW_CHARS = 20_000
# File suffixes a folder scan picks up (README.md, LICENSE next to logs are not logs).
LOG_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
# Keys under which exports wrap their list of records.
LIST_KEYS = ("data", "records", "items", "observations", "runs", "spans")
# What reading a file may raise besides bad content: unreadable, truncated or corrupt gzip, vanished.
READ_ERRORS = (OSError, EOFError, zlib.error)

BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_DECODER = json.JSONDecoder()
TOO_DEEP = "nested too deeply to parse (over about 900 levels of lists/objects)"


def open_text_bytes(path: Path) -> io.BufferedReader | gzip.GzipFile:
    """Open a log file for binary reading; gzip data (by its magic bytes, whatever the name) is unzipped."""
    f = open(path, "rb")
    try:
        magic = f.read(2)
        f.seek(0)
    except BaseException:
        f.close()
        raise
    if magic == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    return f


def read_head_bytes(path: Path, n: int = HEAD_BYTES) -> bytes:
    """The first `n` (uncompressed) bytes of a file, without a UTF-8 byte-order mark (of a truncated gzip:
    the bytes before the damage, which reading the records then reports)."""
    with open_text_bytes(path) as f:
        data, error = _read_block(f, n)
    if error is not None and not data:
        raise error
    return data[3:] if data.startswith(BOM) else data


def read_head(path: Path, n: int = HEAD_BYTES) -> str:
    """The first `n` bytes of a file as text (undecodable bytes replaced; only used to recognise formats)."""
    return read_head_bytes(path, n).decode("utf-8", errors="replace")


def describe_exc(exc: BaseException) -> str:
    """A read error in words (`PermissionError: ...`, a truncated gzip stream, ...)."""
    if isinstance(exc, EOFError):
        return f"the gzip data ends early (truncated file): {exc}"
    if isinstance(exc, gzip.BadGzipFile):
        return f"corrupt gzip data: {exc}"
    if isinstance(exc, zlib.error):
        return f"corrupt gzip data: {exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


def parse_json(text: str | bytes) -> tuple[Any, str | None]:
    """`(value, None)`, or `(None, reason)` for bad JSON or nesting too deep for the parser.

    Example:
        >>> parse_json("[" * 5000)[1]
        'nested too deeply to parse (over about 900 levels of lists/objects)'
    """
    try:
        return json.loads(text), None
    except RecursionError:
        return None, TOO_DEEP
    except ValueError as exc:
        return None, f"invalid JSON: {exc}"


def first_json(head: str) -> Any:
    """The first record of a file head: its first JSONL line, or the first element of a (pretty-printed)
    JSON list, or its first JSON value; None if nothing parses.

    Example:
        >>> first_json('{"a": 1}\\n{"a": 2}\\n'), first_json('[{"a": 1},')
        ({'a': 1}, {'a': 1})
    """
    text = head.lstrip("\ufeff \t\r\n")
    if not text:
        return None
    line = text.split("\n", 1)[0]
    obj, err = parse_json(line)
    if err is not None:
        obj = _first_value(text)
        if obj is None:
            return None
    if isinstance(obj, list):
        return obj[0] if obj else None
    return obj


def _first_value(text: str) -> Any:
    """The first JSON value of `text`, or of the list it opens (a head may cut a long document)."""
    try:
        return _DECODER.raw_decode(text)[0]
    except (ValueError, RecursionError):
        pass
    if text.startswith("["):
        i = 1
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        try:
            return [_DECODER.raw_decode(text, i)[0]]
        except (ValueError, RecursionError):
            return None
    return None


# --------------------------------------------------------------------------------------------- records


def jsonl_record(raw: bytes, line: int) -> Record | None:
    """The record of one raw JSONL line (newline included), or None for a blank line (not a record)."""
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Record(line, error=f"not valid UTF-8 ({exc.reason} at byte {exc.start})", raw=raw_text(raw))
    obj, err = parse_json(text)
    if err is not None:
        return Record(line, error=err, raw=text)
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
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def iter_jsonl(path: Path) -> Iterator[Record]:
    """JSONL lines, read incrementally in binary; bad UTF-8 or bad JSON yields an error record."""
    with open_text_bytes(path) as f:
        for i, raw in enumerate(f, start=1):
            if i == 1 and raw.startswith(BOM):
                raw = raw[3:]
            rec = jsonl_record(raw, i)
            if rec is not None:
                yield rec


def iter_jsonl_blocks(path: Path, block_bytes: int) -> Iterator[tuple[int, list[bytes], bool]]:
    """`(first line number, lines, ends_with_newline)`: a JSONL file's lines, about `block_bytes` at a time.

    Lines come without their b"\\n"; only the file's last line may have had none (`ends_with_newline`
    False for that last block). A line longer than `block_bytes` makes a block of its own, so memory stays
    bounded by the longest line. Line numbers count exactly as `iter_jsonl` does.
    """
    line = 1
    carry = b""
    first = True
    with open_text_bytes(path) as f:
        while True:
            data, error = _read_block(f, block_bytes)
            if error is not None:  # a truncated or corrupt gzip: the whole lines before the damage first
                lines = (carry + data).split(b"\n")[:-1]
                if lines:
                    yield line, lines, True
                raise error
            if first and data:
                while len(data) < 3 and BOM.startswith(data):  # a BOM cut by a tiny block
                    more = f.read(block_bytes)
                    if not more:
                        break
                    data += more
                if data.startswith(BOM):
                    data = data[3:]
                first = False
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


def _read_block(f: Any, n: int) -> tuple[bytes, BaseException | None]:
    """Up to `n` bytes, read in the steps the stream gives (a gzip stream decompresses chunk by chunk), and
    the read error that stopped it early, if any (the bytes before it are kept)."""
    read1 = getattr(f, "read1", None)
    if read1 is None:
        return f.read(n), None
    chunks, size = [], 0
    try:
        while size < n:
            chunk = read1(n - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except READ_ERRORS as exc:
        return b"".join(chunks), exc
    return b"".join(chunks), None


def _read_text(path: Path) -> tuple[str | None, str | None]:
    with open_text_bytes(path) as f:
        data = f.read()
    if data.startswith(BOM):
        data = data[3:]
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 ({exc.reason} at byte {exc.start})"


def load_document(path: Path) -> tuple[Any, str | None]:
    """Parse a whole JSON document: (obj, None), or (None, reason) when bytes or JSON are broken."""
    text, err = _read_text(path)
    if err is not None:
        return None, err
    return parse_json(text)


def json_layout(path: Path) -> str:
    """ "jsonl", "document" or "stream" (see the module docstring), from the file's first megabyte.

    Example:
        >>> json_layout(Path("tests/fixtures/logs/openai/calls.jsonl"))  # doctest: +SKIP
        'jsonl'
    """
    name = path.name.lower().removesuffix(".gz")
    lines_suffix = name.endswith((".jsonl", ".ndjson"))
    limit = 1 << 20
    data = read_head_bytes(path, limit)
    whole = len(data) < limit
    head = data.decode("utf-8", errors="replace").lstrip()
    if not head:
        return "jsonl"
    lines = [ln for ln in head.split("\n", 64) if ln.strip()]
    more_lines = len(lines) > 1
    _, err = parse_json(lines[0])
    if err is None or err == TOO_DEEP:
        if lines_suffix or more_lines:
            return "jsonl"
        return "document"  # a one-line file is a document (a JSON list or object)
    if lines_suffix and len(lines) > 2 and parse_json(lines[1])[1] is None:
        return "jsonl"  # a bad first line in a JSONL file
    try:
        _, end = _DECODER.raw_decode(head)
    except (ValueError, RecursionError):
        end = None
    if end is not None:
        rest = head[end:].lstrip()
        return "stream" if rest[:1] in ("{", "[") else "document"
    if not whole and lines[0].strip() in ("{", "["):  # a long pretty-printed value, cut by the head
        return "stream" if lines_suffix else "document"
    return "jsonl" if lines_suffix else "document"


def is_jsonl(path: Path) -> bool:
    """True when the file is one JSON value per line (see `json_layout`)."""
    return json_layout(path) == "jsonl"


def unwrap(
    obj: Any, list_keys: tuple[str, ...] = LIST_KEYS, where: str = "$", dict_of_lists: bool = True
) -> list[tuple[str, Any]]:
    """`(JSON path, record)` pairs of one JSON document (see the module docstring for the rules);
    `list_keys=()` unwraps only a top-level list (a reader that wants whole documents).

    Example:
        >>> unwrap({"proj-a": [{"x": 1}], "proj-b": [{"x": 2}]})
        [('$["proj-a"][0]', {'x': 1}), ('$["proj-b"][0]', {'x': 2})]
    """
    if isinstance(obj, dict):
        for key in list_keys:
            if isinstance(obj.get(key), list):
                return [(f"{where}.{key}[{i}]", x) for i, x in enumerate(obj[key])]
        if (
            dict_of_lists
            and list_keys
            and obj
            and all(isinstance(v, list) for v in obj.values())
            and any(obj.values())
        ):
            return [
                (f"{where}[{json.dumps(k, ensure_ascii=False)}][{i}]", x)
                for k, v in obj.items()
                for i, x in enumerate(v)
            ]
        return [(where, obj)]
    if isinstance(obj, list):
        return [(f"{where}[{i}]", x) for i, x in enumerate(obj)]
    return [(where, obj)]


def iter_json_stream(
    path: Path, list_keys: tuple[str, ...] = LIST_KEYS, dict_of_lists: bool = True
) -> Iterator[Record]:
    """Records of JSON values written one after another (see the module docstring)."""
    text, err = _read_text(path)
    if err is not None:
        yield Record(1, error=err, raw=raw_text(read_head(path, MAX_RAW_CHARS)))
        return
    assert text is not None
    pos, line, n = 0, 1, len(text)
    while True:
        start = pos
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        line += text.count("\n", start, pos)
        if pos >= n:
            return
        try:
            obj, end = _DECODER.raw_decode(text, pos)
            reason = None
        except RecursionError:
            obj, end, reason = None, None, TOO_DEEP
        except ValueError as exc:
            obj, end, reason = None, None, f"invalid JSON: {exc}"
        if reason is not None:
            nxt = _next_value_start(text, pos + 1)
            yield Record(line, error=reason, raw=raw_text(text[pos:nxt]))
            line += text.count("\n", pos, nxt)
            pos = nxt
            continue
        items = unwrap(obj, list_keys, dict_of_lists=dict_of_lists)
        for where, item in items:
            yield Record(line, obj=item, where=None if where == "$" else where, shared_line=len(items) > 1)
        line += text.count("\n", pos, end)
        pos = end


def _next_value_start(text: str, pos: int) -> int:
    """Where the next line that starts a JSON object or list begins (resuming after a broken value)."""
    while True:
        i = text.find("\n", pos)
        if i < 0:
            return len(text)
        if text[i + 1 : i + 2] in ("{", "["):
            return i + 1
        pos = i + 1


def iter_json_records(
    path: Path, list_keys: tuple[str, ...] = LIST_KEYS, dict_of_lists: bool = True
) -> Iterator[Record]:
    """Records of a JSONL file, a JSON document or a stream of JSON values (see `json_layout`).

    A document's records are numbered 1, 2, ... in order and carry their JSON path in `Record.where`;
    `dict_of_lists=False` keeps a dict whose values are all lists as one record.
    """
    layout = json_layout(path)
    if layout == "jsonl":
        yield from iter_jsonl(path)
        return
    if layout == "stream":
        yield from iter_json_stream(path, list_keys, dict_of_lists)
        return
    obj, err = load_document(path)
    if err is not None and err.startswith("invalid JSON: Extra data"):
        yield from iter_json_stream(path, list_keys, dict_of_lists)  # documents one after another
        return
    if err:
        yield Record(1, error=err, raw=raw_text(read_head(path, MAX_RAW_CHARS)))
        return
    for i, (where, item) in enumerate(unwrap(obj, list_keys, dict_of_lists=dict_of_lists), start=1):
        yield Record(i, obj=item, where=None if where == "$" else where)


def raw_text(raw: Any) -> str:
    """Raw text for the quarantine, cut to `MAX_RAW_CHARS` (bytes are decoded with replacement)."""
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        raw = raw[: MAX_RAW_CHARS * 4].decode("utf-8", errors="backslashreplace")
    elif not isinstance(raw, str):
        try:
            raw = json.dumps(raw, ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            raw = f"<a {type(raw).__name__} too deeply nested to print>"
    if len(raw) > MAX_RAW_CHARS:
        raw = raw[:MAX_RAW_CHARS] + f"...[truncated, {len(raw)} chars in all]"
    return raw


def describe_unrecognised(path: Path, head: bytes) -> str:
    """Why no reader took a file, in words a user can act on (empty, binary, UTF-16, not JSON, ...)."""
    if not head.strip():
        return "the file is empty"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text: save it as UTF-8"
    sample = head[:4096]
    if b"\x00" in sample or sum(b < 9 or 13 < b < 32 for b in sample) > len(sample) // 10:
        return "binary data, not a text log"
    text = head.decode("utf-8", errors="replace").lstrip()
    if text[:1] not in ("{", "["):
        return "not JSON (a log file is JSON, JSONL or gzip of them)"
    return "JSON, but no reader recognised its shape"
