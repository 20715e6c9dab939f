"""Exact distinct counts per group of a lazy scan in bounded memory (polars' own: ~150-750 bytes a value).

The profile counts sessions per (model, agent); a month of logs has millions of sessions, and polars' own
distinct count holds a hash-table entry per value, so it was the part of the profile's memory that grew
with the file.

Usage:
    >>> lf = pl.LazyFrame({"agent": ["a", "a", "b"], "session_id": ["s1", "s1", "s2"]})
    >>> distinct_counts(lf, ["agent"], "session_id").sort("agent").rows()
    [('a', 1), ('b', 1)]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import polars as pl


def distinct_counts(df: pl.LazyFrame, by: list[str], col: str, bucket_rows: int = 1 << 18) -> pl.DataFrame:
    """How many distinct `col` values each group of a lazy scan has, exactly, in bounded memory.

    Each (group, value) pair becomes one 64-bit hash, streamed by polars to a temporary parquet file
    (16 bytes a row on disk). The hashes are then counted one bucket (`hash % k`) at a time, with k chosen
    so that a bucket holds about `bucket_rows` rows: numpy's `np.unique` over ~4 MB of hashes per bucket,
    whatever the table's size, at the cost of k passes over the hash file. Two distinct pairs sharing a
    hash would be counted once: the chance that any such pair exists among n pairs is about n^2 / 2^65
    (1 M sessions: 3e-8). Null counts as a value, as in `n_unique`.

    Returns:
        the `by` columns and `distinct` (UInt32); one row, just `distinct`, when `by` is empty.
    """
    group_hash = pl.struct(by).hash() if by else pl.lit(0, pl.UInt64)
    counts: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="slmlab-distinct-") as tmp:
        pairs = Path(tmp) / "pairs.parquet"
        df.select(group_hash.alias("_g"), pl.struct([*by, col]).hash().alias("_h")).sink_parquet(pairs)
        rows = pl.scan_parquet(pairs).select(pl.len()).collect().item()
        k = max(1, -(-rows // bucket_rows))
        for i in range(k):
            part = pl.scan_parquet(pairs).filter(pl.col("_h") % k == i).collect()
            h, first = np.unique(part["_h"].to_numpy(), return_index=True)
            groups, n = np.unique(part["_g"].to_numpy()[first], return_counts=True)
            for g, c in zip(groups.tolist(), n.tolist(), strict=True):
                counts[g] = counts.get(g, 0) + c
    if not by:
        return pl.DataFrame({"distinct": [sum(counts.values())]}, schema={"distinct": pl.UInt32})
    counted = pl.DataFrame(
        {"_g": list(counts), "distinct": list(counts.values())},
        schema={"_g": pl.UInt64, "distinct": pl.UInt32},
    )
    # The group keys hashed in memory: the same values as in the stream (a grouped `first()` of the hash
    # would make polars hold every row's key).
    names = df.select(by).unique().collect(engine="streaming").with_columns(group_hash.alias("_g"))
    return names.join(counted, on="_g", how="inner").drop("_g")


__all__ = ["distinct_counts"]
