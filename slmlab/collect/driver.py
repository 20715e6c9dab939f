"""The streaming ingest driver behind `slmlab.collect.ingest`: files → records → canonical call rows.

Counting rules are in `slmlab.collect.base`. What the driver guarantees, whatever the input:
* every record is ingested or quarantined (file, line or JSON path, a reason saying what was expected);
* a file that cannot be read, or that no reader recognises, is reported (`by_file[...]["error"]`,
  `ignored_files` with `ignored_reasons`) and the other files are read; the summary adds up per file
  and in total;
* every row passes the checks of `ChunkBuilder.flush`: token counts and costs are non-negative integers /
  finite numbers in range, else nulled (and counted again, or priced again, where possible) and flagged in
  `metadata.slmlab_flags`; tool-call arguments that are not JSON are kept as logged and flagged.

Usage:
    >>> from slmlab.collect import ingest
    >>> res = ingest("logs/", out="calls.parquet")  # doctest: +SKIP
    >>> print(res.summary)  # doctest: +SKIP
    1200 read, 1198 ingested, 2 quarantined (1198 calls)
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import polars as pl

from slmlab.collect.base import READERS, FastRows, Reader, detect_format
from slmlab.collect.chunks import ROW_INDEX, STEP_MAX, ChunkBuilder, PartWriter, Quarantine
from slmlab.collect.files import (
    LOG_SUFFIXES,
    READ_ERRORS,
    TOO_DEEP,
    describe_exc,
    iter_jsonl_blocks,
    jsonl_record,
)
from slmlab.collect.idset import CallIdSet
from slmlab.collect.record import BadRecord, Context, Record, SkipRecord, UnknownFormatError
from slmlab.collect.result import IngestResult, IngestSummary
from slmlab.collect.values import add_flags
from slmlab.schema import CALL_SCHEMA, conform

# Rows per polars chunk: large enough for vectorized work, small enough to bound memory on multi-GB logs
# (10k rows ingest as fast as 50k and peak at about half the memory: benchmarks/bench_ingest.py).
CHUNK_ROWS = 10_000
# Bytes of a JSONL file a reader's fast path parses at a time (whole lines; bounds memory on huge files).
BLOCK_BYTES = 4 << 20
_COLUMNS = list(CALL_SCHEMA)
_CALL, _SESSION, _STEP = ROW_INDEX["call_id"], ROW_INDEX["session_id"], ROW_INDEX["step"]
_META = ROW_INDEX["metadata"]


def _missing(p: Path) -> str:
    if p.is_symlink():
        try:
            p.resolve(strict=True)
        except RuntimeError:
            return f"{p}: a symbolic link that points to itself (a loop); point it at a log file or folder"
        except OSError:
            return f"{p}: a broken symbolic link (its target {os.readlink(p)} does not exist)"
    return f"{p}: no such log file or folder"


def expand_paths(paths: Any) -> tuple[list[Path], set[Path]]:
    """Files to read, sorted within folders; the second set holds files found by scanning a folder.

    Raises:
        FileNotFoundError: a path does not exist (the message says why: missing, a link loop, ...).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    scanned: set[Path] = set()
    for p in paths:
        p = Path(p).expanduser()
        try:
            is_dir, is_file = p.is_dir(), p.is_file()
        except OSError:  # a link loop on some Python versions
            is_dir = is_file = False
        if is_dir:
            found = []
            for root, _, names in os.walk(p, followlinks=False):
                for n in names:
                    f = Path(root) / n
                    if n.lower().endswith(LOG_SUFFIXES) and (f.is_file() or f.is_symlink()):
                        found.append(f)
            found.sort()
            files.extend(found)
            scanned.update(found)
        elif is_file:
            files.append(p)
        else:
            raise FileNotFoundError(_missing(p))
    seen: set[str] = set()
    unique = []
    for f in files:
        try:
            key = str(f.resolve())
        except (OSError, RuntimeError):
            key = str(f)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, scanned


def file_keys(files: list[Path]) -> dict[Path, str]:
    """A short unique name per file: its path relative to the folder all files share (else the name)."""
    if not files:
        return {}
    absolute = [f.absolute() for f in files]
    try:
        root = Path(os.path.commonpath([a.parent for a in absolute]))
    except ValueError:  # different drives
        return {f: str(f) for f in files}
    return {f: a.relative_to(root).as_posix() for f, a in zip(files, absolute, strict=True)}


def _price_table(prices: Any) -> pl.DataFrame | None:
    if prices is False:
        return None
    from slmlab.collect.pricing import load_prices

    if isinstance(prices, pl.DataFrame):
        return prices
    return load_prices(None if prices in (None, True) else prices)


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
        FileNotFoundError: a given path does not exist.
        UnknownFormatError: no file at all was recognised as a log.
        KeyError: `format` is not a registered reader.

    Example:
        >>> res = ingest("tests/fixtures/logs/openai/calls.jsonl")  # doctest: +SKIP
        >>> str(res.summary)  # doctest: +SKIP
        '5 read, 5 ingested, 0 quarantined (5 calls)'
    """
    from slmlab.config import home_dir

    if format != "auto" and format not in READERS:
        raise KeyError(f"unknown log format {format!r}; known: {', '.join(sorted(READERS))}")
    files, _ = expand_paths(paths)
    out_path = Path(out) if out is not None else None
    if quarantine is not None:
        qpath = Path(quarantine)
    elif out_path is not None:
        qpath = out_path.with_name(out_path.stem + ".quarantine.jsonl")
    else:
        qpath = home_dir() / "quarantine.jsonl"
    price_table = _price_table(prices)
    writer = PartWriter(out_path)

    def finish(df: pl.DataFrame) -> None:
        if count_missing_tokens:
            from slmlab.runtime.tokens import fill_missing_tokens

            df = fill_missing_tokens(df, tokenizer=tokenizer)
        if price_table is not None:
            from slmlab.collect.pricing import estimate_cost

            df = estimate_cost(df, price_table)
        writer.add(conform(df).select(_COLUMNS))

    builder = ChunkBuilder(finish, chunk_rows)
    q = Quarantine(qpath)
    by_file: dict[str, dict[str, Any]] = {}
    formats: dict[str, int] = {}
    notes: dict[str, Any] = {}
    ignored: dict[str, str] = {}
    seen_ids = CallIdSet()  # 8 bytes a call, not a str's ~150: ingest's memory stays flat with the file
    queue = list(files)
    found_beside: dict[Path, Path] = {}
    keys = file_keys(queue)
    gc_was_enabled = gc.isenabled()
    # Parsing allocates millions of small containers that are never cyclic; the cyclic GC would walk them
    # again and again (3-5x slower ingest). Reference counting still frees everything.
    gc.disable()
    try:
        i = 0
        while i < len(queue):
            path = queue[i]
            i += 1
            try:
                name = format if format != "auto" else detect_format(path)
            except UnknownFormatError as exc:
                ignored[str(path)] = str(exc).removeprefix(f"{path}: ").split("; no reader")[0]
                continue
            except READ_ERRORS as exc:
                stats = _stats("unreadable")
                q.add(path, 0, f"cannot read the file: {describe_exc(exc)}", None)
                stats.update(read=1, quarantined=1, error=describe_exc(exc))
                by_file[str(path)] = stats
                continue
            reader = READERS[name]
            try:
                extras = reader.companions(path)
            except READ_ERRORS:
                extras = []
            for extra in extras:
                if all(not _same(extra, f) for f in queue):
                    queue.append(extra)
                    found_beside[extra] = path
                    keys = file_keys(queue)
            ctx = Context(path=path, all_paths=queue, notes=notes, key=keys.get(path, path.name))
            run = _FileRun(path, name, reader, ctx, q, builder, seen_ids)
            if path in found_beside:
                run.stats["note"] = f"found beside {found_beside[path]}"
            run.read_all(fast)
            by_file[str(path)] = run.stats
            formats[name] = formats.get(name, 0) + run.stats["calls"]
        builder.flush()
    finally:
        q.close()
        if gc_was_enabled:
            gc.enable()
    if not by_file and len(files) == 1:
        raise UnknownFormatError(
            f"{files[0]}: {ignored.get(str(files[0]), 'not recognised')}; no reader recognised it (tried: "
            f"{', '.join(sorted(READERS))}); pass format=<name> to force one"
        )
    if not by_file and files:
        detail = "; ".join(f"{p}: {r}" for p, r in list(ignored.items())[:3])
        raise UnknownFormatError(
            f"none of the {len(files)} files was recognised as a log ({detail}); tried: "
            f"{', '.join(sorted(READERS))}; pass format=<name> to force one"
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
        ignored_reasons=ignored,
        flagged=builder.flagged,
    )
    assert summary.read == summary.ingested + summary.quarantined, summary
    return IngestResult(summary, qpath, calls=calls, out=out_path)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):
        return a == b


def _stats(name: str) -> dict[str, Any]:
    return {"format": name, "read": 0, "ingested": 0, "quarantined": 0, "skipped": 0, "calls": 0}


class _FileRun:
    """Turns one file's records into rows: counting, quarantine, duplicates (see `slmlab.collect.base`)."""

    def __init__(
        self,
        path: Path,
        name: str,
        reader: Reader,
        ctx: Context,
        q: Quarantine,
        builder: ChunkBuilder,
        seen_ids: CallIdSet,
    ):
        self.path, self.name, self.reader, self.ctx = path, name, reader, ctx
        self.q, self.builder, self.seen_ids = q, builder, seen_ids
        self.stats = _stats(name)
        self.last_line = 0

    def read_all(self, fast: bool) -> None:
        """Every record of the file; a read error stops the file with one quarantined record, never the run."""
        try:
            fast_rows = self.reader.fast_rows(self.ctx) if fast else None
            if fast_rows is None:
                for rec in self.reader.records(self.ctx):
                    self.process(rec)
            else:
                self.process_fast(fast_rows)
        except BadRecord as exc:  # a reader may reject a whole file (e.g. batch input without output)
            self._stop(0, str(exc))
        except READ_ERRORS as exc:
            reason = describe_exc(exc)
            self._stop(self.last_line + 1, f"cannot read the rest of the file: {reason}")
            self.stats["error"] = reason
        except RecursionError:
            self._stop(self.last_line + 1, TOO_DEEP)

    def _stop(self, line: int, reason: str) -> None:
        self.q.add(self.path, line, reason, None)
        self.stats["read"] += 1
        self.stats["quarantined"] += 1

    def _quarantine(self, rec: Record, reason: str, raw: Any) -> None:
        self.q.add(self.path, rec.line, reason, raw, rec.where)
        self.stats["quarantined"] += 1

    def process(self, rec: Record) -> None:
        """One record through `Reader.calls`, into the builder or the quarantine."""
        stats, path, ctx = self.stats, self.path, self.ctx
        stats["read"] += 1
        self.last_line = max(self.last_line, rec.line)
        if rec.error is not None:
            self._quarantine(rec, rec.error, rec.raw)
            return
        raw = rec.raw if rec.raw is not None else rec.obj
        ctx.where, ctx.shared_line = rec.where, rec.shared_line
        try:
            rows = self.reader.calls(rec.obj, ctx, rec.line)
            for r in rows:
                if r.get("call_id") is None:
                    r["call_id"] = ctx.fallback_id(rec.line)
        except SkipRecord:
            stats["ingested"] += 1
            stats["skipped"] += 1
            return
        except BadRecord as exc:
            self._quarantine(rec, str(exc), raw)
            return
        except RecursionError:
            self._quarantine(rec, TOO_DEEP, raw)
            return
        except Exception as exc:  # noqa: BLE001 - any surprise in a record is that record's fault
            self._quarantine(rec, f"{type(exc).__name__}: {exc}", raw)
            return
        ids = [r["call_id"] for r in rows]
        dup = next((i for i in ids if i in self.seen_ids), None)
        if dup is None and len(set(ids)) < len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
        if dup is not None:
            self._quarantine(rec, _duplicate_reason(dup), raw)
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
        try:
            for first, lines, ends_with_newline in iter_jsonl_blocks(path, BLOCK_BYTES):
                rows = fast_rows(lines, first)
                last = len(lines) - 1
                out = builder.rows
                self.last_line = first + last
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
                    if not seen_ids.add(cid):
                        raw = lines[i] + b"\n" if i < last or ends_with_newline else lines[i]
                        q.add(path, first + i, _duplicate_reason(cid), raw.decode("utf-8"))
                        dups += 1
                        continue
                    # `ChunkBuilder.add` for a row list, inlined: this loop runs once per call. The fast
                    # path answers only lines whose step is None or an int, and whose arguments are JSON.
                    session = row[_SESSION]
                    step = row[_STEP]
                    if step is None or step < 0 or step > STEP_MAX:
                        if step is not None:
                            row[_META] = add_flags(
                                row[_META], [f"step {step!r} is not a 0-based index: renumbered"]
                            )
                            builder.flagged += 1
                        row[_STEP] = step = steps.get(session, 0)
                    steps[session] = step + 1
                    out.append(row)
                    ingested += 1
                    if len(out) >= limit:
                        builder.flush()
                        out = builder.rows
        finally:
            self.stats["read"] += read
            self.stats["ingested"] += ingested
            self.stats["calls"] += ingested
            self.stats["quarantined"] += dups


def _duplicate_reason(call_id: str) -> str:
    return f"duplicate call_id {call_id!r} (already ingested in this run)"
