"""Text actions: tool calls written in the response text are read as actions (and plain replies are not)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from slmlab.actions import TEXT_ACTION, action_of, parse_text_action, text_tool_calls, tool_calls_of
from slmlab.schema import action_expr, parse_tool_calls

CASES = [
    # (text, name, arguments, format)
    ("Thought: I need the user.\nAction: get_user\nAction Input: {\"id\": 7}\n", "get_user", {"id": 7}, "react"),
    ("Action: search[ramen in Osaka]", "search", {"input": "ramen in Osaka"}, "react"),
    ("Action 2: lookup\nAction Input 2: capacity", "lookup", {"input": "capacity"}, "react"),
    ("GET https://api.x.example/users/42?fields=name&limit=3", "GET api.x.example/users/{id}",
     {"fields": "name", "limit": "3"}, "http"),
    ("POST /v1/carts/991/items\n{\n  \"sku\": \"A1\",\n  \"qty\": 2\n}", "POST /v1/carts/{id}/items",
     {"sku": "A1", "qty": 2}, "http"),
    ("```http\nPATCH https://crm.example/deals/77\n{\"stage\": \"won\"}\n```", "PATCH crm.example/deals/{id}",
     {"stage": "won"}, "http"),
    ('FINISH(["Paris", "Rome"])', "FINISH", {"args": [["Paris", "Rome"]]}, "call"),
    ("Let me look.\nsearch(query=\"coral bleaching\", k=3)", "search", {"query": "coral bleaching", "k": 3}, "call"),
    ("```python\nopen_url(url=\"https://docs.example.org/a\")\n```", "open_url",
     {"url": "https://docs.example.org/a"}, "call"),
    ('{"action": "find_slots", "action_input": {"duration_min": 30}}', "find_slots", {"duration_min": 30}, "json"),
    ('```json\n{"tool": "lookup", "args": {"sku": "S-1"}}\n```', "lookup", {"sku": "S-1"}, "json"),
    ('{"name": "get_weather", "arguments": "{\\"city\\": \\"Oslo\\"}"}', "get_weather", {"city": "Oslo"}, "json"),
    ('{"function": {"name": "f", "arguments": {"x": 1}}}', "f", {"x": 1}, "json"),
]  # fmt: skip

REPLIES = [
    "Thanks, your order has shipped.",
    "Thought: I know this.\nFinal Answer: 42",
    '{"action": "Final Answer", "action_input": "Booked."}',
    '{"intent": "refund", "confidence": 0.9}',  # JSON without a tool key
    '{"name": "Ada Lovelace", "age": 36}',  # "name" without an arguments key is not a call
    "The fee (about 5%) is waived.",
    "--- a/x.py\n+++ b/x.py\n+    resp.raise_for_status()",  # a diff ending in a call-like line
    "x = compute(y)",
    "GET the report ready by Friday please",  # an HTTP verb without a URL
    "",
]


@pytest.mark.parametrize(("text", "name", "arguments", "fmt"), CASES)
def test_text_actions_are_read(text, name, arguments, fmt):
    found = parse_text_action(text)
    assert found is not None, text
    assert (found.name, found.arguments, found.format) == (name, arguments, fmt)
    assert found.raw and found.raw in text  # the span it was read from, verbatim


@pytest.mark.parametrize("text", REPLIES)
def test_replies_are_not_actions(text):
    assert parse_text_action(text) is None
    assert action_of(None, text) == TEXT_ACTION


def test_known_tools_filter_call_and_json_forms():
    assert parse_text_action("main()") is not None
    assert parse_text_action("main()", known_tools={"search"}) is None
    assert parse_text_action("Search(q='x')", known_tools={"search"}).name == "Search"


def test_structured_calls_win_and_text_calls_have_the_same_shape():
    structured = json.dumps([{"id": "c1", "name": "get_order", "arguments": '{"id": 3}'}])
    assert tool_calls_of(structured, "Action: search[x]")[0]["name"] == "get_order"
    call = text_tool_calls("GET /weather?city=Oslo")[0]
    assert set(call) == {"id", "name", "arguments", "format"} and call["format"] == "text:http"
    assert json.loads(call["arguments"]) == {"city": "Oslo"}
    assert action_of("get_order", "Action: search[x]") == "get_order"


def test_schema_uses_the_one_definition():
    df = pl.DataFrame(
        {
            "tool_name": ["get_order", None, None, None],
            "response_text": [None, "Action: search[x]", "Hello!", 'FINISH(["a"])'],
        }
    )
    assert df.select(action_expr())["action"].to_list() == ["get_order", "search", "respond", "FINISH"]
    # Frames without response_text keep working (the tool name or "respond").
    assert pl.DataFrame({"tool_name": ["f", None]}).select(action_expr())["action"].to_list() == [
        "f",
        "respond",
    ]
    assert parse_tool_calls(None) == [] and parse_tool_calls(None, "Hello!") == []
    assert parse_tool_calls(None, "Action: search[x]")[0]["name"] == "search"


def test_generated_text_action_log_is_read_back():
    """Every action the text-action generator writes is read back as that action (labels are its truth)."""
    from slmlab.demo.text_actions import generate_text_action_logs

    records, labels = generate_text_action_logs(n_sessions=40, seed=3)
    misread = []
    for rec, label in zip(records, labels, strict=True):
        text = rec["response"]["choices"][0]["message"]["content"]
        want = label.split(":", 1)[1]
        got = action_of(None, text)
        if want.split(" ")[0] in ("GET", "POST", "PATCH"):
            verb, path = want.split(" ", 1)
            ok = got.startswith(verb + " ") and got.endswith(path)
        else:
            ok = got == want
        if not ok:
            misread.append((want, got, text[:80]))
    assert not misread, misread[:5]


def test_metrics_compare_text_actions_by_name_and_arguments():
    from slmlab.evaluate.metrics import score_calls
    from slmlab.runtime.generate import Generation

    calls = pl.DataFrame(
        {
            "call_id": ["a", "b", "c"],
            "session_id": ["s", "s", "s"],
            "response_text": ["GET /orders/12?expand=items", "Action: search[ramen]", "Hello there!"],
            "response_tool_calls": [None, None, None],
        }
    )
    gens = [
        Generation(text="GET /orders/12?expand=items"),  # same call
        Generation(text="Action: lookup[ramen]"),  # other tool
        Generation(text="Hello there!"),  # a reply stays a reply
    ]
    scores = score_calls(calls, gens, embedder="tfidf")
    assert scores["ref_action"].to_list() == ["GET /orders/{id}", "search", "respond"]
    assert scores["name_match"].to_list() == [1.0, 0.0, 1.0]
    assert scores["name_args_exact"].to_list()[:2] == [1.0, 0.0]
    assert scores["name_args_exact"][2] is None and scores["text_similarity"][2] > 0.9
