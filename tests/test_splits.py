"""Session-level, action-stratified splits and the leakage check."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from slmlab.schema import conform
from slmlab.specialize.splits import (
    LeakageError,
    check_leakage,
    deduplicate,
    prompt_hash,
    split_by_session,
    split_summary,
)

TAU_FILE = Path("tau-bench-airline") / "gpt-4o-airline.json"


def load_taubench_calls(logs: Path) -> pl.DataFrame:
    """The tau-bench airline call table with a `task` column (the 4 trials of one task share it)."""
    from slmlab.collect import ingest

    calls = ingest(logs / TAU_FILE, count_missing_tokens=False).calls
    return calls.with_columns(pl.col("session_id").str.extract(r"(task\d+)").alias("task"))


@pytest.fixture(scope="session")
def tau_calls(shared_logs) -> pl.DataFrame:
    return load_taubench_calls(shared_logs)


def _toy(n_sessions: int = 40, rare_sessions: int = 3) -> pl.DataFrame:
    rows = []
    for s in range(n_sessions):
        for k in range(5):
            tool = "rare_tool" if (s < rare_sessions and k == 2) else ("lookup" if k % 2 else None)
            msgs = [
                {"role": "system", "content": "policy"},
                {"role": "user", "content": f"session {s} turn {k}"},
            ]
            rows.append(
                {
                    "call_id": f"{s}-{k}",
                    "session_id": f"s{s}",
                    "step": k,
                    "messages": json.dumps(msgs),
                    "response_text": None if tool else f"answer {s} {k}",
                    "response_tool_calls": json.dumps([{"name": tool, "arguments": "{}"}]) if tool else None,
                    "tool_name": tool,
                    "reward": float(s % 2),
                }
            )
    return conform(pl.DataFrame(rows))


def test_whole_sessions_and_sizes():
    split = split_by_session(_toy(), test_size=0.2, val_size=0.1, seed=0)
    check_leakage(split)
    per_session = split.group_by("session_id").agg(pl.col("split").n_unique())
    assert per_session.get_column("split").max() == 1
    shares = split.get_column("split").value_counts(normalize=True).sort("split")
    share = dict(zip(shares["split"], shares["proportion"], strict=True))
    assert share["train"] == pytest.approx(0.7, abs=0.06)
    assert share["test"] == pytest.approx(0.2, abs=0.06)
    assert share["val"] == pytest.approx(0.1, abs=0.06)


def test_rare_action_lands_in_train_and_test():
    split = split_by_session(_toy(rare_sessions=2), seed=3)
    rare = split.filter(pl.col("tool_name") == "rare_tool").get_column("split").to_list()
    assert sorted(rare) == ["test", "train"]
    # Without stratification the same seed is allowed to put both in one split; just check it runs.
    assert split_by_session(_toy(), stratify=False, seed=3).get_column("split").null_count() == 0


def test_same_seed_same_split_and_seed_changes_it():
    a = split_by_session(_toy(), seed=1).get_column("split")
    assert a.equals(split_by_session(_toy(), seed=1).get_column("split"))
    assert not a.equals(split_by_session(_toy(), seed=2).get_column("split"))


def test_deduplicate_and_hash_normalization():
    df = _toy(4)
    doubled = pl.concat([df, df.with_columns(pl.col("call_id") + "-copy")])
    assert deduplicate(doubled).height == df.height
    spaced = '[{"role": "user", "content": "a   b", "tool_call_id": "x1"}]'
    assert prompt_hash(spaced) == prompt_hash('[{"content": "a b", "role": "user", "tool_call_id": "y2"}]')
    assert prompt_hash(spaced) != prompt_hash('[{"role": "user", "content": "a c"}]')


def test_sessions_sharing_a_prompt_stay_together():
    df = _toy(30)
    # Session s1's first call repeats s0's first prompt with another answer: they must share a split.
    same = df.filter(pl.col("call_id") == "0-0").with_columns(
        pl.lit("s1").alias("session_id"),
        pl.lit("1-x").alias("call_id"),
        pl.lit("other").alias("response_text"),
    )
    split = split_by_session(pl.concat([df, same]), seed=0)
    check_leakage(split)
    assert split.filter(pl.col("session_id").is_in(["s0", "s1"])).get_column("split").n_unique() == 1


def test_check_leakage_is_loud():
    split = split_by_session(_toy(), seed=0)
    moved = split.with_columns(
        pl.when(pl.col("call_id") == split.filter(pl.col("split") == "test")["call_id"][0])
        .then(pl.lit("train"))
        .otherwise(pl.col("split"))
        .alias("split")
    )
    with pytest.raises(LeakageError, match="span"):
        check_leakage(moved)
    copy = (
        split.filter(pl.col("split") == "train")
        .head(1)
        .with_columns(pl.lit("new").alias("session_id"), pl.lit("test").alias("split"))
    )
    with pytest.raises(LeakageError, match="training data"):
        check_leakage(pl.concat([split, copy]))


def test_successful_only_drops_failed_training_sessions():
    full = split_by_session(_toy(), seed=0)
    ok = split_by_session(_toy(), seed=0, successful_only=True)
    assert ok.filter(pl.col("split") == "train").get_column("reward").min() == 1.0
    # The evaluation side does not depend on the flag.
    for s in ("val", "test"):
        assert full.filter(pl.col("split") == s)["call_id"].equals(ok.filter(pl.col("split") == s)["call_id"])


def test_bad_sizes_rejected():
    with pytest.raises(ValueError):
        split_by_session(_toy(), test_size=0.6, val_size=0.5)


@pytest.mark.shared
def test_taubench_split_spreads_tools(tau_calls):
    split = split_by_session(tau_calls, test_size=0.2, val_size=0.1, seed=0, group_col="task")
    check_leakage(split)
    summary = split_summary(split)
    # Every tool used in at least 3 tasks appears in both train and test.
    tasks = split.group_by("tool_name").agg(pl.col("task").n_unique().alias("k"))
    common = set(tasks.filter(pl.col("k") >= 3).get_column("tool_name").drop_nulls())
    spread = summary.filter(pl.col("action").is_in(common))
    assert spread.height == len(common)
    assert (spread["train"] > 0).all() and (spread["test"] > 0).all()
    n_test = split.filter(pl.col("split") == "test").height / split.height
    assert 0.14 < n_test < 0.26
