"""A dated, user-editable LLM price table and cost estimates for calls whose log has no cost.

The table (`slmlab/resources/prices.csv`) lists USD per million tokens for input, cached input and output,
the share of that price a Batch API call pays (`batch_factor`, 0.5: the Batch API's 50% discount), with the
source and date of each list price. Calls read from Batch API files (`source_format == "openai_batch"`) are
estimated at the batch price. Copy it, edit it, and pass the path (or `overrides`) when your
contract differs. Logged costs are never overwritten: `estimate_cost` fills only null `cost_usd`.

Usage:
    >>> from slmlab.collect.pricing import load_prices, match_model
    >>> match_model("gpt-4o-2024-08-06", load_prices())
    'gpt-4o'
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

PRICE_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "input_per_mtok": pl.Float64(),
    "cached_input_per_mtok": pl.Float64(),  # null: the provider has no cache discount, bill as input
    "output_per_mtok": pl.Float64(),
    # share of the list price a Batch API call pays (OpenAI Batch, Anthropic Message Batches and Gemini batch
    # mode all bill 50%); null: no batch price known, billed at the list price
    "batch_factor": pl.Float64(),
    "source": pl.String(),
    "date": pl.String(),
}

# Suffixes providers append to a model family name: dates (2024-08-06, 20250929, 0613), release tags.
_SUFFIX_RES = (
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),
    re.compile(r"-\d{8}$"),
    re.compile(r"-\d{4}$"),
    re.compile(r"-(latest|preview|instruct|turbo|chat|v\d+(:\d+)?)$"),
    re.compile(r"@\d{8}$"),
)


def default_prices_path() -> Path:
    """The bundled `prices.csv`."""
    return Path(str(resources.files("slmlab") / "resources" / "prices.csv"))


def load_prices(
    path: str | os.PathLike | None = None, overrides: dict[str, dict[str, Any]] | None = None
) -> pl.DataFrame:
    """Load the price table (bundled CSV by default) and apply per-model overrides.

    Args:
        path: a CSV with the `PRICE_SCHEMA` columns.
        overrides: `{model: {"input_per_mtok": ..., ...}}`; a model not in the table is added.

    Example:
        >>> p = load_prices(overrides={"my-model": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}})
        >>> p.filter(pl.col("model") == "my-model")["output_per_mtok"].item()
        2.0
    """
    df = pl.read_csv(path or default_prices_path(), schema_overrides=PRICE_SCHEMA)
    missing = [c for c in ("model", "input_per_mtok", "output_per_mtok") if c not in df.columns]
    if missing:
        raise ValueError(f"price table {path} lacks columns {missing}")
    for c, t in PRICE_SCHEMA.items():
        if c not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=t).alias(c))
    df = df.select([pl.col(c).cast(t) for c, t in PRICE_SCHEMA.items()])
    for model, values in (overrides or {}).items():
        row = {c: None for c in PRICE_SCHEMA} | {"source": "override"}
        existing = df.filter(pl.col("model") == model)
        if existing.height:
            row |= existing.row(0, named=True)
        row |= {"model": model} | dict(values)
        df = pl.concat([df.filter(pl.col("model") != model), pl.DataFrame([row], schema=PRICE_SCHEMA)])
    return df


def normalize_model(name: str) -> str:
    """Lower-case, drop provider prefixes (`openai/`, `anthropic.`, `models/`) and whitespace."""
    n = name.strip().lower()
    for prefix in (
        "openai/",
        "meta/",
        "together/",
        "groq/",
        "anthropic/",
        "google/",
        "models/",
        "azure/",
        "bedrock/",
        "anthropic.",
        "meta-llama/",
    ):
        if n.startswith(prefix):
            n = n[len(prefix) :]
    return n


def match_model(name: str | None, prices: pl.DataFrame) -> str | None:
    """The price-table row that bills `name`, tolerating dated suffixes and fine-tune ids.

    `gpt-4o-2024-08-06` → `gpt-4o`; `ft:gpt-4.1-2025-04-14:org:name:id` → `ft:gpt-4.1` if listed, else
    `gpt-4.1`; `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`; otherwise the longest listed name that
    prefixes `name` at a `-` boundary (`gpt-4.1-mini-x` → `gpt-4.1-mini`). None when nothing matches.

    Example:
        >>> match_model("ft:gpt-4.1-2025-04-14:sierra:tau2-full-sft:BzrYdMNm", load_prices())
        'ft:gpt-4.1'
    """
    if not name:
        return None
    table = {normalize_model(m): m for m in prices.get_column("model").to_list()}
    n = normalize_model(name)
    candidates = []
    if n.startswith("ft:"):
        base = n[3:].split(":", 1)[0]
        candidates += [f"ft:{b}" for b in _stems(base)] + _stems(base)
    else:
        candidates += _stems(n)
    for c in candidates:
        if c in table:
            return table[c]
    # Longest listed prefix at a "-" boundary, e.g. "gpt-4o-mini-search" -> "gpt-4o-mini".
    plain = candidates[-1]
    best = None
    for key, model in table.items():
        if plain.startswith(key) and (len(plain) == len(key) or plain[len(key)] in "-:@"):
            if best is None or len(key) > len(best[0]):
                best = (key, model)
    return best[1] if best else None


def _stems(name: str) -> list[str]:
    """`name` and its successively suffix-stripped forms."""
    out = [name]
    changed = True
    while changed:
        changed = False
        for rx in _SUFFIX_RES:
            s = rx.sub("", out[-1])
            if s != out[-1] and s:
                out.append(s)
                changed = True
                break
    return out


def estimate_cost(calls: pl.DataFrame, prices: pl.DataFrame | None = None) -> pl.DataFrame:
    """Fill missing `cost_usd` from the price table and mark those rows `cost_estimated=True`.

    Cached input tokens are billed at the cached price (the input price where none is listed); calls read
    from Batch API files (`source_format == "openai_batch"`) at `batch_factor` of it; logged costs
    (including a logged 0.0) are kept. Rows whose model matches no price or whose tokens are unknown
    keep a null cost.

    Example:
        >>> df = pl.DataFrame({"model": ["gpt-4o-2024-08-06"], "input_tokens": [1_000_000],
        ...     "cached_input_tokens": [0], "output_tokens": [0], "cost_usd": [None]})
        >>> estimate_cost(df, load_prices())["cost_usd"].item()
        2.5
    """
    prices = prices if prices is not None else load_prices()
    df = calls
    defaults = {
        "cost_usd": pl.Float64(),
        "cached_input_tokens": pl.Int64(),
        "input_tokens": pl.Int64(),
        "output_tokens": pl.Int64(),
    }
    for c, t in defaults.items():
        if c not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=t).alias(c))
    if "cost_estimated" not in df.columns:
        df = df.with_columns(pl.lit(False).alias("cost_estimated"))
    models = df.get_column("model").unique().to_list() if "model" in df.columns else []
    mapping = pl.DataFrame(
        {"model": models, "_price_model": [match_model(m, prices) for m in models]},
        schema={"model": df.schema.get("model", pl.String()), "_price_model": pl.String()},
    )
    p = prices.select(
        pl.col("model").alias("_price_model"),
        pl.col("input_per_mtok").alias("_in"),
        pl.col("cached_input_per_mtok").fill_null(pl.col("input_per_mtok")).alias("_cin"),
        pl.col("output_per_mtok").alias("_out"),
        pl.col("batch_factor").alias("_batch"),
    ).unique("_price_model", keep="first")
    cached = pl.col("cached_input_tokens").fill_null(0).cast(pl.Float64)
    inp = pl.col("input_tokens").cast(pl.Float64)
    est = ((inp - cached).clip(lower_bound=0) * pl.col("_in") + cached * pl.col("_cin")) / 1e6 + pl.col(
        "output_tokens"
    ).cast(pl.Float64).fill_null(0) * pl.col("_out") / 1e6
    if "source_format" in df.columns:  # Batch API calls pay `batch_factor` of the list price
        is_batch = pl.col("source_format") == "openai_batch"
        est = est * pl.when(is_batch).then(pl.col("_batch").fill_null(1.0)).otherwise(1.0)
    fill = pl.col("cost_usd").is_null() & est.is_not_null()
    return (
        df.with_row_index("_row")
        .join(mapping, on="model", how="left")
        .join(p, on="_price_model", how="left")
        .sort("_row")
        .with_columns(
            pl.when(fill).then(est).otherwise(pl.col("cost_usd")).alias("cost_usd"),
            (pl.col("cost_estimated").fill_null(False) | fill).alias("cost_estimated"),
        )
        .drop("_row", "_price_model", "_in", "_cin", "_out", "_batch")
    )


def price_of(model: str, prices: pl.DataFrame | None = None) -> dict[str, Any] | None:
    """The price row (as a dict) that bills `model`, or None.

    Example:
        >>> price_of("gpt-4.1-mini-2025-04-14")["output_per_mtok"]
        1.6
    """
    prices = prices if prices is not None else load_prices()
    m = match_model(model, prices)
    if m is None:
        return None
    return prices.filter(pl.col("model") == m).row(0, named=True)
