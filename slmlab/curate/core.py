"""`curate`: filter the call table, redact and pseudonymize every text field, hash ids, and audit it all.

Text lives in `messages` (chat turns, tool-call arguments, tool results), `response_text`,
`response_tool_calls`, `tools`, plus `task_label`, `error` and `metadata`. JSON strings (tool arguments,
tool results, metadata) are parsed, redacted value by value with their key as context (a `dob` key makes
its value a date of birth, a `user_id` key makes it an id to hash) and re-serialized in their original
style, so they stay valid JSON. Results are cached per distinct string: agent prompts repeat the
conversation so far, so each turn is redacted once however many later calls carry it.

Usage:
    >>> from slmlab.curate import curate, CurateConfig
    >>> from slmlab.demo.planted import make_planted_corpus
    >>> calls, planted = make_planted_corpus(n_values=60, seed=0)
    >>> res = curate(calls, CurateConfig(salt="s3cret"))
    >>> res.calls.height == calls.height and res.audit.height > 0
    True
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from slmlab.config import home_dir
from slmlab.curate import context, filters
from slmlab.curate.engine import (
    DEFAULT_ADDRESS_KEYS,
    DEFAULT_DOB_KEYS,
    DEFAULT_ID_KEYS,
    DEFAULT_ID_PATTERNS,
    DEFAULT_NAME_KEYS,
    DEFAULT_SECRET_KEYS,
    DEFAULT_ZIP_KEYS,
    Engine,
)
from slmlab.curate.redact import Pseudonymizer, Redactor, select_redactor
from slmlab.schema import validate_calls

AUDIT_SCHEMA = {
    "call_id": pl.String(),  # id of the curated call (hashed when `call_id` is in `hash_columns`)
    "column": pl.String(),  # column of the call table
    "path": pl.String(),  # field path, e.g. messages[3].content.email or response_tool_calls[0].arguments.email
    "rule": pl.String(),  # detector that fired ("email", "id_key", "entropy", ...)
    "entity": pl.String(),  # placeholder family (EMAIL, ID, API_KEY, ...)
    "placeholder": pl.String(),  # what replaced the value (never the value itself)
    "span_len": pl.Int32(),  # length of the original value in characters
}
DROPPED_SCHEMA = {"call_id": pl.String(), "reason": pl.String()}

REDACT_COLUMNS = (
    "messages",
    "response_text",
    "response_tool_calls",
    "tools",
    "task_label",
    "error",
    "metadata",
)


def default_salt() -> str:
    """`SLMLAB_SALT` if set, else a random salt created once and kept (mode 600) under `SLMLAB_HOME`.

    A fixed public default would let anyone re-identify hashed ids by hashing guesses, so the default is
    random per install; set `CurateConfig.salt` (or `SLMLAB_SALT`) to get the same hashes on another machine.
    """
    env = os.environ.get("SLMLAB_SALT")
    if env:
        return env
    path = home_dir() / "secrets" / "curate_salt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(16))
        path.chmod(0o600)
    return path.read_text().strip()


@dataclass(frozen=True)
class CurateConfig:
    """What `curate` redacts, hashes and drops.

    Example:
        >>> CurateConfig(salt="team-salt", drop_near_duplicates=False, keep_facing="machine").keep_facing
        'machine'
    """

    salt: str | None = field(default=None, metadata={"help": "HMAC salt for ids; None = default_salt()"})
    redactor: str | Redactor = field(
        default="ner",
        metadata={"help": "'ner' (spaCy names + patterns), 'patterns' (no model, ~5x faster), 'presidio'"},
    )
    redact_columns: tuple[str, ...] = REDACT_COLUMNS
    hash_columns: tuple[str, ...] = field(
        default=("call_id", "session_id", "parent_id"),
        metadata={"help": "columns replaced by their salted hash; a session's calls keep one shared id"},
    )
    id_keys: tuple[str, ...] = field(
        default=DEFAULT_ID_KEYS, metadata={"help": "JSON keys whose values are ids"}
    )
    id_patterns: tuple[str, ...] = field(
        default=DEFAULT_ID_PATTERNS, metadata={"help": "regexes of ids; a `prefix` group is kept in clear"}
    )
    name_keys: tuple[str, ...] = field(
        default=DEFAULT_NAME_KEYS, metadata={"help": "JSON keys holding names"}
    )
    dob_keys: tuple[str, ...] = DEFAULT_DOB_KEYS
    zip_keys: tuple[str, ...] = field(
        default=DEFAULT_ZIP_KEYS, metadata={"help": "JSON keys of zip codes (first 3 digits kept)"}
    )
    address_keys: tuple[str, ...] = field(
        default=DEFAULT_ADDRESS_KEYS, metadata={"help": "JSON keys of street lines"}
    )
    secret_keys: tuple[str, ...] = DEFAULT_SECRET_KEYS
    old_date_years: int | None = field(
        default=10,
        metadata={
            "help": "full dates this many years before the calls (or today) are dates of birth; None = off"
        },
    )
    hash_length: int = field(default=12, metadata={"help": "hex chars of the id hash (12 = 48 bits)"})
    drop_errors: bool = field(default=True, metadata={"help": "drop calls with status != 'ok'"})
    drop_empty: bool = field(default=True, metadata={"help": "drop calls with no text and no tool call"})
    drop_exact_duplicates: bool = True
    drop_near_duplicates: bool = field(default=True, metadata={"help": "MinHash LSH on prompt and response"})
    near_dup_threshold: float = field(
        default=0.9, metadata={"help": "Jaccard above which calls are near-dups"}
    )
    near_dup_num_perm: int = field(default=128, metadata={"help": "MinHash permutations (accuracy vs speed)"})
    keep_facing: str = field(default="both", metadata={"help": "'both', 'machine' or 'human'"})
    human_agents: tuple[str, ...] = filters.HUMAN_AGENT_HINTS
    machine_agents: tuple[str, ...] = filters.MACHINE_AGENT_HINTS
    max_input_tokens: int | None = field(
        default=None, metadata={"help": "drop longer prompts (None = no limit)"}
    )
    max_input_chars: int | None = field(
        default=None, metadata={"help": "drop longer prompts (None = no limit)"}
    )

    def __post_init__(self) -> None:
        if self.old_date_years is not None and self.old_date_years < 0:
            raise ValueError(f"old_date_years must be >= 0 or None, not {self.old_date_years}")
        if self.keep_facing not in ("both", "machine", "human"):
            raise ValueError(f"keep_facing must be 'both', 'machine' or 'human', not {self.keep_facing!r}")
        if not 0.0 < self.near_dup_threshold <= 1.0:
            raise ValueError("near_dup_threshold must be in (0, 1]")
        if self.hash_length < 8 or self.hash_length > 64:
            raise ValueError("hash_length must be between 8 and 64 hex characters")
        for rx in self.id_patterns:
            re.compile(rx)


@dataclass(frozen=True)
class CurateResult:
    """The curated call table, the audit of every redaction, the dropped calls and a summary."""

    calls: pl.DataFrame
    audit: pl.DataFrame
    dropped: pl.DataFrame
    summary: dict[str, Any]


# ----------------------------------------------------------------------------------------------------------
# The step


def _filter(calls: pl.DataFrame, cfg: CurateConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Apply the switched-on filters in order; each dropped call gets the first reason that hit it."""
    reason = pl.Series("reason", [None] * calls.height, dtype=pl.String)

    def mark(mask: pl.Series, why: str) -> None:
        nonlocal reason
        new = mask.fill_null(False) & reason.is_null()
        reason = pl.select(pl.when(new).then(pl.lit(why)).otherwise(reason)).to_series().alias("reason")

    if cfg.drop_errors:
        mark(filters.error_mask(calls), "error")
    if cfg.drop_empty:
        mark(filters.empty_mask(calls), "empty_response")
    if cfg.max_input_tokens is not None or cfg.max_input_chars is not None:
        mark(filters.too_long_mask(calls, cfg.max_input_tokens, cfg.max_input_chars), "too_long")
    if cfg.keep_facing != "both":
        mark(
            calls.get_column("facing") != cfg.keep_facing,
            f"{'human' if cfg.keep_facing == 'machine' else 'machine'}_facing",
        )
    if cfg.drop_exact_duplicates:
        alive = reason.is_null()
        dup = filters.exact_duplicate_mask(calls.filter(alive))
        full = pl.Series([False] * calls.height)
        full = full.scatter(alive.arg_true(), dup)
        mark(full, "exact_duplicate")
    if cfg.drop_near_duplicates:
        alive = reason.is_null()
        dup = filters.near_duplicate_mask(calls.filter(alive), cfg.near_dup_threshold, cfg.near_dup_num_perm)
        full = pl.Series([False] * calls.height).scatter(alive.arg_true(), dup)
        mark(full, "near_duplicate")
    tagged = calls.with_columns(reason)
    kept = tagged.filter(pl.col("reason").is_null()).drop("reason")
    dropped = tagged.filter(pl.col("reason").is_not_null()).select("call_id", "reason")
    return kept, dropped


def _old_dates_before(calls: pl.DataFrame, years: int | None) -> int | None:
    """The last year whose full dates count as dates of birth: `years` before the newest call (or today)."""
    if years is None:
        return None
    newest = calls.get_column("timestamp").max() if "timestamp" in calls.columns else None
    return (newest.year if newest is not None else datetime.date.today().year) - years


def curate(calls: pl.DataFrame, config: CurateConfig | None = None) -> CurateResult:
    """Filter, redact, pseudonymize and hash a canonical call table, recording every redaction.

    Args:
        calls: a canonical call table (`slmlab.schema.CALL_SCHEMA`).
        config: what to redact, hash and drop (defaults: all pattern rules, all filters but the facing one).

    Returns:
        `CurateResult` with `calls` (same schema plus a `facing` column; tool arguments still valid JSON),
        `audit` (`AUDIT_SCHEMA`, one row per redaction, never the original value), `dropped`
        (`call_id`, `reason`) and a `summary` dict of counts and timings.

    Example:
        >>> from slmlab.demo.planted import make_planted_corpus
        >>> calls, _ = make_planted_corpus(n_values=40, seed=1)
        >>> res = curate(calls, CurateConfig(salt="x"))
        >>> "<EMAIL_" in "".join(res.calls["messages"].to_list())
        True
    """
    cfg = config or CurateConfig()
    t0 = time.perf_counter()
    validate_calls(calls)
    tagged = filters.add_facing(calls, cfg.human_agents, cfg.machine_agents)
    kept, dropped = _filter(tagged, cfg)
    t_filter = time.perf_counter() - t0

    pseudo = Pseudonymizer(
        salt=cfg.salt if cfg.salt is not None else default_salt(), hash_length=cfg.hash_length
    )
    t1 = time.perf_counter()
    engine = Engine(cfg, select_redactor(cfg.redactor), pseudo, _old_dates_before(kept, cfg.old_date_years))
    columns = tuple(c for c in cfg.redact_columns if c in kept.columns)
    engine.prepare(kept, columns)
    t_prepare = time.perf_counter() - t1

    def out_id(v: str | None) -> str | None:
        return pseudo.hash(v) if v is not None and "call_id" in cfg.hash_columns else v

    audit_rows: list[tuple] = []
    new_cols: dict[str, list] = {}
    ids = kept.get_column("call_id").to_list()
    for col in columns:
        values = kept.get_column(col).to_list()
        out = []
        for cid, s in zip(ids, values, strict=True):
            if s is None or s == "":
                out.append(s)
                continue
            new, found = engine.column(col, s)
            out.append(new)
            if found:
                oid = out_id(cid)
                audit_rows += [(oid, col, f"{col}{p}", rule, ent, ph, n) for p, rule, ent, ph, n in found]
        new_cols[col] = out
    context.clear_cache()  # the per-string cache of cue matches holds original values: drop it now
    curated = kept.with_columns([pl.Series(c, v, dtype=pl.String) for c, v in new_cols.items()])
    hashed = [c for c in cfg.hash_columns if c in curated.columns]
    curated = curated.with_columns(
        [pl.col(c).map_elements(pseudo.hash, return_dtype=pl.String) for c in hashed if curated[c].len()]
    )
    if "call_id" in cfg.hash_columns and dropped.height:
        dropped = dropped.with_columns(pl.col("call_id").map_elements(pseudo.hash, return_dtype=pl.String))
    audit = pl.DataFrame(audit_rows, schema=AUDIT_SCHEMA, orient="row")
    elapsed = time.perf_counter() - t0
    summary = {
        "calls_in": calls.height,
        "calls_out": curated.height,
        "dropped": dict(dropped.group_by("reason").len().iter_rows()) if dropped.height else {},
        "redactions": audit.height,
        "redactions_by_entity": dict(audit.group_by("entity").len().sort("len", descending=True).iter_rows()),
        "calls_redacted": audit.get_column("call_id").n_unique() if audit.height else 0,
        "hashed_columns": hashed,
        "known_ids": engine.known_ids,
        "known_names": engine.known_names,
        "known_values": len(engine.known),
        "distinct_strings_redacted": len(engine.text_cache),
        "facing": dict(tagged.group_by("facing").len().iter_rows()),
        "seconds_filter": round(t_filter, 3),
        "seconds_prepare": round(t_prepare, 3),
        "seconds_total": round(elapsed, 3),
        "calls_per_second": round(calls.height / elapsed, 1) if elapsed else None,
    }
    return CurateResult(
        calls=curated, audit=audit, dropped=pl.DataFrame(dropped, schema=DROPPED_SCHEMA), summary=summary
    )


def audit_summary(audit: pl.DataFrame) -> pl.DataFrame:
    """Counts per rule: redactions, distinct placeholders and calls touched, most frequent first.

    Example:
        >>> audit_summary(pl.DataFrame(schema=AUDIT_SCHEMA)).columns
        ['rule', 'entity', 'redactions', 'distinct_values', 'calls']
    """
    return (
        audit.group_by("rule", "entity")
        .agg(
            pl.len().alias("redactions"),
            pl.col("placeholder").n_unique().alias("distinct_values"),
            pl.col("call_id").n_unique().alias("calls"),
        )
        .with_columns(
            pl.col("redactions").cast(pl.Int64),
            pl.col("distinct_values").cast(pl.Int64),
            pl.col("calls").cast(pl.Int64),
        )
        .sort("redactions", "rule", descending=[True, False])
    )


def plot_curation(result: CurateResult):
    """Two bar charts: distinct values redacted per rule, and calls dropped per reason.

    Returns:
        plotly `go.Figure`.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rules = audit_summary(result.audit)
    reasons = result.dropped.group_by("reason").len().sort("len", descending=True)
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("Distinct values redacted, per rule", "Calls dropped, per reason")
    )
    fig.add_trace(
        go.Bar(x=rules["rule"].to_list(), y=rules["distinct_values"].to_list(), name="redacted"), 1, 1
    )
    fig.add_trace(go.Bar(x=reasons["reason"].to_list(), y=reasons["len"].to_list(), name="dropped"), 1, 2)
    fig.update_layout(
        showlegend=False,
        height=420,
        title=f"Curated {result.summary['calls_out']} of {result.summary['calls_in']} calls",
    )
    return fig


def before_after(
    raw: pl.DataFrame, result: CurateResult, column: str = "messages", n_chars: int = 1500
) -> pl.DataFrame:
    """One call side by side before and after curation: the kept call with the most redactions.

    Example:
        >>> from slmlab.demo.planted import make_planted_corpus
        >>> calls, _ = make_planted_corpus(n_values=40, seed=1)
        >>> before_after(calls, curate(calls, CurateConfig(salt="x"))).columns
        ['field', 'before', 'after']
    """
    if not result.audit.height:
        return pl.DataFrame(schema={"field": pl.String, "before": pl.String, "after": pl.String})
    top = (
        result.audit.group_by("call_id").len().sort("len", "call_id", descending=[True, False])["call_id"][0]
    )
    row_after = result.calls.filter(pl.col("call_id") == top).row(0, named=True)
    # Curated rows keep their source position, which finds the raw row even when call ids are hashed.
    raw_row = raw.filter(
        (pl.col("source_file") == row_after["source_file"])
        & (pl.col("source_line") == row_after["source_line"])
        & (pl.col("step") == row_after["step"])
    ).row(0, named=True)
    fields = [c for c in ("messages", "response_text", "response_tool_calls") if raw_row.get(c)]
    tail = {c: -n_chars if c == column else None for c in fields}
    return pl.DataFrame(
        {
            "field": fields,
            "before": [(raw_row[c] or "")[tail[c] or 0 :] for c in fields],
            "after": [(row_after[c] or "")[tail[c] or 0 :] for c in fields],
        }
    )
