"""A generated text-action agent log: agents that call their tools in the response text, not `tool_calls`.

Ten task templates (a system prompt, a tool set and a calling convention each) run multi-step sessions:
REST agents write `GET https://host/path?k=v` or `POST https://host/path` followed by a JSON body, ReAct
agents write `Thought:` / `Action:` / `Action Input:` (some as `Action: tool[input]`), planner agents write
`name(args)` calls and end with `FINISH([...])`, and JSON agents answer `{"action": ..., "action_input":
...}`. Tool results come back as the next user turn ("Observation: ..." or the HTTP response). Five models
run the sessions, each with its own habits: some think aloud first, some wrap the call in a code fence,
some add a sentence of prose. Several templates share tool names (`search`, `lookup`, `FINISH`) and
some share a host, so the action alone does not say which sub-task a call is.

The hidden label of each call is `<template>:<action>` as the generator wrote it (written to a separate
CSV, never into the log), so a parser that misreads an action lowers the score instead of defining it.

Usage:
    >>> from slmlab.demo.text_actions import generate_text_action_logs
    >>> recs, labels = generate_text_action_logs(n_sessions=5, seed=0)
    >>> labels[0].split(":")[0] in TEMPLATES
    True
"""

from __future__ import annotations

import csv
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

LOG_FILE = "text_action_logs.jsonl"
LABEL_FILE = "text_action_labels.csv"
MODELS = ["gpt-4o", "claude-3-5-sonnet", "llama-3.1-70b-instruct", "qwen2.5-72b-instruct", "mistral-large"]
CITIES = ["Lisbon", "Denver", "Osaka", "Nairobi", "Toronto", "Krakow", "Austin"]
ITEMS = ["usb-c hub", "trail shoes", "desk lamp", "coffee grinder", "rain jacket", "yoga mat"]
NAMES = ["Priya Nair", "Tom Becker", "Amara Obi", "Luis Ortega", "Mei Chen"]
TOPICS = ["solid-state batteries", "the 1918 flu", "coral bleaching", "RISC-V adoption", "urban heat islands"]

# template: (style, system prompt, steps). A step is (action, argument builder key); a session runs
# the steps in order (optional ones, marked "?", with probability 1/2) and then the final action.
TEMPLATES: dict[str, dict[str, Any]] = {
    "shop_rest": {"style": "http", "host": "api.shopnow.example", "system": (
        "You operate the ShopNow REST API for customers. Reply with exactly one HTTP request per turn: "
        "`METHOD URL` and, for POST, a JSON body on the next lines. Endpoints: GET /v1/products?q=, "
        "GET /v1/products/{id}, POST /v1/carts/{id}/items, POST /v1/checkout. Today is {date}."),
        "steps": [("GET /v1/products", "q"), ("GET /v1/products/{id}", "none"),
                  ("POST /v1/carts/{id}/items", "cart"), ("POST /v1/checkout?", "pay")],
        "final": "answer"},
    "travel_rest": {"style": "http", "host": "api.tripsy.example", "system": (
        "You are Tripsy's booking agent. Call the API by writing one request per turn (METHOD URL, JSON "
        "body for POST). GET /flights?from=&to=&date=, GET /hotels?city=, POST /bookings. Date: {date}."),
        "steps": [("GET /flights", "trip"), ("GET /hotels?", "city"), ("POST /bookings", "book")],
        "final": "answer"},
    "crm_rest": {"style": "http", "host": "crm.internal.example", "system": (
        "Internal CRM assistant for {user}. Use the CRM HTTP API (one request per message): GET /contacts?"
        "name=, GET /contacts/{id}/deals, PATCH /deals/{id} with a JSON body. Be precise."),
        "steps": [("GET /contacts", "person"), ("GET /contacts/{id}/deals", "none"),
                  ("PATCH /deals/{id}?", "deal")],
        "final": "answer"},
    "research_react": {"style": "react", "system": (
        "Answer the question by reasoning step by step. You can use: search[query] (web search), "
        "lookup[term] (find a term in the last page), and finish with Final Answer: <answer>.\n"
        "Format:\nThought: ...\nAction: ...\nAction Input: ...\nObservation: ..."),
        "steps": [("search", "topic"), ("lookup?", "term"), ("search?", "topic")], "final": "react_final"},
    "support_react": {"style": "react", "system": (
        "You are a support agent for Zylo Telecom (date {date}). Tools: get_customer, get_invoice, "
        "open_ticket. Use Thought/Action/Action Input lines; give the customer a Final Answer."),
        "steps": [("get_customer", "person"), ("get_invoice?", "invoice"), ("open_ticket?", "ticket")],
        "final": "react_final"},
    "sql_react": {"style": "react", "system": (
        "You are a data analyst with a read-only warehouse. Tools: list_tables, describe_table, run_sql. "
        "Think, then act with `Action: tool` and `Action Input: <json>`; end with Final Answer."),
        "steps": [("list_tables?", "none"), ("describe_table", "table"), ("run_sql", "sql")],
        "final": "react_final"},
    "planner_calls": {"style": "call", "system": (
        "You are a planning agent. Each turn, emit one function call in Python syntax. Functions: "
        "search(query), lookup(entity), compute(expression), FINISH(answers: list[str])."),
        "steps": [("search", "topic"), ("lookup?", "term"), ("compute?", "expr")], "final": "FINISH"},
    "web_calls": {"style": "call", "system": (
        "You browse the web for the user. Call one action per turn: open_url(url), click(element_id), "
        "type_text(element_id, text), FINISH(answers). Today: {date}."),
        "steps": [("open_url", "url"), ("click?", "element"), ("type_text?", "typing"), ("click", "element")],
        "final": "FINISH"},
    "calendar_json": {"style": "json", "system": (
        "You manage {user}'s calendar. Respond ONLY with a JSON object {\"action\": <tool>, "
        "\"action_input\": <args>}. Tools: find_slots, create_event, notify. Use action \"Final Answer\" "
        "to reply to the user."),
        "steps": [("find_slots", "slot"), ("create_event", "event"), ("notify?", "person")],
        "final": "json_final"},
    "inventory_json": {"style": "json", "system": (
        "Warehouse assistant. Reply with JSON: {\"action\": tool name, \"action_input\": {...}}. Tools: "
        "lookup, reserve_stock, FINISH. lookup takes {\"sku\"}; reserve_stock {\"sku\", \"qty\"}."),
        "steps": [("lookup", "sku"), ("reserve_stock?", "qty")], "final": "json_FINISH"},
}  # fmt: skip


def _args(kind: str, rng: random.Random) -> dict[str, Any]:
    a, b = rng.sample(CITIES, 2)
    return {
        "q": {"q": rng.choice(ITEMS), "limit": rng.choice([5, 10, 20])},
        "none": {},
        "cart": {"sku": f"SKU-{rng.randint(100, 999)}", "qty": rng.randint(1, 3)},
        "pay": {"payment_method": rng.choice(["card", "paypal"]), "cart_id": rng.randint(10, 99)},
        "trip": {"from": a, "to": b, "date": f"2026-11-{rng.randint(1, 28):02d}"},
        "city": {"city": b, "nights": rng.randint(1, 5)},
        "book": {"flight_id": f"FL{rng.randint(100, 999)}", "passengers": rng.randint(1, 4)},
        "person": {"name": rng.choice(NAMES)},
        "deal": {"stage": rng.choice(["won", "lost", "negotiation"]), "amount": rng.randint(1, 90) * 1000},
        "topic": {"query": rng.choice(TOPICS) + rng.choice(["", " history", " latest research", " 2025"])},
        "term": {"term": rng.choice(["capacity", "mortality", "temperature", "market share"])},
        "invoice": {"invoice_id": f"INV-{rng.randint(1000, 9999)}"},
        "ticket": {"category": rng.choice(["billing", "outage", "roaming"]), "priority": rng.choice(["low", "high"])},
        "table": {"table": rng.choice(["orders", "customers", "events", "sessions"])},
        "sql": {"query": f"SELECT count(*) FROM {rng.choice(['orders', 'events'])} WHERE day > '2026-10-{rng.randint(1, 28):02d}'"},
        "expr": {"expression": f"{rng.randint(2, 99)} * {rng.randint(2, 99)} / 100"},
        "url": {"url": f"https://{rng.choice(['news', 'shop', 'docs'])}.example.org/{rng.choice(ITEMS).replace(' ', '-')}"},
        "element": {"element_id": rng.randint(3, 80)},
        "typing": {"element_id": rng.randint(3, 80), "text": rng.choice(ITEMS)},
        "slot": {"attendees": rng.sample(NAMES, 2), "duration_min": rng.choice([30, 45, 60])},
        "event": {"title": rng.choice(["sync", "design review", "1:1"]), "start": f"2026-11-{rng.randint(1, 28):02d}T10:00"},
        "sku": {"sku": f"SKU-{rng.randint(100, 999)}"},
        "qty": {"sku": f"SKU-{rng.randint(100, 999)}", "qty": rng.randint(1, 40)},
    }[kind]  # fmt: skip


def _user_goal(template: str, rng: random.Random) -> str:
    goals = {
        "shop_rest": [
            f"I want to buy a {rng.choice(ITEMS)}",
            f"order {rng.randint(2, 3)} {rng.choice(ITEMS)}s",
        ],
        "travel_rest": [
            f"fly me from {rng.choice(CITIES)} to {rng.choice(CITIES)} next week",
            "find a cheap trip",
        ],
        "crm_rest": [
            f"update the deal with {rng.choice(NAMES)}",
            f"what deals does {rng.choice(NAMES)} have?",
        ],
        "research_react": [f"What is known about {rng.choice(TOPICS)}?", f"Summarize {rng.choice(TOPICS)}."],
        "support_react": [
            "my bill is wrong this month",
            "I have no signal since yesterday",
            "why was I charged twice",
        ],
        "sql_react": ["how many orders did we get last week?", "count the events per day in October"],
        "planner_calls": [f"Who first studied {rng.choice(TOPICS)}?", "What is 17% of the 2024 budget?"],
        "web_calls": [f"buy a {rng.choice(ITEMS)} on the shop site", "find the docs page about rate limits"],
        "calendar_json": [f"set up a meeting with {rng.choice(NAMES)}", "book 45 minutes with the team"],
        "inventory_json": [
            f"do we have SKU-{rng.randint(100, 999)} in stock?",
            "reserve 12 units of the blue mugs",
        ],
    }
    return rng.choice(goals[template])


def _render(style: str, action: str, args: dict[str, Any], host: str, model: int, rng: random.Random) -> str:
    """The response text of one step, in the template's convention and the model's habits."""
    think = rng.choice(
        ["I should check this first.", "Next I need more information.", "Let me look that up."]
    )
    if style == "http":
        verb, path = action.split(" ", 1)
        path = path.replace("{id}", str(rng.randint(10, 9999)))
        url = f"https://{host}{path}"
        body = ""
        if verb == "GET" and args:
            url += "?" + "&".join(f"{k}={str(v).replace(' ', '+')}" for k, v in args.items())
        elif args:
            body = "\n" + json.dumps(args, indent=2 if model % 2 else None)
        text = f"{verb} {url}{body}"
        return f"```http\n{text}\n```" if model == 3 else (f"{think}\n{text}" if model == 1 else text)
    if style == "react":
        arg = json.dumps(args) if args else "{}"
        if model == 2 and len(args) == 1:
            return f"Thought: {think}\nAction: {action}[{next(iter(args.values()))}]"
        return f"Thought: {think}\nAction: {action}\nAction Input: {arg}"
    if style == "call":
        inner = ", ".join(f"{k}={json.dumps(v)}" for k, v in args.items())
        text = f"{action}({inner})"
        return f"```python\n{text}\n```" if model == 4 else (f"{think}\n{text}" if model in (1, 2) else text)
    payload = json.dumps({"action": action, "action_input": args}, indent=2 if model == 0 else None)
    return f"```json\n{payload}\n```" if model in (1, 3) else payload


def _observation(style: str, rng: random.Random) -> str:
    if style == "http":
        return f"HTTP/1.1 200 OK\n{json.dumps({'results': rng.randint(0, 12), 'id': rng.randint(10, 9999)})}"
    return f"Observation: {rng.choice(['found 3 results', 'no match', 'ok', 'page loaded', '42 rows'])}"


def generate_text_action_logs(n_sessions: int = 240, seed: int = 0) -> tuple[list[dict[str, Any]], list[str]]:
    """Log records (one per LLM call) and the hidden `<template>:<action>` label of each.

    Example:
        >>> recs, labels = generate_text_action_logs(n_sessions=3, seed=2)
        >>> len(recs) == len(labels) > 3
        True
    """
    rng = random.Random(seed)
    start = datetime(2026, 11, 2, 9, tzinfo=timezone.utc)
    records, labels = [], []
    names = sorted(TEMPLATES)
    for s in range(n_sessions):
        template = names[s % len(names)] if s < len(names) else rng.choice(names)
        spec = TEMPLATES[template]
        model_i = rng.randrange(len(MODELS))
        day = start + timedelta(days=rng.randint(0, 13))
        system = (
            spec["system"]
            .replace("{date}", day.strftime("%Y-%m-%d"))
            .replace("{user}", rng.choice(NAMES).split()[0])
        )
        messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": _user_goal(template, rng)},
        ]
        steps = [
            a.rstrip("?")
            for a, _ in [(a, k) for a, k in spec["steps"]]
            if not a.endswith("?") or rng.random() < 0.5
        ]
        kinds = {a.rstrip("?"): k for a, k in spec["steps"]}
        plan = steps + [spec["final"]]
        for step, action in enumerate(plan):
            final = action == spec["final"]
            if final and action == "answer":
                text, label_action = rng.choice(["Done: your order is placed.", "All set, booking confirmed.",
                                                 "I updated it for you."]), "respond"  # fmt: skip
            elif final and action == "react_final":
                text, label_action = (
                    f"Thought: I can answer now.\nFinal Answer: {rng.choice(['42', 'It was fixed.', 'See the summary above.'])}",
                    "respond",
                )
            elif final and action == "json_final":
                text = json.dumps({"action": "Final Answer", "action_input": "Your meeting is booked."})
                label_action = "respond"
            elif final:  # FINISH, as a call or as a JSON action
                answers = rng.sample(["Paris", "1918", "17.4", "yes", "SKU-311", "done"], rng.randint(1, 2))
                text = (json.dumps({"action": "FINISH", "action_input": {"answers": answers}})
                        if action == "json_FINISH" else _render("call", "FINISH", {"answers": answers}, "", model_i, rng))  # fmt: skip
                label_action = "FINISH"
            else:
                text = _render(
                    spec["style"], action, _args(kinds[action], rng), spec.get("host", ""), model_i, rng
                )
                label_action = action
            ts = day + timedelta(seconds=11 * step + rng.randint(0, 9))
            n_in = sum(len(m["content"]) for m in messages) // 4
            records.append({
                "request": {"model": MODELS[model_i], "messages": list(messages), "temperature": 0},
                "response": {"id": f"ta{seed}-{s:04d}-{step:02d}", "object": "chat.completion",
                             "created": int(ts.timestamp()), "model": MODELS[model_i],
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": n_in, "completion_tokens": len(text) // 4,
                                       "total_tokens": n_in + len(text) // 4}},
                "metadata": {"agent": template, "session_id": f"ta-{seed}-{s}", "step": step},
                "latency_ms": round(rng.lognormvariate(6.6, 0.4), 1),
                "timestamp": ts.isoformat().replace("+00:00", "Z"),
            })  # fmt: skip
            labels.append(f"{template}:{label_action}")
            messages = messages + [
                {"role": "assistant", "content": text},
                {"role": "user", "content": _observation(spec["style"], rng)},
            ]
    return records, labels


def write_text_action_logs(out_dir: str | Path, n_sessions: int = 240, seed: int = 0) -> Path:
    """Write `text_action_logs.jsonl` and `text_action_labels.csv` (`call_id,task_label`); returns the log.

    Example:
        >>> path = write_text_action_logs(tmp_dir)  # doctest: +SKIP
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records, labels = generate_text_action_logs(n_sessions, seed)
    with (out / LOG_FILE).open("w", encoding="utf-8") as fl:
        for rec in records:
            fl.write(json.dumps(rec, ensure_ascii=False) + "\n")
    with (out / LABEL_FILE).open("w", encoding="utf-8", newline="") as fc:
        w = csv.writer(fc, lineterminator="\n")
        w.writerow(["call_id", "task_label"])
        w.writerows([rec["response"]["id"], lab] for rec, lab in zip(records, labels, strict=True))
    return out / LOG_FILE
