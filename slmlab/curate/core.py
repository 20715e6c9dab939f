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

import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from slmlab.config import home_dir
from slmlab.curate import filters
from slmlab.curate.redact import (
    DATE_RE,
    Pseudonymizer,
    Redactor,
    Span,
    resolve_overlaps,
    select_redactor,
)
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

DEFAULT_ID_KEYS = (
    "user_id", "customer_id", "account_id", "member_id", "patient_id", "employee_id", "client_id",
    "reservation_id", "reservations", "booking_id", "order_id", "order_ids", "payment_id",
    "payment_method_id", "session_id", "conversation_id", "device_id", "phone_number_id",
)  # fmt: skip
# Payment-method ids keep their kind as a prefix (`credit_card_` + hash) so training targets keep their shape.
DEFAULT_ID_PATTERNS = (
    r"\b(?P<prefix>(?:credit_card|debit_card|gift_card|certificate|paypal|bank_account)_)\d{4,}\b",
)
DEFAULT_NAME_KEYS = (
    "first_name", "last_name", "middle_name", "full_name", "given_name", "family_name", "surname",
    "passenger_name", "customer_name", "cardholder_name", "contact_name",
)  # fmt: skip
DEFAULT_DOB_KEYS = ("dob", "date_of_birth", "birthdate", "birth_date", "birthday")
DEFAULT_SECRET_KEYS = (
    "password", "passwd", "api_key", "apikey", "secret", "client_secret", "access_token", "refresh_token",
    "auth_token", "authorization", "private_key", "aws_secret_access_key",
)  # fmt: skip
REDACT_COLUMNS = (
    "messages",
    "response_text",
    "response_tool_calls",
    "tools",
    "task_label",
    "error",
    "metadata",
)
JSON_COLUMNS = ("tools", "metadata")
# Capitalized words that are also names of people; left alone in free text when a name key holds them.
_NAME_STOPWORDS = frozenset(
    "January February March April May June July August September October November December Monday Tuesday "
    "Wednesday Thursday Friday Saturday Sunday Will Mark Bill Grace Hope Joy Faith Rose Art Sky Summer "
    "Winter Page Case Chase Hunter Golden Gold Silver Regular Economy Business Basic".split()
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
        default="patterns", metadata={"help": "'patterns', 'presidio' or a Redactor"}
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
    secret_keys: tuple[str, ...] = DEFAULT_SECRET_KEYS
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
# JSON helpers


_FIRST_KEY = re.compile(r'\s*[\[{\s]*"(?:[^"\\]|\\.)*"\s*:( ?)')


def _json_style(s: str) -> dict[str, Any]:
    """Serializer options that reproduce how `s` was written (compact or spaced, ASCII-escaped or not).

    The spacing is read after the first key only: nested JSON strings inside may be written differently.
    """
    m = _FIRST_KEY.match(s)
    spaced = bool(m.group(1)) if m else ", " in s[:200]
    return {
        "separators": (", ", ": ") if spaced else (",", ":"),
        "ensure_ascii": s.isascii() and "\\u" in s,
    }


def _looks_json(s: str) -> bool:
    t = s.lstrip()[:1]
    return t == "{" or t == "["


def _trie_regex(words: list[str]) -> str:
    """One regex matching any of `words`, built as a trie so it stays fast with thousands of words."""
    trie: dict = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict) -> str:
        alts, end = [], "" in node
        for ch in sorted(k for k in node if k):
            alts.append(re.escape(ch) + build(node[ch]))
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 and not end else "(?:" + "|".join(alts) + ")"
        return body + ("?" if end else "")

    return build(trie)


# ----------------------------------------------------------------------------------------------------------
# The redaction engine

Finding = tuple[str, str, str, str, int]  # (sub-path, rule, entity, placeholder, span length)


class _Engine:
    def __init__(self, cfg: CurateConfig, redactor: Redactor, pseudo: Pseudonymizer):
        self.cfg = cfg
        self.redactor = redactor
        self.pseudo = pseudo
        self.id_keys = {k.lower() for k in cfg.id_keys}
        self.name_keys = {k.lower() for k in cfg.name_keys}
        self.dob_keys = {k.lower() for k in cfg.dob_keys}
        self.secret_keys = {k.lower() for k in cfg.secret_keys}
        self.id_patterns = [re.compile(p) for p in cfg.id_patterns]
        self._prefixed = [rx for rx in self.id_patterns if "prefix" in rx.groupindex]
        self.known_ids: set[str] = set()
        self.known_names: set[str] = set()
        self.known_rx: re.Pattern | None = None
        self.text_cache: dict[str, tuple[str, list[Finding]]] = {}
        self.json_cache: dict[str, tuple[str, list[Finding]]] = {}

    # -- values known from JSON keys, replaced in free text too --------------------------------------------
    def learn(self, calls: pl.DataFrame, columns: tuple[str, ...]) -> None:
        """Collect values that sit under id / name keys anywhere, so free-text mentions get the same treatment."""
        keys = sorted(self.id_keys | self.name_keys)
        if not keys:
            return
        key_alt = "|".join(re.escape(k) for k in keys)
        # Matches `"user_id": "x"` at any JSON nesting depth (quotes may be escaped once or twice).
        pattern = rf'(?i)\\*"(?:{key_alt})\\*"\s*:\s*\\*"[^"\\]{{1,120}}\\*"'
        inner = re.compile(rf'(?i)"({key_alt})\\*"\s*:\s*\\*"([^"\\]{{1,120}})')
        for col in columns:
            if col not in calls.columns or calls.schema[col] != pl.String:
                continue
            hits = calls.select(
                pl.col(col).str.extract_all(pattern).explode().drop_nulls().unique()
            ).to_series()
            for hit in hits:
                m = inner.search(hit)
                if not m:
                    continue
                key, value = m.group(1).lower(), m.group(2).strip()
                if key in self.id_keys and len(value) >= 4:
                    self.known_ids.add(value)
                elif (
                    key in self.name_keys
                    and len(value) >= 3
                    and value not in _NAME_STOPWORDS
                    and value[0].isupper()
                ):
                    self.known_names.add(value)
        words = sorted(self.known_ids | self.known_names)
        if words:
            self.known_rx = re.compile(r"(?<![\w])" + _trie_regex(words) + r"(?![\w])")

    def hash_value(self, v: str) -> str:
        """The salted hash of an id; an id matching a pattern with a `prefix` group keeps that prefix.

        The hash covers the whole value, so `credit_card_4421486` gets the same hash whether it was
        found by its pattern, under a `payment_id` key or as a known id in free text.
        """
        for rx in self._prefixed:
            m = rx.fullmatch(v)
            if m and m.group("prefix"):
                return m.group("prefix") + self.pseudo.hash(v)
        return self.pseudo.hash(v)

    # -- one string of free text --------------------------------------------------------------------------
    def text(self, s: str) -> tuple[str, list[Finding]]:
        hit = self.text_cache.get(s)
        if hit is not None:
            return hit
        spans = self.redactor.detect(s)
        for rx in self.id_patterns:
            for m in rx.finditer(s):
                spans.append(Span(m.start(), m.end(), "ID", "id_pattern"))
        if self.known_rx is not None:
            for m in self.known_rx.finditer(s):
                v = m.group(0)
                kind = ("ID", "known_id") if v in self.known_ids else ("PERSON", "known_name")
                spans.append(Span(m.start(), m.end(), *kind))
        if not spans:
            out = (s, [])
        else:
            parts, found, last = [], [], 0
            for sp in resolve_overlaps(spans):
                value = s[sp.start : sp.end]
                ph = (
                    self.hash_value(value) if sp.entity == "ID" else self.pseudo.placeholder(sp.entity, value)
                )
                parts += [s[last : sp.start], ph]
                found.append(("", sp.rule, sp.entity, ph, sp.end - sp.start))
                last = sp.end
            parts.append(s[last:])
            out = ("".join(parts), found)
        self.text_cache[s] = out
        return out

    # -- a parsed JSON value, with its key as context ------------------------------------------------------
    def _whole(self, value: str, rule: str, entity: str) -> tuple[str, list[Finding]]:
        ph = self.hash_value(value) if entity == "ID" else self.pseudo.placeholder(entity, value)
        return ph, [("", rule, entity, ph, len(value))]

    def _keyed_string(self, key: str | None, v: str) -> tuple[str, list[Finding]]:
        k = key.lower() if key else ""
        if v.strip() and not v.startswith("<"):
            if k in self.id_keys:
                return self._whole(v, "id_key", "ID")
            if (k in self.dob_keys or "birth" in k or k.endswith("dob")) and DATE_RE.match(v):
                return self._whole(v, "dob_key", "DATE_OF_BIRTH")
            if k in self.name_keys:
                return self._whole(v, "name_key", "PERSON")
            if k in self.secret_keys and len(v) >= 6:
                return self._whole(v, "secret_key", "SECRET")
        if _looks_json(v):  # JSON inside a JSON string (a tool result quoted in an argument, ...)
            return self.json_string(v)
        return self.text(v)

    def walk(self, obj: Any, key: str | None = None) -> tuple[Any, list[Finding]]:
        if isinstance(obj, str):
            return self._keyed_string(key, obj)
        if isinstance(obj, dict):
            out, found = {}, []
            for k, v in obj.items():
                nk, fk = self.text(k) if isinstance(k, str) else (k, [])
                found += [(f".{k if not fk else nk}{p}", *rest) for p, *rest in fk]
                nv, fv = self.walk(v, k)
                found += [(f".{nk}{p}", *rest) for p, *rest in fv]
                out[nk] = nv
            return out, found
        if isinstance(obj, list):
            out, found = [], []
            for i, v in enumerate(obj):
                nv, fv = self.walk(v, key)
                found += [(f"[{i}]{p}", *rest) for p, *rest in fv]
                out.append(nv)
            return out, found
        if isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) >= 10**6:
            k = key.lower() if key else ""
            new, fv = self._whole(str(obj), "id_key", "ID") if k in self.id_keys else self.text(str(obj))
            return (new if fv else obj), fv
        return obj, []

    def json_string(self, s: str) -> tuple[str, list[Finding]]:
        """A string that may hold JSON: redact inside the parsed value and re-serialize in the same style."""
        hit = self.json_cache.get(s)
        if hit is not None:
            return hit
        try:
            obj = json.loads(s) if _looks_json(s) else None
        except ValueError:
            obj = None
        if not isinstance(obj, dict | list):
            out = self.text(s)
        else:
            new, found = self.walk(obj)
            out = (json.dumps(new, **_json_style(s)) if found else s, found)
        self.json_cache[s] = out
        return out

    # -- the columns of one call ---------------------------------------------------------------------------
    def messages(self, s: str) -> tuple[str, list[Finding]]:
        msgs = json.loads(s)
        found: list[Finding] = []
        for i, m in enumerate(msgs):
            content = m.get("content")
            if isinstance(content, str) and content:
                new, f = self.json_string(content) if _looks_json(content) else self.text(content)
                m["content"] = new
                found += [(f"[{i}].content{p}", *r) for p, *r in f]
            elif isinstance(content, list):
                for j, part in enumerate(content):
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        part["text"], f = self.text(part["text"])
                        found += [(f"[{i}].content[{j}].text{p}", *r) for p, *r in f]
            for j, tc in enumerate(m.get("tool_calls") or []):
                fn = tc.get("function") if isinstance(tc.get("function"), dict) else tc
                args = fn.get("arguments")
                if isinstance(args, str) and args:
                    fn["arguments"], f = self.json_string(args)
                elif isinstance(args, dict | list):
                    fn["arguments"], f = self.walk(args)
                else:
                    f = []
                found += [(f"[{i}].tool_calls[{j}].arguments{p}", *r) for p, *r in f]
        return (json.dumps(msgs, **_json_style(s)) if found else s), found

    def tool_calls(self, s: str) -> tuple[str, list[Finding]]:
        calls = json.loads(s)
        found: list[Finding] = []
        for j, tc in enumerate(calls):
            args = tc.get("arguments")
            if isinstance(args, str) and args:
                tc["arguments"], f = self.json_string(args)
            elif isinstance(args, dict | list):
                tc["arguments"], f = self.walk(args)
            else:
                f = []
            found += [(f"[{j}].arguments{p}", *r) for p, *r in f]
        return (json.dumps(calls, **_json_style(s)) if found else s), found

    def column(self, col: str, s: str) -> tuple[str, list[Finding]]:
        if col == "messages":
            return self.messages(s)
        if col == "response_tool_calls":
            return self.tool_calls(s)
        if col in JSON_COLUMNS or col == "response_text":
            return self.json_string(s)
        return self.text(s)


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
    engine = _Engine(cfg, select_redactor(cfg.redactor), pseudo)
    columns = tuple(c for c in cfg.redact_columns if c in kept.columns)
    engine.learn(kept, columns)

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
        "known_ids": len(engine.known_ids),
        "known_names": len(engine.known_names),
        "distinct_strings_redacted": len(engine.text_cache),
        "facing": dict(tagged.group_by("facing").len().iter_rows()),
        "seconds_filter": round(t_filter, 3),
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
