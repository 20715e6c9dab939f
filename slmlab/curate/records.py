"""Values personal by what they stand beside: the other fields of a personal record, the ids of a personal passage.

`neighbour_spans(text, spans)` and `passage_ids(text, spans)` run in the curate engine's second pass, on the
spans the other rules found.
"""

from __future__ import annotations

import re
from collections.abc import Container

from slmlab.curate.context import ANY_DATE, ANY_ID, DATE, DATE8, DIGIT, IDVAL, NOT_NAMES, TIME_AFTER

# Entities that make a record personal; a record is one line (HL7 rows, CSV rows, "name / dob / id" notes).
_PERSONAL = frozenset({"PERSON", "DATE_OF_BIRTH", "ADDRESS", "ZIP", "ID", "EMAIL", "PHONE", "SSN"})
# What may stand between two fields of one record: separators only, no words.
_FIELD_GAP = re.compile(r"[ \t]*(?:[|;^/,+~(]|\)|[–—-](?=[ \t]))?[ \t]*#?")  # "<DOB> #03467123 <ADDRESS>"
_FIELD_END = re.compile(r"[ \t]*(?:[|;^/,+~()\]\"'.?!]|[–—](?=\s)|$)")
_FIELD_START = re.compile(r"(?:^|[|;^/,+~(\[\"':])[ \t]*$")
_HASH_ID = re.compile(
    rf"(?<![\w&])#{IDVAL}"
)  # "#S43220511": `ANY_ID` skips "#" ids, which are mostly not personal
# a capitalized word or two, as a name field is written: "|Yuki|" between a last name and a birth date
_NAME_FIELD = re.compile(r"(?<![\w<'’-])([A-Z][a-z'’]+(?:[ -][A-Z][a-z'’]+)?)(?![\w>'’-])")
# a date or a zip as a field of a slash-joined record ("Silva/Ana/06/14/1963/W312/55554"), where `ANY_DATE`
# and `_BESIDE_ZIP` take no value that touches a slash
_SLASHED_DATE = re.compile(rf"(?<=[^\d\s/]/)({DATE})(?=/(?!\d{{1,2}}/)|(?![\w/-]|\.\d))", re.IGNORECASE)
_SLASHED_ZIP = re.compile(r"(?<=[\w.]/)(\d{5}(?:-\d{4})?)(?![\w-]|[.,]\d|/\d)")
_BESIDE_ZIP = re.compile(r"(?<![\w$€£¥#@.,:/+*=×&%-])(\d{5}(?:-\d{4})?)(?![\w%/:@-]|[.,]\d)")


def _id_field(value: str) -> bool:
    """Long enough to be a record's identifier field: 7+ characters, 4+ of them digits."""
    return len(value) >= 7 and sum(c.isdigit() for c in value) >= 4


def neighbour_spans(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str, str]]:
    """Values that stand right beside personal values in one record, with only separators between: an
    id-like token is an identifier, a 5-digit number a zip code, a date the birth date (where the line has
    none), when the line already holds two personal values.

    `"S80909325|Ana^Silva|<DOB>|<ADDRESS>|<ZIP>|ADM"`, `"<PERSON> February 25th, 2022 196-477216 <ZIP>"`,
    `"verified addr <ADDRESS> / 33530"`: a record's fields belong to the person it names (Safe Harbor #18,
    "any other unique identifying number"). Two rounds, so a chain of such fields is followed.

    Example:
        >>> t = "S80909325|Ana^Silva|1957-03-02|A"
        >>> [t[s:e] for s, e, *_ in neighbour_spans(t, [(10, 13, "PERSON"), (14, 19, "PERSON")])]
        ['S80909325', '1957-03-02']
    """
    found: list[tuple[int, int, str, str]] = []
    # a one- or two-letter "name" is NER reading an abbreviation ("Rx", "Pt") more often than a person
    personal = sorted(
        (s, e, ent) for s, e, ent in spans if ent in _PERSONAL and (ent != "PERSON" or e - s >= 3)
    )
    if len(personal) < 2 or not DIGIT.search(text):
        return found
    for start_line, end_line in _lines(text):
        mine = [p for p in personal if start_line <= p[0] and p[1] <= end_line]
        if len(mine) < 2:
            continue
        line = text[start_line:end_line]
        cands = [
            (start_line + m.start(1), start_line + m.end(1), "DATE_OF_BIRTH") for m in ANY_DATE.finditer(line)
        ]
        cands += [(start_line + m.start(1), start_line + m.end(1), "ZIP") for m in _BESIDE_ZIP.finditer(line)]
        if "/" in line:
            cands += [
                (start_line + m.start(1), start_line + m.end(1), ent)
                for rx, ent in ((_SLASHED_DATE, "DATE_OF_BIRTH"), (_SLASHED_ZIP, "ZIP"))
                for m in rx.finditer(line)
            ]
            cands += [
                (start_line + s, start_line + e, "ID")
                for s, e in _slash_run_ids(line)
                if _id_field(line[s:e])
            ]
        cands += [
            (start_line + m.start(1), start_line + m.end(1), "PERSON")
            for m in _NAME_FIELD.finditer(line)
            if not any(w in NOT_NAMES for w in re.split(r"[ -]", m.group(1)))
        ]
        cands += [
            (start_line + m.start(1), start_line + m.end(1), "ID")
            for rx in (ANY_ID, _HASH_ID)
            for m in rx.finditer(line)
            if _id_field(m.group(1)) and not ANY_DATE.fullmatch(m.group(1))
        ]
        for _ in range(2):
            taken = mine + [(s, e, ent) for s, e, ent, _r in found]
            has = {ent for *_, ent in taken}
            for s, e, ent in cands:
                if any(s < te and ts < e for ts, te, _ in taken):
                    continue
                if ent == "DATE_OF_BIRTH" and ("DATE_OF_BIRTH" in has or TIME_AFTER.match(text[e : e + 12])):
                    continue
                if ent == "ZIP" and "ZIP" in has:
                    continue
                left = max((t for t in taken if t[1] <= s), default=None, key=lambda t: t[1])
                right = min((t for t in taken if t[0] >= e), default=None, key=lambda t: t[0])
                beside_left = left is not None and _FIELD_GAP.fullmatch(text, left[1], s)
                beside_right = right is not None and _FIELD_GAP.fullmatch(text, e, right[0])
                if ent == "PERSON":  # a name field: between two personal fields, one of them a name part
                    whole = (
                        beside_left and beside_right and text[left[1] : s].strip(" \t") != ""
                        and "PERSON" in (left[2], right[2])
                    )  # fmt: skip
                else:  # a whole field: on its other side a separator, the line's end or another personal value
                    whole = (beside_left and (beside_right or _FIELD_END.match(text, e, end_line))) or (
                        beside_right and (beside_left or _FIELD_START.search(text, start_line, s))
                    )
                if whole:
                    found.append((s, e, ent, f"{ent.lower()}_beside_personal"))
                    taken.append((s, e, ent))
                    has.add(ent)
    return sorted(found)


# An id long enough to single out a person: 7+ digits, or 6+ with a letter ("W1432764", "465-539822").
_PASSAGE_ID = re.compile(rf"(?<![\w#<@./:-]){IDVAL}")
_URL_TOKEN = re.compile(r"\S*(?:://|www\.|\?\S*=)\S*$")  # the value is part of a URL
# A key right before the value ("'imdbId': 'tt8923854'", "availableSince: 1648616934", "qid=1689009508"): a
# thing's id or a time under its key stays; a bare "id" or a person's key does not decide.
_KEY_BEFORE = re.compile(r"""([A-Za-z][\w-]{0,40})["']?[ \t]*[:=][ \t]*["']?$""")
_THING_KEY = re.compile(
    r"(?i:.*(?:since|time|ts|date|created|updated|modified|epoch|expires?|at)$)"
    r"|(?!(?i:person|patient|member|user|customer|client|account|acct|subscriber|beneficiary|insured|guarantor|"
    r"policy|holder|caller|contact|employee|pt|mbr))[A-Za-z]\w*?(?:Id|ID|_id|id)$"
)
_PHONE_SHAPE = re.compile(
    r"\(?\d{3}\)?[-. ]?\d{3}[-. ]\d{4}|1-\d{3}-\d{3}-\d{4}|\d{3,4}-\d{4}|\d{3}-\d{2}-\d{2}"
)
_OCR_DIGITS = str.maketrans("OoIl", "0011")
_DATE8_RE = re.compile(DATE8)
_HEX_TOKEN = re.compile(r"[0-9a-fA-F-]{16,}")  # a trace or request id, a digest, a UUID
# a document's date stamp: a day that has been (up to the 2030s), not "20610113" of the account 2061011345
_STAMP_DATE8 = r"(?:19[89]\d|20[0-3]\d)(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
# A business document's number by its shape: a prefix of two or more letters before a dash ("CLM-000448812",
# "RE-2024-0571") or a document-type prefix ("ORD448812", "MSG000482913"), a date stamp inside it
# ("20240219083012", "MZ20250302-0157", "2024031500872"), a carrier's tracking number ("1Z999AA1...").
# Personal ids are plain digits, one letter and a dash, or letters run into digits ("W1432764", "P-2746648",
# "AEG253177904").
_DOCUMENT_NUMBER = re.compile(
    rf"(?i:[A-Za-z]{{2,}}\d*-.*|.*-[A-Za-z]{{2,}}(?:-.*)?"
    r"|(?:ord|inv|clm|ref|msg|tkt|trk|rad|lab|rx|po|so|txn|trx|conf|auth|req|job|lot|sku|doc|est|fac|appt|bkg|"
    r"res|rcpt|inc|chg|err|evt|spec|ship|pkg|ver)[-_]?\d.*"
    rf"|[A-Za-z]{{0,4}}[-_]?{_STAMP_DATE8}[-_]?\d+|1Z[0-9A-Z]{{16}})"
)
# What a passage's other numbers are when a word says so: the agent's, the business's or the task's own.
_NOT_PERSONAL_LABEL = re.compile(
    r"(?i:(?<![A-Za-z])(?:order|invoice|ticket|confirmation|conf|reference|ref|tracking|accession|trace|request|"
    r"req|transaction|txn|trx|booking|reservation|flight|rule|code|bin|pcn|npi|dea|tax|ein|routing|aba|swift|lot|"
    r"batch|ndc|cpt|icd|loinc|version|build|sku|item|product|model|part|page|room|bed|ext|extension|store|agent|"
    r"queue|region|auth|authorization|approval|receipt|voucher|check|cheque|eft|trn|payer|provider|facility|"
    r"pharmacy|rx|prescription|job|session|message|msg|incident|fax|phone|tel|shipment|package|parcel|"
    r"specimen|sample|kit|vial|serial|device|branch|terminal|merchant|vendor|supplier|grp|group|quote|"
    r"wire|ocr|folio|kode|ik|bsnr|betriebsst\w*|\w*auftrag|s[ée]jour|prenotazione|autoriza\w*|"
    r"giao\s+d[ịi]ch|заказ\w*|код|квитанц\w*)s?(?![A-Za-z])|접수|주문|注文|订单|受付)"
)
_SENTENCE_START = re.compile(r".*(?:[.!?](?:\s|$)|\n)", re.DOTALL)
PASSAGE_REACH = 300  # characters either side of a name or a date of birth


def passage_ids(
    text: str, spans: list[tuple[int, int, str]], not_personal: Container[str] = frozenset()
) -> list[tuple[int, int, str, str]]:
    """Long ids within `PASSAGE_REACH` characters of a person's name or date of birth: that person's.

    In a message about one person, a long number nobody labelled is far more often theirs (the number
    "off your statement", "on the back of the card", a table cell under a header two lines up) than the
    agent's; Safe Harbor #18 counts "any other unique identifying number". A word before it on its line
    that names something else (an order, a claim reference, an NPI, a lot, a phone, ...; "Item IDs: A (Lamp),
    B (Desk)" for the whole list) keeps it, as do values in `not_personal` (those the data itself keeps under
    a catalogue key, such as `item_id`), dates, phone numbers, digests and numbers with a decimal point or a
    path.

    Example:
        >>> t = "Thanks, Ana. Can I get the number off your statement?\\nCALLER: it's 1712758588. Order 5566778899."
        >>> [t[s:e] for s, e, *_ in passage_ids(t, [(8, 11, "PERSON")])]
        ['1712758588']
    """
    anchors = [(s, e) for s, e, ent in spans if ent == "DATE_OF_BIRTH" or (ent == "PERSON" and e - s >= 3)]
    if not anchors or not DIGIT.search(text):
        return []
    found: list[tuple[int, int, str, str]] = []
    listed_to = None  # the end of the last value a label kept
    for start, end in _passage_candidates(text):
        value = text[start:end]
        digits = sum(c.isdigit() for c in value)
        if digits < 6 or (digits < 7 and not any(c.isalpha() for c in value)) or len(value) > 24:
            continue
        read = value.translate(_OCR_DIGITS)  # "1-8OO-555-O142", "03-O4-2025": a scanned phone or date
        if "." in value or "/" in value or ANY_DATE.fullmatch(read) or _PHONE_SHAPE.fullmatch(read):
            continue
        if text[start - 1 : start] == "*" and text[end : end + 1] in ("*", "~"):
            continue  # an X12 element: `keyed` knows which of them are the person's
        if _HEX_TOKEN.fullmatch(value) or _DATE8_RE.fullmatch(value) or _DOCUMENT_NUMBER.fullmatch(value):
            continue
        if not any(a - PASSAGE_REACH <= start and end <= b + PASSAGE_REACH for a, b in anchors):
            continue
        if any(start < e and s < end for s, e, _ in spans):
            continue
        if value in not_personal:
            continue
        before = text[max(0, start - 40) : start]
        key = _KEY_BEFORE.search(before)
        if (key and _THING_KEY.fullmatch(key.group(1))) or _URL_TOKEN.match(
            text, _token_start(text, start), end
        ):
            continue
        cut = _SENTENCE_START.match(before)
        if _NOT_PERSONAL_LABEL.search(before[cut.end() :] if cut else before) or (
            listed_to is not None
            and start - listed_to <= 40
            and not _SENTENCE_START.match(text[listed_to:start])
        ):  # labelled, or the next item of a labelled list: "Item IDs: A (Lamp), B (Desk)"
            listed_to = end
            continue
        found.append((start, end, "ID", "id_in_personal_passage"))
    return found


# One person's fields run together with slashes: "<last>,<first>/03/03/1939/S52169702/W61329557/1096594289".
_SLASH_RUN = re.compile(r"(?<![\w/:.-])[\w.,-]+(?:/[\w.,-]+){2,}(?![\w/])")
_SLASH_PART = re.compile(r"[^/,]+")
_ID_PART = re.compile(IDVAL)


def _slash_run_ids(text: str):
    """`(start, end)` of each id-like part of a slash-joined run of fields that is not a URL or a path."""
    for run in _SLASH_RUN.finditer(text):
        if _URL_TOKEN.match(text, _token_start(text, run.start()), run.end()):
            continue
        for part in _SLASH_PART.finditer(run.group(0)):
            if _ID_PART.fullmatch(part.group(0)):
                yield run.start() + part.start(), run.start() + part.end()


def _passage_candidates(text: str):
    """`(start, end)` of each id-like token, and of each id-like part of a slash-joined run of fields."""
    return sorted({m.span(1) for m in _PASSAGE_ID.finditer(text)} | set(_slash_run_ids(text)))


def _token_start(text: str, at: int) -> int:
    return max(text.rfind(c, 0, at) for c in " \t\n") + 1


def _lines(text: str):
    start = 0
    for m in re.finditer(r"\n", text):
        yield start, m.start()
        start = m.end()
    yield start, len(text)
