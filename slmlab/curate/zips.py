"""Zip codes: the Safe Harbor generalization to three digits, and 5-digit numbers in prose that are zips.

Usage:
    >>> zip_placeholder("94107-1234"), zip_placeholder("03601")
    ('<ZIP_941XX>', '<ZIP_000XX>')
    >>> out = []; bare_zips("I moved out to 30478 after order 55102 shipped", out); out
    [(15, 20, 'ZIP', 'zip_code_bare')]
"""

from __future__ import annotations

import re

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


# A 5-digit number standing alone in prose, not part of an amount, a sum, a URL, a phone or a longer number.
_BARE_ZIP = re.compile(
    r"(?<![\w$€£¥#@.,:/+*=×&%-])(?<![+*=×/-] )(\d{5}(?:-\d{4})?)(?![\w%/:@-]|[.,]\d|\s?[+*=×/])"
)
# What makes such a number something other than a zip: a numbered thing before it, a unit or a noun after.
_NUMBERED_BEFORE = re.compile(
    r"(?i:\b(?:order|invoice|ticket|grp|group|cpt|hcpcs|drg|ndc|loinc|room|bed|ward|flight|item|ref|reference|confirmation|tracking|case|claim|"
    r"ext|extension|unit|suite|ste|apt|apartment|building|bldg|floor|gate|seat|page|line|version|model|part|"
    r"sku|product|code|pin|number|no|num|id|batch|lot|serial|step|steps|station|route|bus|train|store|form|"
    r"agreement|contract|voucher|coupon|receipt|transaction|reservation|booking|locker|badge|kit|vial|specimen|"
    r"sample|table|desk|slot|account|policy|plan|permit|registration|certificate)"
    r"\.?\s*(?:#|no\.?|number)?\s*(?:[:#=]|is|was|reads)?\s*$|#\s*[:=]?\s*$)"
)
_NOT_NOUNS = frozenset(
    "was is has does this its his hers ours yours theirs yes us plus across always perhaps unless less thus "
    "as bus".split()
)
_UNIT_AFTER = re.compile(
    r"^\s*(?:(?:mg|mcg|ml|g|kg|km|mi|m|cm|mm|lb|lbs|oz|ft|usd|eur|gbp|k|kb|mb|gb|hz|rpm|cal|kcal|iu|bpm|"
    r"dollars|euros|pounds|times|x)\b|([a-z]{3,}s)\b)"
)


def bare_zips(text: str, out: list) -> None:
    """Append `(start, end, "ZIP", "zip_code_bare")` for each 5-digit number in prose of `text` that reads as
    a zip code: not a quantity, a sum, money or a numbered thing ("order 55102"), and not in `out` already."""
    if len(text.split()) < 4 or not any(c.isalpha() for c in text):
        return  # prose only: a lone number in a tool argument is not judged without its key
    for m in _BARE_ZIP.finditer(text):
        start, end = m.span(1)
        if _NUMBERED_BEFORE.search(text[max(0, start - 24) : start]):
            continue
        u = _UNIT_AFTER.match(text[end : end + 16])
        if u and (u.group(1) is None or u.group(1) not in _NOT_NOUNS):
            continue
        if not any(start < e and s < end for s, e, *_ in out):
            out.append((start, end, "ZIP", "zip_code_bare"))
