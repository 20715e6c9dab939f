"""Sharded, lazy inputs: a folder, glob or object-store URL of log shards -> one partitioned call table.

A month of production logs arrives as shards (one file per day or per hour, JSONL, JSONL.gz or Parquet,
maybe in S3 / GCS / Azure). `ingest_shards` reads each shard on its own through `slmlab.collect.ingest`
(same readers, same quarantine rules) and writes it as one partition of a canonical table:

    <out>/shard=<name>/part-0.parquet        the shard's calls (`slmlab.schema.CALL_SCHEMA`)
    <out>/shard=<name>/quarantine.jsonl      its malformed records (file, line, reason)
    <out>/_shards.json                       per-shard counts, totals, the source of every partition

No shard is ever held in memory whole: ingest streams each to parquet chunk by chunk, and everything after
works on `scan_table` (a polars lazy scan of all partitions). Call ids are unique over the whole table, as
in one `ingest` of all the files: a call id already seen in an earlier shard is quarantined as a duplicate.

- Local shards: a folder (recursive), a glob (`logs/2026-11-*.jsonl.gz`) or a list of files.
- Remote shards: any URL fsspec lists (`s3://bucket/logs/*.jsonl.gz` needs `s3fs`, `gs://` `gcsfs`, `az://`
  `adlfs`). Parquet shards at URLs polars reads natively (s3, gs, az, hf, http(s), file) are scanned by
  polars directly; JSONL shards are copied to a temporary file one at a time (the readers sniff formats and
  quarantine per line, which needs a local file), then deleted.
- A Parquet shard must already be a canonical call table (e.g. an earlier `ingest(out=...)`); another
  Parquet file is quarantined whole, with its file and the missing columns.

`slmlab.collect.shard_profile.profile_table` profiles the partitioned table through a lazy scan that never
loads the prompt or response texts; `slmlab.curate.partitions.curate_partitions` curates it one partition at
a time (see its docstring for what that means for duplicates). `slmlab.pipeline.distributed` runs the same per-shard steps on a Dask cluster.

Usage:
    >>> from slmlab.collect.shards import ingest_shards
    >>> from slmlab.collect.shard_profile import profile_table
    >>> table = ingest_shards("s3://acme-logs/2026-11/*.jsonl.gz", "runs/nov/calls")  # doctest: +SKIP
    >>> print(table.summary())  # doctest: +SKIP
    >>> print(profile_table(table).summary)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from slmlab.collect.shard_list import (
    POLARS_SCHEMES,
    Shard,
    _fs,
    _scheme,
    list_shards,
)
from slmlab.schema import CALL_SCHEMA

MANIFEST = "_shards.json"
PART_FILE = "part-0.parquet"
QUARANTINE_FILE = "quarantine.jsonl"


# ------------------------------------------------------------------------------------------ progress


class BytesProgress:
    """A byte-level progress bar for files read by code that reports no progress of its own.

    A thread polls this process's open files (psutil) for the read position of the file being ingested,
    so the bar moves within one large file too; finished files count whole.
    """

    def __init__(self, total: int | None, desc: str = "ingest", disable: bool = False, every_s: float = 0.5):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=disable)
        self.done = 0
        self.every_s = every_s
        self._current: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.disable = disable

    def _poll(self) -> None:
        import psutil

        proc = psutil.Process()
        while not self._stop.wait(self.every_s):
            cur = self._current
            if cur is None:
                continue
            try:
                pos = max((f.position for f in proc.open_files() if f.path == cur), default=None)
            except (psutil.Error, OSError, AttributeError):
                continue
            if pos is not None:
                self.bar.n = self.done + pos
                self.bar.refresh()

    @contextmanager
    def reading(self, path: str | os.PathLike, size: int | None) -> Iterator[None]:
        """Track `path` while the body reads it; count `size` bytes when it is done."""
        self._current = str(Path(path).resolve())
        if self._thread is None and not self.disable:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        try:
            yield
        finally:
            self._current = None
            self.done += size or 0
            self.bar.n = self.done
            self.bar.refresh()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.bar.close()


# ------------------------------------------------------------------------------------------ one shard


@dataclass
class ShardResult:
    """What ingesting one shard produced (plain data: it travels between Dask workers as is)."""

    name: str
    uri: str
    kind: str
    index: int
    read: int = 0
    ingested: int = 0
    quarantined: int = 0
    skipped: int = 0
    calls: int = 0
    ignored: bool = False  # no reader recognised the file (like an unrecognised file in an ingested folder)
    bytes: int | None = None
    seconds: float = 0.0
    formats: dict[str, int] = field(default_factory=dict)
    error: str | None = None  # why the whole shard was quarantined, if it was
    duplicates: int = 0  # call ids already seen in an earlier shard (moved to the quarantine by `finish`)


def _partition(out_dir: Path, name: str) -> Path:
    return Path(out_dir) / f"shard={name}"


def _quarantine_whole(qpath: Path, uri: str, reason: str) -> None:
    qpath.parent.mkdir(parents=True, exist_ok=True)
    entry = {"source_file": uri, "line": 0, "reason": f"{uri}:0: {reason}", "raw": None}
    qpath.write_text(json.dumps(entry, ensure_ascii=False) + "\n")


def _empty_part(part: Path) -> None:
    from slmlab.schema import empty_calls

    part.parent.mkdir(parents=True, exist_ok=True)
    empty_calls().write_parquet(part)


@contextmanager
def _local_copy(shard: Shard, tmp_dir: str | None) -> Iterator[Path]:
    """The shard as a local file: itself, or a temporary copy of a remote one (deleted afterwards)."""
    if not shard.remote:
        uri = shard.uri[len("file://") :] if shard.uri.startswith("file://") else shard.uri
        yield Path(uri)
        return
    fs, path = _fs(shard.uri)
    tmp = Path(tempfile.mkdtemp(prefix="slmlab-shard-", dir=tmp_dir))
    local = tmp / path.rsplit("/", 1)[-1]
    try:
        with fs.open(path, "rb") as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, length=8 << 20)
        yield local
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ingest_shard(
    shard: Shard,
    out_dir: str | os.PathLike,
    format: str = "auto",
    tmp_dir: str | None = None,
    progress: BytesProgress | None = None,
    storage_options: dict[str, Any] | None = None,
    **ingest_kwargs: Any,
) -> ShardResult:
    """Ingest one shard into its partition of `out_dir`; never raises for a bad shard (it is quarantined).

    Args:
        shard: from `list_shards`.
        out_dir: the table folder.
        format: reader name or "auto" (JSONL shards).
        tmp_dir: where remote JSONL shards are copied while they are read.
        progress: a `BytesProgress` to move while reading.
        storage_options: credentials / options for polars' object-store reader (remote Parquet shards).
        **ingest_kwargs: passed to `slmlab.collect.ingest` (prices, count_missing_tokens, chunk_rows, ...).

    Returns:
        The shard's counts (`read == ingested + quarantined`).
    """
    from slmlab.collect import UnknownFormatError, ingest

    t0 = time.perf_counter()
    part_dir = _partition(Path(out_dir), shard.name)
    shutil.rmtree(part_dir, ignore_errors=True)
    part_dir.mkdir(parents=True)
    part, qpath = part_dir / PART_FILE, part_dir / QUARANTINE_FILE
    res = ShardResult(name=shard.name, uri=shard.uri, kind=shard.kind, index=shard.index, bytes=shard.size)
    track = progress.reading if progress is not None else None
    try:
        if shard.kind == "parquet":
            res.calls = _copy_parquet_shard(shard, part, storage_options)
            res.read = res.ingested = res.calls
            res.formats = {"parquet": res.calls}
            qpath.write_text("")
            if progress is not None:
                progress.done += shard.size or 0
        else:
            with _local_copy(shard, tmp_dir) as local:
                ctx = track(local, shard.size) if track else _nullcontext()
                with ctx:
                    got = ingest(local, format=format, out=part, quarantine=qpath, **ingest_kwargs)
            s = got.summary
            res.read, res.ingested, res.quarantined = s.read, s.ingested, s.quarantined
            res.skipped, res.calls, res.formats = s.skipped, s.calls, dict(s.formats)
            if shard.remote:
                _rewrite_source(part, qpath, shard.uri)
    except UnknownFormatError:
        res.ignored = True
        shutil.rmtree(part_dir, ignore_errors=True)
    except Exception as exc:  # noqa: BLE001 - one bad shard never aborts the others
        res.error = f"{type(exc).__name__}: {exc}"
        res.read = res.quarantined = 1
        res.ingested = res.calls = res.skipped = 0
        _quarantine_whole(qpath, shard.uri, res.error)
        _empty_part(part)
    res.seconds = round(time.perf_counter() - t0, 3)
    return res


@contextmanager
def _nullcontext() -> Iterator[None]:
    yield


def _copy_parquet_shard(shard: Shard, part: Path, storage_options: dict[str, Any] | None) -> int:
    """Stream a canonical Parquet shard into its partition; a non-canonical one raises naming the file."""
    if shard.remote and _scheme(shard.uri) not in POLARS_SCHEMES:
        with _local_copy(shard, None) as local:  # a scheme only fsspec knows (memory://, sftp://, ...)
            return _copy_parquet_shard(Shard(str(local), shard.name, "parquet", shard.index), part, None)
    lf = pl.scan_parquet(shard.uri, storage_options=storage_options)
    schema = lf.collect_schema()
    missing = [c for c in CALL_SCHEMA if c not in schema]
    if missing:
        raise ValueError(
            f"{shard.uri}: not a canonical call table (missing {', '.join(missing[:6])}"
            f"{'...' if len(missing) > 6 else ''}); ingest the raw logs instead"
        )
    lf.select([pl.col(c).cast(t) for c, t in CALL_SCHEMA.items()]).sink_parquet(part, compression="zstd")
    return pl.scan_parquet(part).select(pl.len()).collect().item()


def _rewrite_source(part: Path, qpath: Path, uri: str) -> None:
    """Rows and quarantine entries of a remote shard name its URL, not the temporary local copy."""
    tmp = part.with_suffix(".tmp.parquet")
    pl.scan_parquet(part).with_columns(pl.lit(uri).alias("source_file")).sink_parquet(tmp, compression="zstd")
    tmp.replace(part)
    if qpath.exists() and qpath.stat().st_size:
        lines = []
        for line in qpath.read_text(encoding="utf-8").splitlines():
            if line.strip():
                e = json.loads(line)
                old = e.get("source_file") or ""
                e["source_file"] = uri
                e["reason"] = str(e.get("reason", "")).replace(old, uri, 1) if old else e.get("reason")
                lines.append(json.dumps(e, ensure_ascii=False))
        qpath.write_text("".join(x + "\n" for x in lines), encoding="utf-8")


# ------------------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class ShardedTable:
    """A partitioned canonical call table on disk (what `ingest_shards` wrote)."""

    path: Path
    shards: tuple[ShardResult, ...]

    @classmethod
    def open(cls, path: str | os.PathLike) -> ShardedTable:
        """Open a table folder written by `ingest_shards`.

        Example:
            >>> ShardedTable.open("runs/nov/calls").scan().select(pl.len()).collect()  # doctest: +SKIP
        """
        path = Path(path)
        manifest = path / MANIFEST
        if not manifest.exists():
            raise FileNotFoundError(
                f"{path}: not a sharded call table (no {MANIFEST}); write one with ingest_shards"
            )
        doc = json.loads(manifest.read_text())
        return cls(path, tuple(ShardResult(**s) for s in doc["shards"]))

    def partitions(self) -> list[Path]:
        """The partition files, in shard order (ignored shards have none)."""
        return [
            _partition(self.path, s.name) / PART_FILE
            for s in sorted(self.shards, key=lambda s: s.index)
            if not s.ignored and (_partition(self.path, s.name) / PART_FILE).exists()
        ]

    def scan(self) -> pl.LazyFrame:
        """All partitions as one lazy frame in `CALL_SCHEMA` (no partition column added)."""
        parts = self.partitions()
        if not parts:
            from slmlab.schema import empty_calls

            return empty_calls().lazy()
        return pl.scan_parquet(parts, hive_partitioning=False)

    def totals(self) -> dict[str, int]:
        keys = ("read", "ingested", "quarantined", "skipped", "calls")
        return {k: sum(getattr(s, k) for s in self.shards) for k in keys}

    def summary(self) -> str:
        t = self.totals()
        ignored = sum(s.ignored for s in self.shards)
        bad = sum(s.error is not None for s in self.shards)
        s = (
            f"{len(self.shards)} shards: {t['read']} read, {t['ingested']} ingested, {t['quarantined']} "
            f"quarantined ({t['calls']} calls)"
        )
        if ignored:
            s += f"; {ignored} shards not recognised as logs"
        if bad:
            s += f"; {bad} shards quarantined whole"
        return s

    def quarantined(self) -> list[dict[str, Any]]:
        """Every quarantine entry of every shard, parsed."""
        out = []
        for s in sorted(self.shards, key=lambda s: s.index):
            q = _partition(self.path, s.name) / QUARANTINE_FILE
            if q.exists():
                out += [json.loads(x) for x in q.read_text(encoding="utf-8").splitlines() if x.strip()]
        return out

    def collect(self) -> pl.DataFrame:
        """The whole table in memory (small tables; otherwise work on `scan()`)."""
        return self.scan().collect()


def finish_table(
    out_dir: str | os.PathLike, results: Sequence[ShardResult], source: Any = None
) -> ShardedTable:
    """Make call ids unique over all shards (a later shard's repeat is quarantined as a duplicate, as one
    `ingest` of every file would do) and write the manifest. Run once after every shard is ingested."""
    out_dir = Path(out_dir)
    results = sorted(results, key=lambda r: r.index)
    live = [r for r in results if not r.ignored and (_partition(out_dir, r.name) / PART_FILE).exists()]
    if len(live) > 1:
        ids = pl.concat(
            [
                pl.scan_parquet(_partition(out_dir, r.name) / PART_FILE)
                .select("call_id")
                .with_row_index("_row")
                .with_columns(pl.lit(r.index, dtype=pl.Int64).alias("_shard"))
                for r in live
            ]
        )
        key = pl.col("_shard") * (1 << 40) + pl.col("_row").cast(pl.Int64)
        dups = (
            ids.with_columns(key.alias("_key"))
            .filter(pl.col("_key") != pl.col("_key").min().over("call_id"))
            .select("call_id", "_shard")
            .collect(engine="streaming")
        )
        by_index = {r.index: r for r in live}
        for (index,), frame in dups.group_by(["_shard"]):
            _drop_duplicates(out_dir, by_index[int(index)], set(frame.get_column("call_id").to_list()))
    doc = {
        "schema": list(CALL_SCHEMA),
        "source": [str(s) for s in source] if isinstance(source, (list, tuple)) else str(source),
        "shards": [asdict(r) for r in results],
    }
    (out_dir / MANIFEST).write_text(json.dumps(doc, indent=1, default=str))
    return ShardedTable(out_dir, tuple(results))


def _drop_duplicates(out_dir: Path, res: ShardResult, dup_ids: set[str]) -> None:
    part_dir = _partition(out_dir, res.name)
    part = part_dir / PART_FILE
    frame = pl.read_parquet(part)
    is_dup = frame.get_column("call_id").is_in(list(dup_ids))
    with open(part_dir / QUARANTINE_FILE, "a", encoding="utf-8") as q:
        for row in frame.filter(is_dup).iter_rows(named=True):
            reason = f"duplicate call_id {row['call_id']!r} (already ingested from an earlier shard)"
            entry = {
                "source_file": row["source_file"],
                "line": row["source_line"],
                "reason": f"{row['source_file']}:{row['source_line']}: {reason}",
                "raw": json.dumps({k: v for k, v in row.items() if k != "timestamp"}, default=str),
            }
            q.write(json.dumps(entry, ensure_ascii=False) + "\n")
    n = int(is_dup.sum())
    frame.filter(~is_dup).write_parquet(part, compression="zstd")
    res.duplicates += n
    res.ingested -= n
    res.quarantined += n
    res.calls -= n


def ingest_shards(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    format: str = "auto",
    progress: bool = True,
    tmp_dir: str | None = None,
    storage_options: dict[str, Any] | None = None,
    **ingest_kwargs: Any,
) -> ShardedTable:
    """Ingest every shard of `source` into a partitioned call table at `out_dir`, one shard at a time.

    Args:
        source: a folder, a glob, a URL (see `list_shards`) or a list of them.
        out_dir: the table folder (rewritten partition by partition).
        format: reader name or "auto".
        progress: a byte-level progress bar over all shards.
        tmp_dir: where remote JSONL shards are copied while read.
        storage_options: options for polars' object-store reader (remote Parquet shards).
        **ingest_kwargs: passed to `slmlab.collect.ingest` for each shard.

    Returns:
        A `ShardedTable`; `table.scan()` is the lazy call table, `table.summary()` the counts.

    Example:
        >>> table = ingest_shards("logs/2026-11-*.jsonl.gz", "runs/nov/calls", prices=False)  # doctest: +SKIP
        >>> table.scan().group_by("model").len().collect()  # doctest: +SKIP
    """
    shards = list_shards(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sizes = [s.size for s in shards]
    bar = BytesProgress(sum(sizes) if all(x is not None for x in sizes) else None, disable=not progress)
    try:
        results = [
            ingest_shard(s, out, format, tmp_dir, bar, storage_options, **ingest_kwargs) for s in shards
        ]
    finally:
        bar.close()
    return finish_table(out, results, source)
