"""A generated many-tool log: single-turn requests to an assistant that offers hundreds of functions.

The shape of function-calling benchmarks and of "one assistant, every API" products: each call is one user
request with a handful of the functions offered (the right one among look-alikes), answered by one tool
call, or by a clarifying question when the request is too vague. Over 250 functions are built from 44
entities (flights, invoices, calendar events, ...) times the operations that make sense for each (search,
get details, list, create, update, cancel/delete, check status) plus standalone utilities (currency
conversion, translation, unit conversion, ...). Most functions are called only a few times (a long tail:
between 1 and 10 calls each), so a clusterer cannot lean on large clusters.

Request wording varies the way people write: openers ("hey", "Could you", "I need to"), several verbs per
operation ("find", "look up", "search for"), several nouns per entity ("invoice", "bill"), slot values
(dates, cities, names, ids), casing, punctuation and closers. Neighbouring functions share words ("list my
calendar events" vs "search calendar events for 'standup'"), as they do in real tool catalogues.

Records are OpenAI chat-completions request/response lines (the `openai` reader parses them); the hidden
label of each call (the function called, or "respond") goes to a separate CSV, never to the log.

Usage:
    >>> from slmlab.demo.many_tools import generate_many_tool_logs
    >>> recs, labels = generate_many_tool_logs(seed=0)
    >>> len(set(labels)) > 200
    True
"""

from __future__ import annotations

import csv
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

LOG_FILE = "many_tool_logs.jsonl"
LABEL_FILE = "many_tool_labels.csv"

CITIES = ["Lisbon", "Denver", "Osaka", "Nairobi", "Toronto", "Krakow", "Austin", "Lyon", "Seoul", "Perth"]
NAMES = ["Priya", "Tom", "Amara", "Luis", "Mei", "Jonas", "Fatima", "Oskar", "Dana", "Kenji"]
TOPICS = ["budget review", "standup", "Q3 roadmap", "onboarding", "dentist", "yoga class", "1:1 with Sam"]
PRODUCTS = ["wireless earbuds", "a standing desk", "running shoes", "an espresso machine", "a 4K monitor"]

# entity: (nouns, slot kind, operations). Operations name the function `<op>_<entity>`.
ENTITIES: dict[str, tuple[list[str], str, list[str]]] = {
    "flight": (
        ["flight", "flights", "plane ticket"],
        "trip",
        ["search", "get", "cancel", "status", "create"],
    ),
    "hotel_booking": (
        ["hotel", "hotel room", "hotel booking"],
        "stay",
        ["search", "get", "cancel", "create", "update"],
    ),
    "rental_car": (["rental car", "car rental", "hire car"], "stay", ["search", "create", "cancel", "get"]),
    "train_ticket": (
        ["train ticket", "train", "rail ticket"],
        "trip",
        ["search", "create", "cancel", "status"],
    ),
    "restaurant_reservation": (
        ["table", "restaurant reservation", "dinner booking"],
        "stay",
        ["search", "create", "cancel", "update"],
    ),
    "calendar_event": (
        ["calendar event", "meeting", "appointment"],
        "event",
        ["list", "search", "create", "update", "delete", "get"],
    ),
    "reminder": (["reminder", "alarm"], "event", ["list", "create", "delete", "update"]),
    "task": (["task", "to-do item", "todo"], "title", ["list", "create", "update", "delete", "get"]),
    "note": (["note", "notes"], "title", ["list", "search", "create", "delete", "update"]),
    "email": (["email", "mail", "message"], "person", ["search", "create", "delete", "get", "list"]),
    "contact": (
        ["contact", "phone number", "address book entry"],
        "person",
        ["search", "create", "update", "delete", "get"],
    ),
    "invoice": (["invoice", "bill"], "number", ["list", "get", "create", "status", "delete"]),
    "payment": (["payment", "transfer"], "money", ["create", "status", "cancel", "list"]),
    "subscription": (
        ["subscription", "plan", "membership"],
        "product",
        ["list", "cancel", "update", "get", "create"],
    ),
    "order": (["order", "purchase"], "number", ["status", "cancel", "get", "list", "update"]),
    "product": (["product", "item"], "product", ["search", "get", "compare", "list"]),
    "return_request": (["return", "refund request"], "number", ["create", "status", "cancel"]),
    "support_ticket": (
        ["support ticket", "ticket", "case"],
        "number",
        ["create", "status", "update", "list", "delete"],
    ),
    "package": (["package", "parcel", "shipment"], "number", ["status", "get", "update"]),
    "weather": (["weather", "forecast"], "place", ["get", "compare"]),
    "air_quality": (["air quality", "pollution level"], "place", ["get"]),
    "stock_quote": (["stock price", "share price", "stock"], "ticker", ["get", "compare", "list"]),
    "crypto_price": (["crypto price", "bitcoin price", "coin price"], "ticker", ["get", "list"]),
    "news_article": (["news", "headlines", "articles"], "title", ["search", "list", "get"]),
    "recipe": (["recipe", "recipes"], "title", ["search", "get", "create"]),
    "movie": (["movie", "film"], "title", ["search", "get", "list"]),
    "movie_ticket": (["movie ticket", "cinema seats"], "stay", ["create", "cancel"]),
    "song": (["song", "track"], "title", ["search", "get"]),
    "playlist": (["playlist"], "title", ["create", "update", "delete", "list"]),
    "podcast": (["podcast", "episode"], "title", ["search", "list"]),
    "file": (["file", "document"], "title", ["search", "delete", "get", "list", "create"]),
    "folder": (["folder", "directory"], "title", ["create", "delete", "list"]),
    "repository": (["repo", "repository"], "title", ["create", "search", "list", "delete"]),
    "pull_request": (["pull request", "PR"], "number", ["create", "list", "get", "update", "status"]),
    "issue": (["issue", "bug report"], "number", ["create", "list", "update", "get"]),
    "server": (["server", "VM", "instance"], "title", ["status", "create", "delete", "list", "update"]),
    "database_backup": (["database backup", "backup", "snapshot"], "title", ["create", "list", "delete"]),
    "job_posting": (["job posting", "job", "opening"], "title", ["search", "create", "delete"]),
    "employee": (["employee", "staff member", "colleague"], "person", ["search", "get", "update"]),
    "leave_request": (
        ["vacation request", "leave request", "time off"],
        "event",
        ["create", "status", "cancel"],
    ),
    "expense_report": (["expense report", "expense", "receipt"], "money", ["create", "status", "list"]),
    "workout": (["workout", "run", "training session"], "event", ["list", "create", "get"]),
    "prescription": (["prescription", "medication refill"], "number", ["status", "create"]),
    "doctor_appointment": (
        ["doctor appointment", "GP appointment", "checkup"],
        "event",
        ["create", "cancel", "search"],
    ),
    "insurance_claim": (["insurance claim", "claim"], "number", ["create", "status", "get", "update"]),
    "bank_account": (
        ["bank account", "account balance", "checking account"],
        "number",
        ["get", "list", "update"],
    ),
    "budget": (["budget", "spending limit"], "money", ["create", "get", "update", "list"]),
    "coupon": (["coupon", "promo code", "discount code"], "product", ["search", "get", "create"]),
    "parking_spot": (["parking spot", "parking"], "stay", ["search", "create", "cancel"]),
    "gym_class": (
        ["gym class", "spin class", "fitness class"],
        "event",
        ["search", "create", "cancel", "list"],
    ),
    "online_course": (["course", "online class", "lesson"], "title", ["search", "get", "list", "create"]),
    "wishlist": (["wishlist", "wish list", "saved items"], "product", ["list", "update", "delete"]),
}

# Standalone utilities: name -> (request templates, argument builder name).
UTILITIES: dict[str, list[str]] = {
    "convert_currency": ["{open}convert {amount} {cur} to {cur2}", "how much is {amount} {cur} in {cur2}"],
    "convert_units": ["{open}convert {num} miles to km", "what's {num} pounds in kilograms"],
    "translate_text": ["{open}translate '{phrase}' into {lang}", "how do you say '{phrase}' in {lang}"],
    "detect_language": ["what language is '{phrase}' written in", "{open}detect the language of: {phrase}"],
    "calculate_tip": [
        "{open}work out a {pct}% tip on {amount} {cur}",
        "tip for a {amount} {cur} bill at {pct}%?",
    ],
    "calculate_mortgage": ["{open}estimate the monthly payment on a {amount}k mortgage over {num} years"],
    "get_time_zone": ["what time is it in {city} right now", "{open}tell me the local time in {city}"],
    "get_exchange_rate": ["current {cur} to {cur2} exchange rate", "{open}check the {cur}/{cur2} rate"],
    "get_directions": [
        "{open}give me directions from {city} to {city2}",
        "how do I get from {city} to {city2}",
    ],
    "find_nearby_places": [
        "{open}find coffee shops near {city} center",
        "any pharmacies open near me in {city}?",
    ],
    "shorten_url": [
        "{open}shorten this link: https://example.com/{word}/{num}",
        "make a short url for example.com/{word}",
    ],
    "generate_password": [
        "{open}generate a strong {num}-character password",
        "I need a random password, {num} chars",
    ],
    "check_domain_availability": ["is {word}.com available?", "{open}check if the domain {word}.io is free"],
    "get_public_holidays": [
        "{open}list public holidays in {country} this year",
        "which days are bank holidays in {country}",
    ],
    "summarize_url": [
        "{open}summarize the article at https://news.example.org/{word}",
        "tl;dr of example.org/{word} please",
    ],
    "get_word_definition": ["define '{word}'", "{open}what does the word '{word}' mean"],
    "get_synonyms": ["synonyms for '{word}'?", "{open}give me other words for {word}"],
    "set_thermostat": [
        "{open}set the thermostat to {num} degrees",
        "make it {num} degrees in the living room",
    ],
    "toggle_lights": ["{open}turn off the kitchen lights", "switch the bedroom lights on"],
    "lock_door": ["{open}lock the front door", "is the back door locked? lock it"],
    "play_music": ["{open}play some {genre}", "put on {genre} music"],
    "get_sunrise_sunset": ["when is sunset in {city} today", "{open}sunrise time in {city} tomorrow"],
}

VERBS: dict[str, list[str]] = {
    "search": ["search for", "find", "look for", "look up", "show me options for"],
    "get": ["get the details of", "show me", "pull up", "what are the details of", "open"],
    "list": ["list", "show all", "what are", "give me a list of"],
    "create": ["create", "add", "make", "set up", "new"],
    "update": ["update", "change", "edit", "modify", "reschedule"],
    "delete": ["delete", "remove", "get rid of", "trash"],
    "cancel": ["cancel", "call off", "drop"],
    "status": ["check the status of", "what's the status of", "track", "where is"],
    "compare": ["compare", "which is better:", "show a comparison of"],
}
OPENERS = ["", "", "hey, ", "Hi! ", "Could you ", "Can you please ", "I need to ", "please ", "Quick one: "]
QUESTION_OPENERS = ["", "", "hey, ", "Hi! ", "Quick one: ", "so "]
BOOK_VERBS = ["book", "reserve", "schedule", "get me"]  # create, for what is booked (trips, stays, events)
CLOSERS = ["", "", "", " thanks", " asap", " please.", " — thank you!", "?", "."]
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CAD", "INR"]
LANGS = ["Spanish", "German", "Japanese", "Swahili", "Portuguese"]
PHRASES = [
    "where is the train station",
    "the meeting moved to Friday",
    "thank you for your help",
    "good morning",
]
WORDS = ["ephemeral", "sonder", "bright", "quarantine", "lattice", "harbor", "nimbus", "cobalt"]
COUNTRIES = ["Kenya", "Canada", "Poland", "Japan", "Brazil"]
GENRES = ["jazz", "lo-fi", "classical", "80s pop", "techno"]
SYSTEMS = [
    "You are a helpful assistant. Use the provided functions when they help answer the request.",
    "You are an AI assistant with tool access. Call a function when the user asks for an action.",
    "",
]


def _slot(kind: str, rng: random.Random, start: datetime) -> tuple[str, dict[str, Any]]:
    """A phrase naming the object of a request and the arguments it implies."""
    day = (start + timedelta(days=rng.randint(1, 60))).strftime(rng.choice(["%B %d", "%d/%m", "%a %b %d"]))
    if kind == "trip":
        a, b = rng.sample(CITIES, 2)
        return f"from {a} to {b} on {day}", {"origin": a, "destination": b, "date": day}
    if kind == "stay":
        c = rng.choice(CITIES)
        return f"in {c} for {day}", {"location": c, "date": day}
    if kind == "event":
        t = rng.choice(TOPICS)
        return f"'{t}' on {day}", {"title": t, "date": day}
    if kind == "title":
        w = rng.choice(WORDS + TOPICS)
        return f"called '{w}'", {"name": w}
    if kind == "person":
        n = rng.choice(NAMES)
        return f"for {n}", {"person": n}
    if kind == "number":
        ident = str(rng.randint(1000, 99999))
        return rng.choice(["#", "no. ", "", "number "]) + ident, {"id": ident}
    if kind == "money":
        amt = rng.randint(5, 900)
        return f"of {amt} {rng.choice(CURRENCIES)}", {"amount": amt}
    if kind == "product":
        p = rng.choice(PRODUCTS)
        return f"for {p}", {"query": p}
    if kind == "place":
        c = rng.choice(CITIES)
        return f"in {c}", {"location": c}
    if kind == "ticker":
        t = rng.choice(["AAPL", "NVDA", "TSLA", "BTC", "ETH", "MSFT"])
        return f"for {t}", {"symbol": t}
    return "", {}


def _utility_request(name: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
    values = {
        "open": rng.choice(OPENERS).lower(),
        "amount": rng.randint(5, 950),
        "cur": rng.choice(CURRENCIES),
        "cur2": rng.choice(CURRENCIES),
        "num": rng.randint(2, 40),
        "phrase": rng.choice(PHRASES),
        "lang": rng.choice(LANGS),
        "pct": rng.choice([10, 15, 18, 20]),
        "city": rng.choice(CITIES),
        "city2": rng.choice(CITIES),
        "word": rng.choice(WORDS),
        "country": rng.choice(COUNTRIES),
        "genre": rng.choice(GENRES),
    }
    text = rng.choice(UTILITIES[name]).format(**values)
    args = {k: v for k, v in values.items() if "{" + k + "}" in "".join(UTILITIES[name]) and k != "open"}
    return text, args


def functions() -> dict[str, dict[str, Any]]:
    """Every function of the catalogue as an OpenAI tool schema, by name."""
    out: dict[str, dict[str, Any]] = {}
    for entity, (nouns, _, ops) in ENTITIES.items():
        for op in ops:
            name = f"{op}_{entity}"
            desc = f"{op.capitalize()} {nouns[0]} records."
            out[name] = {"type": "function", "function": {"name": name, "description": desc, "parameters": {
                "type": "object", "properties": {"query": {"type": "string"}}}}}  # fmt: skip
    for name in UTILITIES:
        out[name] = {"type": "function", "function": {"name": name, "description": name.replace("_", " "),
                     "parameters": {"type": "object", "properties": {}}}}  # fmt: skip
    return out


def generate_many_tool_logs(
    seed: int = 0, max_calls_per_function: int = 10, clarify_share: float = 0.04
) -> tuple[list[dict[str, Any]], list[str]]:
    """Log records and the hidden label of each (the function called, or "respond" for a clarification).

    Each function gets between 1 and `max_calls_per_function` calls (a long tail: the count is
    1 + a geometric draw, capped); `clarify_share` of the requests are answered with a question instead.

    Example:
        >>> recs, labels = generate_many_tool_logs(seed=1)
        >>> recs[0]["response"]["choices"][0]["finish_reason"] in ("tool_calls", "stop")
        True
    """
    rng = random.Random(seed)
    start = datetime(2026, 10, 5, 8, tzinfo=timezone.utc)
    catalogue = functions()
    names = sorted(catalogue)
    plan: list[str] = []
    for name in names:
        k = 1
        while k < max_calls_per_function and rng.random() < 0.72:
            k += 1
        plan += [name] * k
    rng.shuffle(plan)
    records, labels = [], []
    for i, name in enumerate(plan):
        if name in UTILITIES:
            request, args = _utility_request(name, rng)
        else:
            op, entity = name.split("_", 1)
            nouns, kind, _ = ENTITIES[entity]
            obj, args = _slot(kind, rng, start)
            verbs = VERBS[op] + (BOOK_VERBS if op == "create" and kind in ("trip", "stay", "event") else [])
            verb = rng.choice(verbs)
            noun = rng.choice(nouns)
            mine = rng.choice(["", "my ", "the ", "our "]) if op != "search" else ""
            question = verb.split()[0] in ("what", "what's", "where", "which")
            opener = rng.choice(QUESTION_OPENERS if question else OPENERS)
            request = f"{opener}{verb} {mine}{noun} {obj}".strip() + ("?" if question else "")
        request = (request[:1].upper() + request[1:]) if rng.random() < 0.7 else request.lower()
        request += rng.choice(CLOSERS)
        offered = sorted({name, *rng.sample(names, rng.randint(4, 15))})
        system = rng.choice(SYSTEMS)
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": request}
        ]
        if rng.random() < clarify_share:
            label = "respond"
            message = {"role": "assistant", "content": rng.choice([
                "Sure, could you tell me which one you mean?", "Happy to help. Which date works for you?",
                "I can do that. Can you give me a few more details first?"])}  # fmt: skip
            finish = "stop"
        else:
            label = name
            tc = {"id": f"call_{seed}_{i}", "type": "function",
                  "function": {"name": name, "arguments": json.dumps(args)}}  # fmt: skip
            message = {"role": "assistant", "content": None, "tool_calls": [tc]}
            finish = "tool_calls"
        ts = start + timedelta(seconds=37 * i + rng.randint(0, 30))
        n_in = 40 + 35 * len(offered) + len(request) // 4
        records.append({
            "request": {"model": "gpt-4o-mini", "messages": messages,
                        "tools": [catalogue[n] for n in offered], "temperature": 0},
            "response": {"id": f"chatcmpl-mt{seed}-{i:05d}", "object": "chat.completion",
                         "created": int(ts.timestamp()), "model": "gpt-4o-mini-2024-07-18",
                         "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                         "usage": {"prompt_tokens": n_in, "completion_tokens": 12 + len(json.dumps(args)) // 4,
                                   "total_tokens": n_in + 20}},
            "metadata": {"agent": "assistant", "session_id": f"mt-{seed}-{i}", "step": 0},
            "latency_ms": round(rng.lognormvariate(6.3, 0.3), 1),
            "timestamp": ts.isoformat().replace("+00:00", "Z"),
        })  # fmt: skip
        labels.append(label)
    return records, labels


def write_many_tool_logs(out_dir: str | Path, seed: int = 0) -> Path:
    """Write `many_tool_logs.jsonl` and `many_tool_labels.csv` (`call_id,task_label`); returns the log path.

    Example:
        >>> path = write_many_tool_logs(tmp_dir)  # doctest: +SKIP
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records, labels = generate_many_tool_logs(seed)
    with (out / LOG_FILE).open("w", encoding="utf-8") as fl:
        for rec in records:
            fl.write(json.dumps(rec, ensure_ascii=False) + "\n")
    with (out / LABEL_FILE).open("w", encoding="utf-8", newline="") as fc:
        w = csv.writer(fc, lineterminator="\n")
        w.writerow(["call_id", "task_label"])
        w.writerows([rec["response"]["id"], lab] for rec, lab in zip(records, labels, strict=True))
    return out / LOG_FILE
