"""Keys written as text: `key: value` forms, logfmt lines, CSV rows under a header, HL7 v2 PID / IN1
segments, and the correction of misspelled or abbreviated key words (`canonical_key`).

`keyed_fields(text)` gives `(key, value)` pairs that the curate engine then judges by its key lists, as if
they were JSON keys (`slmlab.curate.engine`).
"""

from __future__ import annotations

import csv
import functools
import re

from slmlab.curate.context import _DATE8, DATE_RE

# ------------------------------------------------------------------------------- keys written as text
# `key: value`, `key = value`, `"key": "value"` inside prose or a pasted form (not parseable JSON as a whole).
_KEY_VALUE = re.compile(
    r"""(?:^|(?<=[\s,{;|(]))["']?([^\W\d_][\w .#/-]{0,28}?)["']?[ \t]*[:=][ \t]*["']?"""
    r"""((?:[^"'\n,;|{}:]|:(?=\d)){1,60}?)["']?[ \t]*(?=[,;|}\n]|[ \t]{2}|$)""",  # "11:58" may stay in
    re.MULTILINE,
)
_CSV_HEADER_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_ #./-]{0,24}")
# logfmt: `status=FOUND acct=70a63a1d7ae4 svc_zip=37440` (space-separated, where `_KEY_VALUE` would read
# everything after the first "=" as one value)
_LOGFMT = re.compile(
    r"""(?:^|(?<=[\s(,]))([A-Za-z][A-Za-z0-9_.-]{0,30})=("[^"\n]*"|'[^'\n]*'|[^\s"'=,)]+)(?=[\s,)]|$)"""
)
# an error or log line that names the field, then its value: "field 'subscriber_id' value '151-298781'"
_FIELD_VALUE = re.compile(
    r"""(?i:\b(?:field|key|column|attribute|param(?:eter)?)\s+['"`]?([A-Za-z][\w.-]{0,30})['"`]?\s*"""
    r"""(?:value|=|:|with\s+value|is)\s*['"`]([^'"`\n]{1,60})['"`])"""
)


def _key(k: str) -> str:
    return re.sub(r"[\s./-]+", "_", k.strip().strip("\"'").lower()).strip("_")


# Words of personal-data keys, to which a misspelled or OCR'd key word is corrected ("memebr_numbr",
# "dat_of_brith"), and the abbreviations written for them ("mbr_id", "acct_no", "pt_dob").
_KEY_WORDS = (
    "member", "number", "account", "birth", "record", "medical", "patient", "subscriber", "beneficiary",
    "policy", "insurance", "insured", "identifier", "zipcode", "postal", "postcode", "address", "street",
    "passport", "license", "customer", "medicare", "medicaid",
)  # fmt: skip
_KEY_ABBREVIATIONS = {
    "mbr": "member", "memb": "member", "acct": "account", "acc": "account", "accnt": "account",
    "nbr": "number", "nmbr": "number", "numb": "number", "pt": "patient", "pat": "patient",
    "ins": "insurance", "subscr": "subscriber", "ref": "id", "zip5": "zip", "zipcod": "zipcode",
}  # fmt: skip
# Trailing words that say where a value came from, not what it is ("dob_in", "member_id_value").
_KEY_NOISE = frozenset({"in", "val", "value", "raw", "str", "txt", "field", "input", "given", "entered"})


@functools.lru_cache(maxsize=1 << 14)
def canonical_key(key: str) -> str:
    """A key with its words corrected: abbreviations expanded, words one edit (two from 8 letters) from a
    personal-data key word corrected, trailing provenance words dropped; the key itself where nothing changes.

    Example:
        >>> canonical_key("memebr_numbr"), canonical_key("dat_of_brith"), canonical_key("dob_in")
        ('member_number', 'dat_of_birth', 'dob')
    """
    from rapidfuzz import process
    from rapidfuzz.distance import DamerauLevenshtein

    words = [w for w in re.split(r"[_\s]+", key.lower()) if w]
    while len(words) > 1 and words[-1] in _KEY_NOISE:
        words.pop()
    fixed = []
    for w in words:
        if w in _KEY_ABBREVIATIONS:
            w = _KEY_ABBREVIATIONS[w]
        elif len(w) >= 5 and w.isalpha() and w not in _KEY_WORDS:
            hit = process.extractOne(
                w, _KEY_WORDS, scorer=DamerauLevenshtein.distance, score_cutoff=2 if len(w) >= 8 else 1
            )
            if hit is not None:
                w = hit[0]
        fixed.append(w)
    return "_".join(fixed) or key


_HL7_SEGMENT = re.compile(r"(?:^|(?<=[\r\n |]))(?:PID|IN1)\|[^\r\n]*")
# HL7 v2 PID fields (1-based after the segment name) -> the JSON key `curate` knows them by
_HL7_PID_FIELDS = {2: "patient_id", 3: "mrn", 4: "patient_id", 5: "name", 6: "name", 7: "dob", 11: "address",
                   13: "phone_number", 19: "ssn", 20: "license_number"}  # fmt: skip


# HL7 v2 IN1 (insurance) fields: 36 policy number, 49 the insured's id number
_HL7_IN1_FIELDS = {36: "policy_number", 49: "member_id"}


_HL7_NAME = re.compile(r"[^\W\d_][^\W\d_' -]*(?:\^[^\W\d_][^\W\d_' -]*){1,3}")
_HL7_ID = re.compile(r"(?=(?:[^\d|^~]*\d){4})[A-Za-z0-9][\w.-]{4,30}")


def _person_name(v: str) -> list[tuple[str, str]]:
    """An HL7 XPN value `Last^First^Middle` as last / first name pairs."""
    parts = v.split("^")
    return [("last_name", parts[0]), *[("first_name", p) for p in parts[1:3]]]


def _street_zip(v: str) -> list[tuple[str, str]]:
    """An HL7 XAD value `Street^Other^City^State^Zip` as its street line and zip."""
    parts = v.split("^")
    return [("street", parts[0])] + ([("zip", parts[4])] if len(parts) > 4 else [])


def _in1_insured(fields: list[str]) -> list[tuple[str, str]]:
    """IN1-16 onwards describe the insured person: senders shift these fields, so they are read by shape:
    a `Last^First` name, the first date (birth date), an address (4+ components: street and zip), and
    every id-like value (policy number, insured's id)."""
    out, dob = [], False
    for f in fields[16:]:
        v = f.split("~")[0].strip()
        if not v:
            continue
        if _HL7_NAME.fullmatch(v):
            out += _person_name(v)
        elif not dob and (DATE_RE.match(v) or re.fullmatch(_DATE8, v)):
            out.append(("dob", v))
            dob = True
        elif v.count("^") >= 4:
            out += _street_zip(v)
        elif "^" not in v and _HL7_ID.fullmatch(v) and not re.fullmatch(_DATE8, v):
            out.append(("member_id", v))
    return out


def _hl7_fields(segment: str) -> list[tuple[str, str]]:
    """`(key, value)` of an HL7 v2 PID segment (ids, names, birth date, address lines and zip, SSN) or IN1
    segment (policy and insured's id numbers, and the insured's name, birth date and address)."""
    fields = segment.split("|")
    out = _in1_insured(fields) if fields[0] == "IN1" else []
    for i, key in (_HL7_IN1_FIELDS if fields[0] == "IN1" else _HL7_PID_FIELDS).items():
        if i >= len(fields):
            break
        for rep in fields[i].split("~"):
            if key == "name":
                out += _person_name(rep)
            elif key == "address":
                out += _street_zip(rep)
            else:
                out.append((key, rep.split("^")[0]))
    return [(k, v.strip()) for k, v in out if v and v.strip()]


def keyed_fields(text: str) -> list[tuple[str, str]]:
    r"""`(key, value)` pairs written as text: `key: value` forms and CSV-like rows under a header line.

    Keys come back lower case with spaces as underscores, so the JSON key lists of `curate` apply to them.

    Example:
        >>> keyed_fields('"subscriber_id": "331-667517", "Date of birth": "9/26/2024"')
        [('subscriber_id', '331-667517'), ('date_of_birth', '9/26/2024')]
        >>> keyed_fields("name,dob,mrn\nAna Silva,1957-03-02,A528-7649")
        [('name', 'Ana Silva'), ('dob', '1957-03-02'), ('mrn', 'A528-7649')]
    """
    if ":" not in text and "=" not in text and "\n" not in text and "|" not in text:
        return []
    out = [(_key(m.group(1)), m.group(2).strip()) for m in _KEY_VALUE.finditer(text) if m.group(2).strip()]
    if "=" in text:
        out += [
            (_key(m.group(1)), m.group(2).strip("\"'"))
            for m in _LOGFMT.finditer(text)
            if m.group(2).strip("\"'")
        ]
    if "'" in text or '"' in text or "`" in text:
        out += [(_key(m.group(1)), m.group(2).strip()) for m in _FIELD_VALUE.finditer(text)]
    lines = text.split("\n")
    for m in _HL7_SEGMENT.finditer(text):
        out += _hl7_fields(m.group(0))
    for i, line in enumerate(lines[:-1]):
        delim = next((d for d in (",", "|", "\t", ";") if line.count(d) >= 2), None)
        if delim is None:
            continue
        head = [h.strip() for h in line.strip().strip(delim).split(delim)]
        if not all(_CSV_HEADER_FIELD.fullmatch(h) for h in head):
            continue
        for row in lines[i + 1 :]:
            values = [v.strip() for v in next(csv.reader([row.strip().strip(delim)], delimiter=delim), [])]
            if len(values) != len(head):
                break
            out += [(_key(h), v) for h, v in zip(head, values, strict=True) if v]
    return out
