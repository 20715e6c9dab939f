"""A seeded call table with known personal data and secrets planted in it, to measure redaction recall.

`make_planted_corpus` writes realistic customer-support agent sessions in the canonical call table:
values sit in user turns, tool results (JSON), tool-call arguments and assistant answers, in the formats
people actually type (spaced card numbers, national phone formats, grouped IBANs, PEM key blocks). It
also plants decoys that must survive (tool-call ids, UUIDs, hex digests, non-Luhn order numbers, flight
dates, camelCase identifiers). `find_leaks` reports which planted values are still present in some text.

Usage:
    >>> calls, planted = make_planted_corpus(n_values=50, seed=0)
    >>> planted.filter(pl.col("kind").is_in(KINDS)).height
    50
"""

from __future__ import annotations

import base64
import json
import random
import string
import uuid
from collections.abc import Iterable

import polars as pl

from slmlab.curate.redact import luhn_ok
from slmlab.schema import conform

_B62 = string.ascii_letters + string.digits
_FIRST = [
    "mia",
    "noah",
    "olivia",
    "liam",
    "ava",
    "ethan",
    "sofia",
    "lucas",
    "amelia",
    "yusuf",
    "chen",
    "priya",
]
_LAST = [
    "li",
    "garcia",
    "smith",
    "khan",
    "muller",
    "rossi",
    "nguyen",
    "okafor",
    "silva",
    "kowalski",
    "tanaka",
]
_DOMAINS = ["example.com", "mail.example.org", "corp.example.co.uk", "gmail.com", "outlook.com", "proton.me"]
_STREETS = ["Sunset", "Cedar Creek", "Maple", "Oak Hill", "Lakeview", "Main", "N Main", "Elm", "5th",
            "Pine Ridge", "Martin Luther King Jr", "Willow Bend", "Chestnut", "River"]  # fmt: skip
_SUFFIXES = [
    "Street",
    "St",
    "Avenue",
    "Ave",
    "Road",
    "Rd",
    "Drive",
    "Dr",
    "Lane",
    "Blvd",
    "Court",
    "Way",
    "Place",
]
_UNITS = ["Apt 4B", "Suite 217", "Unit 12", "Apt. 303", "#5"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]  # fmt: skip

# Types of planted values; the secret ones must never survive curation.
SECRET_TYPES = frozenset(
    {"openai_key", "anthropic_key", "aws_access_key", "aws_secret_key", "github_token", "slack_token",
     "google_api_key", "stripe_key", "hf_token", "jwt", "private_key", "bearer_token", "high_entropy_secret",
     "credit_card", "ssn", "iban"}
)  # fmt: skip


def _rs(rng: random.Random, n: int, alphabet: str = _B62) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _card(rng: random.Random) -> str:
    prefix, length, groups = rng.choice(
        [("4", 16, (4, 4, 4, 4)), ("5" + rng.choice("12345"), 16, (4, 4, 4, 4)), ("37", 15, (4, 6, 5)),
         ("6011", 16, (4, 4, 4, 4)), ("4", 13, (13,)), ("2221", 16, (4, 4, 4, 4))]
    )  # fmt: skip
    body = prefix + _rs(rng, length - len(prefix) - 1, string.digits)
    digits = next(body + d for d in string.digits if luhn_ok(body + d))
    sep = rng.choice([" ", "-", ""])
    out, i = [], 0
    for g in groups:
        out.append(digits[i : i + g])
        i += g
    return sep.join(out)


def _iban(rng: random.Random) -> str:
    country, spec = rng.choice([("DE", "n18"), ("GB", "a4n14"), ("FR", "n23"), ("NL", "a4n10"), ("ES", "n20"),
                                ("IT", "a1n22"), ("CH", "n17")])  # fmt: skip
    bban, i = "", 0
    while i < len(spec):
        kind, j = spec[i], i + 1
        while j < len(spec) and spec[j].isdigit():
            j += 1
        bban += _rs(rng, int(spec[i + 1 : j]), string.ascii_uppercase if kind == "a" else string.digits)
        i = j
    num = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    raw = f"{country}{98 - num % 97:02d}{bban}"
    return " ".join(raw[k : k + 4] for k in range(0, len(raw), 4)) if rng.random() < 0.6 else raw


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _value(kind: str, rng: random.Random) -> str:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    if kind == "email":
        user = rng.choice(
            [
                f"{first}.{last}{rng.randint(1, 9999)}",
                f"{first}_{last}",
                f"{first[0]}{last}+{rng.choice(['travel', 'shop'])}{rng.randint(1, 99)}",
            ]
        )
        return f"{user}@{rng.choice(_DOMAINS)}"
    if kind == "phone_us":
        a, b, c = rng.randint(201, 989), rng.randint(200, 999), rng.randint(0, 9999)
        return rng.choice(
            [
                f"({a}) {b}-{c:04d}",
                f"{a}-{b}-{c:04d}",
                f"{a}.{b}.{c:04d}",
                f"+1 {a} {b} {c:04d}",
                f"+1-{a}-{b}-{c:04d}",
            ]
        )
    if kind == "phone_intl":
        d = lambda n: _rs(rng, n, string.digits)  # noqa: E731
        return rng.choice([f"+44 20 {d(4)} {d(4)}", f"+33 {rng.randint(1, 9)} {d(2)} {d(2)} {d(2)} {d(2)}", f"+49 30 {d(8)}",
                           f"+81 3-{d(4)}-{d(4)}", f"+91 9{d(4)} {d(5)}", f"+61 2 {d(4)} {d(4)}", f"+34 6{d(2)} {d(3)} {d(3)}"])  # fmt: skip
    if kind == "credit_card":
        return _card(rng)
    if kind == "iban":
        return _iban(rng)
    if kind == "ssn":
        area = rng.choice([n for n in range(1, 900) if n != 666])
        return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    if kind == "ipv4":
        return f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if kind == "ipv6":
        groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
        return rng.choice(
            [
                ":".join(["2001", "db8"] + groups[2:]),
                "2001:db8::" + ":".join(groups[5:]),
                "fe80::" + ":".join(groups[4:]),
            ]
        )
    if kind == "address":
        street = f"{rng.randint(1, 9999)} {rng.choice(_STREETS)} {rng.choice(_SUFFIXES)}"
        return street + (f", {rng.choice(_UNITS)}" if rng.random() < 0.3 else "")
    if kind == "dob":
        y, m, dd = rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28)
        return rng.choice(
            [
                f"{y}-{m:02d}-{dd:02d}",
                f"{m:02d}/{dd:02d}/{y}",
                f"{_MONTHS[m - 1]} {dd}, {y}",
                f"{dd} {_MONTHS[m - 1]} {y}",
            ]
        )
    if kind == "openai_key":
        return rng.choice(["sk-proj-" + _rs(rng, 64, _B62 + "-_"), "sk-" + _rs(rng, 48)])
    if kind == "anthropic_key":
        return "sk-ant-api03-" + _rs(rng, 93, _B62 + "-_") + "AA"
    if kind == "aws_access_key":
        return "AKIA" + _rs(rng, 16, string.ascii_uppercase + "234567")
    if kind == "aws_secret_key":
        return _rs(rng, 40, _B62 + "/+")
    if kind == "github_token":
        return rng.choice(["ghp_" + _rs(rng, 36), "github_pat_" + _rs(rng, 22) + "_" + _rs(rng, 59)])
    if kind == "slack_token":
        return f"xox{rng.choice('bap')}-{_rs(rng, 12, string.digits)}-{_rs(rng, 13, string.digits)}-{_rs(rng, 24)}"
    if kind == "google_api_key":
        return "AIza" + _rs(rng, 35, _B62 + "-_")
    if kind == "stripe_key":
        return "sk_live_" + _rs(rng, rng.choice([24, 99]))
    if kind == "hf_token":
        return "hf_" + _rs(rng, 34, string.ascii_letters)
    if kind == "jwt":
        head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64url(
            json.dumps({"sub": f"{first}_{last}", "iat": rng.randint(1_600_000_000, 1_800_000_000)}).encode()
        )
        return f"{head}.{body}.{_b64url(rng.randbytes(32))}"
    if kind == "private_key":
        label = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
        lines = [base64.b64encode(rng.randbytes(48)).decode() for _ in range(rng.randint(3, 6))]
        return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----"
    if kind == "bearer_token":
        return _rs(rng, 40, _B62 + "._-")
    if kind == "high_entropy_secret":
        return rng.choice(["whsec_", "", "key_"]) + _rs(rng, 40)
    raise ValueError(kind)


# How each kind is said in prose, and the JSON key it sits under in tool payloads.
_TEXT = {
    "email": ["my email is {v}", "you can reach me at {v}.", "Email: {v}", "please send it to {v} thanks"],
    "phone_us": ["my phone number is {v}", "call me at {v}.", "Phone: {v}"],
    "phone_intl": ["my mobile is {v}", "reach me on {v} (WhatsApp)", "tel. {v}"],
    "credit_card": ["charge my card {v}, exp 09/27", "card number: {v}", "use the visa {v} please"],
    "iban": ["wire it to IBAN {v}, thanks", "my bank account is {v}.", "IBAN: {v}"],
    "ssn": ["my SSN is {v}", "social security number {v}.", "SSN: {v}"],
    "ipv4": ["the login came from {v} yesterday", "client ip {v} was blocked", "ping {v}"],
    "ipv6": ["connection from {v} failed", "my router shows {v}.", "IPv6 {v}"],
    "address": ["I live at {v}, Austin TX 78750", "ship it to {v}.", "new address: {v}, Springfield"],
    "dob": ["my date of birth is {v}", "DOB: {v}", "I was born on {v}.", "birthdate {v}"],
    "openai_key": ["here is my OpenAI key {v} for the integration", "export OPENAI_API_KEY={v}"],
    "anthropic_key": ["the Claude key is {v}", "ANTHROPIC_API_KEY={v}"],
    "aws_access_key": ["AWS access key id {v}", "aws_access_key_id = {v}"],
    "aws_secret_key": ["aws_secret_access_key = {v}", "AWS secret key: {v}"],
    "github_token": ["use the GitHub token {v} to clone", "GH_TOKEN={v}"],
    "slack_token": ["the slack bot token is {v}", "SLACK_TOKEN={v}"],
    "google_api_key": ["Maps key {v} stopped working", "GOOGLE_API_KEY={v}"],
    "stripe_key": ["our Stripe secret is {v}", "STRIPE_KEY={v}"],
    "hf_token": ["HF_TOKEN={v}", "my hugging face token {v}"],
    "jwt": ["session cookie: {v}", "the API returned token={v}"],
    "private_key": ["here is the deploy key:\n{v}\n", "id_rsa:\n{v}"],
    "bearer_token": [
        "Authorization: Bearer {v}",
        "curl -H 'Authorization: Bearer {v}' https://api.example.com",
    ],
    "high_entropy_secret": ["webhook signing secret: {v}", "the shared secret is {v} (do not share)"],
}
_KEYS = {
    "email": ["email", "contact_email"], "phone_us": ["phone", "mobile"], "phone_intl": ["phone", "phone_number"],
    "credit_card": ["card_number", "pan"], "iban": ["iban", "account_number"], "ssn": ["ssn", "tax_id"],
    "ipv4": ["last_login_ip", "ip"], "ipv6": ["ip", "last_login_ip"], "address": ["street", "address1"],
    "dob": ["dob", "date_of_birth", "birthdate"], "openai_key": ["OPENAI_API_KEY", "credential"],
    "anthropic_key": ["ANTHROPIC_API_KEY", "credential"], "aws_access_key": ["aws_access_key_id", "key_id"],
    "aws_secret_key": ["aws_secret_access_key", "aws_secret_key"], "github_token": ["GH_TOKEN", "github"],
    "slack_token": ["slack_bot", "SLACK_TOKEN"], "google_api_key": ["maps_key", "GOOGLE_API_KEY"],
    "stripe_key": ["stripe", "STRIPE_KEY"], "hf_token": ["HF_TOKEN", "hub_credential"], "jwt": ["session", "cookie"],
    "private_key": ["deploy_key", "ssh_key"], "bearer_token": ["authorization_header", "header"],
    "high_entropy_secret": ["webhook_secret", "signing_value"],
}  # fmt: skip
_JSON_WRAP = {"bearer_token": "Bearer {v}", "aws_secret_key": "{v}"}
KINDS = tuple(_TEXT)

_SYSTEM = (
    "# Support agent policy\nYou help customers of Example Air and Example Shop. Verify the customer with "
    "their user id before changing anything. Never read payment details back in full. Use one tool at a time."
)
_TOOLS = json.dumps(
    [{"type": "function", "function": {"name": n, "description": d, "parameters": {"type": "object", "properties": {}}}}
     for n, d in [("lookup_customer", "Find a customer by any detail."), ("update_profile", "Change a customer's profile."),
                  ("get_reservation_details", "Read a reservation.")]]
)  # fmt: skip


def _decoys(rng: random.Random) -> dict[str, str]:
    order = "9" + _rs(rng, 15, string.digits)
    return {
        "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "sha256": _rs(rng, 64, "0123456789abcdef"),
        "order_number": order,
        "flight_date": f"2024-05-{rng.randint(10, 28)}",
        "identifier": rng.choice(
            ["getReservationDetailsForPassengerList", "updateReservationBaggagesAndInsurance2"]
        ),
    }


def make_planted_corpus(n_values: int = 1200, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A canonical call table of agent sessions with `n_values` planted sensitive values, plus decoys.

    Values cycle through all kinds in `KINDS` (emails, phones, cards, IBANs, SSNs, IPs, addresses, dates of
    birth and 13 kinds of keys and tokens); each lands in a user turn, a tool-call argument, a JSON tool
    result or an assistant answer, and (as in real agent logs) stays in the prompts of the session's later
    calls. Each session also carries decoys that redaction must leave alone.

    Returns:
        `(calls, planted)`: the call table, and a frame with one row per value: `value`, `kind`,
        `location`, `session_id`, `secret` (a kind that must never leak) and `decoy`. Besides the
        `n_values` values of `KINDS` it lists each session's user id (kind `user_id`, to be hashed) and
        the decoys (`decoy` True, to be kept).

    Example:
        >>> calls, planted = make_planted_corpus(n_values=100, seed=0)
        >>> planted.filter(pl.col("kind").is_in(KINDS))["kind"].n_unique() == len(KINDS)
        True
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    values: list[tuple[str, str]] = []
    for i in range(n_values):
        kind = KINDS[i % len(KINDS)]
        v = _value(kind, rng)
        while v in seen:
            v = _value(kind, rng)
        seen.add(v)
        values.append((kind, v))
    rng.shuffle(values)

    rows, planted = [], []
    locations = ("user_text", "tool_args", "tool_result", "assistant_text", "user_followup")
    s, i = 0, 0
    while i < len(values):
        group = values[i : i + rng.randint(4, 8)]
        i += len(group)
        sid = f"sess-{seed}-{s:05d}"
        s += 1
        by_loc: dict[str, list[tuple[str, str]]] = {loc: [] for loc in locations}
        for kind, v in group:
            loc = rng.choice(locations)
            by_loc[loc].append((kind, v))
            planted.append({"value": v, "kind": kind, "location": loc, "session_id": sid})
        dec = _decoys(rng)
        reservation = _rs(rng, 6, string.ascii_uppercase + string.digits)  # an id: hashed, so not a decoy
        planted += [{"value": v, "kind": k, "location": "decoy", "session_id": sid} for k, v in dec.items()]

        def prose(items: list[tuple[str, str]]) -> str:
            return " and ".join(rng.choice(_TEXT[k]).format(v=v) for k, v in items)

        def payload(items: list[tuple[str, str]], key_of=None) -> dict:
            out: dict = {}
            for k, v in items:
                key = rng.choice(_KEYS[k])
                if rng.random() < 0.7 and key not in out:
                    out[key] = _JSON_WRAP.get(k, "{v}").format(v=v)
                else:
                    out.setdefault("notes", []).append(rng.choice(_TEXT[k]).format(v=v))
            return out

        user_id = f"{rng.choice(_FIRST)}_{rng.choice(_LAST)}_{rng.randint(1000, 9999)}"
        planted.append({"value": user_id, "kind": "user_id", "location": "ids", "session_id": sid})
        msgs = [{"role": "system", "content": _SYSTEM}]
        msgs.append(
            {
                "role": "user",
                "content": f"Hi, I need help with order {dec['order_number']}. My user id is {user_id}. "
                + prose(by_loc["user_text"]),
            }
        )
        calls = []
        args1 = {"user_id": user_id, **payload(by_loc["tool_args"])}
        tc1 = {"id": "call_" + _rs(rng, 24), "name": "lookup_customer", "arguments": json.dumps(args1)}
        calls.append((list(msgs), None, [tc1]))
        msgs.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": tc1["id"],
                        "type": "function",
                        "function": {"name": tc1["name"], "arguments": tc1["arguments"]},
                    }
                ],
            }
        )
        result = {"user_id": user_id, "reservations": [reservation], "last_trace": dec["uuid"], "build": dec["sha256"],
                  "handler": dec["identifier"], "next_flight": dec["flight_date"], **payload(by_loc["tool_result"])}  # fmt: skip
        msgs.append(
            {"role": "tool", "tool_call_id": tc1["id"], "name": tc1["name"], "content": json.dumps(result)}
        )
        answer = (
            f"Thanks! I found your profile and the reservation {reservation} flying on {dec['flight_date']}."
        )
        if by_loc["assistant_text"]:
            answer += " On file I see " + prose(by_loc["assistant_text"]) + "."
        calls.append((list(msgs), answer, []))
        msgs.append({"role": "assistant", "content": answer})
        msgs.append(
            {
                "role": "user",
                "content": "Please update my profile. "
                + (prose(by_loc["user_followup"]) or "Nothing else changed."),
            }
        )
        args3 = {"user_id": user_id, "fields": payload(by_loc["user_followup"])}
        tc3 = {
            "id": "call_" + _rs(rng, 24),
            "name": "update_profile",
            "arguments": json.dumps(args3, separators=(",", ":")),
        }
        calls.append((list(msgs), None, [tc3]))
        for step, (prompt, text, tcs) in enumerate(calls):
            rows.append(
                {
                    "call_id": f"{sid}-{step}", "session_id": sid, "step": step, "agent": "support_agent",
                    "model": "gpt-4o", "messages": json.dumps(prompt), "tools": _TOOLS, "response_text": text,
                    "response_tool_calls": json.dumps(tcs) if tcs else None, "tool_name": tcs[0]["name"] if tcs else None,
                    "n_tool_calls": len(tcs), "status": "ok", "finish_reason": "tool_calls" if tcs else "stop",
                    "source_format": "planted", "source_file": f"planted-seed{seed}", "source_line": s,
                }
            )  # fmt: skip
    calls_df = conform(pl.DataFrame(rows))
    planted_df = pl.DataFrame(planted).with_columns(
        pl.col("kind").is_in(list(SECRET_TYPES)).alias("secret"),
        (pl.col("location") == "decoy").alias("decoy"),
    )
    return calls_df, planted_df


def _needles(value: str) -> list[str]:
    once = json.dumps(value)[1:-1]
    twice = json.dumps(once)[1:-1]
    out = {value, once, twice}
    out |= {
        line for line in value.splitlines() if len(line) >= 20
    }  # one surviving line of a key block leaks it
    return sorted(out)


def find_leaks(texts: Iterable[str] | pl.DataFrame, planted: pl.DataFrame) -> pl.DataFrame:
    """The planted values still present in `texts` (raw, or escaped once or twice inside JSON strings).

    Args:
        texts: strings to search, or a frame whose string columns are all searched.
        planted: the second result of `make_planted_corpus`.

    Returns:
        the rows of `planted` that were found, with their kind and location.

    Example:
        >>> calls, planted = make_planted_corpus(n_values=30, seed=0)
        >>> find_leaks(calls, planted.filter(pl.col("kind").is_in(KINDS))).height
        30
    """
    if isinstance(texts, pl.DataFrame):
        cols = [c for c, t in texts.schema.items() if t == pl.String]
        texts = [v for c in cols for v in texts.get_column(c).drop_nulls().to_list()]
    blob = "\x00".join(texts)
    found = [any(n in blob for n in _needles(v)) for v in planted.get_column("value").to_list()]
    return planted.filter(pl.Series(found))
