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

`profile_table` profiles the partitioned table through a lazy scan that never loads the prompt or response
texts; `curate_partitions` curates it one partition at a time (see its docstring for what that means for
duplicates). `slmlab.pipeline.distributed` runs the same per-shard steps on a Dask cluster.

Usage:
    >>> from slmlab.collect.shards import ingest_shards, profile_table
    >>> table = ingest_shards("s3://acme-logs/2026-11/*.jsonl.gz", "runs/nov/calls")  # doctest: +SKIP
    >>> print(table.summary())  # doctest: +SKIP
    >>> print(profile_table(table).summary)  # doctest: +SKIP
"""

from __future__ import annotations

import glob as globlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from slmlab.schema import CALL_SCHEMA

MANIFEST = "_shards.json"
PART_FILE = "part-0.parquet"
QUARANTINE_FILE = "quarantine.jsonl"
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
SHARD_SUFFIXES = JSONL_SUFFIXES + PARQUET_SUFFIXES
# Schemes polars' own object-store reader understands (`pl.scan_parquet("s3://...")`).
POLARS_SCHEMES = (
    "s3",
    "s3a",
    "gs",
    "gcs",
    "az",
    "azure",
    "abfs",
    "abfss",
    "adl",
    "hf",
    "http",
    "https",
    "file",
)
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_GLOB_CHARS = re.compile(r"[*?\[]")


# ------------------------------------------------------------------------------------------ shards


@dataclass(frozen=True)
class Shard:
    """One input file: where it is, how it is read and the partition name it becomes."""

    uri: str  # a local path or a URL
    name: str  # partition name: the path below the common root, suffix removed, safe characters only
    kind: str  # "jsonl" (any log format the readers know, optionally gzipped) or "parquet" (canonical)
    index: int  # position in the sorted shard list: earlier shards win duplicate call ids
    size: int | None = None  # bytes, where known

    @property
    def remote(self) -> bool:
        return _scheme(self.uri) not in (None, "file")


def _scheme(uri: str) -> str | None:
    m = _SCHEME.match(uri)
    return m.group(1).lower() if m else None


def _kind(name: str) -> str | None:
    low = name.lower()
    if low.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if low.endswith(JSONL_SUFFIXES):
        return "jsonl"
    return None


def _strip_suffix(name: str) -> str:
    low = name.lower()
    for suf in sorted(SHARD_SUFFIXES, key=len, reverse=True):
        if low.endswith(suf):
            return name[: -len(suf)]
    return name


def _fs(uri: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec comes with the core dependencies' datasets/...
        from slmlab.config import MissingDependencyError

        raise MissingDependencyError(f"{uri}: reading URLs needs fsspec: pip install fsspec") from exc
    try:
        return fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise ImportError(
            f"{uri}: no filesystem for {_scheme(uri)}:// ({exc}); install its fsspec package "
            "(s3fs for s3://, gcsfs for gs://, adlfs for az://)"
        ) from exc


def _names(uris: list[str], root: str) -> list[str]:
    out, seen = [], set()
    for u in uris:
        rel = u[len(root) :].lstrip("/") if root and u.startswith(root) else u.rsplit("/", 1)[-1]
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", _strip_suffix(rel)).strip("_") or "shard"
        name, k = base, 1
        while name in seen:
            k += 1
            name = f"{base}_{k}"
        seen.add(name)
        out.append(name)
    return out


def list_shards(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Shard]:
    """The shards of `source`, sorted by path: a folder (recursive), a glob, a URL (with or without a glob),
    a single file, or a list of any of these.

    Raises:
        FileNotFoundError: naming the source that matched no shard file.

    Example:
        >>> list_shards("logs/")  # doctest: +SKIP
        [Shard(uri='logs/2026-11-01.jsonl.gz', name='2026-11-01', kind='jsonl', index=0, size=52311)]
    """
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    found: list[tuple[str, int | None]] = []
    roots: list[str] = []
    for src in sources:
        src = str(src)
        if _scheme(src) not in (None, "file") or src.startswith("file://"):
            fs, path = _fs(src)
            proto = src.split("://", 1)[0]
            if _GLOB_CHARS.search(path):
                hits = sorted(fs.glob(path))
                root = path[: _GLOB_CHARS.search(path).start()].rsplit("/", 1)[0]
            elif fs.isdir(path):
                hits = sorted(p for p in fs.find(path))
                root = path.rstrip("/")
            elif fs.exists(path):
                hits, root = [path], path.rsplit("/", 1)[0]
            else:
                raise FileNotFoundError(f"{src}: no such shard file or folder")
            files = [h for h in hits if _kind(h) and not h.rsplit("/", 1)[-1].startswith(("_", "."))]
            if not files:
                raise FileNotFoundError(f"{src}: no {'/'.join(SHARD_SUFFIXES)} shard files there")
            for h in files:
                info = fs.info(h)
                uri = h if _scheme(h) else f"{proto}://{h.lstrip('/') if proto != 'file' else h}"
                found.append((uri, info.get("size")))
            roots.append(f"{proto}://{root.lstrip('/') if proto != 'file' else root}")
            continue
        p = Path(src).expanduser()
        if _GLOB_CHARS.search(src):
            hits = sorted(Path(h) for h in globlib.glob(str(p), recursive=True))
            root = str(Path(src[: _GLOB_CHARS.search(src).start()]).expanduser())
            root = root if root.endswith("/") else str(Path(root).parent)
        elif p.is_dir():
            hits, root = sorted(f for f in p.rglob("*")), str(p)
        elif p.is_file():
            hits, root = [p], str(p.parent)
        else:
            raise FileNotFoundError(f"{src}: no such shard file or folder")
        files = [h for h in hits if h.is_file() and _kind(h.name) and not h.name.startswith(("_", "."))]
        if not files:
            raise FileNotFoundError(f"{src}: no {'/'.join(SHARD_SUFFIXES)} shard files there")
        found += [(str(h), h.stat().st_size) for h in files]
        roots.append(str(Path(root)))
    uris = [u for u, _ in found]
    if len(set(uris)) < len(uris):
        seen: set[str] = set()
        found = [(u, s) for u, s in found if not (u in seen or seen.add(u))]
        uris = [u for u, _ in found]
    root = os.path.commonpath([r for r in roots]) if all(not _scheme(r) for r in roots) else ""
    if len(roots) == 1:
        root = roots[0]
    names = _names(uris, root.rstrip("/") + "/" if root else "")
    return [
        Shard(uri=u, name=n, kind=_kind(u) or "jsonl", index=i, size=s)
        for i, ((u, s), n) in enumerate(zip(found, names, strict=True))
    ]


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


# ------------------------------------------------------------------------------------------ profile, curate

# The columns `slmlab.collect.profile` reads (summary, profile_calls, by_tool, latency_table, the plots).
# `response_text` is read only as null / not null there, unless a profile groups by "action" (an action
# can be written in the text: `slmlab.schema.action_expr`). Every other column (prompts, ids, file names)
# stays on disk: a text-free scan never decodes the prompts.
PROFILE_COLUMNS = (
    "session_id",
    "agent",
    "model",
    "timestamp",
    "tool_name",
    "n_tool_calls",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "tokens_estimated",
    "latency_ms",
    "cost_usd",
    "cost_estimated",
    "status",
    "finish_reason",
)


def profile_frame(calls: pl.LazyFrame | ShardedTable, keep: Sequence[str] = ()) -> pl.DataFrame:
    """The call table as the profile functions need it, from a lazy scan: every `CALL_SCHEMA` column, but
    only `PROFILE_COLUMNS` and `keep` read; `response_text` as "" where present (null where absent) unless
    kept; everything else null.

    Memory: a few hundred bytes per call whatever the texts weigh; the prompt column is never decoded.

    Example:
        >>> profile_frame(ShardedTable.open("runs/nov/calls"), keep=("task_label",)).height  # doctest: +SKIP
    """
    lf = calls.scan() if isinstance(calls, ShardedTable) else calls

    def col(c: str, dtype: pl.DataType) -> pl.Expr:
        if c in PROFILE_COLUMNS or c in keep:
            return pl.col(c)
        if c == "response_text":
            return pl.when(pl.col(c).is_not_null()).then(pl.lit("")).alias(c)
        return pl.lit(None, dtype=dtype).alias(c)

    return lf.select([col(c, t) for c, t in CALL_SCHEMA.items()]).collect(engine="streaming")


@dataclass(frozen=True)
class TableProfile:
    """`slmlab.collect.profile` on a lazily scanned table: the summary and the per-group table."""

    summary: Any  # slmlab.collect.profile.CallSummary
    by_group: pl.DataFrame
    frame: pl.DataFrame  # the text-free frame both were computed from (for more profile calls / plots)


def profile_table(
    calls: pl.LazyFrame | ShardedTable | str | os.PathLike,
    by: str | Sequence[str] = ("model", "agent"),
    calls_per_day: float | None = None,
) -> TableProfile:
    """Profile a partitioned (or any lazily scanned) call table without loading its texts (grouping by
    "action" reads `response_text`, where a text answer can name its action).

    Example:
        >>> prof = profile_table("runs/nov/calls")  # doctest: +SKIP
        >>> print(prof.summary)  # doctest: +SKIP
    """
    from slmlab.collect.profile import profile_calls, summary

    if isinstance(calls, (str, os.PathLike)):
        calls = ShardedTable.open(calls)
    groups = [by] if isinstance(by, str) else list(by)
    keep = [g for g in groups if g in CALL_SCHEMA] + (["response_text"] if "action" in groups else [])
    frame = profile_frame(calls, keep=keep)
    return TableProfile(summary(frame, calls_per_day=calls_per_day), profile_calls(frame, by=by), frame)


def curate_partitions(
    table: ShardedTable | str | os.PathLike,
    out_dir: str | os.PathLike,
    config: Any = None,
    map_fn: Callable[..., list[dict[str, Any]]] | None = None,
) -> CuratedTable:
    """Curate a sharded table one partition at a time, into `out_dir/shard=<name>/{calls,audit,dropped}`.

    Each partition is curated alone with `slmlab.curate.curate` (the same config, so the same salt: a
    session id hashes to the same pseudonym in every partition). What "alone" means: exact and near
    duplicates are found within a partition, and ids / names `curate` learns from a partition's tool
    arguments are redacted within that partition. Shard by session or by day, so that a conversation stays
    in one partition, and the result equals curating the whole table where duplicates don't cross days.

    Args:
        table: a `ShardedTable` or its folder.
        out_dir: where the curated partitions go.
        config: a `slmlab.curate.CurateConfig` (default: its defaults).
        map_fn: how to run the per-partition jobs: `map_fn(func, list_of_kwargs) -> list_of_results`
            (default: in this process, one after another; `slmlab.pipeline.distributed` passes a Dask map).

    Returns:
        A `CuratedTable` with per-partition and total counts.
    """
    if not isinstance(table, ShardedTable):
        table = ShardedTable.open(table)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        {"part": str(p), "out_dir": str(out / p.parent.name), "config": config} for p in table.partitions()
    ]
    run = map_fn or (lambda f, kws: [f(**kw) for kw in kws])
    results = run(curate_partition, jobs)
    doc = {"source": str(table.path), "partitions": results}
    (out / MANIFEST).write_text(json.dumps(doc, indent=1, default=str))
    return CuratedTable(out, tuple(results))


def curate_partition(part: str, out_dir: str, config: Any = None) -> dict[str, Any]:
    """Curate one partition file into `out_dir` (calls.parquet, audit.parquet, dropped.parquet); its counts."""
    from slmlab.curate import curate

    t0 = time.perf_counter()
    calls = pl.read_parquet(part)
    res = curate(calls, config)
    o = Path(out_dir)
    o.mkdir(parents=True, exist_ok=True)
    res.calls.write_parquet(o / "calls.parquet", compression="zstd")
    res.audit.write_parquet(o / "audit.parquet")
    res.dropped.write_parquet(o / "dropped.parquet")
    dropped = dict(res.dropped.group_by("reason").len().iter_rows()) if res.dropped.height else {}
    return {
        "partition": Path(part).parent.name,
        "calls_in": calls.height,
        "calls_out": res.calls.height,
        "dropped": dropped,
        "redactions": res.audit.height,
        "seconds": round(time.perf_counter() - t0, 3),
    }


@dataclass(frozen=True)
class CuratedTable:
    """A curated, partitioned call table: `scan()` the calls, `totals()` the counts."""

    path: Path
    partitions: tuple[dict[str, Any], ...]

    def scan(self, what: str = "calls") -> pl.LazyFrame:
        """`what` = "calls", "audit" or "dropped", over all partitions, lazily."""
        files = [self.path / p["partition"] / f"{what}.parquet" for p in self.partitions]
        return pl.scan_parquet(files) if files else pl.LazyFrame()

    def totals(self) -> dict[str, Any]:
        dropped: dict[str, int] = {}
        for p in self.partitions:
            for k, v in p["dropped"].items():
                dropped[k] = dropped.get(k, 0) + v
        return {
            "calls_in": sum(p["calls_in"] for p in self.partitions),
            "calls_out": sum(p["calls_out"] for p in self.partitions),
            "redactions": sum(p["redactions"] for p in self.partitions),
            "dropped": dict(sorted(dropped.items())),
        }
