"""One demo session while it is generated: its customer, the calls made so far and the facts other agents
wrote, and the customer's first message per intent.

Usage:
    >>> from slmlab.demo.sessions import estimate_tokens
    >>> estimate_tokens("four")
    1
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from slmlab.demo.fake import AIRPORTS, LOCALES, PRODUCTS, TIERS, UPPER_DIGITS

if TYPE_CHECKING:
    from slmlab.demo.records import Generator


# ---------------------------------------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------------------------------------
def estimate_tokens(text: str) -> int:
    """Tokens of a text at ~4 characters per token (the usual rate of OpenAI tokenizers on English)."""
    return max(1, round(len(text) / 4))


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


@dataclass
class Call:
    """One call before it becomes a log record."""

    label: str
    agent: str
    messages: list[dict[str, Any]]
    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  # [{"name", "arguments": dict}]
    tools: bool = False


class Session:
    """Builds the calls of one session, keeping the state later steps quote (tool results, notes)."""

    def __init__(self, gen: Generator, day: datetime, version: int):
        self.g = gen
        self.r = gen.rng
        self.f = gen.fake
        self.day = day
        self.version = version
        self.person = self.f.person()
        self.tier = self.r.choice(TIERS)
        self.locale = self.r.choice(LOCALES)
        self.calls: list[Call] = []
        self.notes: list[str] = []  # what other agents wrote for the responder (in its prompt)
        self.facts: list[str] = []  # the same facts as plain sentences (what the responder says)
        self.intent = "general_question"

    def system(self, agent: str) -> dict[str, str]:
        template = self.g.prompts[agent][self.version]
        text = template.format(date=self.day.strftime("%Y-%m-%d"), tier=self.tier, locale=self.locale)
        return {"role": "system", "content": text}

    def add(self, call: Call) -> None:
        self.calls.append(call)

    # --- customer messages ----------------------------------------------------------------------------
    def customer_message(self, intent: str) -> str:
        r, f, p = self.r, self.f, self.person
        order = self.order = f.order_id()
        product = self.product = r.choice(PRODUCTS)
        self.route = r.sample(AIRPORTS, 2)
        self.travel_date = f.date(self.day)
        greet = r.choice(["Hi,", "Hello,", "Hey there,", "Good morning,", "", "Hi team,"])
        sign = r.choice([f"\nThanks, {p['name']}", f"\n-- {p['first']}", "", f"\nBest regards,\n{p['name']}"])
        contact = r.choice(
            [
                f" My email is {p['email']}.",
                f" You can reach me at {p['phone']} or {p['email']}.",
                f" (account email: {p['email']})",
                f" Email: {p['email']}, phone: {p['phone']}.",
            ]
        )
        if intent == "order_status":
            body = r.choice(
                [
                    f"I ordered a {product} on {f.date(self.day, (-20, -3))} (order {order}) and it still hasn't arrived. Where is it?",
                    f"Can you tell me the status of order {order}? The tracking page has said 'label created' for a week.",
                    f"my {product} order {order} was supposed to be delivered yesterday to {p['address']} but nothing came",
                    f"Order number {order}. When will it ship? I need the {product} before my trip on {self.travel_date}.",
                    f"Hello, just checking on {order} - did it leave the warehouse yet? Delivery address is {p['address']}.",
                ]
            )
        elif intent == "flight_change":
            o, d = self.route
            body = r.choice(
                [
                    f"I need to move my flight from {o} to {d} to {self.travel_date}, {r.randint(1, 4)} passengers, economy if possible.",
                    f"Are there any flights {o} -> {d} on {self.travel_date}? My original one got cancelled. Booking ref {f.token(6, UPPER_DIGITS)}.",
                    f"Can I change my booking to an earlier flight? Flying {o} to {d}, would like {self.travel_date} instead. Date of birth on the ticket: {p['dob']}.",
                    f"please find me a business class seat {o}-{d} around {self.travel_date} for me and my partner",
                ]
            )
        elif intent == "refund_request":
            body = r.choice(
                [
                    f"I was charged twice for order {order} on my card {f.card()}. Please refund the duplicate charge.",
                    f"I returned the {product} (order {order}) two weeks ago and still have no refund. Please send it to my bank account {f.iban()}.",
                    f"Cancel order {order} and refund me. I paid with {f.card()}, expiry {r.randint(1, 12):02d}/{r.randint(27, 31)}.",
                    f"The {product} arrived broken. I want my money back for {order}; IBAN for the refund: {f.iban()}.",
                ]
            )
        elif intent == "technical_issue":
            body = r.choice(
                [
                    f"Your API keeps returning 401 for my integration. I'm using key {f.api_key()} from IP {f.ip()}. What's wrong?",
                    f"The app crashes at checkout when I enter my card. I'm on iOS 19, my account is {p['email']}.",
                    f"I can't log in since yesterday - it says 'session expired' every time. My IP is {f.ip()} if that helps.",
                    f"Webhook deliveries to our endpoint fail with 403. Token we send: Bearer {f.jwt()}",
                ]
            )
        elif intent == "account_update":
            body = r.choice(
                [
                    f"Please update my address to {self.f.person()['address']}. For verification my SSN is {f.ssn()} and DOB {p['dob']}.",
                    f"I changed my phone number, new one is {f.phone()}. Old one was {p['phone']}.",
                    f"Update the card on file to {f.card()} please, the old one expired.",
                    f"Can you change my email to {self.f.person()['email']}? Date of birth {p['dob']} for verification.",
                ]
            )
        elif intent == "complaint":
            body = r.choice(
                [
                    f"The staff at the {self.route[0]} counter were incredibly rude to me and my kids. I want this escalated.",
                    f"This is the third time my {product} order arrived damaged ({order}). Unacceptable.",
                    f"I waited 2 hours on the phone yesterday and got disconnected. Call me back at {p['phone']}.",
                    f"My wheelchair assistance request for the flight on {self.travel_date} was ignored. I need to talk to someone.",
                ]
            )
        else:
            body = r.choice(
                [
                    f"How many bags can I check on a basic economy ticket from {self.route[0]}?",
                    "What are your customer service opening hours on weekends?",
                    f"Do gold members get free seat selection? I'm flying {self.route[0]} to {self.route[1]} soon.",
                    f"Is the {product} covered by a warranty, and for how long?",
                ]
            )
        return "\n".join(x for x in (greet, body + contact + sign) if x).strip()
