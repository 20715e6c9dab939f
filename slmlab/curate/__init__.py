"""Step 2, curate: redact personal and health data and secrets, pseudonymize consistently, hash ids, filter.

Usage:
    >>> from slmlab.curate import curate, CurateConfig
    >>> from slmlab.demo.planted import find_leaks, make_planted_corpus
    >>> calls, planted = make_planted_corpus(n_values=40, seed=0)
    >>> res = curate(calls, CurateConfig(salt="team-salt"))
    >>> find_leaks(res.calls, planted.filter(pl.col("secret"))).height
    0
"""

import polars as pl  # noqa: F401  (used by the docstring example)

from slmlab.curate import gold
from slmlab.curate.context import context_spans
from slmlab.curate.core import (
    AUDIT_SCHEMA,
    DROPPED_SCHEMA,
    CurateConfig,
    CurateResult,
    audit_summary,
    before_after,
    curate,
    default_salt,
    plot_curation,
)
from slmlab.curate.filters import (
    add_facing,
    empty_mask,
    error_mask,
    exact_duplicate_mask,
    near_duplicate_mask,
    too_long_mask,
)
from slmlab.curate.ner import PresidioRedactor, SpacyNerRedactor
from slmlab.curate.redact import (
    PatternRedactor,
    Pseudonymizer,
    Redactor,
    Span,
    hash_id,
    iban_ok,
    luhn_ok,
    redact_text,
    select_redactor,
    shannon_entropy,
)
from slmlab.curate.zips import zip_placeholder

__all__ = [
    "AUDIT_SCHEMA",
    "DROPPED_SCHEMA",
    "CurateConfig",
    "CurateResult",
    "PatternRedactor",
    "PresidioRedactor",
    "Pseudonymizer",
    "Redactor",
    "Span",
    "SpacyNerRedactor",
    "context_spans",
    "zip_placeholder",
    "add_facing",
    "audit_summary",
    "before_after",
    "curate",
    "default_salt",
    "empty_mask",
    "gold",
    "error_mask",
    "exact_duplicate_mask",
    "hash_id",
    "iban_ok",
    "luhn_ok",
    "near_duplicate_mask",
    "plot_curation",
    "redact_text",
    "select_redactor",
    "shannon_entropy",
    "too_long_mask",
]
