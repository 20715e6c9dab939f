"""Context-keyed identifiers, dates and quasi-identifiers, per a documented de-identification policy.

A value is often personal only because of what stands next to it: `S6534835` is a medical record number
after "MRN", `1957-03-02` is a date of birth after "DOB of", `78750` is a zip code after "zip". These
rules find such values in free text (the same keys in JSON are handled by `curate`'s key lists);
`slmlab.curate.zips` generalizes a zip code to its first three digits.

## Policy: HIPAA Safe Harbor (45 CFR 164.514(b)(2)) as the checklist

| # | Safe Harbor identifier | What slmlab does by default |
|---|---|---|
| 1 | Names | NER (spaCy `PERSON`) on free text, name keys in JSON (`first_name`, FHIR `family` / `given`, ...), context rules ("my name is", "patient", "Mr.", ...); every name found is then replaced everywhere in the data set -> `<PERSON_n>` |
| 2 | Geographic subdivisions smaller than a state | street lines (`street_address` rule, `address1` / `street` / FHIR `line` keys) -> `<ADDRESS_n>`; zip codes (by key or cue, and any 5-digit number in prose that does not read as a quantity, a sum, money or a numbered thing) -> first 3 digits kept (`<ZIP_941XX>`), `000` for the 17 three-digit areas of 20,000 people or fewer; `city` under an address key -> `<CITY_n>`. **Kept: city and state names in free text** (flight routes and store locations are the agent's task; a city alone rarely identifies a person). This is a deliberate departure from Safe Harbor: turn it on with `CurateConfig(ner_entities=("PERSON", "GPE"))` where the data needs it. |
| 3 | All elements of dates (except year) directly related to an individual | dates of birth by context ("DOB", "born", "date of birth", `birthDate` / `dob` keys) and full dates at least `CurateConfig.old_date_years` (10) before the calls -> `<DATE_OF_BIRTH_n>`. **Kept: other dates** (recent flight, order and appointment dates are task content); years alone are kept, as Safe Harbor allows. Ages over 89 are not detected. |
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
| 18 | Any other unique identifying number or code | ids under id keys and "patient / customer / user id" in text -> salted hash; a long id within 300 characters of a name or date of birth found in the same text, unless a word or its shape says it is something else (`records.passage_ids`) -> salted hash; API keys, tokens, high-entropy secrets -> placeholders |

Ids are hashed (HMAC with the run's salt) rather than numbered, so joins between calls still work; every
other value becomes a numbered placeholder that is the same wherever the value appears.

Usage:
    >>> [m.group(1) for m in CONTEXT_RX["mrn"].finditer("Patient MRN: S6534835, seen today")]
    ['S6534835']
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from slmlab.curate.labels import LABEL_PATTERNS, ocr_fold
from slmlab.curate.zips import bare_zips

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
DATE8 = r"(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"  # 19570302, only after a DOB cue or key
#: a whole value that is one date (the `DATE` forms, or 19570302 as HL7 and compact exports write it)
DATE_RE = re.compile(rf"^\s*(?:{DATE}|{DATE8})\s*$", re.IGNORECASE)

# A few filler words between a cue and its value ("MRN for that patient is S123", "born in Lagos on ...").
_WORD = r"[^\W\d_]+(?:['’.-][^\W\d_]+)*\.?"  # a word of any script, no digits
_SEP = r"(?:[\s:=#\"'(\[,;?|/–—：、-]|\.{2,}|…)"  # "Account number is... 31506", "患者番号：A123"
_FILL = rf"(?:{_SEP}*{_WORD}){{0,7}}?{_SEP}+"
_SEP_LINE = _SEP.replace(r"\s", r" \t")
# up to three words, or four on the cue's line: "acct on the receipt says 2322499782"
_FILL_SHORT = rf"(?:(?:{_SEP}*{_WORD}){{0,3}}?{_SEP}*|(?:{_SEP_LINE}*{_WORD}){{4}}{_SEP_LINE}*)"
# An identifier: 4+ characters with at least one digit; not a date, a bare year, a decimal amount, a
# quantity ("15GB", "24-hour"), a list item ("1.ALWAYS") or a 4-digit number ("member since 2015", "DL 1127":
# a year, a flight). Chinese, Japanese and Korean words may follow it directly ("W1234567です").
IDVAL = (
    r"(?<![$€£¥A-Za-z0-9])(?!\d{1,2}[.)][A-Za-z]+(?![\w/-]))(?!\d{4}-\d{1,2}-\d|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}(?![\w/-])|\d+-[a-z]+(?![\w/-])|\d{1,4}[A-Za-z]{1,3}(?![\w/-]))(?!(?:19|20)\d\d(?![\w/-]))(?!\d{4}(?![\w/-]))(?!\d+[.,]\d{1,2}(?![\w/-]))"
    r"(?=[A-Za-z0-9._/-]*\d)([A-Za-z0-9](?:[A-Za-z0-9._/-]{2,38}[A-Za-z0-9]))(?!(?![\u3000-\uffff])[\w/-])"
)

_DOB_CUE = (
    r"(?i:\b(?:(?:d[o0]b|date\s+of\s+birth|birth\s*-?\s*date|birthday|birth\s+day|born|"
    r"fecha\s+de\s+nac(?:imiento|\.)?|data\s+de\s+nasc(?:imento|\.)?|geburtsdatum|date\s+de\s+naissance|n[ée](?:e|\(e\))?\s+le|geboren(?:\s+am)?|"
    r"nacid[oa](?:\s+el)?)\b|d\.o\.b\.?))"
)
_MRN_CUE = (
    r"(?i:\b(?:mrn|mr\s*#|(?:medical\s+|health\s+)?record(?:\s+(?:number|no\.?|num|#|id))?|"
    r"chart(?:\s+(?:number|no\.?|#|id))?|patient\s+(?:id|identifier|number|no\.?|#|record)|"
    r"health\s+record\s+(?:number|id)|pt\.?\s*(?:id|#|no\.|number)|(?:hospital|file)\s*(?:number|no\.|#)|"
    r"medical\s+id|wristband|med\.?\s*rec(?:ord)?\.?\s*(?:#|no\.?|number|num)?|"
    # the same label as it is written in French, German, Spanish and Italian records
    r"(?:num[ée]ro\s+de\s+|n[°o]\.?\s*(?:de\s+)?)?dossier(?:\s+m[ée]dical)?|patientennummer|"
    r"(?:n[úu]mero\s+de\s+)?historia\s+cl[íi]nica|cartella(?:\s+clinica)?|(?:n[úu]mero\s+de\s+)?expediente|"
    r"(?:n[úu]mero\s+do\s+)?prontu[áa]rio|病历号|病歷號)(?![A-Za-z0-9]))"
)
_MEMBER_CUE = (
    r"(?i:\b(?:me(?:m|rn)ber|membr|memebr|memeber|mebmer|subscriber|enroll?ee|beneficiary|insur[ae]nce|insurer|insured|health\s+plan|(?:my|his|her|their|your)\s+plan|mbi|"
    r"policy|group|medicare|medicaid|card\s*holder|(?:my|your|his|her|their|the|insurance|member)\s+card|mbr|ins\.?|"
    r"(?:mi\s+|su\s+)?seguro|(?:n[úu]mero\s+de\s+)?p[óo]liza|(?:s[ốo]\s+)?t[àa]i\s+kho[ảa]n|"
    r"(?:n[úu]mero\s+de\s+)?(?:afiliado|asegurado)|(?:num[ée]ro\s+d['’])?adh[ée]rent|versicherten(?:nummer)?|mitgliedsnummer)"
    r"(?:\s*(?:id|1d|identifier|number|no\.?|n[o0]\.?|num|#))?(?![A-Za-z])"
    r"|(?<![A-Za-z])(?:account|acount|accout|accnt|acct\.?|customer|client|user|employee|case|claims?|loan|checking|savings|rewards|guarantor|"
    r"kundennummer|kunden-?nr\.?|kontonummer|pat(?:ient)?\.?\s*(?:control|cntl|ctrl)\.?)"
    r"(?:\s*(?:id|identifier|number|no\.?|num|#))?(?![A-Za-z])"
    r"|\b(?:licen[cs]e|certificate|passport|dl|npi|dea|vin|serial|imei|device|itin|tin|taxpayer\s+id)"
    r"(?:\s*(?:id|number|no\.?|num|#))?(?![A-Za-z]))"
)
_ZIP_CUE = r"(?i:(?<![A-Za-z])(?:zip|zip\s*code|zipcode|postal\s*code|postcode|post\s+code|c[óo]digo\s+postal|plz)\b)"
_DOB_CUE = rf"(?:{_DOB_CUE}|(?i:\bb-?day\b))"
# "Subscr# Q123", Cerner's financial number "FIN:1325892040" (upper case only: "fin" is a word in French)
_MEMBER_CUE = (
    rf"(?:{_MEMBER_CUE}|(?i:\bsubscr\.?\s*(?:id|no\.?|#)?|\bbill-?to\b)|(?<![A-Za-z])(?:FIN|HAR)(?![A-Za-z]))"
)
# "MR: A107-6608" (upper case, with its colon: "Mr. Li" is a name's title)
_MRN_CUE = rf"(?:{_MRN_CUE}|(?<![A-Za-z])MR(?=[ \t]*[:#]))"
# The same labels in other languages (`slmlab.curate.labels`). Every rule exists twice: with them, for the
# texts that hold one (`_INTL_ANY`), and without them, so English-only logs do not pay for the long lists.
_INTL_ANY = re.compile("|".join(LABEL_PATTERNS.values()))


def _cue(cue: str, kind: str, intl: bool) -> str:
    return rf"(?:{cue}|{LABEL_PATTERNS[kind]})" if intl else cue


_STREET_END = (
    r"\b(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Drive|Dr|Lane|Ln|Court|Ct|Way|Place|Pl|Terrace|Circle|"
    r"Parkway|Pkwy|Highway|Hwy|Square|Trail|Mall|Plaza|Loop)\.?(?:,?\s+(?:Apt|Suite|Unit|Ste|#)\.?\s*\w+)?"
)
_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|"
    "ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR"
)
# A person's name: 1-4 capitalized tokens, with the particles and apostrophes of several naming cultures.
# Latin letters with their accents ("Fernández", "Müller", "Łukasz"); Latin Extended-A mixes both cases
_UP, _LOW = "A-ZÀ-ÖØ-ÞĀ-ſ", "a-zß-öø-ÿĀ-ſ"
_NAME_TOK = rf"(?:[{_UP}][{_LOW}'’]*[{_UP}]?[{_LOW}'’]*[{_LOW}]|[A-Z]\.|O['’][A-Z][a-z]+|Mc[A-Z][a-z]+)"
_PARTICLE = r"(?:de|del|da|dos|das|di|du|van|von|der|den|la|le|bin|binti|ibn|al|el|ben|bint|y|zu)"
NAME = rf"{_NAME_TOK}(?:(?:[ \t]+|-)(?:{_PARTICLE}[ \t]+|{_PARTICLE}-)?{_NAME_TOK}){{0,3}}"
_NAME_CUE = (
    # A role noun in lower case only: "the passenger Mia Li", not the heading "**Passenger Change**".
    r"(?:\b(?:patient|member|passenger|customer|client|caller|user|subscriber|beneficiary|employee|guest|"
    r"traveller|traveler|resident|person|individual|son|daughter|wife|husband|mother|father|spouse)"
    r"(?:'s)?(?:\s+name)?(?:\s+(?:is|was|[:=]))?|"
    r"\b(?i:my\s+name\s+is|name\s+is|me\s+llamo|mi\s+nombre\s+es|je\s+m['’]appelle|mon\s+nom\s+est|ich\s+hei(?:ße|sse)|"
    r"mein\s+name\s+ist|mi\s+chiamo|meu\s+nome\s+é|mijn\s+naam\s+is|nazywam\s+się|name's|named|called|name\s*[:=]|full\s+name\s*(?:is|[:=])?|"
    r"(?:patient|passenger|customer|member)(?:'s)?\s+name(?:\s+(?:is|was|[:=]))?|"
    r"with\s+(?:the\s+)?name(?:\s+of)?|under\s+(?:the\s+)?name|"
    r"name\s+of|for\s+(?:a\s+)?patient|surname\s*(?:is|[:=])?|first\s+name\s*(?:is|[:=])?|"
    r"last\s+name\s*(?:is|[:=])?|given\s+name\s*(?:is|[:=])?|family\s+name\s*(?:is|[:=])?|"
    r"signed|regards|sincerely|thanks|cheers)|\b(?:Mr|Mrs|Ms|Mx|Dr|Miss|Prof|Sir|Madam|Madame|Mme|Mlle|Monsieur|Herr|Frau|Sr|Sra|Srta|Señor|Señora|Signor|Signora|Sig|Sig\.ra|Dott|Pan|Pani|Mevrouw|Mevr|Dhr|Pt)\.?)"
    r"[ \t,:\"']+"  # the name on the same line as its cue
)


def _near_rules(intl: bool) -> dict[str, re.Pattern]:
    """name -> compiled regex whose group 1 is the value (kept in the order they are tried)"""
    return {
        "date_of_birth": re.compile(
            rf"{_cue(_DOB_CUE, 'dob', intl)}{_FILL}({DATE}|{DATE8})(?!\d)|(?<![\w.])b\.\s*({DATE})(?!\d)",
            re.IGNORECASE,
        ),
        "mrn": re.compile(rf"{_cue(_MRN_CUE, 'mrn', intl)}{_FILL}{IDVAL}|\b((?:MRN|MR)[-#:]?\d{{5,}})\b"),
        "member_id": re.compile(rf"{_cue(_MEMBER_CUE, 'member', intl)}{_FILL_SHORT}{IDVAL}"),
        "zip_code": re.compile(
            rf"{_cue(_ZIP_CUE, 'zip', intl)}{_FILL}(\d{{5}}(?:-\d{{4}})?)(?![\d-])"
            rf"|(?<=[,\s])(?:{_STATES}),?\s+(\d{{5}}(?:-\d{{4}})?)(?![\d-])"
            rf"|{_STREET_END},?\s+(?:[A-Z][a-z]+(?:\s[A-Z][a-z]+)?,?\s+)?(?:(?:{_STATES}),?\s+)?(\d{{5}}(?:-\d{{4}})?)(?![\d-])"
        ),
        "person_context": re.compile(rf"{_NAME_CUE}({NAME})"),
        # "LAST, FIRST M" (claims, scans, EDI printouts) or "Last, First" after a person's label and a colon
        "person_reversed": re.compile(
            r"(?i:\b(?:patient|subscriber|insured|member|guarantor|beneficiary|cardholder|policyholder|claimant|"
            r"employee|pt|name)(?:\s+name)?(?:\s*\((?:last|surname)\s*,\s*first(?:\s+name)?\))?[ \t]*[:#=][ \t]*)"
            r"([A-Z][A-Za-z'’-]+(?:[ -][A-Z][A-Za-z'’-]+)?,[ \t]*[A-Z][A-Za-z'’-]+(?:[ \t][A-Z]\.?)?)(?![\w,])(?![ \t]*(?:[:(]|of\b))"
        ),
        # a name before a Japanese, Korean or Chinese honorific: "Nguyen様", "Kim 님", "Li先生"
        "person_honorific": re.compile(
            rf"(?<![\w'’-])({NAME})(?=[ \t]?(?:様|さん|さま|殿|氏|님|씨|女士|先生))"
        ),
        "query_param": re.compile(
            r"(?i)[?&;](?:given|family|name|first_?name|last_?name|birth_?date|dob|identifier|mrn|patient|"
            r"subject|member_?id|subscriber_?id|acct|account_?(?:id|no|number)|policy_?(?:id|no|number)|mbi|ssn|"
            r"email|phone|zip|postal_?code|address|fname|lname|(?:first|last)(?==(?-i:[A-Z][a-z])))=([^&#\s\"'<>]{2,})"
        ),
    }


#: the placeholder family of each context rule
CONTEXT_ENTITY = {
    "date_of_birth": "DATE_OF_BIRTH",
    "mrn": "ID",
    "member_id": "ID",
    "zip_code": "ZIP",
    "person_context": "PERSON",
    "person_honorific": "PERSON",
    "person_reversed": "PERSON",
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
    "Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec Mon Tue Tues Wed Thu Thur Thurs Fri Sat Sun "
    "Tuesday Wednesday Thursday Friday Saturday Sunday Today Tomorrow Yesterday Basic Economy Business "
    "First Class Regular Gold Silver Premium Standard Unknown None Null True False N/A Date Birth DOB Zip ZIP "
    "Phone Email Address Last Middle Given Family Surname Paciente Paziente Pacjent Cliente Nombre Nome Nom "
    "Apellido Apellidos".split()
)


def clean_name(value: str) -> tuple[int, int] | None:
    """`(start, end)` of a name found by a cue, trimmed of words that are not names; None when none is left."""
    toks = list(re.finditer(r"[^\s,]+", value))  # "Gold, Silver": a reversed name's comma is no part of it
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


def context_spans(text: str, old_before: int | None = None) -> list[tuple[int, int, str, str]]:
    """`(start, end, entity, rule)` of every context-keyed value in `text` (the value only, not its cue).

    Beyond the near cues of `CONTEXT_RX`: a strong cue ("date of birth", "medical record number", "member
    ID", ...) with no value next to it takes the nearest value of its kind after it in the same clause; a
    value followed by linking words and its cue is taken too ("{mrn} is my chart number"); a 5-digit number in prose is a zip code unless it reads as
    a quantity, a sum, money or a numbered thing ("order 55102"); with `old_before`, a full date in that
    year or earlier (no time of day) is a date of birth.

    Cached per string: `curate` asks for each distinct string twice (to learn values, then to redact).

    Example:
        >>> text = "DOB of 02.03.1957, zip 78750, name: Ana Silva"
        >>> [text[s:e] for s, e, *_ in context_spans(text)]
        ['02.03.1957', '78750', 'Ana Silva']
        >>> t = "S6534835 is my chart number, and I moved out to 30478 after my 1957-03-02 birthday"
        >>> [t[s:e] for s, e, *_ in context_spans(t)]
        ['S6534835', '30478', '1957-03-02']
    """
    spans = list(_context_spans(text))
    folded = ocr_fold(text)
    if folded != text:  # "Acc0unt #: 443552941": the cues of a scanned page, read with their letters restored
        spans += [sp for sp in _context_spans(folded) if not _overlaps(spans, sp[0], sp[1])]
    if old_before is not None and DIGIT.search(text):
        _old_dates(text, old_before, spans)
    return sorted(spans)


DIGIT = re.compile(r"\d")
_PART = re.compile(r"[^,\s][^,]*")  # a part of a comma-joined name


@functools.lru_cache(maxsize=1 << 16)
def _context_spans(text: str) -> tuple[tuple[int, int, str, str], ...]:
    if _INTL_ANY.search(text):  # a label of another language: every one of them is a strong cue
        rules, strong = _ALL_LANGUAGES, True
    else:
        rules = _ENGLISH
        strong = _CUE_WORDS_RX.search(text) is not None and rules.strong.search(text) is not None
    out, cues_taken = _values_before_cues(text, rules) if strong else ([], set())
    for rule, rx in rules.near.items():
        for m in rx.finditer(text):
            if m.start() in cues_taken:
                continue  # "S6534835 is my chart number, and ...": the cue's value came before it
            g = next((i for i in range(1, (m.lastindex or 0) + 1) if m.group(i) is not None), None)
            if g is None:
                continue
            start, end = m.span(g)
            value = text[start:end]
            if rule in ("person_context", "person_honorific", "person_reversed"):
                cut = clean_name(value)
                if cut is None:
                    continue
                start, end = start + cut[0], start + cut[1]
                if rule == "person_reversed":  # "OKAFOR, CHIDI E": each part a name of its own
                    out += [(p.start(), p.end(), "PERSON", rule) for p in _PART.finditer(text, start, end)]
                    continue
            elif rule == "query_param" and value.startswith("<"):
                continue
            out.append((start, end, CONTEXT_ENTITY[rule], rule))
    if DIGIT.search(text):
        if strong:
            _clause_values(text, out, cues_taken, rules)
        bare_zips(text, out)
    return tuple(out)


# ------------------------------------------------------------------------------------------ clause rules
_CLAUSE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[。！？；])\s*|\n+|\s\|\s")
# Cues strong enough to reach across a clause (not "user" or "account" alone: "the user wants HAT123").
_FAR_DOB_CUE = rf"{_DOB_CUE}|(?i:\bbirth)"
_FAR_ID_CUE = (
    r"(?i:\b(?:mrn|medical\s+record|health\s+record|chart\s*(?:number|no\.|num|#)|"
    r"patient\s+(?:id|identifier|number|no\.)|pt\.?\s*id|hospital\s+(?:number|no\.)|dossier|patientennummer|"
    r"expediente|prontu[áa]rio|"
    r"(?:me(?:m|rn)ber|mbr|subscriber|beneficiary|policy|insur[ae]nce|insurer|group|medicare|medicaid)\s*"
    r"(?:id|identifier|number|no\.|num|#|card)|(?:account|acct\.?)\s*(?:number|no\.|num|#)|"
    r"mbi|medical\s+id|wristband|(?:number|id)\s+on\s+(?:the\s+)?(?:back|front)\s+of\s+(?:my|the|his|her)\s+card|"
    r"(?:licen[cs]e|passport|certificate)\s+(?:number|no\.|#)|(?:hospital\s+)?record\s+(?:number|no\.|#)|"
    r"subscr\.?\s*#)(?![A-Za-z]))"
)
ANY_DATE = re.compile(rf"(?<![\w/.-])({DATE}|{DATE8})(?![\w/-]|\.\d)", re.IGNORECASE)
# A superset of the words every strong English cue contains: a plain alternation, so a text without any is let
# go fast.
_CUE_WORDS = (
    r"(?i)dob|d\.o\.b|birth|born|mrn|record|chart|pt|hospital|dossier|nummer|member|subscriber|beneficiary|"
    r"policy|insur|group|medica|mbi|account|acct|licen|passport|certificate|wristband|card|zip|postal|post|"
    r"d0b|mernber|né|nee|geboren|nacid|c[óo]digo|nac|nascimento|expediente|prontu|病|mbr|seguro|liza|kho|subscr"
)
ANY_ID = re.compile(rf"(?<![\w#<@./-]){IDVAL}")
TIME_AFTER = re.compile(r"^(?:T|\s*(?:at\s+)?\d{1,2}:\d{2})")


# A value, then up to five linking words, then its cue: "{mrn} is my chart number", "{dob} - that's the date
# on my birth certificate", "{zip} is my zip". Only copulas, determiners and a few nouns of "date" may stand
# between ("PEP4E0, and enter the policy number" is an instruction, not a value).
_LINK = (
    r"(?i:is|was|are|were|be|being|as|that'?s|that’s|it'?s|it’s|its|that|this|the|a|my|his|her|their|our|your|"
    r"date|day|on|of|from|listed|given|current|new|old|correct|actual|real|full|exact|official)"
)
_BETWEEN = rf"(?:[ \t,()\]:=–—-]+{_LINK}){{0,5}}?[ \t,()\]:=–—-]+"  # on one line; "W699 (member ID)"
# or the cue in the next sentence, which says what the value was: "... is A209-4854. That's the record number"
_BETWEEN_NEXT = rf"\.[ \t]+(?i:that'?s|that’s|this\s+is|it'?s|which\s+is)(?:[ \t]+{_LINK}){{0,3}}?[ \t]+"


@dataclass(frozen=True)
class _Rules:
    """Every cue rule, with or without the labels of other languages."""

    near: dict[str, re.Pattern]
    far_dob: re.Pattern
    far_id: re.Pattern
    strong: re.Pattern  # any strong cue
    before_cue: list[tuple[re.Pattern, str]]


def _rules(intl: bool) -> _Rules:
    far_dob = _cue(_FAR_DOB_CUE, "dob", intl)
    far_id = rf"(?:{_FAR_ID_CUE}|{LABEL_PATTERNS['mrn']}|{LABEL_PATTERNS['member']})" if intl else _FAR_ID_CUE
    zip_cue = _cue(_ZIP_CUE, "zip", intl)
    between = rf"(?:{_BETWEEN}|{_BETWEEN_NEXT})"
    return _Rules(
        near=_near_rules(intl),
        far_dob=re.compile(far_dob),
        far_id=re.compile(far_id),
        strong=re.compile(rf"{far_dob}|{far_id}|{zip_cue}"),
        before_cue=[
            (re.compile(rf"(?<![\w/.-])({DATE})(?![\w/-]|\.\d){between}({far_dob})", re.I), "DATE_OF_BIRTH"),
            (re.compile(rf"(?<![\w#<@./-]){IDVAL}{between}({far_id})"), "ID"),
            (re.compile(rf"(?<![\w$#.,/-])(\d{{5}}(?:-\d{{4}})?)(?![\w-]){_BETWEEN}({zip_cue})"), "ZIP"),
        ],
    )


_ENGLISH, _ALL_LANGUAGES = _rules(intl=False), _rules(intl=True)
#: name -> compiled regex whose group 1 is the value (kept in the order they are tried)
CONTEXT_RX: dict[str, re.Pattern] = _ALL_LANGUAGES.near
_CUE_WORDS_RX = re.compile(_CUE_WORDS)


_VALUE_NEXT = re.compile(
    r"(?i:[ \t]*(?:(?:no\.?|number|num|#|id)[ \t]*)?(?:(?:is|was)[ \t]+)?[:=#]?[ \t]*(?:[A-Za-z]{0,4}[-#]?)?\d)"
)


def _values_before_cues(text: str, rules: _Rules) -> tuple[list, set[int]]:
    """Values written before their cue, and the start of each cue so used (forward rules then skip it)."""
    out, cues = [], set()
    for rx, entity in rules.before_cue:
        for m in rx.finditer(text):
            if _VALUE_NEXT.match(text, m.end(2)):
                continue  # "mrn: 20190316": the cue has its own value right after it
            start, end = m.span(1)
            if entity == "ID" and (end - start < 5 or ANY_DATE.search(m.group(1))):
                continue
            out.append((start, end, entity, f"{entity.lower()}_before_cue"))
            cues.add(m.start(2))
    return out, cues


def _overlaps(spans: list, start: int, end: int) -> bool:
    return any(start < e and s < end for s, e, *_ in spans)


def _clauses(text: str):
    last = 0
    for m in _CLAUSE_END.finditer(text):
        yield last, m.start()
        last = m.end()
    yield last, len(text)


_CLOSING_TAG = re.compile(r"</[\w.-]*:?$")
# a dialogue turn's speaker: "CALLER> 1509957160", "Patient: it's W123" (a question's answer is the next turn)
_SPEAKER = re.compile(
    r"[ \t]*(?:\[\d{1,2}:\d{2}(?::\d{2})?\][ \t]*)?"  # "[00:01:33] CALLER: 02.12.2021."
    r"(?:[^\W\d_][\w .'\u0900-\u0dff\u0e00-\u0eff-]{0,20}?[ \t]*(?:>|:)|\[[A-Za-z][\w .:'-]{0,24}\]|[<>](?=[ \t]))[ \t]*"
)  # "[CALLER]", "< 402660004" (an IVR transcript's caller)


def _clause_values(text: str, out: list, cues_taken: set[int], rules: _Rules) -> None:
    """A strong cue with no value beside it takes the nearest value of its kind after it in its clause, or,
    where the next clause is another speaker's turn, the first such value of that turn (its answer)."""
    clauses = list(_clauses(text))
    for n, (a, b) in enumerate(clauses):
        clause = text[a:b]
        answer = None  # the next speaker's turn after the speaker tag, where the next clause is one
        if n + 1 < len(clauses):
            na, nb = clauses[n + 1]
            sp = _SPEAKER.match(text, na, nb)
            if sp is not None and "\n" in text[b:na]:  # the whole turn: "es el que empieza... ok, 137-709117"
                turn_end = text.find("\n", na)
                answer = (sp.end(), turn_end if turn_end >= 0 else len(text))
        for cue_rx, value_rx, entity, rule in (
            (rules.far_dob, ANY_DATE, "DATE_OF_BIRTH", "date_of_birth_clause"),
            (rules.far_id, ANY_ID, "ID", "id_clause"),
        ):
            cues = list(cue_rx.finditer(clause))
            if not cues:
                continue
            values = [m.span(1) for m in value_rx.finditer(clause)]
            if entity == "ID":  # 5+ characters, and not a date, a phone or something already found
                values = [(s, e) for s, e in values if e - s >= 5 and not ANY_DATE.search(clause[s:e])]
            for cue in cues:
                if a + cue.start() in cues_taken or _CLOSING_TAG.search(clause, 0, cue.start()):
                    continue  # taken, or an XML end tag ("<BirthDate>..</BirthDate>"): its value came before
                pick = next((v for v in values if v[0] >= cue.end()), None)  # before it: `_BEFORE_CUE`
                item = _ITEM_NUMBER.search(clause, 0, cue.start())
                if pick is None and answer is not None and item:  # "(3) your date of birth" ... "3) 6/10/61"
                    pick = _numbered_answer(text, answer[0], item.group(1) or item.group(2), value_rx, a)
                if pick is None and answer is not None:  # the answer's value starts within 40 characters
                    pick = next(((m.start(1) - a, m.end(1) - a) for m in value_rx.finditer(text, *answer)
                                 if m.start(1) < answer[0] + 40 and (entity != "ID" or m.end(1) - m.start(1) >= 5)), None)  # fmt: skip
                if pick is None or _overlaps(out, a + pick[0], a + pick[1]):
                    continue  # no value, or the near rule (or another cue) already took it
                out.append((a + pick[0], a + pick[1], entity, rule))


# a numbered item of a request, the cue a few words after its number: "(3) your date of birth", "2) member id"
_ITEM_NUMBER = re.compile(r"(?:\((\d{1,2})\)|(?<![\w(])(\d{1,2})\))[^()\d\n]{0,30}$")
_NEXT_TURN = re.compile(r"\n[ \t]*(?!\(?\d)[A-Za-z][\w .'-]{0,20}:")


def _numbered_answer(
    text: str, turn: int, number: str, value_rx: re.Pattern, a: int
) -> tuple[int, int] | None:
    """The value of its kind on the line numbered `number` of the answering turn (from `turn` to the next
    speaker's), relative to `a`: "user: 1) Ana Silva\n2) 1712758588\n3) June 10, 2024"."""
    end = _NEXT_TURN.search(text, turn)
    line = re.compile(rf"(?m)(?:^|(?<=: ))[ \t]*\(?{number}[).:](?!\d)[ \t]*")
    for m in line.finditer(text, turn, end.start() if end else len(text)):
        v = value_rx.match(text, m.end())
        if v is not None:
            return v.start(1) - a, v.end(1) - a
    return None


def _year(date_text: str, ref: int) -> int | None:
    m = re.search(r"(?<!\d)(\d{4})(?!\d)", date_text)
    if m:
        return int(m.group(1))
    m = re.search(r"(\d{2})\s*$", date_text)  # 02/03/83: the century nearest before `ref`
    if m:
        yy = int(m.group(1))
        return 1900 + yy if 2000 + yy > ref else 2000 + yy
    return None


_PLACEHOLDER_DATES = re.compile(
    r"(?i)^(?:1900-01-01|1970-01-01|0?1[/.-]0?1[/.-](?:1900|1970)|jan(?:uary)?\.? 1(?:st)?,? (?:1900|1970))$"
)


def _plausible_date(d: str) -> bool:
    """Not a placeholder or the Unix epoch, and a real month and day where the date is all numbers.

    "27.25.92" and "26.11.11" are phone-number groups far more often than birth dates: numeric forms with a
    two-digit year count only with slashes ("02/03/83").
    """
    if _PLACEHOLDER_DATES.match(d.strip()):
        return False
    nums = re.fullmatch(r"(\d{1,4})[/.-](\d{1,2})[/.-](\d{2,4})", d.strip())
    if nums is None:
        return True
    a, b, c = (int(x) for x in nums.groups())
    if len(nums.group(1)) < 4 and len(nums.group(3)) == 2 and "/" not in d:
        return False
    first, second = (b, c) if len(nums.group(1)) == 4 else (a, b)
    return (first <= 12 and second <= 31) or (second <= 12 and first <= 31)


def _old_dates(text: str, old_before: int, out: list) -> None:
    """Full dates in `old_before` or earlier, with no time of day: dates of birth (Safe Harbor #3)."""
    for m in ANY_DATE.finditer(text):
        start, end = m.span(1)
        if re.fullmatch(DATE8, m.group(1)) or ":" in m.group(1) or TIME_AFTER.match(text[end : end + 12]):
            continue
        if not _plausible_date(m.group(1)):
            continue
        y = _year(m.group(1), old_before + 10)
        if y is not None and 1850 < y <= old_before and not _overlaps(out, start, end):
            out.append((start, end, "DATE_OF_BIRTH", "date_of_birth_old"))


def clear_cache() -> None:
    """Forget the cached cue matches (they hold original values); `curate` calls it when done."""
    _context_spans.cache_clear()
