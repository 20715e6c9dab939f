"""The demo-log generator: sessions spread over the days with a diurnal load, each call turned into an
OpenAI-style request/response record with token counts, cached tokens and latency, failed calls with
their retries, and duplicates.

Usage:
    >>> from slmlab.demo.records import Generator
    >>> rec, label = next(Generator(1, seed=0, days=7).labelled_records())
    >>> label
    'classify_intent'
"""

from __future__ import annotations

import json
import math
import random
import string
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from slmlab.demo.company import (
    AGENT_MODEL,
    AGENT_TEMPERATURE,
    DUPLICATE_RATE,
    ERROR_RATE,
    MODELS,
    START,
    system_prompts,
    tool_schemas,
)
from slmlab.demo.content import ContentSessions
from slmlab.demo.fake import Fake
from slmlab.demo.sessions import Call, Session, dumps, estimate_tokens
from slmlab.demo.support import SupportSessions


class Generator(SupportSessions, ContentSessions):
    """Streams sessions of calls and turns them into log records."""

    def __init__(self, n_calls: int, seed: int, days: int):
        self.rng = random.Random(seed)
        self.fake = Fake(self.rng)
        self.n_calls = n_calls
        self.days = days
        self.prompts = system_prompts(random.Random(seed + 1))
        self.tools = tool_schemas()
        self.tools_json_tokens = estimate_tokens(dumps(self.tools))
        # Diurnal load: quiet nights, busy business hours.
        self.hour_weights = [1, 1, 1, 1, 1, 2, 4, 7, 10, 12, 12, 11, 10, 11, 12, 11, 10, 8, 6, 5, 4, 3, 2, 1]

    # --- session kinds -----------------------------------------------------------------------------------
    def session(self, day: datetime, version: int) -> list[Call]:
        kind = self.rng.choices(["support", "research", "dev"], weights=[0.62, 0.2, 0.18])[0]
        s = Session(self, day, version)
        getattr(self, f"_{kind}")(s)
        return s.calls

    # --- records -------------------------------------------------------------------------------------------
    def record(self, call: Call, session_id: str, step: int, ts: datetime, call_id: str) -> dict[str, Any]:
        r = self.rng
        model = MODELS[AGENT_MODEL[call.agent]]
        request: dict[str, Any] = {"model": model.name, "messages": call.messages}
        if call.tools:
            request["tools"] = self.tools
        request["temperature"] = AGENT_TEMPERATURE[call.agent]
        # Prompt tokens: message texts plus ~4 tokens of chat framing per message, plus the tool schemas.
        prompt_tokens = 3 + sum(
            4
            + estimate_tokens(m["content"] or "")
            + sum(estimate_tokens(dumps(t)) for t in m.get("tool_calls", []))
            for m in call.messages
        )
        prefix_tokens = 4 + estimate_tokens(call.messages[0]["content"])
        if call.tools:
            prompt_tokens += self.tools_json_tokens
            prefix_tokens += self.tools_json_tokens
        message: dict[str, Any] = {"role": "assistant", "content": call.text}
        if call.tool_calls:
            message["tool_calls"] = [
                {"id": "call_" + self.fake.token(24), "type": "function",
                 "function": {"name": tc["name"], "arguments": dumps(tc["arguments"])}}
                for tc in call.tool_calls
            ]  # fmt: skip
            completion_tokens = sum(
                8 + estimate_tokens(tc["function"]["arguments"]) for tc in message["tool_calls"]
            )
            finish = "tool_calls"
        else:
            completion_tokens = estimate_tokens(call.text or "")
            finish = "stop"
        # OpenAI caches prompt prefixes of 1,024+ tokens in 128-token steps; a warm cache hits most calls.
        cached = 0
        if prompt_tokens >= 1024 and r.random() < 0.75:
            cached = min(prefix_tokens, prompt_tokens) // 128 * 128
        noise = math.exp(r.gauss(0.0, 0.22)) * (r.uniform(2.0, 4.0) if r.random() < 0.03 else 1.0)
        latency = (
            model.ttft_ms
            + model.ms_per_input_token * (prompt_tokens - cached)
            + model.ms_per_output_token * completion_tokens
        ) * noise
        response = {
            "id": call_id,
            "object": "chat.completion",
            "created": int(ts.timestamp()),
            "model": model.snapshot,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
            "system_fingerprint": "fp_" + self.fake.token(10, string.hexdigits.lower()),
        }
        return {
            "request": request,
            "response": response,
            "metadata": {"agent": call.agent, "session_id": session_id, "step": step},
            "latency_ms": round(latency, 1),
            "timestamp": _iso(ts),
        }

    def error_record(
        self, call: Call, session_id: str, step: int, ts: datetime, call_id: str
    ) -> dict[str, Any]:
        r = self.rng
        model = MODELS[AGENT_MODEL[call.agent]]
        kind = r.choices(["rate_limit", "server", "timeout", "context"], weights=[0.5, 0.2, 0.2, 0.1])[0]
        code, etype, msg, latency = {
            "rate_limit": (429, "rate_limit_exceeded",
                           f"Rate limit reached for {model.name} on tokens per min (TPM): Limit 800000. Please try again in {r.randint(20, 900)}ms.",
                           r.uniform(40, 300)),
            "server": (500, "server_error", "The server had an error while processing your request. Sorry about that!",
                       r.uniform(800, 6000)),
            "timeout": (504, "timeout", "Request timed out.", 60000.0 + r.uniform(0, 50)),
            "context": (400, "context_length_exceeded",
                        "This model's maximum context length is 128000 tokens. Please reduce the length of the messages.",
                        r.uniform(60, 200)),
        }[kind]  # fmt: skip
        request: dict[str, Any] = {"model": model.name, "messages": call.messages}
        if call.tools:
            request["tools"] = self.tools
        request["temperature"] = AGENT_TEMPERATURE[call.agent]
        return {
            "request": request,
            "response": {"id": call_id, "error": {"message": msg, "type": etype, "code": code}},
            "metadata": {"agent": call.agent, "session_id": session_id, "step": step},
            "status": "error",
            "status_code": code,
            "error": msg,
            "latency_ms": round(latency, 1),
            "timestamp": _iso(ts),
        }

    def labelled_records(self) -> Iterator[tuple[dict[str, Any], str]]:
        r = self.rng
        mean_calls_per_session = 4.06  # measured on this generator; spreads sessions evenly over the days
        per_day = max(1, round(self.n_calls / mean_calls_per_session / self.days))
        emitted, session_no, day_no = 0, 0, 0
        while emitted < self.n_calls:
            day = START + timedelta(days=day_no)
            hours = sorted(r.choices(range(24), weights=self.hour_weights, k=per_day))
            starts = sorted(day + timedelta(hours=h, seconds=r.uniform(0, 3600)) for h in hours)
            version = 0 if day_no < self.days / 2 else 1
            for t in starts:
                session_id = f"sess_{r.getrandbits(40):010x}"
                step = 0
                for call in self.session(day, version):
                    if emitted >= self.n_calls:
                        return
                    call_id = "chatcmpl-" + self.fake.token(29)
                    if r.random() < ERROR_RATE:
                        rec = self.error_record(call, session_id, step, t, call_id)
                        yield rec, call.label
                        emitted, step = emitted + 1, step + 1
                        t += timedelta(milliseconds=rec["latency_ms"] + r.uniform(200, 2000))
                        if emitted >= self.n_calls:
                            return
                        call_id = "chatcmpl-" + self.fake.token(29)
                    rec = self.record(call, session_id, step, t, call_id)
                    yield rec, call.label
                    emitted, step = emitted + 1, step + 1
                    t += timedelta(milliseconds=rec["latency_ms"] + r.uniform(50, 1500))
                    if r.random() < DUPLICATE_RATE and emitted < self.n_calls:
                        dup = json.loads(json.dumps(rec))
                        dup["response"]["id"] = "chatcmpl-" + self.fake.token(29)
                        dup["metadata"]["step"] = step
                        dup["timestamp"] = _iso(t)
                        yield dup, call.label
                        emitted, step = emitted + 1, step + 1
                    if call.agent == "worker":
                        t += timedelta(milliseconds=r.uniform(80, 1200))  # the tool runs
                session_no += 1
            day_no += 1


def _iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
