"""The set of call ids `ingest` has seen, in 8 bytes an id instead of a Python string's ~150.

Ingest quarantines a call whose id it saw before, so it must remember every id: with a `set[str]` that was
~150 bytes per call (1.5 M calls: ~220 MB, the part of ingest's peak memory that grew with the file).
`CallIdSet` keeps a 64-bit hash of each id: new hashes go to a small Python set, which is sorted into a
numpy array when it fills; arrays of similar size are merged (a log-structured merge), so a lookup is a
set probe plus a binary search in each of O(log n) arrays.

Two different ids with the same 64-bit hash would make the second look like a duplicate; the chance that
any such pair exists among n ids is about n^2 / 2^65 (1.5 M ids: 6e-8; 40 M ids: 4e-5). Such a call is
quarantined as a duplicate, not lost: the quarantine keeps its raw line.

Usage:
    >>> ids = CallIdSet()
    >>> ids.update(["call-1", "call-2"])
    >>> "call-1" in ids, "call-3" in ids, len(ids)
    (True, False, 2)
    >>> ids.add("call-3"), ids.add("call-3")
    (True, False)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

_BUFFER = 1 << 16  # hashes held as Python ints before they are sorted into an array (~4 MB)


def _hash(call_id: str) -> int:
    # blake2b, not hash(): the same id must hash alike in every process (shards, workers, resumed runs).
    return int.from_bytes(hashlib.blake2b(call_id.encode(), digest_size=8).digest(), "little", signed=True)


class CallIdSet:
    """A set of call ids that stores 8 bytes per id (see the module docstring)."""

    def __init__(self, buffer: int = _BUFFER):
        self._buffer_limit = buffer
        self._recent: set[int] = set()
        self._levels: list[np.ndarray] = []  # sorted, disjoint int64 arrays, largest first

    def __len__(self) -> int:
        return len(self._recent) + sum(len(a) for a in self._levels)

    def __contains__(self, call_id: str) -> bool:
        return self._has(_hash(call_id))

    def _has(self, h: int) -> bool:
        if h in self._recent:
            return True
        for a in self._levels:
            i = int(a.searchsorted(h))
            if i < len(a) and a[i] == h:
                return True
        return False

    def add(self, call_id: str) -> bool:
        """Add `call_id`; True if it was new (one hash and one lookup: ingest's `if new: keep`)."""
        h = _hash(call_id)
        if self._has(h):
            return False
        self._recent.add(h)
        if len(self._recent) >= self._buffer_limit:
            self._flush()
        return True

    def update(self, call_ids: Iterable[str]) -> None:
        for cid in call_ids:
            self.add(cid)

    def _flush(self) -> None:
        run = np.fromiter(self._recent, dtype=np.int64, count=len(self._recent))
        run.sort()
        self._recent = set()
        while self._levels and len(self._levels[-1]) <= 2 * len(run):
            run = np.concatenate([self._levels.pop(), run])
            run.sort(kind="stable")  # two sorted runs: numpy's timsort merges them in linear time
        self._levels.append(run)

    @property
    def nbytes(self) -> int:
        """Bytes held by the sorted arrays (the Python-set buffer adds up to ~4 MB)."""
        return sum(a.nbytes for a in self._levels)


__all__ = ["CallIdSet"]
