"""Which shards a source names: a folder (recursive), a glob, a list of files or an object-store URL, each
shard with its kind (JSONL or Parquet) and a partition name.

Usage:
    >>> from slmlab.collect.shard_list import list_shards
    >>> [s.name for s in list_shards("logs/2026-11-*.jsonl.gz")]  # doctest: +SKIP
"""

from __future__ import annotations

import glob as globlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
