"""Helpers that turn a parsed log record into canonical row values (`slmlab.schema.CALL_SCHEMA`): JSON text,
tool calls in the canonical `[{"id", "name", "arguments"}]` form, the response columns, numbers and
timestamps read leniently (a wrong type becomes None, never an exception), and the checks the driver
applies to every row (non-negative counts and costs, tool arguments that are JSON).

These are the helpers a custom reader uses; `slmlab.collect` exports them.

Usage:
    >>> response_fields(None, [{"id": "c1", "name": "get_weather", "arguments": '{"city": "Paris"}'}])["tool_name"]
    'get_weather'
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any

import polars as pl

from slmlab.collect.record import BadRecord
from slmlab.schema import CALL_SCHEMA

# Largest value an Int64 column holds; a logged count beyond it is not a count.
INT64_MAX = 2**63 - 1
# Key of `metadata` under which the driver lists what it changed in a row (nulled values, bad arguments).
FLAGS_KEY = "slmlab_flags"


def _finite(obj: Any) -> Any:
    """`obj` with NaN / Infinity floats (which `json` reads but JSON cannot hold) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def to_json(obj: Any) -> str | None:
    """Compact JSON text (non-ASCII kept; NaN and Infinity written as null), or None for None.

    Example:
        >>> to_json({"city": "Zürich", "t": float("nan")})
        '{"city":"Zürich","t":null}'
    """
    if obj is None:
        return None
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False)
    except ValueError:  # NaN / Infinity somewhere: not JSON
        return json.dumps(_finite(obj), ensure_ascii=False, separators=(",", ":"), default=str)


def is_json(text: Any) -> bool:
    """True if `text` is a string holding one JSON value (tool-call arguments should be)."""
    if not isinstance(text, str):
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def add_flags(metadata: str | None, flags: list[str]) -> str:
    """`metadata` JSON text with `flags` appended under `FLAGS_KEY` (what ingest changed in the row)."""
    try:
        meta = json.loads(metadata) if metadata else {}
    except ValueError:
        meta = {"raw_metadata": metadata}
    if not isinstance(meta, dict):
        meta = {"metadata": meta}
    meta[FLAGS_KEY] = [*meta.get(FLAGS_KEY, []), *flags]
    return to_json(meta) or "{}"


def args_json(args: Any) -> str:
    """Tool-call arguments as a JSON *string*: parsed objects (Data Flywheel, tau2) are serialised."""
    if args is None:
        return "{}"
    if isinstance(args, str):
        return args
    return json.dumps(args, ensure_ascii=False, separators=(",", ":"))


def openai_tool_calls(tool_calls: Any) -> list[dict[str, Any]]:
    """Canonical `[{"id", "name", "arguments"}]` from OpenAI-shaped or flat tool calls.

    Flat forms: `{id, name, arguments}`, LangChain `{id, name, args}`, Anthropic `tool_use`
    `{id, name, input}`, OpenAI Responses `function_call` items `{call_id, name, arguments}` and Vercel AI
    SDK `tool-call` parts `{toolCallId, toolName, args | input}`.

    Example:
        >>> openai_tool_calls([{"type": "tool-call", "toolCallId": "t1", "toolName": "f", "args": {"x": 1}}])
        [{'id': 't1', 'name': 'f', 'arguments': '{"x":1}'}]
    """
    if not tool_calls:
        return []
    if not isinstance(tool_calls, list):
        raise BadRecord(f"tool_calls is {type(tool_calls).__name__}, expected a list")
    out = []
    for tc in tool_calls:
        if not isinstance(tc, dict):
            raise BadRecord(f"a tool call is {type(tc).__name__}, expected an object")
        if isinstance(tc.get("function"), dict):
            fn, tc_id = tc["function"], tc.get("id")
        else:
            fn = tc
            tc_id = next((tc[k] for k in ("call_id", "toolCallId", "id") if tc.get(k) is not None), None)
        name = fn.get("name", fn.get("toolName"))
        if not isinstance(name, str):
            raise BadRecord("a tool call has no function name")
        args = fn.get("arguments", fn.get("args", fn.get("input")))
        out.append({"id": tc_id, "name": name, "arguments": args_json(args)})
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
    if isinstance(v, str) and v.strip().lstrip("-").isdigit() and len(v.strip()) < 4300:
        return int(v)
    return None


def as_float(v: Any) -> float | None:
    """A float from numbers or numeric strings; anything else is None."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        try:
            x = float(v)
        except OverflowError:  # an integer beyond the float range
            return None
        return x if math.isfinite(x) else None
    if isinstance(v, str):
        try:
            x = float(v)
        except ValueError:
            return None
        return x if math.isfinite(x) else None
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
