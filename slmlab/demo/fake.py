"""Seeded fake personal data, secrets and ids for the demo logs (all generated; none is real), the word banks
they draw from, and the checksums real card numbers and IBANs pass.

Usage:
    >>> from slmlab.demo.fake import luhn_valid
    >>> luhn_valid("4539 1488 0343 6467")
    True
"""

from __future__ import annotations

import base64
import json
import random
import string
from datetime import datetime, timedelta
from typing import Any

# ---------------------------------------------------------------------------------------------------------
# Word banks
# ---------------------------------------------------------------------------------------------------------
B62 = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
FIRST = ["Mia", "Noah", "Olivia", "Liam", "Ava", "Ethan", "Sofia", "Lucas", "Amelia", "Yusuf", "Chen", "Priya",
          "Mateo", "Hannah", "Kenji", "Fatima", "Oscar", "Ingrid", "Diego", "Aisha", "Tomasz", "Grace"]  # fmt: skip
LAST = ["Li", "Garcia", "Smith", "Khan", "Muller", "Rossi", "Nguyen", "Okafor", "Silva", "Kowalski", "Tanaka",
         "Johansson", "Brown", "Haddad", "Dubois", "Patel", "Moreau", "Fischer", "Costa", "Murphy"]  # fmt: skip
DOMAINS = ["example.com", "mail.example.org", "gmail.com", "outlook.com", "proton.me", "yahoo.co.uk"]
STREETS = ["Sunset", "Cedar Creek", "Maple", "Oak Hill", "Lakeview", "Main", "Elm", "Pine Ridge", "Willow Bend",
            "Chestnut", "River", "Harbor View", "Juniper"]  # fmt: skip
STREET_SUFFIX = ["Street", "St", "Avenue", "Ave", "Road", "Drive", "Lane", "Blvd", "Court", "Way"]
CITIES = [("Springfield", "IL", "627"), ("Portland", "OR", "972"), ("Austin", "TX", "787"),
           ("Denver", "CO", "802"), ("Madison", "WI", "537"), ("Raleigh", "NC", "276"),
           ("Tucson", "AZ", "857"), ("Albany", "NY", "122")]  # fmt: skip
AIRPORTS = ["SFO", "JFK", "LAX", "ORD", "SEA", "BOS", "ATL", "DFW", "DEN", "MIA", "LHR", "CDG", "FRA", "AMS"]
PRODUCTS = ["noise-cancelling headphones", "carry-on suitcase", "travel adapter kit", "espresso machine",
             "hiking backpack", "smartwatch", "4K action camera", "ergonomic office chair", "standing desk",
             "e-reader", "portable charger", "wireless keyboard"]  # fmt: skip
TIERS = ["standard", "silver", "gold", "platinum"]
LOCALES = ["en-US", "en-GB", "en-CA", "en-AU", "en-IE"]
REPOS = ["northwind/booking-api", "northwind/checkout-service", "northwind/notifier", "northwind/web-frontend",
          "northwind/data-pipeline"]  # fmt: skip
TABLES = ["orders", "bookings", "customers", "refunds", "support_tickets", "payments"]
TOPICS = [
    ("airline baggage policy", ["checked bags", "carry-on allowance", "overweight fees", "sports equipment"]),
    (
        "quarterly travel demand report",
        ["booking volume", "average fare", "cancellation rate", "load factor"],
    ),
    (
        "smartwatch product review",
        ["battery life", "heart-rate sensor", "display brightness", "companion app"],
    ),
    (
        "incident postmortem for the checkout outage",
        ["root cause", "timeline", "customer impact", "follow-ups"],
    ),
    ("city guide to Lisbon", ["neighbourhoods", "public transport", "restaurants", "day trips"]),
    ("return and refund policy", ["return window", "restocking fee", "refund method", "damaged items"]),
    ("API rate limiting documentation", ["token bucket", "burst limits", "retry headers", "quotas"]),
    ("loyalty programme terms", ["tier thresholds", "points expiry", "partner airlines", "upgrades"]),
]


# ---------------------------------------------------------------------------------------------------------
# Fake personal data and secrets (all generated; none is real)
# ---------------------------------------------------------------------------------------------------------
def _luhn_check_digit(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:  # these positions are doubled once the check digit is appended
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    """True when the digits of `number` pass the Luhn checksum (as real card numbers do).

    Example:
        >>> luhn_valid("4111 1111 1111 1111")
        True
    """
    digits = [int(c) for c in number if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return bool(digits) and total % 10 == 0


def iban_valid(iban: str) -> bool:
    """True when an IBAN's two check digits are right (ISO 13616 mod-97).

    Example:
        >>> iban_valid("GB82 WEST 1234 5698 7654 32")
        True
    """
    s = iban.replace(" ", "").upper()
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


class Fake:
    """Seeded generators of personal data, secrets and ids."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def token(self, n: int, alphabet: str = B62) -> str:
        return "".join(self.rng.choices(alphabet, k=n))

    def person(self) -> dict[str, str]:
        r = self.rng
        first, last = r.choice(FIRST), r.choice(LAST)
        sep = r.choice([".", "_", ""])
        email = f"{first.lower()}{sep}{last.lower()}{r.randint(1, 99) if r.random() < 0.5 else ''}@{r.choice(DOMAINS)}"
        city, state, zip3 = r.choice(CITIES)
        return {
            "name": f"{first} {last}",
            "first": first,
            "email": email,
            "phone": self.phone(),
            "address": f"{r.randint(12, 9899)} {r.choice(STREETS)} {r.choice(STREET_SUFFIX)}, {city}, {state} {zip3}{r.randint(10, 99)}",
            "dob": f"{r.randint(1951, 2003)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
            "user_id": f"{first.lower()}_{last.lower()}_{r.randint(1000, 9999)}",
        }

    def phone(self) -> str:
        r = self.rng
        a, b, c = r.randint(201, 989), r.randint(200, 999), r.randint(0, 9999)
        return r.choice(
            [f"({a}) {b}-{c:04d}", f"+1 {a}-{b}-{c:04d}", f"{a}.{b}.{c:04d}", f"+44 20 7{b} {c:04d}"]
        )

    def card(self) -> str:
        prefix = self.rng.choice(["4", "4", "51", "55", "37"])
        length = 15 if prefix == "37" else 16
        body = prefix + "".join(self.rng.choices(string.digits, k=length - len(prefix) - 1))
        num = body + _luhn_check_digit(body)
        if length == 15:
            return f"{num[:4]} {num[4:10]} {num[10:]}"
        sep = self.rng.choice([" ", "-", ""])
        return sep.join(num[i : i + 4] for i in range(0, 16, 4))

    def iban(self) -> str:
        country, n = self.rng.choice([("DE", 18), ("FR", 23), ("NL", 14), ("GB", 18), ("ES", 20)])
        if country == "NL":
            bban = self.token(4, string.ascii_uppercase) + self.token(10, string.digits)
        elif country == "GB":
            bban = self.token(4, string.ascii_uppercase) + self.token(14, string.digits)
        else:
            bban = self.token(n, string.digits)
        numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
        check = 98 - int(numeric) % 97
        iban = f"{country}{check:02d}{bban}"
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if self.rng.random() < 0.6 else iban

    def ssn(self) -> str:
        area = self.rng.choice([a for a in range(1, 900) if a != 666])
        return f"{area:03d}-{self.rng.randint(1, 99):02d}-{self.rng.randint(1, 9999):04d}"

    def ip(self) -> str:
        r = self.rng
        return f"{r.choice([23, 34, 52, 81, 98, 145, 172, 185, 203])}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"

    def api_key(self) -> str:
        kind = self.rng.randrange(3)
        if kind == 0:
            return "sk-proj-" + self.token(48)
        if kind == 1:
            return "AKIA" + self.token(16, string.ascii_uppercase + "234567")
        return "ghp_" + self.token(36)

    def jwt(self) -> str:
        def b64(obj: dict[str, Any] | bytes) -> str:
            raw = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        payload = {
            "sub": self.token(12),
            "iat": 1793000000 + self.rng.randint(0, 10**6),
            "scope": "orders:read",
        }
        return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(payload)}.{b64(self.rng.randbytes(32))}"

    def order_id(self) -> str:
        return f"ORD-{self.rng.randint(10**7, 10**8 - 1)}"

    def date(self, day: datetime, ahead: tuple[int, int] = (2, 60)) -> str:
        return (day + timedelta(days=self.rng.randint(*ahead))).strftime("%Y-%m-%d")
