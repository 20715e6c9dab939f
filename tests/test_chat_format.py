"""Rendering logged calls as SLM prompts/targets and parsing tool calls back."""

import json

from slmlab.runtime.chat_format import (
    PromptBudget,
    fit_messages,
    parse_response,
    render_target,
    render_tool_calls,
    tool_signatures,
    tools_from_calls,
)


def test_tool_call_round_trip():
    calls = [{"name": "get_user_details", "arguments": '{"user_id": "mia_li_3668"}'}]
    parsed = parse_response(render_tool_calls(calls))
    assert parsed.valid_json and parsed.text == ""
    assert parsed.tool_calls == [{"name": "get_user_details", "arguments": '{"user_id": "mia_li_3668"}'}]


def test_parse_keeps_text_and_flags_invalid_json():
    parsed = parse_response("Sure.\n<tool_call>\n{not json}\n</tool_call>")
    assert parsed.text == "Sure." and not parsed.valid_json
    assert parsed.tool_calls[0]["name"] is None


def test_parse_unterminated_block_and_object_arguments():
    parsed = parse_response('<tool_call>{"name": "f", "arguments": {"b": 2, "a": 1}}')
    assert parsed.tool_calls == [{"name": "f", "arguments": '{"a": 1, "b": 2}'}]


def test_render_target_prefers_tool_calls():
    assert render_target("hello", None) == "hello"
    assert render_target("ignored", [{"name": "f", "arguments": {}}]).startswith("<tool_call>")


def test_tools_inferred_from_logged_calls():
    logged = [
        json.dumps([{"name": "f", "arguments": json.dumps({"a": 1, "b": 2})}]),
        json.dumps([{"name": "f", "arguments": json.dumps({"a": 3})}]),
        None,
    ]
    tools = tools_from_calls(logged)
    fn = tools[0]["function"]
    assert fn["name"] == "f" and set(fn["parameters"]["properties"]) == {"a", "b"}
    assert fn["parameters"]["required"] == ["a"]
    assert tool_signatures(tools) == "f(a, b?)"


def test_fit_messages_keeps_system_tools_and_latest_turns():
    msgs = [{"role": "system", "content": "policy " * 1000}]
    for i in range(10):
        msgs.append({"role": "user", "content": f"turn {i}"})
        msgs.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "x", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            }
        )
        msgs.append(
            {"role": "tool", "tool_call_id": "x", "name": "f", "content": "id_123 " + "x" * 5000 + " id_999"}
        )
    fitted = fit_messages(
        msgs, tools_from_calls([json.dumps([{"name": "f", "arguments": "{}"}])]), PromptBudget(max_turns=4)
    )
    assert fitted[0]["role"] == "system" and "f()" in fitted[0]["content"]
    assert len(fitted[0]["content"]) < 1600
    assert len(fitted) == 5
    last = fitted[-1]["content"]
    assert last.startswith("<tool_response") and "id_999" in last and len(last) < 1400
    assert all(m["role"] in ("system", "user", "assistant") for m in fitted)
