"""`distinct_counts`: the same numbers as polars' `n_unique`, across batches, groups and nulls."""

from __future__ import annotations

import random

import polars as pl
import pytest

from slmlab.collect.distinct import distinct_counts


def _frame(n: int, seed: int = 0) -> pl.DataFrame:
    rng = random.Random(seed)
    return pl.DataFrame(
        {
            "model": [rng.choice(["gpt-4o", "gpt-4o-mini", None]) for _ in range(n)],
            "agent": [rng.choice(["planner", "worker"]) for _ in range(n)],
            "session_id": [rng.choice([None, *(f"s{i}" for i in range(n // 3))]) for _ in range(n)],
        }
    )


@pytest.mark.parametrize("bucket_rows", [7, 64, 1 << 18])
def test_matches_n_unique_per_group(bucket_rows):
    df = _frame(2000)
    want = df.group_by("model", "agent").agg(pl.col("session_id").n_unique().alias("distinct"))
    got = distinct_counts(df.lazy(), ["model", "agent"], "session_id", bucket_rows=bucket_rows)
    key = ["model", "agent"]
    assert (
        got.sort(key, nulls_last=True).rows()
        == want.cast({"distinct": pl.UInt32}).sort(key, nulls_last=True).rows()
    )


def test_no_groups_counts_the_whole_table_nulls_included():
    df = _frame(500, seed=1)
    got = distinct_counts(df.lazy(), [], "session_id", bucket_rows=50)
    assert got.columns == ["distinct"]
    assert got.item() == df["session_id"].n_unique()


def test_empty_scan():
    lf = _frame(10).lazy().filter(pl.lit(False))
    assert distinct_counts(lf, ["agent"], "session_id").height == 0
    assert distinct_counts(lf, [], "session_id").item() == 0
