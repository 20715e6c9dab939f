"""Price table loading, model-name matching and cost estimation (logged costs are never overwritten)."""

from __future__ import annotations

import polars as pl
import pytest

from slmlab.collect.pricing import PRICE_SCHEMA, estimate_cost, load_prices, match_model, price_of


@pytest.fixture(scope="module")
def prices() -> pl.DataFrame:
    return load_prices()


def test_table_is_complete_and_dated(prices):
    assert prices.schema == PRICE_SCHEMA
    for m in ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-3.5-turbo", "o3",
              "o4-mini", "claude-sonnet-4-5", "claude-haiku-4-5", "gemini-2.0-flash", "gemini-2.5-pro",
              "gpt-oss-120b", "llama-3.1-70b", "llama-3.1-8b"]:  # fmt: skip
        assert m in prices["model"].to_list(), m
    assert prices["source"].null_count() == 0 and prices["date"].str.contains(r"^\d{4}-\d{2}-\d{2}$").all()
    assert (prices["output_per_mtok"] >= prices["input_per_mtok"]).all()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("ft:gpt-4.1-2025-04-14:sierra:tau2-full-sft:BzrYdMNm", "ft:gpt-4.1"),
        ("ft:gpt-3.5-turbo-0125:org::abc", "gpt-3.5-turbo"),  # no fine-tune price listed: the base price
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("openai/gpt-oss-120b", "gpt-oss-120b"),
        ("meta/llama-3.1-70b-instruct", "llama-3.1-70b"),
        ("gpt-3.5-turbo-16k-0613", "gpt-3.5-turbo-16k"),
        ("GPT-4o", "gpt-4o"),
        ("my-private-model", None),
        (None, None),
    ],
)
def test_match_model(prices, name, expected):
    assert match_model(name, prices) == expected


def test_estimate_fills_only_missing_and_bills_cached_input(prices):
    df = pl.DataFrame(
        {
            "model": ["gpt-4o-2024-08-06", "gpt-4o", "gpt-4o", "unknown-model", "gpt-4.1"],
            "input_tokens": [1_000_000, 1_000_000, 1_000_000, 10, None],
            "cached_input_tokens": [None, 400_000, None, None, None],
            "output_tokens": [100_000, 0, 5, 1, 10],
            "cost_usd": [None, None, 0.0, None, None],
            "cost_estimated": [False] * 5,
        }
    )
    out = estimate_cost(df, prices)
    assert out["cost_usd"].to_list()[:4] == pytest.approx(
        [2.5 + 1.0, 0.6 * 2.5 + 0.4 * 1.25, 0.0, None], nan_ok=True
    )
    assert out["cost_usd"][3] is None and out["cost_usd"][4] is None  # unknown model / unknown tokens
    assert out["cost_estimated"].to_list() == [True, True, False, False, False]  # a logged 0.0 stays logged
    assert out.columns == df.columns


def test_overrides_and_custom_csv(tmp_path, prices):
    p = load_prices(
        overrides={
            "gpt-4o": {"input_per_mtok": 1.0},
            "acme-1": {"input_per_mtok": 2.0, "output_per_mtok": 3.0},
        }
    )
    assert price_of("gpt-4o-2024-11-20", p)["input_per_mtok"] == 1.0
    assert price_of("gpt-4o", p)["output_per_mtok"] == 10.0  # the rest of the row is kept
    assert price_of("acme-1", p)["output_per_mtok"] == 3.0
    path = tmp_path / "prices.csv"
    prices.filter(pl.col("model") == "gpt-4o").write_csv(path)
    assert load_prices(path).height == 1
    pl.DataFrame({"model": ["x"]}).write_csv(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="lacks columns"):
        load_prices(tmp_path / "bad.csv")


def test_estimate_cost_without_optional_columns(prices):
    df = pl.DataFrame({"model": ["gpt-4o-mini"], "input_tokens": [1000], "output_tokens": [1000]})
    out = estimate_cost(df, prices)
    assert out["cost_usd"].item() == pytest.approx((1000 * 0.15 + 1000 * 0.60) / 1e6)
    assert out["cost_estimated"].item() is True


def test_batch_calls_are_estimated_at_the_batch_price(prices):
    df = pl.DataFrame(
        {
            "model": ["gpt-4o", "gpt-4o", "llama-3.1-8b"],
            "input_tokens": [1_000_000] * 3,
            "cached_input_tokens": [0] * 3,
            "output_tokens": [0] * 3,
            "cost_usd": [None, None, None],
            "source_format": ["openai", "openai_batch", "openai_batch"],
        }
    )
    got = estimate_cost(df, prices)["cost_usd"].to_list()
    assert got == [2.5, 1.25, 0.18]  # 50% for the Batch API; no batch price listed: the list price
    assert prices.filter(pl.col("model") == "gpt-4o")["batch_factor"].item() == 0.5
