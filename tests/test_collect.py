"""Readers on spec-shaped fixtures, the quarantine contract on bad input, streaming to parquet."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from slmlab.collect import READERS, UnknownFormatError, detect_format, ingest, register_reader
from slmlab.collect.base import Reader
from slmlab.schema import parse_messages, parse_tool_calls, validate_calls

FIX = Path(__file__).resolve().parent / "fixtures" / "logs"


def words(texts):
    """A real (if crude) tokenizer for tests that must not load a model: whitespace words."""
    return [len(t.split()) for t in texts]


def run(paths, tmp_path, **kw):
    kw.setdefault("tokenizer", words)
    return ingest(paths, quarantine=tmp_path / "q.jsonl", **kw)


@pytest.mark.parametrize(
    ("folder", "calls", "skipped", "tools"),
    [
        ("openai", 5, 0, ["get_weather", None, None, "search_flights", None]),
        ("openai_batch", 3, 0, [None, "get_weather", None]),
        # events_logs.jsonl, openllmetry.jsonl, span_events.json, trace.json (files in sorted order)
        (
            "otel_genai",
            9,
            10,
            [None, "search_flights", "get_weather", None, None, None, "get_weather", None, None],
        ),
        ("openinference", 6, 3, ["search_flights", None, None, "get_weather", None, None]),
        ("langfuse", 5, 3, ["get_weather", None, None, None, None]),
        ("langsmith", 4, 2, ["get_weather", None, None, None]),
    ],
)
def test_fixture_formats(tmp_path, folder, calls, skipped, tools):
    res = run(FIX / folder, tmp_path)
    s = res.summary
    assert (s.calls, s.skipped, s.quarantined) == (calls, skipped, 0), res.quarantined()
    assert s.read == s.ingested + s.quarantined
    assert set(s.formats) == {folder}
    df = validate_calls(res.calls)
    assert df["tool_name"].to_list() == tools
    assert (df["source_format"] == folder).all()
    for row in df.iter_rows(named=True):
        msgs = parse_messages(row["messages"])
        assert msgs and all("role" in m for m in msgs)
        for tc in parse_tool_calls(row["response_tool_calls"]):
            assert isinstance(tc["arguments"], str) and isinstance(json.loads(tc["arguments"]), dict)
        assert (row["response_text"] is not None) or row["n_tool_calls"] > 0 or row["status"] == "error"


def test_openai_columns(tmp_path):
    df = run(FIX / "openai" / "calls.jsonl", tmp_path).calls
    first = df.row(0, named=True)
    assert (
        first["call_id"] == "chatcmpl-001" and first["session_id"] == "s-0001" and first["agent"] == "planner"
    )
    assert (first["input_tokens"], first["cached_input_tokens"], first["output_tokens"]) == (120, 64, 18)
    assert first["latency_ms"] == 812.5 and first["tokens_estimated"] is False
    assert first["cost_estimated"] is True and first["cost_usd"] == pytest.approx(
        (56 * 2.5 + 64 * 1.25 + 18 * 10) / 1e6
    )
    assert json.loads(first["tools"])[0]["function"]["name"] == "get_weather"
    assert df["step"].to_list()[:2] == [0, 1]
    err = df.row(2, named=True)
    assert err["status"] == "error" and "Rate limit" in err["error"] and err["latency_ms"] == 250.0
    fly = df.row(3, named=True)  # Data Flywheel document: workload_id, client_id, parsed arguments
    assert fly["task_label"] == "flight_search" and json.loads(fly["metadata"])["client_id"] == "travel-app"
    assert parse_tool_calls(fly["response_tool_calls"])[0]["arguments"] == '{"to":"Rome"}'
    assert fly["response_text"] is None  # "" next to a tool call is no text answer
    assert parse_messages(fly["messages"])[0]["content"][0]["type"] == "text"  # multimodal parts kept
    last = df.row(4, named=True)
    assert last["cost_usd"] == 0.00002 and last["cost_estimated"] is False  # logged cost kept
    assert last["output_tokens"] == 1 and last["tokens_estimated"] is True  # no usage: counted


def test_batch_needs_its_input(tmp_path):
    out = FIX / "openai_batch" / "batch_output.jsonl"
    d = tmp_path / "alone"
    d.mkdir()
    (d / "out.jsonl").write_bytes(out.read_bytes())
    res = run(d / "out.jsonl", tmp_path)
    assert res.summary.quarantined == 3 and res.summary.calls == 0
    assert "no batch input line for custom_id 'req-1'" in res.quarantined()[0]["reason"]
    (d / "in.jsonl").write_bytes((FIX / "openai_batch" / "batch_input.jsonl").read_bytes())
    assert run([d / "out.jsonl"], tmp_path).summary.calls == 3  # found beside the output
    inp = tmp_path / "in_only"
    inp.mkdir()
    (inp / "in.jsonl").write_bytes((FIX / "openai_batch" / "batch_input.jsonl").read_bytes())
    res = run(inp, tmp_path)
    assert res.summary.quarantined == 1 and "without an output file" in res.quarantined()[0]["reason"]


def test_detect_format_and_unknown(tmp_path):
    assert detect_format(FIX / "openai" / "calls.jsonl") == "openai"
    assert detect_format(FIX / "langfuse" / "observations.json") == "langfuse"
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"hello": "world"}\n')
    with pytest.raises(UnknownFormatError) as exc:
        run(odd, tmp_path)
    for name in READERS:
        assert name in str(exc.value)
    with pytest.raises(KeyError, match="unknown log format"):
        run(odd, tmp_path, format="nope")


def _openai_line(i: int, **over) -> str:
    rec = {
        "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": f"q{i}"}]},
        "response": {
            "id": f"c{i}",
            "model": "gpt-4o",
            "choices": [{"message": {"content": f"a{i}"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2},
        },  # fmt: skip
    }
    rec.update(over)
    return json.dumps(rec)


def test_bad_input_is_quarantined_never_dropped(tmp_path):
    lines = [
        _openai_line(0),
        _openai_line(1)[:-20],  # truncated JSON
        _openai_line(2, request={"model": "gpt-4o", "messages": 3}),  # wrong type
        _openai_line(3, request={"model": "gpt-4o"}),  # no messages
        json.dumps({"request": {"model": "gpt-4o", "messages": []}}),  # no response, no error
        _openai_line(5, response={"id": "c5", "choices": "x"}),  # wrong type
        _openai_line(0),  # duplicate call id
        "[1, 2]",  # not an object
        _openai_line(
            8, response={"id": "c8", "choices": [{"message": {"content": "x" * 10_000_000}}]}
        ),  # 10 MB field
        _openai_line(9),
    ]
    path = tmp_path / "bad.jsonl"
    data = (
        "\n".join(lines).encode()
        + b"\n"
        + _openai_line(10).encode()[:40]
        + b"\xff\xfe"
        + b"\n"
        + _openai_line(11).encode()
    )
    path.write_bytes(data)
    res = run(path, tmp_path, format="openai")
    s = res.summary
    assert (s.read, s.ingested, s.quarantined, s.calls) == (12, 4, 8, 4)
    assert res.calls["call_id"].to_list() == ["c0", "c8", "c9", "c11"]
    assert len(res.calls.filter(pl.col("call_id") == "c8")["response_text"][0]) == 10_000_000
    q = res.quarantined()
    assert [e["line"] for e in q] == [2, 3, 4, 5, 6, 7, 8, 11]
    reasons = [e["reason"] for e in q]
    assert all(r.startswith(f"{path}:{e['line']}: ") for r, e in zip(reasons, q, strict=True))
    for needle, r in zip(
        ["invalid JSON", "messages is int", "missing request.messages", "no response", "no choices", "duplicate call_id 'c0'",
         "expected an object", "not valid UTF-8"], reasons, strict=True):  # fmt: skip
        assert needle in r, (needle, r)
    assert all(set(e) == {"source_file", "line", "json_path", "reason", "raw"} for e in q)


def test_empty_and_blank_files(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    res = run(tmp_path / "empty.jsonl", tmp_path, format="openai")
    assert (res.summary.read, res.summary.calls) == (0, 0)
    validate_calls(res.calls)
    assert str(res.summary) == "0 read, 0 ingested, 0 quarantined (0 calls)"


def test_broken_json_document_is_one_quarantined_record(tmp_path):
    bad = tmp_path / "gpt-4o-airline.json"
    bad.write_text('[{"task_id": 1, "trial": 0, "traj": [{"role": "user"')
    res = run(bad, tmp_path, format="tau_bench")
    assert (res.summary.read, res.summary.quarantined) == (1, 1)
    assert "invalid JSON" in res.quarantined()[0]["reason"]


def test_streaming_to_parquet_in_chunks(tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_text("\n".join(_openai_line(i) for i in range(25)) + "\n")
    mem = run(path, tmp_path)
    out = tmp_path / "calls.parquet"
    res = ingest(path, out=out, chunk_rows=7, tokenizer=words)
    assert res.quarantine_path == tmp_path / "calls.quarantine.jsonl"
    assert res.scan().select(pl.len()).collect().item() == 25
    assert res.calls.equals(mem.calls)
    validate_calls(res.calls)


def test_register_reader(tmp_path):
    class Lines(Reader):
        name = "plain_lines"
        priority = 1

        def sniff(self, path, head):
            return path.suffix == ".json" and head.startswith('{"q"')

        def calls(self, record, ctx, line):
            return [{"call_id": f"l{line}", "model": "m", "agent": "a", "messages": json.dumps([{"role": "user", "content": record["q"]}]),
                     "response_text": record["a"]}]  # fmt: skip

    register_reader(Lines)
    try:
        p = tmp_path / "x.json"
        p.write_text('{"q": "hi", "a": "yo"}\n{"q": "b", "a": "c"}\n')
        res = run(p, tmp_path, prices=False)
        assert res.summary.formats == {"plain_lines": 2}
        assert res.calls["cost_usd"].null_count() == 2 and res.calls["input_tokens"].to_list() == [
            9,
            9,
        ]  # "user\nhi": 2 words + 4 + 3 template tokens
    finally:
        READERS.pop("plain_lines")


def test_folder_scan_ignores_non_logs(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    (d / "README.md").write_text("# not a log")
    (d / "queries.json").write_text('[{"query": "x"}]')
    (d / "calls.jsonl").write_text(_openai_line(1) + "\n")
    res = run(d, tmp_path)
    assert res.summary.calls == 1 and res.summary.ignored_files == (str(d / "queries.json"),)


# ------------------------------------------- trace readers: fields land in the canonical columns
# The fixtures follow the specs and exporters named in tests/fixtures/logs/README.md.


def rows(df: pl.DataFrame) -> dict[str, dict]:
    """Rows keyed by call_id."""
    return {r["call_id"]: r for r in df.iter_rows(named=True)}


def roles(row) -> list[str]:
    return [m["role"] for m in parse_messages(row["messages"])]


def tool_call(row, i: int = 0) -> tuple[str, dict]:
    """(name, parsed arguments) of a response tool call; arguments must be a JSON string."""
    tc = parse_tool_calls(row["response_tool_calls"])[i]
    assert isinstance(tc["arguments"], str)
    return tc["name"], json.loads(tc["arguments"])


def tool_names(row) -> list[str]:
    """Names of the logged tool schemas, which must be in OpenAI chat form."""
    tools = json.loads(row["tools"])
    assert all(t["type"] == "function" and "parameters" in t["function"] for t in tools)
    return [t["function"]["name"] for t in tools]


@pytest.mark.parametrize(
    "file",
    sorted(p.relative_to(FIX).as_posix() for p in FIX.glob("*/*") if p.name.endswith((".json", ".jsonl"))),
)
def test_every_fixture_is_detected(file):
    assert detect_format(FIX / file) == file.split("/")[0]


def test_otel_current_conventions(tmp_path):
    res = run(FIX / "otel_genai" / "trace.json", tmp_path)
    assert (res.summary.calls, res.summary.skipped) == (3, 2)  # invoke_agent and execute_tool are skipped
    r = rows(res.calls)
    a, b, c = r["b7ad6b7169203331"], r["b7ad6b7169203332"], r["b7ad6b7169203333"]
    # agent and conversation sit on the invoke_agent parent only
    assert (a["agent"], a["session_id"], a["parent_id"]) == ("planner", "conv-1", "a1b2c3d4e5f60718")
    assert a["model"] == "gpt-4o-2024-08-06" and b["model"] == "gpt-4o"  # response model, else request model
    assert (
        roles(a) == ["system", "user"]
        and parse_messages(a["messages"])[0]["content"] == "You are a travel planner."
    )
    assert tool_names(a) == ["get_weather"]  # flat gen_ai.tool.definitions -> OpenAI schema
    assert tool_call(a) == ("get_weather", {"city": "Paris"}) and a["response_text"] is None
    assert (a["input_tokens"], a["cached_input_tokens"], a["output_tokens"]) == (120, 64, 18)
    assert a["tokens_estimated"] is False and a["latency_ms"] == pytest.approx(812.5)
    assert a["finish_reason"] == "tool_call" and a["status"] == "ok" and a["cost_estimated"] is True
    assert a["timestamp"].isoformat() == "2026-11-01T10:00:00.100000+00:00"
    # structured arrayValue/kvlistValue messages: history with a tool call and its result
    msgs = parse_messages(b["messages"])
    assert roles(b) == ["user", "assistant", "tool"]
    assert msgs[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert msgs[2]["tool_call_id"] == "call_1" and json.loads(msgs[2]["content"]) == {"temp_c": 14}
    assert b["response_text"] == "It is 14 °C in Paris."  # the reasoning part is not the answer
    assert (b["input_tokens"], b["output_tokens"], b["finish_reason"]) == (160, 9, "stop")
    assert c["status"] == "error" and c["error"] == "Rate limit reached for gpt-4o"
    assert c["response_text"] is None and c["n_tool_calls"] == 0


def test_otel_events_as_log_records(tmp_path):
    res = run(FIX / "otel_genai" / "events_logs.jsonl", tmp_path)
    s = res.summary
    assert (s.read, s.calls, s.skipped, s.quarantined) == (9, 2, 7, 0)  # 2 spans + 7 log records
    r = rows(res.calls)
    d, e = r["d0d0d0d0d0d0d001"], r["d0d0d0d0d0d0d002"]
    msgs = parse_messages(d["messages"])
    assert roles(d) == ["system", "user", "assistant", "tool"]
    assert (
        msgs[2]["tool_calls"][0]["function"]["name"] == "get_weather" and msgs[3]["tool_call_id"] == "call_1"
    )
    assert (d["response_text"], d["finish_reason"]) == ("It is 14 °C in Paris.", "stop")
    assert d["model"] == "gpt-4o-mini-2024-07-18" and d["agent"] == "travel-agent"  # service.name
    assert d["session_id"] == "0af7651916cd43dd8448eb211c80319c"  # no conversation id: the trace
    # gen_ai.choice keeps tool_calls beside `message` (events-deprecated.yaml)
    assert (
        tool_call(e) == ("search_flights", {"to": "Rome", "date": "tomorrow"})
        and e["finish_reason"] == "tool_calls"
    )
    # a collector writing traces and logs to two files: the events are still found
    lines = (FIX / "otel_genai" / "events_logs.jsonl").read_text().splitlines()
    split = tmp_path / "split"
    split.mkdir()
    (split / "traces.jsonl").write_text(lines[0] + "\n")
    (split / "logs.jsonl").write_text(lines[1] + "\n")
    res2 = run(split, tmp_path)
    assert res2.summary.by_file[str(split / "logs.jsonl")]["skipped"] == 7
    assert res2.calls.sort("call_id")["messages"].to_list() == res.calls.sort("call_id")["messages"].to_list()


def test_otel_openllmetry_flattened_attributes(tmp_path):
    res = run(FIX / "otel_genai" / "openllmetry.jsonl", tmp_path)
    assert (res.summary.calls, res.summary.skipped) == (2, 1)
    r = rows(res.calls)
    a, b = r["e1e1e1e1e1e1e102"], r["e1e1e1e1e1e1e103"]
    assert roles(a) == ["system", "user"] and tool_names(a) == ["get_weather"]  # llm.request.functions.N.*
    assert tool_call(a) == ("get_weather", {"city": "Paris"}) and a["finish_reason"] == "tool_calls"
    assert (a["input_tokens"], a["cached_input_tokens"], a["output_tokens"]) == (120, 64, 18)
    assert a["agent"] == "planner" and a["parent_id"] == "e1e1e1e1e1e1e101"  # traceloop agent span
    msgs = parse_messages(b["messages"])
    assert roles(b) == ["user", "assistant", "tool"] and msgs[2]["tool_call_id"] == "call_1"
    assert msgs[1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
    assert b["response_text"] == "It is 14 °C in Paris." and b["model"] == "gpt-4o"


def test_otel_content_as_span_events(tmp_path):
    r = rows(run(FIX / "otel_genai" / "span_events.json", tmp_path).calls)
    azure, old = r["f0f0f0f0f0f0f001"], r["f0f0f0f0f0f0f002"]
    assert (
        roles(azure) == ["system", "user"] and azure["response_text"] == "About 1,100 km."
    )  # gen_ai.event.content
    assert azure["model"] == "gpt-4o-2024-11-20" and azure["finish_reason"] == "stop"
    # semconv <= 1.26: gen_ai.content.prompt / completion events, prompt_tokens / completion_tokens
    assert parse_messages(old["messages"]) == [{"role": "user", "content": "Capital of Italy?"}]
    assert (old["response_text"], old["input_tokens"], old["output_tokens"]) == ("Rome.", 12, 4)


def test_otlp_any_value_encodings():
    from slmlab.collect.otel_genai import any_value, attributes

    assert any_value({"intValue": "9007199254740993"}) == 9007199254740993  # int64 as a decimal string
    assert any_value({"doubleValue": 0.5}) == 0.5 and any_value({"boolValue": True}) is True
    assert any_value({"arrayValue": {"values": [{"stringValue": "stop"}, {"intValue": 2}]}}) == ["stop", 2]
    kv = {"kvlistValue": {"values": [{"key": "city", "value": {"stringValue": "Paris"}}]}}
    assert any_value(kv) == {"city": "Paris"} and any_value({"string_value": "snake"}) == "snake"
    assert any_value({}) is None and attributes([{"key": "k", "value": {"intValue": "7"}}]) == {"k": 7}


def _otlp(spans) -> str:
    doc = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": spans}]}]}
    return json.dumps(doc)


def test_otel_bad_spans_are_quarantined(tmp_path):
    chat = {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}
    no_content = {"traceId": "t1", "spanId": "s1", "name": "chat gpt-4o", "attributes": [chat]}
    bad_messages = {
        "traceId": "t1",
        "spanId": "s2",
        "attributes": [chat, {"key": "gen_ai.input.messages", "value": {"stringValue": '{"role": "user"}'}}],
    }
    oi_chain = {  # an OpenInference CHAIN span inside OTLP is skipped, not quarantined
        "traceId": "t1",
        "spanId": "s3",
        "attributes": [{"key": "openinference.span.kind", "value": {"stringValue": "CHAIN"}}],
    }
    path = tmp_path / "bad.jsonl"
    path.write_text(
        "\n".join([_otlp([no_content, bad_messages]), _otlp([oi_chain]), '{"resourceSpans": 3}', "{oops"])
        + "\n"
    )
    res = run(path, tmp_path)
    s = res.summary
    assert (s.read, s.ingested, s.quarantined, s.skipped, s.calls) == (5, 1, 4, 1, 0)
    q = res.quarantined()
    assert [e["line"] for e in q] == [1, 1, 3, 4]
    assert "content capture was off" in q[0]["reason"] and "not a JSON list" in q[1]["reason"]
    assert all(e["reason"].startswith(f"{path}:{e['line']}: ") for e in q)


def test_openinference_phoenix_exports(tmp_path):
    res = run(FIX / "openinference", tmp_path)
    r = rows(res.calls)
    # spans.jsonl: nested attributes and get_spans_dataframe() rows; agent/session from the AGENT span
    a, b, legacy = r["9a1b2c3d4e5f6071"], r["9a1b2c3d4e5f6072"], r["9a1b2c3d4e5f6080"]
    assert (a["agent"], a["session_id"], a["parent_id"]) == ("planner", "conv-1", "9a1b2c3d4e5f6000")
    assert roles(a) == ["system", "user"] and tool_names(a) == ["get_weather"]
    assert tool_call(a) == ("get_weather", {"city": "Paris"}) and a["model"] == "gpt-4o-2024-08-06"
    assert (a["input_tokens"], a["cached_input_tokens"], a["output_tokens"]) == (120, 64, 18)
    assert (
        a["latency_ms"] == pytest.approx(812.5)
        and json.loads(a["metadata"])["invocation_parameters"]["temperature"] == 0
    )
    msgs = parse_messages(b["messages"])
    assert roles(b) == ["user", "assistant", "tool"] and msgs[1]["tool_calls"][0]["id"] == "call_1"
    assert msgs[2]["tool_call_id"] == "call_1"
    assert b["response_text"] == "It is 14 °C in Paris."  # message.contents text part; reasoning dropped
    assert (b["cost_usd"], b["cost_estimated"], b["finish_reason"]) == (0.00049, False, "stop")
    assert parse_messages(legacy["messages"]) == [{"role": "user", "content": "Translate to French: cheese"}]
    assert legacy["response_text"] == "fromage"
    # rest_spans.json: GET /v1/projects/{p}/spans, flat dotted attributes, span kind moved to span_kind
    c, d, err = r["1000000000000002"], r["1000000000000004"], r["1000000000000005"]
    assert (c["agent"], c["session_id"]) == ("booker", "conv-2")
    assert tool_call(c) == ("search_flights", {"to": "Rome"}) and tool_names(c) == ["search_flights"]
    assert (c["cost_usd"], c["cached_input_tokens"], c["model"]) == (0.0000229, 0, "gpt-4o-mini-2024-07-18")
    dm = parse_messages(d["messages"])  # tool_use content part -> tool call; tool.name/description/parameters
    assert (
        dm[1]["tool_calls"][0]["function"]["name"] == "search_flights" and dm[2]["tool_call_id"] == "toolu_01"
    )
    assert tool_names(d) == ["search_flights"] and d["finish_reason"] == "end_turn"
    assert d["response_text"] == "Flight AZ 123 leaves at 9:40."
    assert (
        err["status"] == "error" and err["error"] == "Error code: 429 - Rate limit reached"
    )  # exception event


def test_langfuse_observations(tmp_path):
    res = run(FIX / "langfuse", tmp_path)
    r = rows(res.calls)
    a, b, err = r["obs-1"], r["obs-2"], r["obs-3"]
    # usageDetails summed as Langfuse reports them: input = input + input_cached_tokens
    assert (a["input_tokens"], a["cached_input_tokens"], a["output_tokens"]) == (120, 64, 18)
    assert (a["cost_usd"], a["cost_estimated"], a["tokens_estimated"]) == (
        0.0004,
        False,
        False,
    )  # costDetails.total
    assert (a["agent"], a["session_id"], a["parent_id"]) == (
        "planner",
        "trace-1",
        "obs-agent",
    )  # AGENT parent
    assert roles(a) == ["system", "user"] and tool_names(a) == ["get_weather"]
    assert tool_call(a) == ("get_weather", {"city": "Paris"}) and a["latency_ms"] == pytest.approx(812.0)
    assert json.loads(a["metadata"])["model_parameters"] == {"temperature": 0, "max_tokens": "inf"}
    msgs = parse_messages(b["messages"])  # LangChain callback: tool calls as {name, args, id}
    assert roles(b) == ["user", "assistant", "tool"]
    assert msgs[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    assert (b["input_tokens"], b["cached_input_tokens"], b["output_tokens"]) == (260, 100, 9)
    assert b["response_text"] == "It is 14 °C in Paris." and b["model"] == "claude-haiku-4-5-20251001"
    assert err["status"] == "error" and err["error"].startswith("Error code: 429")
    assert err["tokens_estimated"] is True  # the zeros of the deprecated `usage` are not counts
    # v2 API: input/output as JSON text, providedModelName, totalCost, sessionId
    v2 = r["obs-v2-1"]
    assert roles(v2) == ["system", "user"] and v2["response_text"] == "Flight AZ 123 leaves at 9:40."
    assert (v2["model"], v2["cost_usd"], v2["session_id"]) == ("gpt-4o-mini", 0.000023, "conv-2")
    assert (v2["input_tokens"], v2["output_tokens"], v2["latency_ms"]) == (85, 17, 900.0)
    # a trace with nested observations gives them its sessionId
    assert r["obs-t3"]["session_id"] == "conv-3" and r["obs-t3"]["cost_usd"] == 0.0000048


def test_langsmith_runs(tmp_path):
    r = rows(run(FIX / "langsmith", tmp_path).calls)
    a, b, err, wrapped = (r[f"1ef9a3c2-0000-4000-8000-00000000{k}"] for k in ("a002", "a004", "a005", "b001"))
    # LangChain tracer: [[dumpd(msg)]] inputs, LLMResult outputs, thread_id (not the project session_id)
    assert (a["session_id"], a["agent"], a["parent_id"]) == (
        "conv-1",
        "planner",
        "1ef9a3c2-0000-4000-8000-00000000a001",
    )
    assert roles(a) == ["system", "user"] and tool_names(a) == ["get_weather"] and a["model"] == "gpt-4o"
    assert tool_call(a) == ("get_weather", {"city": "Paris"}) and a["finish_reason"] == "tool_calls"
    assert (a["input_tokens"], a["cached_input_tokens"], a["output_tokens"]) == (120, 64, 18)
    assert (a["cost_usd"], a["cost_estimated"]) == (0.00048, False)  # total_cost is a Decimal string
    assert a["latency_ms"] == pytest.approx(812.5)
    msgs = parse_messages(b["messages"])
    assert roles(b) == ["user", "assistant", "tool"] and msgs[2]["tool_call_id"] == "toolu_01"
    assert msgs[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert msgs[1]["content"] == [
        {"type": "text", "text": "Let me check."}
    ]  # tool_use block moved to tool_calls
    assert tool_names(b) == ["get_weather"]  # Anthropic {name, input_schema} -> OpenAI schema
    assert (b["response_text"], b["finish_reason"], b["agent"]) == (
        "It is 14 °C in Paris.",
        "end_turn",
        "responder",
    )
    assert err["status"] == "error" and err["error"].startswith("RateLimitError")
    assert err["tokens_estimated"] is True  # the Run's 0/0 defaults are not counts
    assert (wrapped["response_text"], wrapped["finish_reason"], wrapped["session_id"]) == (
        "Flight AZ 123 leaves at 9:40.",
        "stop",
        "conv-2",
    )
    assert (wrapped["input_tokens"], wrapped["output_tokens"], wrapped["cost_usd"]) == (85, 17, 0.0000229)


def test_trace_readers_quarantine_bad_records(tmp_path):
    good = json.loads((FIX / "langsmith" / "runs.jsonl").read_text().splitlines()[1])
    lines = [
        json.dumps(good),
        json.dumps({**good, "id": "x1", "inputs": {"messages": 3}}),
        json.dumps({**good, "id": "x2", "inputs": {}}),
        json.dumps({**good, "id": "x3", "outputs": {}, "error": None}),
        json.dumps(good)[:-5],
    ]
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    res = run(path, tmp_path)
    s = res.summary
    assert (s.read, s.ingested, s.quarantined, s.calls) == (5, 1, 4, 1)
    q = res.quarantined()
    assert [e["line"] for e in q] == [2, 3, 4, 5]
    for needle, e in zip(
        ["expected a list", "missing inputs.messages", "no outputs", "invalid JSON"], q, strict=True
    ):
        assert needle in e["reason"] and e["reason"].startswith(f"{path}:{e['line']}: ")
    obs = json.loads((FIX / "langfuse" / "observations.json").read_text())["data"]
    gen = {**obs[1], "id": "g-bad", "input": None}
    lf = tmp_path / "obs.json"
    lf.write_text(json.dumps({"data": [obs[1], gen, {**obs[1], "id": "g2", "input": 5}]}))
    res = run(lf, tmp_path)
    assert (res.summary.read, res.summary.ingested, res.summary.quarantined) == (3, 1, 2)
    assert [e["line"] for e in res.quarantined()] == [2, 3]


def test_call_id_set_matches_a_python_set_across_flushes_and_merges():
    import random

    from slmlab.collect.idset import CallIdSet

    rng = random.Random(0)
    ids = [f"call-{rng.randrange(5_000)}" for _ in range(20_000)]  # many repeats
    small = CallIdSet(buffer=64)  # flushes and merges many times
    plain: set[str] = set()
    for cid in ids:
        assert small.add(cid) == (cid not in plain), cid
        plain.add(cid)
    assert len(small) == len(plain)
    assert all(c in small for c in plain)
    assert not any(f"other-{i}" in small for i in range(2_000))
    assert small.nbytes <= 8 * len(plain)
