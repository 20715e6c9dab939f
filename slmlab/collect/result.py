"""What `slmlab.collect.ingest` returns: `IngestSummary` (counts that add up, per file and in total) and
`IngestResult` (the call table, in memory or streamed to parquet, and the quarantine).

Usage:
    >>> IngestSummary(read=3, ingested=2, quarantined=1, calls=2, by_file={}, formats={}).read
    3
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from slmlab.schema import empty_calls


@dataclass(frozen=True)
class IngestSummary:
    """Counts of one ingest; `read == ingested + quarantined` always, per file and in total.

    Attributes:
        read: records read (see `slmlab.collect.base` for what a record is in each format).
        ingested: records read without error (including `skipped` ones that are not LLM calls).
        quarantined: records written to the quarantine file.
        calls: rows of the call table.
        skipped: ingested records that were not LLM calls (tool spans, chain runs, SPAN observations).
        by_file: per file: format, read, ingested, quarantined, skipped, calls (and `error` when reading
            stopped early, `note` when the file was found beside another one).
        formats: calls per reader name.
        ignored_files: files no reader recognised (README-like JSON, query lists, empty or binary files).
        notes: reader-specific facts worth reporting (e.g. ToolBench `query_count` incl. pruned branches).
        ignored_reasons: why each ignored file was not read, in words.
        flagged: rows with a value nulled or flagged by the checks (see `metadata.slmlab_flags`).
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
    ignored_reasons: dict[str, str] = field(default_factory=dict)
    flagged: int = 0

    def __str__(self) -> str:
        s = f"{self.read} read, {self.ingested} ingested, {self.quarantined} quarantined ({self.calls} calls)"
        if self.skipped:
            s += f"; {self.skipped} non-LLM records skipped"
        if self.flagged:
            s += f"; {self.flagged} calls flagged"
        return s

    def report(self) -> str:
        """Per-file lines (detected format and counts), the ignored files with why, then the totals."""
        out = []
        for path, st in self.by_file.items():
            line = (
                f"{path}: {st['format']}: {st['read']} read, {st['ingested']} ingested, "
                f"{st['quarantined']} quarantined, {st['calls']} calls"
            )
            if st.get("skipped"):
                line += f", {st['skipped']} skipped"
            if st.get("note"):
                line += f" ({st['note']})"
            if st.get("error"):
                line += f"; stopped: {st['error']}"
            out.append(line)
        for path in self.ignored_files:
            out.append(f"{path}: ignored: {self.ignored_reasons.get(path, 'not recognised')}")
        out.append(str(self))
        return "\n".join(out)


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
