"""A reader for a log format slmlab does not ship: a ReAct-style agent's own JSONL of turns.

Each line is one turn, one LLM call:
    {"run": "r-17", "turn": 2, "model": "gpt-4o-mini", "time": "2026-03-02T09:14:05Z", "ms": 812,
     "prompt": "...", "thought": "...", "action": "search", "action_input": {"q": "..."},
     "final_answer": null, "tokens": {"prompt": 512, "completion": 38}}

Use it from Python (`register_reader(ReActTurnsReader)`, then `ingest(...)`) or from the command line:
    slmlab ingest turns.jsonl --reader examples/react_reader.py:ReActTurnsReader
"""

from __future__ import annotations

from typing import Any

from slmlab.collect import (
    BadRecord,
    Reader,
    as_float,
    as_int,
    first_json,
    openai_tool_calls,
    response_fields,
    to_json,
)


class ReActTurnsReader(Reader):
    name = "react_turns"
    description = "ReAct agent turns (JSONL: prompt, thought, action/action_input or final_answer)"
    priority = 40  # before the generic request/response reader (90)

    def sniff(self, path, head):
        rec = first_json(head)
        return isinstance(rec, dict) and {"run", "turn", "prompt"} <= set(rec)

    def calls(self, record: Any, ctx, line: int) -> list[dict[str, Any]]:
        if not isinstance(record, dict) or not isinstance(record.get("prompt"), str):
            raise BadRecord("a turn needs a text `prompt`")  # quarantined with file and line
        if record.get("action"):
            call = {"id": f"{record['run']}-{record['turn']}", "name": record["action"],
                    "arguments": record.get("action_input") or {}}  # fmt: skip
            answer = response_fields(record.get("thought"), openai_tool_calls([call]))
        elif record.get("final_answer") is not None:
            answer = response_fields(record["final_answer"], [])
        else:
            raise BadRecord("a turn needs an `action` or a `final_answer`")
        tokens = record.get("tokens") or {}
        return [
            {
                "call_id": f"{record['run']}/{record['turn']}",
                "session_id": str(record["run"]),
                "step": as_int(record.get("turn")),
                "agent": "react",
                "timestamp": record.get("time"),
                "model": str(record.get("model") or "unknown"),
                "messages": to_json([{"role": "user", "content": record["prompt"]}]),
                **answer,
                "input_tokens": as_int(tokens.get("prompt")),
                "output_tokens": as_int(tokens.get("completion")),
                "latency_ms": as_float(record.get("ms")),
                "metadata": to_json({"thought": record.get("thought")}),
            }
        ]
