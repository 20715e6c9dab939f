"""The small types every reader and the ingest driver share: a record, its context, and the two outcomes
a record can have besides becoming calls (quarantined: `BadRecord`; not an LLM call: `SkipRecord`).

Usage:
    >>> Record(3, obj={"a": 1}).where_text()
    'line 3'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class BadRecord(ValueError):
    """A record that cannot become a call: the reason goes to the quarantine file."""


class SkipRecord(Exception):
    """A well-formed record that is not an LLM call (tool span, chain run): counted as skipped."""


class UnknownFormatError(ValueError):
    """No reader recognised a file; the message names every format tried."""


@dataclass
class Record:
    """One unit read from a file: a parsed object, or the error that prevented parsing it."""

    line: int  # 1-based JSONL line (or the line a JSON value starts on), or 1-based index in a document
    obj: Any = None
    error: str | None = None  # set when the record could not be parsed (bad JSON, bad bytes)
    raw: str | None = None  # raw text for the quarantine (JSONL lines; documents are re-serialised)
    where: str | None = None  # JSON path inside the file (`$.data[3]`, `$[0].observations[2]`), if any
    shared_line: bool = False  # other records start on the same line (a JSONL trace's observations)

    def where_text(self) -> str:
        """`line N`, or the JSON path where the record sits in a document."""
        return self.where or f"line {self.line}"


@dataclass
class Context:
    """What a reader knows besides the record: the file, every path in this ingest, per-file notes.

    `key` names the file uniquely within the ingest (its path relative to the folder all inputs share):
    readers build fallback call ids from it, so `day1/calls.jsonl` and `day2/calls.jsonl` never collide.
    `where` is the JSON path of the record being read and `shared_line` whether other records start on its
    line (both set by the driver), for fallback ids and messages.
    """

    path: Path
    all_paths: list[Path]
    notes: dict[str, Any] = field(default_factory=dict)  # reported in `IngestSummary.notes`
    state: dict[str, Any] = field(default_factory=dict)  # a reader's scratch space for this file
    key: str = ""
    where: str | None = None
    shared_line: bool = False

    def __post_init__(self) -> None:
        if not self.key:
            self.key = self.path.name

    def fallback_id(self, line: int) -> str:
        """A call id for a record whose log has none: the file key and the record's line (or index), and its
        JSON path when several records start on that line."""
        if self.shared_line and self.where:
            return f"{self.key}:{line}:{self.where}"
        return f"{self.key}:{line}"
