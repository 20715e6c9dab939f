"""The other fields of a personal record: values that stand right beside personal values in one line.

`neighbour_spans(text, spans)` runs in the curate engine's second pass, on the spans the other rules found.
"""

from __future__ import annotations

import re

from slmlab.curate.context import ANY_DATE, ANY_ID, DIGIT, IDVAL, NOT_NAMES, TIME_AFTER

# Entities that make a record personal; a record is one line (HL7 rows, CSV rows, "name / dob / id" notes).
_PERSONAL = frozenset({"PERSON", "DATE_OF_BIRTH", "ADDRESS", "ZIP", "ID", "EMAIL", "PHONE", "SSN"})
# What may stand between two fields of one record: separators only, no words.
_FIELD_GAP = re.compile(r"[ \t]*(?:[|;^/,+~(]|\)|[–—-](?=[ \t]))?[ \t]*#?")  # "<DOB> #03467123 <ADDRESS>"
_FIELD_END = re.compile(r"[ \t]*(?:[|;^/,+~()\]\"'.?!]|$)")
_FIELD_START = re.compile(r"(?:^|[|;^/,+~(\[\"':])[ \t]*$")
_HASH_ID = re.compile(
    rf"(?<![\w&])#{IDVAL}"
)  # "#S43220511": `ANY_ID` skips "#" ids, which are mostly not personal
# a capitalized word or two, as a name field is written: "|Yuki|" between a last name and a birth date
_NAME_FIELD = re.compile(r"(?<![\w<'’-])([A-Z][a-z'’]+(?:[ -][A-Z][a-z'’]+)?)(?![\w>'’-])")
_BESIDE_ZIP = re.compile(r"(?<![\w$€£¥#@.,:/+*=×&%-])(\d{5}(?:-\d{4})?)(?![\w%/:@-]|[.,]\d)")


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
        cands += [
            (start_line + m.start(1), start_line + m.end(1), "PERSON")
            for m in _NAME_FIELD.finditer(line)
            if not any(w in NOT_NAMES for w in re.split(r"[ -]", m.group(1)))
        ]
        cands += [
            (start_line + m.start(1), start_line + m.end(1), "ID")
            for rx in (ANY_ID, _HASH_ID)
            for m in rx.finditer(line)
            if m.end(1) - m.start(1) >= 7 and sum(c.isdigit() for c in m.group(1)) >= 4
            and not ANY_DATE.fullmatch(m.group(1))
        ]  # fmt: skip
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


def _lines(text: str):
    start = 0
    for m in re.finditer(r"\n", text):
        yield start, m.start()
        start = m.end()
    yield start, len(text)
