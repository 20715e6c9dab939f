"""Context-keyed identifiers, dates and quasi-identifiers, per a documented de-identification policy.

A value is often personal only because of what stands next to it: `S6534835` is a medical record number
after "MRN", `1957-03-02` is a date of birth after "DOB of", `78750` is a zip code after "zip". These
rules find such values in free text (the same keys in JSON are handled by `curate`'s key lists), and
`zip_placeholder` generalizes a zip code to its first three digits.

## Policy: HIPAA Safe Harbor (45 CFR 164.514(b)(2)) as the checklist

| # | Safe Harbor identifier | What slmlab does by default |
|---|---|---|
| 1 | Names | NER (spaCy `PERSON`) on free text, name keys in JSON (`first_name`, FHIR `family` / `given`, ...), context rules ("my name is", "patient", "Mr.", ...); every name found is then replaced everywhere in the data set -> `<PERSON_n>` |
| 2 | Geographic subdivisions smaller than a state | street lines (`street_address` rule, `address1` / `street` / FHIR `line` keys) -> `<ADDRESS_n>`; zip codes -> first 3 digits kept (`<ZIP_941XX>`), `000` for the 17 three-digit areas of 20,000 people or fewer; `city` under an address key -> `<CITY_n>`. **Kept: city and state names in free text** (flight routes and store locations are the agent's task; a city alone rarely identifies a person). This is a deliberate departure from Safe Harbor: turn it on with `CurateConfig(ner_entities=("PERSON", "GPE"))` where the data needs it. |
| 3 | All elements of dates (except year) directly related to an individual | dates of birth by context ("DOB", "born", "date of birth", `birthDate` / `dob` keys) -> `<DATE_OF_BIRTH_n>`. **Kept: other dates** (flight, order and appointment dates are task content); years alone are kept, as Safe Harbor allows. Ages over 89 are not detected. |
| 4-5 | Telephone and fax numbers | `phone_intl`, `phone_us` rules -> `<PHONE_n>` |
| 6 | Email addresses | `email` rule -> `<EMAIL_n>` |
| 7 | Social security numbers | `ssn` rule -> `<SSN_n>` |
| 8 | Medical record numbers | "MRN", "medical record number", "chart number", FHIR `identifier[].value`, `mrn` keys -> salted hash |
| 9 | Health plan beneficiary numbers | "member id", "subscriber id", "beneficiary number", "policy number", "insurance id" -> salted hash |
| 10 | Account numbers | "account number", "acct #", `account_id` keys, card numbers (Luhn), IBANs (mod 97), payment-method ids -> hash / placeholder |
| 11 | Certificate / license numbers | "license number", "certificate number", "passport number", "driver's license" -> salted hash |
| 12-13 | Vehicle and device identifiers, serial numbers | "VIN", "serial number", "device id", "IMEI" -> salted hash |
| 14-15 | URLs, IP addresses | IPv4 / IPv6 rules -> `<IP_ADDRESS_n>`. **Kept: URLs** (API endpoints are tool content); identifying values inside query strings (`?family=Smith&birthdate=...`) are caught by the `query_param` rule |
| 16-17 | Biometric identifiers, photos | out of scope: text logs only |
| 18 | Any other unique identifying number or code | ids under id keys and "patient / customer / user id" in text -> salted hash; API keys, tokens, high-entropy secrets -> placeholders |

Ids are hashed (HMAC with the run's salt) rather than numbered, so joins between calls still work; every
other value becomes a numbered placeholder that is the same wherever the value appears.

Usage:
    >>> [m.group(1) for m in CONTEXT_RX["mrn"].finditer("Patient MRN: S6534835, seen today")]
    ['S6534835']
    >>> zip_placeholder("94107-1234"), zip_placeholder("03601")
    ('<ZIP_941XX>', '<ZIP_000XX>')
"""

from __future__ import annotations

import functools
import re

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_ORD = r"(?:st|nd|rd|th)?"
#: one calendar date as people write it: ISO, slashed / dotted / dashed numeric, month names either side
DATE = (
    r"(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}(?:T\d{2}:\d{2}(?::\d{2})?Z?)?"
    r"|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}"
    rf"|\d{{1,2}}[- ]{_MONTH}\.?[- ]\d{{2,4}}"
    rf"|{_MONTH}[- ]\d{{1,2}}[- ,]\s*\d{{4}}"
    rf"|{_MONTH}\.?\s+\d{{1,2}}{_ORD},?\s+\d{{4}}"
    rf"|(?:the\s+)?\d{{1,2}}{_ORD}\s+(?:of\s+)?{_MONTH}\.?,?\s+\d{{4}})"
)
DATE_RE = re.compile(rf"^\s*{DATE}\s*$", re.IGNORECASE)
_DATE8 = r"(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"  # 19570302, only after a DOB cue

# A few filler words between a cue and its value ("MRN for that patient is S123", "born in Lagos on ...").
_WORD = r"[^\W\d_]+(?:['’.-][^\W\d_]+)*\.?"  # a word of any script, no digits
_FILL = rf"(?:[\s:=#\"'(\[,;?-]*{_WORD}){{0,7}}?[\s:=#\"'(\[,;?-]+"
_FILL_SHORT = rf"(?:[\s:=#\"'(\[,;?-]*{_WORD}){{0,2}}?[\s:=#\"'(\[,;?-]*"
# An identifier: 4+ characters with at least one digit, not a date.
_IDVAL = (
    r"(?!\d{4}-\d{1,2}-\d)(?=[A-Za-z0-9._/-]*\d)([A-Za-z0-9](?:[A-Za-z0-9._/-]{2,38}[A-Za-z0-9]))(?![\w/-])"
)

_DOB_CUE = (
    r"(?i:\b(?:(?:dob|date\s+of\s+birth|birth\s*-?\s*date|birthday|birth\s+day|born|"
    r"fecha\s+de\s+nacimiento|geburtsdatum|date\s+de\s+naissance)\b|d\.o\.b\.?))"
)
_MRN_CUE = (
    r"(?i:\b(?:mrn|mr\s*#|(?:medical\s+|health\s+)?record(?:\s+(?:number|no\.?|num|#|id))?|"
    r"chart(?:\s+(?:number|no\.?|#|id))?|patient\s+(?:id|identifier|number|no\.?|#|record)|"
    r"health\s+record\s+(?:number|id))\b)"
)
_MEMBER_CUE = (
    r"(?i:\b(?:member|subscriber|beneficiary|insurance|insured|health\s+plan|policy|group|medicare|medicaid)"
    r"(?:\s*(?:id|identifier|number|no\.?|num|#))?(?![A-Za-z])"
    r"|\b(?:account|acct\.?|customer|client|user|employee|case|claim)(?:\s*(?:id|identifier|number|no\.?|num|#))?(?![A-Za-z])"
    r"|\b(?:licen[cs]e|certificate|passport|dl|npi|dea|vin|serial|imei|device|itin|tin|taxpayer\s+id)"
    r"(?:\s*(?:id|number|no\.?|num|#))?(?![A-Za-z]))"
)
_ZIP_CUE = r"(?i:\b(?:zip|zip\s*code|zipcode|postal\s*code|postcode|post\s+code)\b)"
_STREET_END = (
    r"\b(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Drive|Dr|Lane|Ln|Court|Ct|Way|Place|Pl|Terrace|Circle|"
    r"Parkway|Pkwy|Highway|Hwy|Square|Trail|Mall|Plaza|Loop)\.?(?:,?\s+(?:Apt|Suite|Unit|Ste|#)\.?\s*\w+)?"
)
_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|"
    "ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR"
)
# A person's name: 1-4 capitalized tokens, with the particles and apostrophes of several naming cultures.
_NAME_TOK = r"(?:[A-Z][a-z'’]*[A-Z]?[a-z'’]+|[A-Z]\.|O['’][A-Z][a-z]+|Mc[A-Z][a-z]+)"
_PARTICLE = r"(?:de|del|da|dos|das|di|du|van|von|der|den|la|le|bin|binti|ibn|al|el|ben|bint|y|zu)"
NAME = rf"{_NAME_TOK}(?:(?:[ \t]+|-)(?:{_PARTICLE}[ \t]+|{_PARTICLE}-)?{_NAME_TOK}){{0,3}}"
_NAME_CUE = (
    # A role noun in lower case only: "the passenger Mia Li", not the heading "**Passenger Change**".
    r"(?:\b(?:patient|member|passenger|customer|client|caller|user|subscriber|beneficiary|employee|guest|"
    r"traveller|traveler|resident|person|individual|son|daughter|wife|husband|mother|father|spouse)"
    r"(?:'s)?(?:\s+name)?(?:\s+(?:is|was|[:=]))?|"
    r"\b(?i:my\s+name\s+is|name\s+is|name's|named|called|name\s*[:=]|full\s+name\s*(?:is|[:=])?|"
    r"(?:patient|passenger|customer|member)(?:'s)?\s+name(?:\s+(?:is|was|[:=]))?|"
    r"with\s+(?:the\s+)?name(?:\s+of)?|under\s+(?:the\s+)?name|"
    r"name\s+of|for\s+(?:a\s+)?patient|surname\s*(?:is|[:=])?|first\s+name\s*(?:is|[:=])?|"
    r"last\s+name\s*(?:is|[:=])?|given\s+name\s*(?:is|[:=])?|family\s+name\s*(?:is|[:=])?|"
    r"signed|regards|sincerely|thanks|cheers)|\b(?:Mr|Mrs|Ms|Mx|Dr|Miss|Prof|Sir|Madam|Mme|Herr|Frau|Sr|Sra)\.?)"
    r"[ \t,:\"']+"  # the name on the same line as its cue
)

#: name -> compiled regex whose group 1 is the value (kept in the order they are tried)
CONTEXT_RX: dict[str, re.Pattern] = {
    "date_of_birth": re.compile(rf"{_DOB_CUE}{_FILL}({DATE}|{_DATE8})(?!\d)", re.IGNORECASE),
    "mrn": re.compile(rf"{_MRN_CUE}{_FILL}{_IDVAL}"),
    "member_id": re.compile(rf"{_MEMBER_CUE}{_FILL_SHORT}{_IDVAL}"),
    "zip_code": re.compile(
        rf"{_ZIP_CUE}{_FILL}(\d{{5}}(?:-\d{{4}})?)(?![\d-])|(?<=[,\s])(?:{_STATES}),?\s+(\d{{5}}(?:-\d{{4}})?)(?![\d-])"
        rf"|{_STREET_END},?\s+(?:[A-Z][a-z]+(?:\s[A-Z][a-z]+)?,?\s+)?(?:(?:{_STATES}),?\s+)?(\d{{5}}(?:-\d{{4}})?)(?![\d-])"
    ),
    "person_context": re.compile(rf"{_NAME_CUE}({NAME})"),
    "query_param": re.compile(
        r"(?i)[?&;](?:given|family|name|first_?name|last_?name|birth_?date|dob|identifier|mrn|patient|"
        r"subject|member_?id|ssn|email|phone|zip|postal_?code|address)=([^&#\s\"'<>]{2,})"
    ),
}
#: the placeholder family of each context rule
CONTEXT_ENTITY = {
    "date_of_birth": "DATE_OF_BIRTH",
    "mrn": "ID",
    "member_id": "ID",
    "zip_code": "ZIP",
    "person_context": "PERSON",
    "query_param": "QUERY_VALUE",
}
# Capitalized words a name cue may be followed by that are not names ("patient Portal", "Dr. Office").
NOT_NAMES = frozenset(
    "The A An This That These Those Here There It Its He She They We You I Me My Your His Her Their Our "
    "Is Was Are Be Has Have Had Do Does Did Not No Yes Please Thank Thanks Hello Hi Dear Sir Madam "
    "And Or But If Then So For With From To Of In On At By As Also Just Only All Any Some Each Every "
    "Patient Member Customer Client User Service Support Team Agent Portal Record Records Details Info "
    "Information Name Number Id ID Account Office Department Hospital Clinic Center Centre Health Care "
    "January February March April May June July August September October November December Monday "
    "Tuesday Wednesday Thursday Friday Saturday Sunday Today Tomorrow Yesterday Basic Economy Business "
    "First Class Regular Gold Silver Premium Standard Unknown None Null True False N/A".split()
)
# Three-digit zip areas of 20,000 people or fewer (2000 census, per HHS guidance): these become 000.
RESTRICTED_ZIP3 = frozenset("036 059 063 102 203 556 692 790 821 823 830 831 878 879 884 890 893".split())


def zip_placeholder(value: str) -> str:
    """Safe Harbor generalization of a US zip code: its first three digits, or 000 in a small area.

    Example:
        >>> zip_placeholder("78750")
        '<ZIP_787XX>'
    """
    digits = re.sub(r"\D", "", value)[:3]
    if len(digits) < 3 or digits in RESTRICTED_ZIP3:
        digits = "000"
    return f"<ZIP_{digits}XX>"


def clean_name(value: str) -> tuple[int, int] | None:
    """`(start, end)` of a name found by a cue, trimmed of words that are not names; None when none is left."""
    toks = list(re.finditer(r"\S+", value))
    while toks and (toks[-1].group(0) in NOT_NAMES or toks[-1].group(0).islower()):
        toks.pop()
    while toks and toks[0].group(0) in NOT_NAMES:
        toks.pop(0)
    if not toks or all(t.group(0) in NOT_NAMES or len(t.group(0).rstrip(".")) < 2 for t in toks):
        return None
    return toks[0].start(), toks[-1].end()


_LEFT_TOK = re.compile(r"(?:^|(?<=\s))([^\W\d_][^\W\d_'’-]*(?:['’-][^\W\d_]+)*) $")
_RIGHT_TOK = re.compile(r"^ ([^\W\d_][^\W\d_'’-]*(?:['’-][^\W\d_]+)*)(?![\w<])")


def _name_token(tok: str, stop: frozenset[str]) -> bool:
    return tok[:1].isupper() and not tok.isupper() and tok not in stop and tok.lower() != tok


def extend_name(text: str, start: int, end: int, stop: frozenset[str] = NOT_NAMES) -> tuple[int, int]:
    """Grow a name span over adjacent capitalized words ("Giorgos" before a found "Papadopoulos").

    Names are runs of capitalized words; NER and cues sometimes catch only part of one.

    Example:
        >>> t = "records of Giorgos Papadopoulos today"
        >>> t[slice(*extend_name(t, t.index("Papa"), t.index(" today")))]
        'Giorgos Papadopoulos'
    """
    for _ in range(2):
        m = _LEFT_TOK.search(text, max(0, start - 40), start)
        if not m or not _name_token(m.group(1), stop):
            break
        start = m.start(1)
    for _ in range(2):
        m = _RIGHT_TOK.match(text[end : end + 40])
        if not m or not _name_token(m.group(1), stop):
            break
        end += m.end(1)
    return start, end


def context_spans(text: str) -> list[tuple[int, int, str, str]]:
    """`(start, end, entity, rule)` of every context-keyed value in `text` (the value only, not its cue).

    Cached per string: `curate` asks for each distinct string twice (to learn values, then to redact).

    Example:
        >>> text = "DOB of 02.03.1957, zip 78750, name: Ana Silva"
        >>> [text[s:e] for s, e, *_ in context_spans(text)]
        ['02.03.1957', '78750', 'Ana Silva']
    """
    return list(_context_spans(text))


@functools.lru_cache(maxsize=1 << 16)
def _context_spans(text: str) -> tuple[tuple[int, int, str, str], ...]:
    out = []
    for rule, rx in CONTEXT_RX.items():
        for m in rx.finditer(text):
            g = next((i for i in range(1, (m.lastindex or 0) + 1) if m.group(i) is not None), None)
            if g is None:
                continue
            start, end = m.span(g)
            value = text[start:end]
            if rule == "person_context":
                cut = clean_name(value)
                if cut is None:
                    continue
                start, end = start + cut[0], start + cut[1]
            elif rule == "query_param" and value.startswith("<"):
                continue
            out.append((start, end, CONTEXT_ENTITY[rule], rule))
    return tuple(out)


def clear_cache() -> None:
    """Forget the cached cue matches (they hold original values); `curate` calls it when done."""
    _context_spans.cache_clear()
