"""Keys written as text: `key: value` forms, logfmt lines, CSV rows under a header, SQL, HL7 v2, X12 and
NCPDP segments, XML elements, and the correction of misspelled or abbreviated key words (`canonical_key`).

`keyed_fields(text)` gives `(key, value)` pairs, `xml_fields(text)` `(key, parent, value)` triples, that the
curate engine then judges by its key lists, as if they were JSON keys (`slmlab.curate.engine`).
"""

from __future__ import annotations

import csv
import functools
import re
from html.parser import HTMLParser

from slmlab.curate.context import DATE8, DATE_RE

# ------------------------------------------------------------------------------- keys written as text
# `key: value`, `key = value`, `"key": "value"` inside prose or a pasted form (not parseable JSON as a whole).
_KEY_VALUE = re.compile(
    r"""(?:^|(?<=[\s,{;|(]))["']?([^\W\d_][\w .#/-]{0,28}?)["']?[ \t]*[:=][ \t]*["']?"""
    r"""((?:[^"'\n,;|{}:]|:(?=\d)){1,60}?)["']?[ \t]*(?=[,;|}\n]|[ \t]{2}|$)""",  # "11:58" may stay in
    re.MULTILINE,
)
_CSV_HEADER_FIELD = re.compile(r"[^\W\d_][\w #./-]{0,24}")  # "氏名,生年月日,ZIP"
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
    return snake_key(k.strip().strip("\"'"))


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_key(key: str) -> str:
    """A key in lower snake case, camel case split ("mbrNo", "ZIPCode", "patientMRN" -> "mbr_no", "zip_code",
    "patient_mrn"), so one key list holds every way it is written."""
    return re.sub(r"[\s./-]+", "_", _CAMEL.sub("_", key).lower()).strip("_")


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
    "nm": "name", "cd": "code", "dt": "date", "brth": "birth", "addr": "address", "pol": "policy",
}  # fmt: skip
# Trailing words that say where a value came from, not what it is ("dob_in", "member_id_value").
_KEY_NOISE = frozenset(
    {"in", "val", "value", "raw", "str", "txt", "field", "input", "given", "entered", "on", "file", "onfile"}
)  # "acct_on_file"


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


_HL7_SEGMENT = re.compile(r"(?:^|(?<=[\r\n |]))(?:PID|IN1|PV1|NK1|GT1)\|[^\r\n]*")
# HL7 v2 fields (1-based after the segment name) -> the JSON key `curate` knows them by: PID (patient
# identification; 18 the patient account number), PV1 (visit; 19 the visit number, an encounter's account),
# NK1 (next of kin), GT1 (guarantor: the person who pays); IN1 (insurance) is read by `_in1_insured` too
_HL7_FIELDS = {
    "PID": {2: "patient_id", 3: "mrn", 4: "patient_id", 5: "name", 6: "name", 7: "dob", 11: "address",
            13: "phone_number", 18: "account_number", 19: "ssn", 20: "license_number"},
    "PV1": {19: "account_number", 50: "account_number"},
    "NK1": {2: "name", 4: "address", 5: "phone_number", 33: "patient_id"},
    "GT1": {2: "account_number", 3: "name", 5: "address", 6: "phone_number", 8: "dob", 12: "ssn"},
    "IN1": {36: "policy_number", 49: "member_id"},
}  # fmt: skip


# a date with a time of day (HHMM[SS[.S]]) and zone: "20240412083015"; not "2061011345", an account number
_HL7_TIMESTAMP = re.compile(rf"{DATE8}(?:(?:[01]\d|2[0-3])(?:[0-5]\d){{0,2}}(?:\.\d+)?)?(?:[+-]\d{{4}})?")
_PID_NUMBER = re.compile(rf"(?!{DATE8})[A-Za-z]{{0,3}}\d{{7,}}")
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
        elif not dob and (DATE_RE.match(v) or re.fullmatch(DATE8, v)):
            out.append(("dob", v))
            dob = True
        elif v.count("^") >= 4:
            out += _street_zip(v)
        elif "^" not in v and _HL7_ID.fullmatch(v) and not re.fullmatch(DATE8, v):
            out.append(("member_id", v))
    return out


def _hl7_fields(segment: str) -> list[tuple[str, str]]:
    """`(key, value)` of an HL7 v2 PID segment (ids, names, birth date, address lines and zip, SSN) or IN1
    segment (policy and insured's id numbers, and the insured's name, birth date and address)."""
    fields = segment.split("|")
    out = _in1_insured(fields) if fields[0] == "IN1" else []
    if fields[0] == "PID":  # senders shift fields: any other long number in PID identifies the patient
        known = _HL7_FIELDS["PID"]
        out += [
            ("patient_id", f)
            for i, f in enumerate(fields)
            if i > 1 and i not in known and _PID_NUMBER.fullmatch(f)
        ]
    for i, key in _HL7_FIELDS[fields[0]].items():
        if i >= len(fields):
            break
        for rep in fields[i].split("~"):
            if key == "name":
                out += _person_name(rep)
            elif key == "address":
                out += _street_zip(rep)
            else:
                first = rep.split("^")[0]
                if key in ("dob", "phone_number") or not _HL7_TIMESTAMP.fullmatch(first):
                    out.append((key, first))  # not a timestamp where a sender shifted the fields
    return [(k, v.strip()) for k, v in out if v and v.strip()]


# ------------------------------------------------------------------------------------ X12 EDI segments
# Health-care X12 (837 claims, 835 remittances, 270/271 eligibility, 834 enrolment): segments end with "~",
# elements are separated by "*". Personal values stand in known elements.
_X12_SEGMENT = re.compile(r"(?:^|(?<=[~\n]))\s*(NM1|CLM|CLP|DMG|N3|N4|REF)(\*[^~\n]*|[ \t][^~\n*]*)")
# REF qualifiers of personal ids: SSN, member id, medical record, subscriber, policy, patient account
_X12_REF = {"SY": "ssn", "1W": "member_id", "EA": "mrn", "0F": "subscriber_id", "IG": "policy_number",
            "EJ": "account_number", "23": "account_number", "1L": "policy_number", "HJ": "member_id"}  # fmt: skip
# NM1 id qualifiers (NM108) of a person's id besides MI (member id, read wherever it stands): SSN, HIC /
# Medicare, patient's Medicaid, unique id
_X12_PERSON_IDS = {"34", "II", "HN", "MR", "ZZ", "MC", "N"}


def _x12_fields(text: str) -> list[tuple[str, str]]:
    """`(key, value)` of the person loops of X12 segments: NM1 names and ids of a person (NM102 = 1), the
    N3 / N4 address and zip and DMG birth date that follow them, CLM01 / CLP01 patient control (account)
    numbers, REF ids by qualifier."""
    out: list[tuple[str, str]] = []
    person = False  # the last NM1 named a person, not an organization (a payer or provider address is kept)
    for m in _X12_SEGMENT.finditer(text):
        body = m.group(2)  # "NM1*IL*1*SILVA*ANA", or pasted with spaces: "NM1 MI W21754178"
        seg, el = m.group(1), [e.strip() for e in (body[1:].split("*") if body[0] == "*" else body.split())]
        at = [""] + el + [""] * 10  # at[i]: element i, as the X12 guides number them (NM103 = at[3])
        if seg == "NM1":
            person = at[2] == "1"
            if person:
                out += [("last_name", at[3]), ("first_name", at[4]), ("middle_name", at[5])]
            out += [("member_id", el[j + 1]) for j in range(len(el) - 1) if el[j] == "MI"]  # member id
            if person and at[8] in _X12_PERSON_IDS:
                out.append(("member_id", at[9]))
        elif seg in ("CLM", "CLP"):
            out.append(("account_number", at[1]))
        elif seg == "DMG" and at[1] == "D8":
            out.append(("dob", at[2]))
        elif seg == "REF" and at[1] in _X12_REF:
            out.append((_X12_REF[at[1]], at[2]))
        elif seg == "N3" and person:
            out += [("street", at[1]), ("street", at[2])]
        elif seg == "N4" and person:
            out.append(("zip", at[3][:5]))
    return [(k, v) for k, v in out if v]


# FHIR written as text: "identifier: [ type: MR, value: A633-0160 ]" (HL7 v2-0203 identifier type codes)
_TYPED_ID = re.compile(
    r"\btype\s*[:=]\s*[\"']?(?:MR|MRN|MB|MA|MC|SS|SN|AN|PI|PT|PN|PRN|DL|PPN|NI|NH|JHN)[\"']?\s*[,;]?\s*"
    r"(?:system\s*[:=]\s*[^\s,;\]}]+\s*[,;]?\s*)?value\s*[:=]\s*[\"']?([A-Za-z0-9][\w./-]{2,40})"
)
# SQL rows: "INSERT INTO claims (claim_no, member_id) VALUES ('C25', 'UDR744851173')"
_SQL_INSERT = re.compile(r"(?is)\binsert\s+into\s+[\w.\"`]+\s*\(([^)]{1,400})\)\s*values\s*\(([^)]{1,800})\)")
# SQL conditions and assignments: "WHERE acct_no = '1941952034'", "SET member_id='W12'"
_SQL_EQ = re.compile(r"""(?i)\b([A-Za-z_][\w.]{0,40})\s*(?:=|\blike\b)\s*'([^'\n]{1,60})'""")


def _join_split_dates(values: list[str], n: int, delim: str) -> list[str]:
    """A CSV row whose date was written with the delimiter in it ("January 13th, 1944" unquoted), joined back
    where that gives the header's number of fields."""
    i = 0
    while len(values) > n and i < len(values) - 1:
        joined = f"{values[i]}{delim} {values[i + 1]}"
        if DATE_RE.match(joined):
            values = values[:i] + [joined] + values[i + 2 :]
        i += 1
    return values


def keyed_fields(text: str) -> list[tuple[str, str]]:
    r"""`(key, value)` pairs written as text: `key: value` forms and CSV-like rows under a header line.

    Keys come back lower case with spaces as underscores, so the JSON key lists of `curate` apply to them.

    Example:
        >>> keyed_fields('"subscriber_id": "331-667517", "Date of birth": "9/26/2024"')
        [('subscriber_id', '331-667517'), ('date_of_birth', '9/26/2024')]
        >>> keyed_fields("name,dob,mrn\nAna Silva,1957-03-02,A528-7649")
        [('name', 'Ana Silva'), ('dob', '1957-03-02'), ('mrn', 'A528-7649')]
    """
    out = _ncpdp_fields(text) if "AM0" in text and _NCPDP_SEGMENT.search(text) else []
    if ":" not in text and "=" not in text and "\n" not in text and "|" not in text:
        if "'" not in text or not _SQL_INSERT.search(text):
            return out
    out += [(_key(m.group(1)), m.group(2).strip()) for m in _KEY_VALUE.finditer(text) if m.group(2).strip()]
    if "=" in text:
        out += [
            (_key(m.group(1)), m.group(2).strip("\"'"))
            for m in _LOGFMT.finditer(text)
            if m.group(2).strip("\"'")
        ]
    if "'" in text or '"' in text or "`" in text:
        out += [(_key(m.group(1)), m.group(2).strip()) for m in _FIELD_VALUE.finditer(text)]
        if "=" in text:
            out += [(_key(m.group(1).rsplit(".", 1)[-1]), m.group(2).strip()) for m in _SQL_EQ.finditer(text)]
        for m in _SQL_INSERT.finditer(text):
            cols = [_key(c.strip('"` ')) for c in m.group(1).split(",")]
            vals = next(csv.reader([m.group(2)], quotechar="'", skipinitialspace=True), [])
            if len(cols) == len(vals):
                out += [(c, v.strip()) for c, v in zip(cols, vals, strict=True) if v.strip()]
    if "*" in text:
        out += _x12_fields(text)
    if "type" in text:
        out += [("mrn", m.group(1)) for m in _TYPED_ID.finditer(text)]
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
            values = _join_split_dates(values, len(head), delim)
            if len(values) != len(head):
                break
            out += [(_key(h), v) for h, v in zip(head, values, strict=True) if v]
    return out


# ------------------------------------------------------------------------------ NCPDP pharmacy claims
# NCPDP Telecommunication D.0: segments AM01 (patient), AM04 (insurance), ...; each field a two-character
# id, then its value, after a field separator (0x1C on the wire, "|" or "C4=" as logs print them).
_NCPDP_SEGMENT = re.compile(r"AM0[1-9]")
_NCPDP_FIELD = re.compile(
    r"(?:(?<=[\x1c|])|(?<![^\s\x1e\x1d]))(C2|C4|CA|CB|CC|CD|CM|CP|CY)(?:=|(?<=[\x1c|]..))"
    r"([^\x1c\x1d\x1e|\n=]*?)(?=[\x1c\x1d\x1e|\n]|\s+[A-Z][A-Z0-9]=|$)"
)
# Fields of the patient and the cardholder: 302-C2 cardholder id, 304-C4 date of birth, 310-CA / 311-CB the
# patient's first and last name, 312-CC / 313-CD the cardholder's, 322-CM street, 325-CP zip, 332-CY patient id
_NCPDP_KEYS = {"C2": "cardholder_id", "C4": "date_of_birth", "CA": "first_name", "CB": "last_name",
               "CC": "first_name", "CD": "last_name", "CM": "street", "CP": "zip", "CY": "patient_id"}  # fmt: skip


def _ncpdp_fields(text: str) -> list[tuple[str, str]]:
    """`(key, value)` of the patient and cardholder fields of NCPDP D.0 segments ("AM01 C4=19620312 CP=55554")."""
    out = []
    for m in _NCPDP_FIELD.finditer(text):
        v = m.group(2).strip()
        if m.group(1) == "C4" and not DATE_RE.match(v):  # DATE_RE takes CCYYMMDD too
            continue
        if v:
            out.append((_NCPDP_KEYS[m.group(1)], v[:5] if m.group(1) == "CP" else v))
    return out


# -------------------------------------------------------------------------------------- XML elements
class _XmlLeaves(HTMLParser):
    """Leaf elements and attributes of XML, also of a fragment or of XML that does not parse: `(key, parent,
    value)`, keys lower-cased, camel case and namespaces split off ("ns:MemberId" -> "member_id")."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.leaves: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        name = _xml_key(re.match(r"<\s*([^\s/>]+)", self.get_starttag_text()).group(1))  # its case, kept
        self.leaves += [(_xml_key(a), name, v.strip()) for a, v in attrs if v and v.strip()]
        self.stack.append(name)
        self.text = []

    def handle_endtag(self, tag):
        if self.stack:
            name = self.stack.pop()
            value = "".join(self.text).strip()
            if value:
                self.leaves.append((name, self.stack[-1] if self.stack else "", value))
        self.text = []

    def handle_data(self, data):
        self.text.append(data)


def _xml_key(name: str) -> str:
    return snake_key(name.rsplit(":", 1)[-1])  # "ns:MemberId" -> "member_id"


def xml_fields(text: str) -> list[tuple[str, str, str]]:
    """`(key, parent, value)` of the leaf elements and attributes of XML in `text`, keys in snake case, so
    the JSON key rules of `curate` (a name part under `name`, an `id` under `subscriber`) apply to them.

    Example:
        >>> xml_fields("<Subscriber><Id>W123</Id><Name><Family>Silva</Family></Name></Subscriber>")
        [('id', 'subscriber', 'W123'), ('family', 'name', 'Silva')]
    """
    if "</" not in text:
        return []
    parser = _XmlLeaves()
    parser.feed(text)
    parser.close()
    return parser.leaves
