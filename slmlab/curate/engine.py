"""The redaction engine of `curate`: walks every text field of a call, JSON value by value, with key context.

JSON strings (tool arguments, tool results, metadata) are parsed, redacted value by value with their key
and their parent's key as context (a `dob` key makes its value a date of birth, `identifier[].value` of a
FHIR resource a record number, `address.zip` a zip code) and re-serialized in their original style, so they
stay valid JSON. Results are cached per distinct string: agent prompts repeat the conversation so far.

Two passes: `prepare` walks the table once without changing it, collecting every distinct string and every
value found under a personal key, by a context cue or by NER; the second pass replaces those values
wherever they appear (a name given once in a profile is also replaced in a later free-text turn).

Usage:
    >>> from slmlab.curate.redact import Pseudonymizer, PatternRedactor
    >>> e = Engine(ENGINE_DEFAULTS, PatternRedactor(), Pseudonymizer("s"))
    >>> e.json_string('{"zip": "78750", "note": "ok"}')[0]
    '{"zip": "<ZIP_787XX>", "note": "ok"}'
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from dataclasses import dataclass
from typing import Any

import polars as pl

from slmlab.curate.context import DATE_RE, NOT_NAMES, context_spans, extend_name
from slmlab.curate.keyed import canonical_key, keyed_fields, snake_key, xml_fields
from slmlab.curate.labels import LABEL_PATTERNS, NAME_KEYS
from slmlab.curate.records import neighbour_spans, passage_ids
from slmlab.curate.redact import Pseudonymizer, Redactor, Span, resolve_overlaps

DEFAULT_ID_KEYS = (
    "user_id", "customer_id", "account_id", "member_id", "patient_id", "employee_id", "client_id",
    "reservation_id", "reservations", "booking_id", "order_id", "order_ids", "payment_id",
    "payment_method_id", "session_id", "conversation_id", "device_id", "phone_number_id", "mrn",
    "medical_record_number", "subscriber_id", "beneficiary_id", "policy_number", "account_number",
    "insurance_id", "license_number", "passport_number", "ssn", "mbi", "medicare_id", "medicaid_id",
)  # fmt: skip
# Payment-method ids keep their kind as a prefix (`credit_card_` + hash) so training targets keep their shape.
DEFAULT_ID_PATTERNS = (
    r"\b(?P<prefix>(?:credit_card|debit_card|gift_card|certificate|paypal|bank_account)_)\d{4,}\b",
    # a FHIR reference to a person ("Patient/P-43436238", also in REST paths): the id is the person's
    r"\b(?P<prefix>(?:Patient|Person|RelatedPerson)/)(?=[\w.-]*\d)[A-Za-z0-9][A-Za-z0-9.-]{0,63}\b",
    # a REST path under a collection of people or their accounts ("/api/v2/accounts/2799778828/statements")
    r"(?<![\w-])(?P<prefix>(?:accounts|patients|members|subscribers|customers|users|persons|people|beneficiaries|"
    r"policyholders|enrollees)/)(?=[\w.-]*\d)[A-Za-z0-9][A-Za-z0-9.-]{0,63}\b",
)
DEFAULT_NAME_KEYS = (
    "first_name", "last_name", "middle_name", "full_name", "given_name", "family_name", "surname",
    "passenger_name", "customer_name", "cardholder_name", "contact_name", "patient_name", "firstname",
    "lastname", "fullname", "guarantor", "guarantor_name", "insured_name", "subscriber_name", "member_name",
    "beneficiary_name", "policyholder", "policy_holder", "account_holder", "account_holder_name", "holder_name",
    *NAME_KEYS,
)  # fmt: skip
DEFAULT_DOB_KEYS = ("dob", "date_of_birth", "birthdate", "birth_date", "birthday")
DEFAULT_ZIP_KEYS = ("zip", "zip_code", "zipcode", "postal_code", "postalcode", "postcode")
DEFAULT_ADDRESS_KEYS = (
    "address1", "address2", "address_line1", "address_line2", "line1", "line2", "street",
    "street_address", "home_address", "mailing_address",
)  # fmt: skip
DEFAULT_SECRET_KEYS = (
    "password", "passwd", "api_key", "apikey", "secret", "client_secret", "access_token", "refresh_token",
    "auth_token", "authorization", "private_key", "aws_secret_access_key",
)  # fmt: skip
# Containers that give a plain key its meaning: FHIR HumanName (`name[].family`), Identifier
# (`identifier[].value`), Address (`address[].line`, `address.city`).
NAME_PARENTS = frozenset(
    {"name", "names", "patient", "person", "contact", "passenger", "passengers", "pax", "traveler", "travelers",
     "traveller", "travellers", "guest", "guests", "subject", "insured", "subscriber", "member", "beneficiary",
     "guarantor", "cardholder", "policyholder", "dependent", "dependents"}
)  # fmt: skip
NAME_PARTS = frozenset({"text", "family", "given", "first", "last", "middle", "full", "name"})
IDENTIFIER_PARENTS = frozenset({"identifier", "identifiers"})
ADDRESS_PARENTS = frozenset({"address", "addresses", "home_address", "billing_address", "shipping_address"})
ADDRESS_LINE_KEYS = frozenset({"line", "lines", "text", "street", "address", "address1", "address2"})
# Keys that name a person's identifier whatever else they say ("payer_member_id", "billed_to_account",
# "medicare_no"), when the value is one id-like token; not product or catalog ids ("plan_id", "item_id").
_PERSONAL_ID_KEY = re.compile(
    r"(?:^|_)(?:(?:member|subscriber|beneficiary|policy|insurance|insured|payer|medicare|medicaid|patient|"
    r"account|passport|licen[cs]e|medical_record|med_rec|pat_cntl|patient_control|cardholder)_?(?:id|number|no|num|#)|"
    r"mbi|mrn|ssn|acct|account|afiliado|kundennummer|versichertennummer|mitgliedsnummer|kontonummer|"
    r"member|subscriber|beneficiary|enrollee|insured|policyholder|guarantor|ffn|frequent_flyer(?:_id|_number|_no)?|"
    r"(?:ff|loyalty|claimant)_?(?:id|number|no|num))$"
)
# Keys that say only "an id": whose it is, their parent says ("subscriber.id", `<Member><Number>`).
_PLAIN_ID_KEYS = frozenset({"id", "number", "no", "num", "nbr", "identifier"})
# An id written as text: one token with a digit ("insurance: W123, admitted to room 412" is not one).
_ID_TOKEN = re.compile(r"(?=\S*\d)[A-Za-z0-9][\w./#-]{2,40}")
# Keys of a catalogue's ids ("item_id", "product_ids", "sku"): a value kept under one is nobody's identifier.
_CATALOGUE_KEY = re.compile(
    r"(?:^|_)(?:item|product|sku|variant|catalog|catalogue|part)(?:_?(?:id|number|no|code)s?)?$"
)
_ZIP_KEY = re.compile(r"zip|postal|post_?code")  # "ship_zip", "zip5", "billing_postal_code", "post_cd"
_ZIP_VALUE = re.compile(r"^\s*\d{5}(?:-\d{4})?\s*$")
# A letter or digit of a word a known value may not touch; Chinese, Japanese and Korean may ("Nguyen様").
_WORD_CHAR = r"[^\W\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
# Capitalized words that are also names of people; never replaced in free text because a name key held them.
NAME_STOPWORDS = NOT_NAMES | frozenset(
    "Will Mark Bill Grace Hope Joy Faith Rose Art Sky Summer Winter Page Case Chase Hunter Golden Gold "
    "Silver Regular Economy Business Basic".split()
)
_LABEL_KEYS = {kind: re.compile(rx) for kind, rx in LABEL_PATTERNS.items()}


@functools.lru_cache(maxsize=1 << 12)
def _label_kind(key: str) -> str | None:
    """The kind of label ("dob", "mrn", "member", "zip") that a whole key is, in any language it has labels in."""
    words = key.replace("_", " ")
    return next((kind for kind, rx in _LABEL_KEYS.items() if rx.fullmatch(words)), None)


# Entities found once and then replaced wherever they appear again.
_PROPAGATE = frozenset({"ID", "PERSON", "DATE_OF_BIRTH", "ZIP", "ADDRESS"})

Finding = tuple[str, str, str, str, int]  # (sub-path, rule, entity, placeholder, span length)


@dataclass(frozen=True)
class EngineKeys:
    """The key lists the engine reads (a `CurateConfig` has the same fields)."""

    id_keys: tuple[str, ...] = DEFAULT_ID_KEYS
    id_patterns: tuple[str, ...] = DEFAULT_ID_PATTERNS
    name_keys: tuple[str, ...] = DEFAULT_NAME_KEYS
    dob_keys: tuple[str, ...] = DEFAULT_DOB_KEYS
    zip_keys: tuple[str, ...] = DEFAULT_ZIP_KEYS
    address_keys: tuple[str, ...] = DEFAULT_ADDRESS_KEYS
    secret_keys: tuple[str, ...] = DEFAULT_SECRET_KEYS


ENGINE_DEFAULTS = EngineKeys()

_FIRST_KEY = re.compile(r'\s*[\[{\s]*"(?:[^"\\]|\\.)*"\s*:( ?)')


def json_style(s: str) -> dict[str, Any]:
    """Serializer options that reproduce how `s` was written (compact or spaced, ASCII-escaped or not)."""
    m = _FIRST_KEY.match(s)
    spaced = bool(m.group(1)) if m else ", " in s[:200]
    return {"separators": (", ", ": ") if spaced else (",", ":"), "ensure_ascii": s.isascii() and "\\u" in s}


def looks_json(s: str) -> bool:
    t = s.lstrip()[:1]
    return t == "{" or t == "["


def trie_regex(words: list[str]) -> str:
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


def _name_ok(v: str) -> bool:
    return (
        len(v) >= 2
        and v[0].isupper()
        and not v.isupper()  # all capitals: an airport or ticker code far more often than a name
        and v not in NAME_STOPWORDS
        and not any(c.isdigit() for c in v)
    )


class Engine:
    """Redacts the text columns of a call table; see the module docstring."""

    def __init__(
        self, cfg: Any, redactor: Redactor, pseudo: Pseudonymizer, old_dates_before: int | None = None
    ):
        self.cfg = cfg
        self.old_dates_before = old_dates_before  # full dates in this year or earlier are dates of birth
        self.redactor = redactor
        self.pseudo = pseudo
        low = lambda keys: {k.lower() for k in keys}  # noqa: E731
        self.id_keys, self.name_keys = low(cfg.id_keys), low(cfg.name_keys)
        self.dob_keys, self.secret_keys = low(cfg.dob_keys), low(cfg.secret_keys)
        self.zip_keys, self.address_keys = low(cfg.zip_keys), low(cfg.address_keys)
        self.id_patterns = [re.compile(p) for p in cfg.id_patterns]
        self._prefixed = [rx for rx in self.id_patterns if "prefix" in rx.groupindex]
        self.known: dict[str, str] = {}  # value -> entity, replaced wherever it appears
        self.known_rx: re.Pattern | None = None
        self.catalogue: set[str] = set()  # values found under catalogue keys (in pass 1 only)
        self.collecting: set[str] | None = None
        self.text_cache: dict[str, tuple[str, list[Finding]]] = {}
        self.json_cache: dict[str, tuple[str, list[Finding]]] = {}

    # -- pass 1: learn the values to replace everywhere ----------------------------------------------------
    def remember(self, value: str, entity: str) -> None:
        v = value.strip()
        if entity not in _PROPAGATE or not v or v.startswith("<"):
            return
        if entity == "PERSON":
            toks = re.split(r"[\s,]+", v)  # "Demir,Ana": a reversed name is two names
            for t in [v] + (toks if len(toks) > 1 else []):
                t = t.strip(",.;:")
                if _name_ok(t) and (len(t) >= 3 or t[1:].islower()):
                    self.known.setdefault(t, "PERSON")
            return
        if entity == "ID" and len(v) < 4:
            return
        if entity == "ADDRESS" and (len(v) < 6 or not any(c.isdigit() for c in v)):
            return
        self.known.setdefault(v, entity)

    def prepare(self, calls: pl.DataFrame, columns: tuple[str, ...]) -> None:
        """Pass 1: collect every distinct string and every personal value (by key, cue or NER)."""
        self.collecting = set()
        for col in columns:
            for s in calls.get_column(col).to_list():
                if s:
                    try:
                        self.column(col, s)
                    except (ValueError, TypeError, AttributeError):
                        self.collecting.add(s)
        strings, self.collecting = self.collecting, None
        self.json_cache.clear()
        prepare = getattr(self.redactor, "prepare", None)
        if callable(prepare):
            known = [v for v, e in self.known.items() if e == "PERSON"]
            takes_known = "known_names" in inspect.signature(prepare).parameters
            for name in prepare(strings, known_names=known) if takes_known else prepare(strings):
                self.remember(name, "PERSON")
        for s in strings:
            for start, end, entity, _rule in context_spans(s, self.old_dates_before):
                self.remember(s[start:end], entity)
            # "dependent_dob: 9/26/2024", CSV rows under "name,dob,mrn"; XML: "<Subscriber><Id>W123</Id>"
            for key, parent, value in [(k, "", v) for k, v in keyed_fields(s)] + xml_fields(s):
                kind = self._keyed_kind(key, parent, value)
                if kind is not None and (kind[1] != "ID" or _ID_TOKEN.fullmatch(value)):
                    self.remember(value, kind[1])
        words = sorted(self.known, key=len, reverse=True)
        if words:
            self.known_rx = re.compile(rf"(?<!{_WORD_CHAR})" + trie_regex(words) + rf"(?!{_WORD_CHAR})")

    @property
    def known_ids(self) -> int:
        return sum(e == "ID" for e in self.known.values())

    @property
    def known_names(self) -> int:
        return sum(e == "PERSON" for e in self.known.values())

    def hash_value(self, v: str) -> str:
        """The salted hash of an id; an id matching a pattern with a `prefix` group keeps that prefix."""
        for rx in self._prefixed:
            m = rx.fullmatch(v)
            if m and m.group("prefix"):
                return m.group("prefix") + self.pseudo.hash(v)
        return self.pseudo.hash(v)

    def placeholder(self, entity: str, value: str) -> str:
        if entity == "ID":
            return self.hash_value(value)
        return self.pseudo.placeholder(entity, value)

    # -- one string of free text --------------------------------------------------------------------------
    def text(self, s: str) -> tuple[str, list[Finding]]:
        if self.collecting is not None:
            self.collecting.add(s)
            return s, []
        hit = self.text_cache.get(s)
        if hit is not None:
            return hit
        spans = self.redactor.detect(s)
        for rx in self.id_patterns:
            for m in rx.finditer(s):
                spans.append(Span(m.start(), m.end(), "ID", "id_pattern"))
        if self.known_rx is not None:
            for m in self.known_rx.finditer(s):
                entity = self.known[m.group(0)]
                spans.append(Span(m.start(), m.end(), entity, f"known_{entity.lower()}"))
        spans = [
            Span(*extend_name(s, sp.start, sp.end, NAME_STOPWORDS), sp.entity, sp.rule)
            if sp.entity == "PERSON"
            else sp
            for sp in spans
        ]
        if spans:  # "S80909325|<name>^<name>|<dob>", "Thanks, <name> ... it's 1712758588": values beside them
            kept = resolve_overlaps(spans)
            found = [(p.start, p.end, p.entity) for p in kept]
            beside = neighbour_spans(s, found)
            passage = passage_ids(s, found + [n[:3] for n in beside], self.catalogue)
            if passage:  # "<name> / 2021-09-06 / 93399 / emp E1234567": the id makes the line a record
                beside += passage
                beside += neighbour_spans(s, found + [n[:3] for n in beside])
            spans = resolve_overlaps(kept + [Span(*n) for n in beside]) if beside else kept
        if not spans:
            out = (s, [])
        else:
            parts, found, last = [], [], 0
            for sp in spans:
                ph = self.placeholder(sp.entity, s[sp.start : sp.end])
                parts += [s[last : sp.start], ph]
                found.append(("", sp.rule, sp.entity, ph, sp.end - sp.start))
                last = sp.end
            parts.append(s[last:])
            out = ("".join(parts), found)
        self.text_cache[s] = out
        return out

    # -- a parsed JSON value, with its key and its parent's key as context ---------------------------------
    def _whole(self, value: str, rule: str, entity: str) -> tuple[str, list[Finding]]:
        self.remember(value, entity)
        if self.collecting is not None:
            return value, []
        ph = self.placeholder(entity, value)
        return ph, [("", rule, entity, ph, len(value))]

    def _keyed_kind(self, k: str, parent: str, v: str) -> tuple[str, str] | None:
        kind = self._keyed_kind_exact(k, parent, v)
        if kind is None and k and not k.isdigit():
            fixed = canonical_key(k)  # "memebr_numbr", "mbr_id", "dob_in"
            if fixed != k:
                kind = self._keyed_kind_exact(fixed, parent, v)
        return kind

    def _keyed_kind_exact(self, k: str, parent: str, v: str) -> tuple[str, str] | None:
        if k in self.id_keys or (parent in IDENTIFIER_PARENTS and k == "value"):
            return "id_key", "ID"
        if _PERSONAL_ID_KEY.search(k) and _ID_TOKEN.fullmatch(v):
            return "id_key", "ID"
        if k in _PLAIN_ID_KEYS and parent and _ID_TOKEN.fullmatch(v):  # {"subscriber": {"id": "W123"}}
            whose = f"{parent}_id"
            if whose in self.id_keys or _PERSONAL_ID_KEY.search(whose):
                return "id_key", "ID"
        if (k in self.dob_keys or "birth" in k or k.endswith("dob")) and DATE_RE.match(v):
            return "dob_key", "DATE_OF_BIRTH"
        if k in self.name_keys or (parent in NAME_PARENTS and k in NAME_PARTS):
            return "name_key", "PERSON"
        if (k in self.zip_keys or _ZIP_KEY.search(k)) and _ZIP_VALUE.match(v):
            return "zip_key", "ZIP"
        if parent in ADDRESS_PARENTS and k in ADDRESS_LINE_KEYS:
            return "address_key", "ADDRESS"
        if (k in self.address_keys or k == "address") and any(c.isdigit() for c in v) and " " in v.strip():
            return "address_key", "ADDRESS"
        if parent in ADDRESS_PARENTS and k in ("city", "district", "county"):
            return "address_key", "CITY"
        if k in self.secret_keys and len(v) >= 6:
            return "secret_key", "SECRET"
        label = _label_kind(k)  # a key that is a label of another language: "patientennummer", "生年月日"
        if (label in ("mrn", "member") and _ID_TOKEN.fullmatch(v)) or (label == "dob" and DATE_RE.match(v)):
            return f"{label}_label_key", "ID" if label != "dob" else "DATE_OF_BIRTH"
        if label == "zip" and _ZIP_VALUE.match(v):
            return "zip_label_key", "ZIP"
        return None

    def _keyed_string(self, key: str | None, v: str, parent: str = "") -> tuple[str, list[Finding]]:
        k = snake_key(key) if key else ""
        if self.collecting is not None and k and _CATALOGUE_KEY.search(k):
            self.catalogue.add(v.strip())
        if v.strip() and not v.startswith("<"):
            kind = self._keyed_kind(k, parent, v)
            if kind is not None:
                return self._whole(v, *kind)
        if looks_json(v):  # JSON inside a JSON string (a tool result quoted in an argument, ...)
            return self.json_string(v)
        return self.text(v)

    def walk(self, obj: Any, key: str | None = None, parent: str = "") -> tuple[Any, list[Finding]]:
        if isinstance(obj, str):
            return self._keyed_string(key, obj, parent)
        if isinstance(obj, dict):
            here = snake_key(key) if key else ""
            out, found = {}, []
            for k, v in obj.items():
                nk, fk = self.text(k) if isinstance(k, str) else (k, [])
                found += [(f".{k if not fk else nk}{p}", *rest) for p, *rest in fk]
                nv, fv = self.walk(v, k, here)
                found += [(f".{nk}{p}", *rest) for p, *rest in fv]
                out[nk] = nv
            return out, found
        if isinstance(obj, list):
            out, found = [], []
            for i, v in enumerate(obj):
                nv, fv = self.walk(v, key, parent)
                found += [(f"[{i}]{p}", *rest) for p, *rest in fv]
                out.append(nv)
            return out, found
        if isinstance(obj, int) and not isinstance(obj, bool):
            k = snake_key(key) if key else ""
            if self.collecting is not None and _CATALOGUE_KEY.search(k):
                self.catalogue.add(str(obj))
            if k in self.zip_keys and 0 < obj < 100000:
                new, fv = self._whole(f"{obj:05d}", "zip_key", "ZIP")
                return (new if fv else obj), fv
            if abs(obj) >= 10**6:
                new, fv = self._whole(str(obj), "id_key", "ID") if k in self.id_keys else self.text(str(obj))
                return (new if fv else obj), fv
        return obj, []

    def json_string(self, s: str) -> tuple[str, list[Finding]]:
        """A string that may hold JSON: redact inside the parsed value and re-serialize in the same style."""
        hit = self.json_cache.get(s)
        if hit is not None:
            return hit
        try:
            obj = json.loads(s) if looks_json(s) else None
        except ValueError:
            obj = None
        if not isinstance(obj, dict | list):
            out = self.text(s)
        else:
            new, found = self.walk(obj)
            out = (json.dumps(new, **json_style(s)) if found else s, found)
        self.json_cache[s] = out  # in pass 1 too: a repeated string is walked once (cleared after)
        return out

    # -- the columns of one call ---------------------------------------------------------------------------
    def messages(self, s: str) -> tuple[str, list[Finding]]:
        msgs = json.loads(s)
        found: list[Finding] = []
        for i, m in enumerate(msgs):
            content = m.get("content")
            if isinstance(content, str) and content:
                new, f = self.json_string(content) if looks_json(content) else self.text(content)
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
        return (json.dumps(msgs, **json_style(s)) if found else s), found

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
        return (json.dumps(calls, **json_style(s)) if found else s), found

    def column(self, col: str, s: str) -> tuple[str, list[Finding]]:
        if col == "messages":
            return self.messages(s)
        if col == "response_tool_calls":
            return self.tool_calls(s)
        if col in ("tools", "metadata", "response_text"):
            return self.json_string(s)
        return self.text(s)
