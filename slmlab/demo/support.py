"""Customer-support sessions of the demo logs: intent classifier, planner, tool-calling worker (arguments,
results, notes), then the responder. A mixin of the generator (`slmlab.demo.records`).

Usage:
    >>> from slmlab.demo.synth import generate_agent_logs
    >>> generate_agent_logs(1)[0]["metadata"]["agent"]
    'intent_classifier'
"""

from __future__ import annotations

import json
import string
from typing import Any

from slmlab.demo.company import TICKETS
from slmlab.demo.fake import CITIES, PRODUCTS, TABLES, UPPER_DIGITS
from slmlab.demo.sessions import Call, Session, dumps


class SupportSessions:
    """Support sessions: `_support` and the worker's tool steps."""

    def _support(self, s: Session) -> None:
        r = self.rng
        intent = r.choices(
            ["order_status", "flight_change", "refund_request", "technical_issue", "account_update", "complaint",
             "general_question"],
            weights=[0.26, 0.2, 0.14, 0.1, 0.1, 0.1, 0.1],
        )[0]  # fmt: skip
        s.intent = intent
        msg = s.customer_message(intent)
        user = {"role": "user", "content": msg}
        language = "en"
        verdict = {
            "intent": intent,
            "confidence": round(r.uniform(0.62, 0.99), 2),
            "language": language,
            "needs_human": intent == "complaint",
        }
        s.add(
            Call(
                "classify_intent", "intent_classifier", [s.system("intent_classifier"), user], dumps(verdict)
            )
        )

        plan_steps = self._support_actions(intent, s)
        if r.random() < 0.55:
            steps = [
                {"id": i + 1, "agent": "worker", "action": a, "input": self._step_input(a, s)}
                for i, a in enumerate(plan_steps)
            ]
            steps.append(
                {"id": len(steps) + 1, "agent": "responder", "action": "respond", "input": "final answer"}
            )
            plan = {"goal": self._goal(intent, s), "steps": steps, "done_when": "the customer has an answer"}
            content = f"Customer request ({intent}, {s.tier} tier):\n{msg}"
            s.add(
                Call(
                    "plan_task",
                    "planner",
                    [s.system("planner"), {"role": "user", "content": content}],
                    dumps(plan),
                )
            )

        history: list[dict[str, Any]] = [s.system("worker"), user]
        for action in plan_steps:
            args = self._tool_args(action, s)
            call_id = "call_" + self.fake.token(24)
            s.add(
                Call(
                    action,
                    "worker",
                    list(history),
                    tool_calls=[{"name": action, "arguments": args}],
                    tools=True,
                )
            )
            result = self._tool_result(action, args, s)
            history.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {"name": action, "arguments": dumps(args)},
                        }
                    ],
                }
            )
            history.append({"role": "tool", "tool_call_id": call_id, "content": result})
            if len(result) > 700 and r.random() < 0.7:
                self._summarize(s, "summarize_tool_result", f"Tool `{action}` returned:\n{result}")
            else:
                s.notes.append(self._tool_note(action, json.loads(result)))
            s.facts.append(self._tool_note(action, json.loads(result)))
        self._respond(s, msg)

    def _support_actions(self, intent: str, s: Session) -> list[str]:
        r = self.rng
        if intent == "order_status":
            acts = ["lookup_order"] + (["send_email"] if r.random() < 0.3 else [])
        elif intent == "flight_change":
            acts = ["search_flights"] + (["send_email"] if r.random() < 0.4 else [])
        elif intent == "refund_request":
            acts = ["lookup_order", "create_ticket"] if r.random() < 0.6 else ["lookup_order"]
        elif intent in ("technical_issue", "complaint"):
            acts = ["create_ticket"] + (["query_database"] if r.random() < 0.3 else [])
        elif intent == "account_update":
            acts = ["query_database", "send_email"] if r.random() < 0.5 else ["create_ticket"]
        else:
            acts = ["query_database"] if r.random() < 0.3 else []
        return acts

    def _goal(self, intent: str, s: Session) -> str:
        return {
            "order_status": f"Tell {s.person['first']} where order {s.order} is",
            "flight_change": f"Find and offer flights {s.route[0]}-{s.route[1]} on {s.travel_date}",
            "refund_request": f"Resolve the refund for order {s.order}",
            "technical_issue": "Get the technical issue to engineering with full details",
            "account_update": "Update the customer's account details safely",
            "complaint": "Escalate the complaint to a human agent",
        }.get(intent, "Answer the customer's question")

    def _step_input(self, action: str, s: Session) -> str:
        return {
            "lookup_order": f"order {s.order}",
            "search_flights": f"{s.route[0]} to {s.route[1]} on {s.travel_date}",
            "create_ticket": "ticket with the customer's details",
            "send_email": f"confirmation to {s.person['email']}",
            "query_database": "customer history",
        }[action]

    def _tool_args(self, action: str, s: Session) -> dict[str, Any]:
        r, p = self.rng, s.person
        if action == "lookup_order":
            return {"order_id": s.order, "customer_email": p["email"]}
        if action == "search_flights":
            args: dict[str, Any] = {"origin": s.route[0], "destination": s.route[1], "date": s.travel_date,
                                    "passengers": r.randint(1, 4)}  # fmt: skip
            if r.random() < 0.6:
                args["cabin"] = r.choice(["economy", "economy", "premium_economy", "business"])
            return args
        if action == "create_ticket":
            subject, reason = r.choice(TICKETS.get(s.intent, TICKETS["complaint"]))
            args = {
                "subject": subject.format(order=s.order, product=s.product),
                "description": f"{p['name']} ({p['email']}) reports: {reason.format(order=s.order, product=s.product)}. "
                f"Tier: {s.tier}. Address on file: {p['address']}.",
                "priority": r.choice(["normal", "high", "high", "urgent"]),
                "customer_email": p["email"],
            }
            if r.random() < 0.6:
                args["customer_phone"] = p["phone"]
            return args
        if action == "send_email":
            subject, text = {
                "order_status": (f"Update on your order {s.order}",
                                 f"your order {s.order} is on its way and should arrive within {r.randint(2, 5)} business days."),
                "flight_change": ("Your new flight options",
                                  f"here are the flight options from {s.route[0]} to {s.route[1]} on {s.travel_date} we discussed."),
                "account_update": ("Your account changes",
                                   "we have updated your account as requested. If you did not ask for this change, reply to this email."),
            }.get(s.intent, ("We received your request", "thank you for contacting us. A specialist will get back to you within 24 hours."))  # fmt: skip
            body = f"{r.choice(['Dear', 'Hello', 'Hi'])} {p['first']},\n\n{text}\n\n{r.choice(['Kind regards', 'Best wishes', 'Thank you'])},\nNorthwind Customer Care"
            return {"to": p["email"], "subject": subject, "body": body}
        cols = r.sample(
            ["order_id", "status", "created_at", "total_usd", "email", "phone", "tier", "city"], 4
        )
        table = r.choice(TABLES)
        where = r.choice(
            [f"email = '{p['email']}'", f"user_id = '{p['user_id']}'", f"phone = '{p['phone']}'"]
        )
        sql = f"SELECT {', '.join(cols)} FROM {table} WHERE {where} ORDER BY created_at DESC LIMIT {r.choice([5, 10, 20])}"
        return {"sql": sql, "database": r.choice(["analytics", "analytics", "billing"])}

    def _tool_result(self, action: str, args: dict[str, Any], s: Session) -> str:
        r, f, p = self.rng, self.fake, s.person
        if action == "lookup_order":
            items = [
                {
                    "sku": f.token(8, UPPER_DIGITS),
                    "name": s.product,
                    "qty": 1,
                    "price_usd": round(r.uniform(19, 899), 2),
                }
            ]
            items += [
                {"sku": f.token(8, UPPER_DIGITS), "name": r.choice(PRODUCTS), "qty": r.randint(1, 3),
                 "price_usd": round(r.uniform(5, 300), 2)}
                for _ in range(r.randint(0, 3))
            ]  # fmt: skip
            events = [
                {"at": f.date(s.day, (-12, 0)) + f"T{r.randint(6, 22):02d}:{r.randint(0, 59):02d}:00Z",
                 "status": st, "location": r.choice(CITIES)[0]}
                for st in r.sample(["label_created", "picked_up", "in_transit", "at_hub", "out_for_delivery", "delayed"], r.randint(2, 5))
            ]  # fmt: skip
            return dumps(
                {"order_id": s.order, "status": r.choice(["processing", "shipped", "delayed", "delivered"]),
                 "customer": {"name": p["name"], "email": p["email"], "phone": p["phone"]},
                 "shipping_address": p["address"], "items": items,
                 "payment": {"method": "card", "card_last4": f.token(4, string.digits), "billing_ip": f.ip()},
                 "tracking": {"carrier": r.choice(["UPS", "DHL", "FedEx", "USPS"]), "events": events}}
            )  # fmt: skip
        if action == "search_flights":
            flights = [
                {"flight": f"NW{r.randint(100, 2999)}", "depart": f"{args['date']}T{r.randint(5, 22):02d}:{r.choice(['00', '15', '30', '45'])}",
                 "duration_min": r.randint(55, 720), "stops": r.choice([0, 0, 1]), "cabin": args.get("cabin", "economy"),
                 "price_usd": round(r.uniform(89, 2400), 2), "seats_left": r.randint(1, 9)}
                for _ in range(r.randint(2, 6))
            ]  # fmt: skip
            return dumps({"origin": args["origin"], "destination": args["destination"], "results": flights})
        if action == "create_ticket":
            return dumps({"ticket_id": f"TCK-{r.randint(100000, 999999)}", "status": "open", "queue": r.choice(["billing", "tier2", "engineering", "accessibility"]),
                           "sla_hours": r.choice([4, 8, 24])})  # fmt: skip
        if action == "send_email":
            return dumps(
                {"message_id": f"<{f.token(16).lower()}@mail.northwind.example>", "status": "queued"}
            )
        rows = []
        for _ in range(r.randint(3, 12)):
            rows.append(
                {"order_id": f.order_id(), "status": r.choice(["shipped", "delivered", "refunded", "open"]),
                 "created_at": f.date(s.day, (-300, -1)), "total_usd": round(r.uniform(9, 1500), 2),
                 "email": p["email"], "phone": p["phone"], "tier": s.tier, "city": r.choice(CITIES)[0],
                 "last_login_ip": f.ip(), "session_token": f.jwt() if r.random() < 0.15 else None}
            )  # fmt: skip
        return dumps({"rows": rows, "row_count": len(rows), "elapsed_ms": r.randint(3, 900)})

    def _tool_note(self, action: str, data: dict[str, Any]) -> str:
        """The one-line note the worker leaves for the responder after a short tool result."""
        if action == "create_ticket":
            return f"Ticket {data['ticket_id']} opened in the {data['queue']} queue; a specialist replies within {data['sla_hours']} hours"
        if action == "send_email":
            return "A confirmation email has been sent to the customer"
        if action == "lookup_order":
            return f"Order {data['order_id']} is {data['status']} (carrier {data['tracking']['carrier']})"
        if action == "search_flights":
            best = min(data["results"], key=lambda x: x["price_usd"])
            return f"Cheapest option {best['flight']} departs {best['depart']} for {best['price_usd']} USD"
        return f"Found {data['row_count']} earlier records for this customer"
