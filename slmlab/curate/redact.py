"""Find and replace personal data and secrets in logged text: detectors, back-ends and the pseudonymizer.

A `Redactor` finds sensitive spans in a string (`detect(text) -> list[Span]`). The built-in
`PatternRedactor` needs no model: compiled regexes with checksums (Luhn for cards, mod-97 for IBANs,
`ipaddress` for IPv6), a high-entropy rule for unnamed secrets and the context-keyed rules of
`slmlab.curate.context` (record numbers, dates of birth, zip codes, names after a cue).
`slmlab.curate.ner.SpacyNerRedactor` (the default) adds names found by spaCy's NER on top. A `Pseudonymizer` turns each
value into a placeholder that is the same everywhere in a dataset (`<EMAIL_3>`), and hashes identifiers
with a salted HMAC so that joins still work.

Usage:
    >>> redact_text("Mail jane.doe@example.com or call +44 20 7946 0958.")
    'Mail <EMAIL_1> or call <PHONE_1>.'
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from slmlab.curate.context import CONTEXT_RX, DATE_RE, context_spans  # noqa: F401
from slmlab.curate.zips import zip_placeholder

# ----------------------------------------------------------------------------------------------------------
# Spans and the base class


@dataclass(frozen=True, order=True)
class Span:
    """One sensitive span in a string: `text[start:end]` is a value of `entity`, found by `rule`."""

    start: int
    end: int
    entity: str  # placeholder family: EMAIL, PHONE, CREDIT_CARD, API_KEY, ...
    rule: str  # the detector that fired: "email", "aws_access_key", "entropy", "presidio:PERSON", ...


class Redactor:
    """Base class of redaction back-ends: `detect(text)` returns the sensitive spans of one string.

    Follows scikit-learn's duck type: `__init__` stores parameters, `fit` (a no-op for rule-based
    back-ends) returns `self`. Spans may overlap; `resolve_overlaps` keeps the best non-overlapping set.
    """

    #: entities this back-end can emit, for documentation and audit summaries
    entities: tuple[str, ...] = ()

    def fit(self, texts: Any = None) -> Redactor:
        return self

    def detect(self, text: str) -> list[Span]:  # pragma: no cover - abstract
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------------------
# Checksums and validators


def luhn_ok(digits: str) -> bool:
    """Luhn checksum of a string of digits (credit card numbers).

    Example:
        >>> luhn_ok("4111111111111111"), luhn_ok("4111111111111112")
        (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN (spaces ignored).

    Example:
        >>> iban_ok("GB82 WEST 1234 5698 7654 32"), iban_ok("GB82 WEST 1234 5698 7654 33")
        (True, False)
    """
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    moved = s[4:] + s[:4]
    num = "".join(str(int(c, 36)) for c in moved)
    return int(num) % 97 == 1


def shannon_entropy(s: str) -> float:
    """Empirical Shannon entropy of a string in bits per character."""
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values()) if n else 0.0


# Issuer prefixes of the card networks: a Luhn-valid number must also start like a real card, which keeps
# 16-digit order or tracking numbers (10% of which pass Luhn by chance) from being flagged.
_CARD_IIN = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[068]|35|6(?:011|5|4[4-9]|22)|62|81)")


def _card_ok(s: str) -> bool:
    digits = re.sub(r"[ -]", "", s)
    return 13 <= len(digits) <= 19 and bool(_CARD_IIN.match(digits)) and luhn_ok(digits)


def _ipv6_ok(s: str) -> bool:
    if s.count(":") < 2:
        return False
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return True


_LOWER_RUN = re.compile(r"[a-z]{3,}")


def _wordiness(tok: str) -> float:
    """Share of a token's characters in lower-case runs of 3+: ~0.7-0.9 for camelCase words, < 0.6 for keys."""
    return sum(m.end() - m.start() for m in _LOWER_RUN.finditer(tok)) / len(tok)


def _phone_ok(s: str) -> bool:
    n = sum(ch.isdigit() for ch in s)
    return 8 <= n <= 15


# ----------------------------------------------------------------------------------------------------------
# Pattern rules

_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Drive|Dr|Lane|Ln|Court|Ct|Way|Place|Pl|Terrace|Ter|"
    r"Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl|Crescent|Cres|Close|Row|Alley|Loop|Plaza)"
)
_UNIT = r"(?:Apt|Apartment|Suite|Ste|Unit|Floor|Fl|Room|Rm|#)\.?\s*#?\s*[0-9]+[A-Za-z]?"

# name -> (entity, regex, group to redact, validator). Order matters only for ties in `resolve_overlaps`:
# earlier rules win over later ones on the same span length.
_RULES: dict[str, tuple[str, str, int, Any]] = {
    "private_key": (
        "PRIVATE_KEY",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
        0,
        None,
    ),
    "jwt": ("TOKEN", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{0,}", 0, None),
    "anthropic_key": ("API_KEY", r"\bsk-ant-[A-Za-z0-9_-]{20,}", 0, None),
    "openai_key": ("API_KEY", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}", 0, None),
    "stripe_key": ("API_KEY", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}", 0, None),
    "aws_access_key": ("API_KEY", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b", 0, None),
    "aws_secret_key": (
        "API_KEY",
        r"(?i)aws.{0,25}?(?:secret|private).{0,25}?[\s\"':=]+([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        1,
        None,
    ),
    "github_token": ("API_KEY", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})", 0, None),
    "slack_token": ("API_KEY", r"\bxox[baprse]-[A-Za-z0-9-]{10,}", 0, None),
    "google_api_key": ("API_KEY", r"\bAIza[0-9A-Za-z_-]{35}", 0, None),
    "hf_token": ("API_KEY", r"\bhf_[A-Za-z0-9]{30,}", 0, None),
    "bearer_token": ("TOKEN", r"(?i)\b(?:bearer|basic|token)\s+([A-Za-z0-9\-._~+/]{16,}=*)", 1, None),
    "credit_card": ("CREDIT_CARD", r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])", 0, _card_ok),
    "iban": (
        "IBAN",
        r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
        0,
        iban_ok,
    ),
    "ssn": (
        "SSN",
        r"(?<![\w-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w-])"
        r"|(?i:\b(?:ssn|social security(?: number| no\.?)?)\W{0,5})(\d{9})\b",
        0,
        None,
    ),
    "email": (
        "EMAIL",
        r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
        0,
        None,
    ),
    "phone_intl": (
        "PHONE",
        r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){2,5}(?![\d-])",
        0,
        _phone_ok,
    ),
    "phone_us": ("PHONE", r"(?<![\w+(-])(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4}(?![\w-])", 0, None),
    "ipv4": (
        "IP_ADDRESS",
        r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\w|\.\d)",
        0,
        None,
    ),
    "ipv6": ("IP_ADDRESS", r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])", 0, _ipv6_ok),
    "street_address": (
        "ADDRESS",
        rf"\b\d{{1,6}}[A-Za-z]?\s+(?:(?:[NSEW]\.?|\d+(?:st|nd|rd|th)|[A-Z][a-z]+|[A-Z]+)\s+){{1,4}}{_STREET_SUFFIX}\b\.?"
        rf"(?:,?\s+{_UNIT})?",
        0,
        None,
    ),
    "address_unit": ("ADDRESS", rf"\b{_UNIT}\b", 0, None),
}

# Prefixes of ids that look random but are not secrets (tool-call / message / run ids of LLM APIs).
_ID_PREFIXES = ("call_", "toolu_", "chatcmpl-", "msg_", "run_", "req_", "resp_", "fc_", "span_", "trace_")
_ENTROPY_CANDIDATE = re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_-]{24,}={0,2}(?![A-Za-z0-9+/_=-])")
_HEX_OR_UUID = re.compile(r"^[0-9a-fA-F-]+$")

# Rules that stand for secrets: a test asserts none of their planted values survives curation.
SECRET_ENTITIES = ("API_KEY", "TOKEN", "PRIVATE_KEY", "SECRET", "CREDIT_CARD", "SSN", "IBAN")


class PatternRedactor(Redactor):
    """Regex + checksum detectors for PII and secrets; no model, no download.

    The high-entropy rule flags a token of at least `entropy_min_length` characters from the base64 /
    url-safe alphabet that mixes at least two of upper case, lower case and digits, has Shannon entropy of
    at least `entropy_threshold` bits per character, and is not word-like (under 60% of its characters in
    lower-case runs of 3+). A random 32-character base62 key scores 4.5 bits on average (fewer than 0.1% of
    them fall under 4.0) and ~0.3 wordiness; camelCase identifiers score 3.7-4.3 bits but 0.7-0.9
    wordiness, so the pair separates them where entropy alone cannot. It deliberately leaves alone: hex
    digests and UUIDs (commit hashes, content hashes and uuid4 call ids are kept on purpose), ids with an
    LLM API prefix (`call_`, `toolu_`, `chatcmpl-`, ...; 24-char OpenAI tool-call ids are also under the
    32-char minimum), ordinary words, and paths or URLs split by `.` or `:`.

    Args:
        rules: names of the pattern rules to run (default: all of `PatternRedactor.RULES`).
        entropy: run the high-entropy rule.
        entropy_threshold: minimum bits per character for the high-entropy rule.
        entropy_min_length: minimum token length for the high-entropy rule.
        extra: more rules, `name -> (entity, regex)`, e.g. `{"employee": ("ID", r"EMP-\\d{6}")}`.
        context: run the context-keyed rules of `slmlab.curate.context` (dates of birth, record numbers,
            member / account ids, zip codes, names after a cue, identifying query parameters).
        allow: regexes of values never to redact (values you keep on purpose).

    Example:
        >>> [s.rule for s in PatternRedactor().detect("card 4111 1111 1111 1111, order 4111111111111112")]
        ['credit_card']
    """

    RULES = tuple(_RULES)
    CONTEXT_RULES = tuple(CONTEXT_RX)
    entities = tuple(dict.fromkeys(e for e, *_ in _RULES.values())) + (
        "SECRET", "DATE_OF_BIRTH", "ZIP", "PERSON", "ID", "QUERY_VALUE",
    )  # fmt: skip

    def __init__(
        self,
        rules: tuple[str, ...] | None = None,
        entropy: bool = True,
        entropy_threshold: float = 4.0,
        entropy_min_length: int = 32,
        extra: dict[str, tuple[str, str]] | None = None,
        allow: tuple[str, ...] = (),
        context: bool = True,
    ):
        self.rules = rules
        self.context = context
        self.entropy = entropy
        self.entropy_threshold = entropy_threshold
        self.entropy_min_length = entropy_min_length
        self.extra = extra
        self.allow = allow
        names = tuple(rules) if rules is not None else self.RULES
        unknown = [n for n in names if n not in _RULES]
        if unknown:
            raise ValueError(f"unknown rules {unknown}; known: {', '.join(_RULES)}")
        self._compiled = [
            (n, _RULES[n][0], re.compile(_RULES[n][1]), _RULES[n][2], _RULES[n][3]) for n in names
        ]
        for name, (entity, rx) in (extra or {}).items():
            self._compiled.append((name, entity, re.compile(rx), 0, None))
        self._allow = [re.compile(a) for a in allow]

    def detect(self, text: str) -> list[Span]:
        spans = []
        for name, entity, rx, group, check in self._compiled:
            for m in rx.finditer(text):
                g = group if m.group(group) is not None else 0
                if name == "ssn" and m.group(2) is not None:  # the "ssn: 123456789" form
                    g = 2
                start, end = m.span(g)
                value = text[start:end]
                if check is not None and not check(value):
                    continue
                spans.append(Span(start, end, entity, name))
        if self.entropy:
            spans.extend(self._entropy_spans(text))
        if self.context:
            spans.extend(Span(*c) for c in context_spans(text))
        if self._allow:
            spans = [s for s in spans if not any(a.fullmatch(text[s.start : s.end]) for a in self._allow)]
        return spans

    def _entropy_spans(self, text: str) -> list[Span]:
        out = []
        for m in _ENTROPY_CANDIDATE.finditer(text):
            tok = m.group(0)
            if len(tok) < self.entropy_min_length or tok.startswith(_ID_PREFIXES) or _HEX_OR_UUID.match(tok):
                continue
            classes = (
                any(c.isupper() for c in tok) + any(c.islower() for c in tok) + any(c.isdigit() for c in tok)
            )
            if classes < 2 or _wordiness(tok) >= 0.6:
                continue
            if shannon_entropy(tok) >= self.entropy_threshold:
                out.append(Span(m.start(), m.end(), "SECRET", "entropy"))
        return out


def select_redactor(redactor: str | Redactor = "patterns", **kwargs: Any) -> Redactor:
    """A redactor from a name (`"ner"`, `"patterns"`, `"presidio"`) or an object with `detect(text)`.

    `"ner"` (the `curate` default) is spaCy's English NER for names plus every pattern rule;
    `"patterns"` needs no model and is ~5x faster, but finds names only by key, cue or an earlier sighting.

    Example:
        >>> type(select_redactor("patterns")).__name__
        'PatternRedactor'
    """
    if isinstance(redactor, str):
        if redactor == "patterns":
            return PatternRedactor(**kwargs)
        if redactor in ("ner", "spacy"):
            from slmlab.curate.ner import SpacyNerRedactor

            return SpacyNerRedactor(**kwargs)
        if redactor == "presidio":
            from slmlab.curate.ner import PresidioRedactor

            return PresidioRedactor(**kwargs)
        raise ValueError(
            f"unknown redactor {redactor!r}; use 'ner', 'patterns', 'presidio' or a Redactor object"
        )
    if not callable(getattr(redactor, "detect", None)):
        raise TypeError(f"{redactor!r} has no detect(text) method")
    return redactor


# Rank of a rule when spans overlap with the same length: secrets before PII before weak rules.
_PRIORITY = {name: i for i, name in enumerate((*_RULES, *CONTEXT_RX))}


def resolve_overlaps(spans: list[Span]) -> list[Span]:
    """Keep a non-overlapping subset of spans: longer spans first, then rule order (secrets first)."""
    ranked = sorted(spans, key=lambda s: (-(s.end - s.start), _PRIORITY.get(s.rule, len(_PRIORITY)), s.start))
    kept: list[Span] = []
    for s in ranked:
        if all(s.end <= k.start or s.start >= k.end for k in kept):
            kept.append(s)
    return sorted(kept)


# ----------------------------------------------------------------------------------------------------------
# Pseudonymizer


def hash_id(value: str, salt: str, length: int = 12) -> str:
    """Salted HMAC-SHA256 of an identifier as short hex: deterministic for a salt, irreversible without it.

    Example:
        >>> hash_id("mia_li_3668", "s") == hash_id("mia_li_3668", "s") != hash_id("mia_li_3668", "t")
        True
    """
    return hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()[:length]


def _normalize(entity: str, value: str) -> str:
    if entity in ("EMAIL",):
        return value.lower()
    if entity == "PHONE":  # +1 415 555 0132 and (415) 555-0132 are one number (NANP country code 1)
        digits = re.sub(r"\D", "", value)
        return digits[1:] if len(digits) == 11 and digits[0] == "1" else digits
    if entity in ("CREDIT_CARD", "SSN"):
        return re.sub(r"\D", "", value)
    if entity == "IBAN":
        return value.replace(" ", "").upper()
    return value.strip()


@dataclass
class Pseudonymizer:
    """Maps each (entity, value) to a stable placeholder `<EMAIL_3>` and each id to a salted hash.

    Numbering follows first sight, so one dataset processed in the same order always gets the same
    placeholders; the same email in a prompt, a tool result and a tool argument gets the same one.
    The mapping is kept in memory only (it holds the original values): never save it next to the data.
    """

    salt: str = ""
    hash_length: int = 12
    _table: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    _counts: Counter = field(default_factory=Counter, repr=False)

    def placeholder(self, entity: str, value: str) -> str:
        if entity == "ZIP":  # generalized, not numbered: Safe Harbor keeps the first three digits
            return zip_placeholder(value)
        key = (entity, _normalize(entity, value))
        ph = self._table.get(key)
        if ph is None:
            self._counts[entity] += 1
            ph = self._table[key] = f"<{entity}_{self._counts[entity]}>"
        return ph

    def hash(self, value: str) -> str:
        return hash_id(value, self.salt, self.hash_length)


def redact_text(
    text: str, redactor: str | Redactor = "patterns", pseudonymizer: Pseudonymizer | None = None
) -> str:
    """Replace every sensitive span of one string by its placeholder.

    Example:
        >>> redact_text("key sk-proj-abcdefghijklmnopqrstuvwx123 for bob@corp.io, bob@corp.io")
        'key <API_KEY_1> for <EMAIL_1>, <EMAIL_1>'
    """
    r = select_redactor(redactor)
    p = pseudonymizer or Pseudonymizer()
    spans = resolve_overlaps(r.detect(text))
    out, last = [], 0
    for s in spans:
        out.append(text[last : s.start])
        out.append(p.placeholder(s.entity, text[s.start : s.end]))
        last = s.end
    out.append(text[last:])
    return "".join(out)
