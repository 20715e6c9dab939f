"""Rows on their way out of the ingest: the quarantine file, the checks every row passes, polars chunks
of `CHUNK_ROWS` rows and the parquet writer that streams them.

The checks (`ChunkBuilder.add` and `ChunkBuilder.flush`): token counts must be integers in 0..2^63-1, costs
and latencies finite and >= 0, `step` an Int32 >= 0; other values are set to null (a step is renumbered)
and the row's `metadata.slmlab_flags` says what was changed; tool-call arguments that are not JSON are
kept and flagged.

Usage:
    >>> ROW_INDEX["call_id"]
    0
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from slmlab.collect.files import raw_text
from slmlab.collect.values import INT64_MAX, add_flags, timestamp_column
from slmlab.schema import CALL_SCHEMA, empty_calls, validate_calls

STEP_MAX = 2**31 - 1  # `step` is Int32


class Quarantine:
    """Appends `{"source_file", "line", "json_path", "reason", "raw"}` lines; the reason names file and line."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.f = open(path, "w", encoding="utf-8")
        self.n = 0

    def add(self, file: Path, line: int, reason: str, raw: Any, where: str | None = None) -> None:
        entry = {
            "source_file": str(file),
            "line": line,
            "json_path": where,
            "reason": f"{file}:{line}: {where + ': ' if where else ''}{reason}",
            "raw": raw_text(raw),
        }
        self.f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.n += 1

    def close(self) -> None:
        self.f.close()


_COLUMNS = list(CALL_SCHEMA)
# Position of each column in a row list (`Reader.fast_rows`, `_ChunkBuilder.rows`).
ROW_INDEX = {c: i for i, c in enumerate(_COLUMNS)}
_CALL, _SESSION, _STEP = ROW_INDEX["call_id"], ROW_INDEX["session_id"], ROW_INDEX["step"]

_COUNT_COLUMNS = ("input_tokens", "cached_input_tokens", "output_tokens")
_MONEY_COLUMNS = ("cost_usd", "latency_ms")


def _bad_count(v: Any) -> bool:
    return v is not None and (v.__class__ is not int or v < 0 or v > INT64_MAX)


def _bad_amount(v: Any) -> bool:
    return v is not None and (
        not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0 or v == math.inf
    )


_NONE = type(None)


def _counts_ok(col: Any) -> bool:
    """True if every value is None or an int in 0..INT64_MAX (bools are not counts)."""
    if not set(map(type, col)) <= {int, _NONE}:
        return False
    vals = [v for v in col if v is not None]
    return not vals or (min(vals) >= 0 and max(vals) <= INT64_MAX)


def _amounts_ok(col: Any) -> bool:
    """True if every value is None or a finite int/float >= 0."""
    if not set(map(type, col)) <= {int, float, _NONE}:
        return False
    vals = [v for v in col if v is not None]
    return not vals or (all(map(math.isfinite, vals)) and min(vals) >= 0)


def _argument_flags(tool_calls_json: str | None) -> list[str]:
    """Flags for tool calls whose arguments are not JSON (kept as logged)."""
    if not tool_calls_json:
        return []
    out = []
    for c in orjson.loads(tool_calls_json):
        try:
            orjson.loads(c.get("arguments") or "")
        except orjson.JSONDecodeError:
            out.append(f"tool call {c.get('name')!r}: arguments are not JSON (kept as logged)")
    return out


class ChunkBuilder:
    """Collects rows as lists in `CALL_SCHEMA` order and turns every `chunk_rows` into a canonical frame."""

    def __init__(self, finish: Callable[[pl.DataFrame], None], chunk_rows: int):
        self.finish = finish
        self.chunk_rows = chunk_rows
        self.rows: list[list[Any]] = []
        self.session_steps: dict[str, int] = {}
        self.flagged = 0

    def add(self, row: dict[str, Any]) -> None:
        session = row.get("session_id") or row["call_id"]
        row["session_id"] = session
        step = row.get("step")
        if step is not None and not (step.__class__ is int and 0 <= step <= STEP_MAX):
            row["metadata"] = add_flags(
                row.get("metadata"), [f"step {step!r} is not a 0-based index: renumbered"]
            )
            self.flagged += 1
            step = None
        if step is None:
            row["step"] = step = self.session_steps.get(session, 0)
        self.session_steps[session] = step + 1
        flags = _argument_flags(row.get("response_tool_calls"))
        if flags:
            row["metadata"] = add_flags(row.get("metadata"), flags)
            self.flagged += 1
        self.rows.append([row.get(c) for c in _COLUMNS])
        if len(self.rows) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        rows, self.rows = self.rows, []
        cols: dict[str, Any] = dict(zip(_COLUMNS, zip(*rows, strict=True), strict=True))
        self._check(cols)
        for c in ("tokens_estimated", "cost_estimated"):
            cols[c] = [bool(v) for v in cols[c]]
        cols["n_tool_calls"] = [v or 0 for v in cols["n_tool_calls"]]
        cols["status"] = [v or "ok" for v in cols["status"]]
        # Timestamps are converted column-wise here, not per row (see `timestamp_column`).
        raw_ts = cols["timestamp"]
        ts = timestamp_column(list(raw_ts))
        if ts.null_count() > raw_ts.count(None):  # a logged timestamp that is no time: null, and said so
            meta = list(cols["metadata"])
            for i in (ts.is_null() & pl.Series([v is not None for v in raw_ts])).arg_true().to_list():
                meta[i] = add_flags(
                    meta[i], [f"timestamp {str(raw_ts[i])[:80]!r} is not a time: set to null"]
                )
                self.flagged += 1
            cols["metadata"] = meta
        cols["timestamp"] = ts
        self.finish(pl.DataFrame(cols, schema=CALL_SCHEMA, strict=False))

    def _check(self, cols: dict[str, Any]) -> None:
        """Null (and flag) counts and amounts no log can mean: negative, non-numeric, beyond Int64.

        Works on the columns (tuples from the transpose): the common case is a few C-level passes."""
        bad: dict[int, list[str]] = {}
        for c, ok, bad_value, what in (
            *((c, _counts_ok, _bad_count, "is not a token count") for c in _COUNT_COLUMNS),
            *((c, _amounts_ok, _bad_amount, "is not a non-negative amount") for c in _MONEY_COLUMNS),
        ):
            col = cols[c]
            if ok(col):
                continue
            col = list(col)
            for i, v in enumerate(col):
                if bad_value(v):
                    bad.setdefault(i, []).append(f"{c} {v!r} {what}: set to null")
                    col[i] = None
            cols[c] = col
        if bad:
            meta = list(cols["metadata"])
            for i, flags in bad.items():
                meta[i] = add_flags(meta[i], flags)
            cols["metadata"] = meta
        self.flagged += len(bad)


_TEXT_COLUMNS = ("messages", "tools", "response_text", "response_tool_calls", "error", "metadata")
_DICT_COLUMNS = [c for c in CALL_SCHEMA if c not in _TEXT_COLUMNS and c != "call_id"]
_STATS_COLUMNS = [c for c in CALL_SCHEMA if c not in _TEXT_COLUMNS]


class PartWriter:
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
