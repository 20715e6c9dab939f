"""Readers on exports written by other projects (tests/fixtures/logs/real/, sources in its README.md):
exact counts, and no answer or tool call lost where the source has one."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from slmlab.collect import ingest
from slmlab.schema import parse_messages, parse_tool_calls, validate_calls

REAL = Path(__file__).resolve().parent / "fixtures" / "logs" / "real"


def words(texts):
    return [len(t.split()) for t in texts]


def run(paths, tmp_path, **kw):
    kw.setdefault("tokenizer", words)
    res = ingest(paths, quarantine=tmp_path / "q.jsonl", **kw)
    s = res.summary
    assert s.read == s.ingested + s.quarantined
    for st in s.by_file.values():
        assert st["read"] == st["ingested"] + st["quarantined"]
    validate_calls(res.calls)
    return res


def _no_empty_targets(df):
    for row in df.filter(df["status"] == "ok").iter_rows(named=True):
        assert row["response_text"] or row["n_tool_calls"], row["call_id"]
        assert parse_messages(row["messages"])


def test_jaeger_ui_genai_trace(tmp_path):
    res = run(REAL / "otel_genai" / "jaeger_genai_trace.json", tmp_path)
    s = res.summary
    assert (s.read, s.calls, s.skipped, s.quarantined) == (6, 1, 4, 1)
    row = res.calls.row(0, named=True)
    assert (row["call_id"], row["agent"], row["model"]) == ("span-chat", "research-agent", "gpt-4o")
    assert (row["input_tokens"], row["output_tokens"], row["latency_ms"]) == (1500, 450, 2000.0)
    assert row["session_id"] == "genai-full-trace-001" and row["parent_id"] == "span-invoke-agent"
    assert [m["role"] for m in parse_messages(row["messages"])] == ["system", "user", "assistant"]
    assert row["response_text"].startswith("Setting up OpenTelemetry with Jaeger")
    assert "content capture was off" in res.quarantined()[0]["reason"]  # the chat span without messages


def test_console_span_exporter_output(tmp_path):
    res = run(REAL / "otel_genai" / "console_spans.json", tmp_path)
    s = res.summary
    assert (s.read, s.skipped, s.calls, s.quarantined) == (2, 2, 0, 0)  # invoke_agent and HTTP POST
    assert s.by_file[str(REAL / "otel_genai" / "console_spans.json")]["format"] == "otel_genai"


def test_console_span_exporter_chat_span(tmp_path):
    """A chat span as the Python SDK's ConsoleSpanExporter prints it (to_json, indent 4), twice in a row."""
    span = {
        "name": "chat gpt-4o-mini",
        "context": {"trace_id": "0xf2258b51421fe9cf4c0bd428c87b1ae4", "span_id": "0x1cad6fc139dcf01e"},
        "kind": "SpanKind.CLIENT",
        "parent_id": "0x2cad6fc139dcf01d",
        "start_time": "2025-09-25T11:00:49.000000Z",
        "end_time": "2025-09-25T11:00:51.500000Z",
        "status": {"status_code": "ERROR", "description": "rate limited"},
        "attributes": {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.input.messages": json.dumps(
                [{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]
            ),
            "gen_ai.usage.input_tokens": 26,
        },
        "events": [],
        "links": [],
        "resource": {"attributes": {"service.name": "jokes"}, "schema_url": ""},
    }
    other = {**span, "context": {**span["context"], "span_id": "0x1cad6fc139dcf01f"}}
    path = tmp_path / "stdout.txt.json"
    path.write_text(json.dumps(span, indent=4) + "\n" + json.dumps(other, indent=4) + "\n")
    res = run(path, tmp_path)
    assert (res.summary.calls, res.summary.quarantined) == (2, 0)
    row = res.calls.row(0, named=True)
    assert (row["call_id"], row["status"], row["error"], row["latency_ms"]) == (
        "1cad6fc139dcf01e",
        "error",
        "rate limited",
        2500.0,
    )
    assert row["agent"] == "jokes" and row["source_line"] == 1


def test_langfuse_otel_mapping_spans(tmp_path):
    """OpenLit and OpenLLMetry spans as Langfuse's OTel tests receive them (Buffer ids, {low, high} longs)."""
    res = run(REAL / "otel_genai" / "langfuse_otel_mapping.json", tmp_path)
    assert (res.summary.calls, res.summary.quarantined) == (2, 0)
    openlit, traceloop = res.calls.iter_rows(named=True)
    assert (
        openlit["call_id"] == "b904bffb20be6d7e"
        and openlit["session_id"] == "ea673708441c2984a54a3e3962d3595f"
    )
    assert (openlit["input_tokens"], openlit["output_tokens"], openlit["cost_usd"]) == (14, 96, 0.000151)
    assert openlit["response_text"].startswith("LLM Observability stands for")
    assert openlit["timestamp"].year == 2025 and openlit["latency_ms"] == pytest.approx(1174.148582)
    assert traceloop["model"] == "gpt-3.5-turbo-0125" and traceloop["finish_reason"] == "stop"
    assert parse_messages(traceloop["messages"]) == [
        {"role": "user", "content": "What is LLM Observability?"}
    ]
    _no_empty_targets(res.calls)


def test_langfuse_framework_payloads(tmp_path):
    """OpenAI Agents SDK, Vercel AI SDK, Gemini and LlamaIndex payloads (MLflow's trace-explorer fixtures)."""
    res = run(REAL / "langfuse", tmp_path)
    assert (res.summary.calls, res.summary.quarantined) == (5, 0)
    rows = {r["call_id"]: r for r in res.calls.iter_rows(named=True)}
    tc = parse_tool_calls(rows["obs-1"]["response_tool_calls"])  # Responses API function_call item
    assert tc == [
        {"id": "call_bRNQ2ZycSlQAOKWomPbtaub4", "name": "get_weather", "arguments": '{"city": "Tokyo"}'}
    ]
    agent = rows["obs-2"]
    assert agent["response_text"].startswith("I checked the weather in Tokyo")  # output_text part
    history = parse_messages(agent["messages"])
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "assistant", "tool"]
    assert history[2]["tool_call_id"] == "call_weather_123"
    assert rows["obs-3"]["response_text"] == "This is a detailed response"  # Vercel {response: {messages}}
    assert rows["obs-4"]["response_text"] == "AI learns patterns from data to make decisions."  # Gemini
    assert parse_messages(rows["obs-4"]["messages"]) == [
        {"role": "user", "content": "Explain how AI works in a few words"}
    ]
    llama = rows["obs-5"]
    assert llama["response_text"].startswith("The first program the author wrote")  # LlamaIndex blocks
    assert [m["role"] for m in parse_messages(llama["messages"])] == ["system", "user"]
    _no_empty_targets(res.calls)


def test_langsmith_batch_payloads(tmp_path):
    """A `POST /runs/batch` post, then its patch (langsmith-py), as one JSONL of payloads."""
    res = run(REAL / "langsmith" / "runs_batch.jsonl", tmp_path)
    s = res.summary
    assert (s.read, s.calls, s.skipped, s.quarantined) == (2, 1, 1, 0)  # the patch is read with its post
    row = res.calls.row(0, named=True)
    assert row["response_text"].startswith("LangSmith is a platform")
    assert (row["input_tokens"], row["output_tokens"], row["model"]) == (22, 24, "gpt-4o")
    assert row["latency_ms"] == pytest.approx(1700.616)
    assert [m["role"] for m in parse_messages(row["messages"])] == ["system", "user"]


def test_langsmith_patch_without_post_is_quarantined(tmp_path):
    lines = (REAL / "langsmith" / "runs_batch.jsonl").read_text().splitlines()
    path = tmp_path / "patch_only.jsonl"
    path.write_text(lines[1] + "\n")
    res = run(path, tmp_path, format="langsmith")
    assert (res.summary.read, res.summary.quarantined, res.summary.calls) == (1, 1, 0)
    q = res.quarantined()[0]
    assert "without its post" in q["reason"] and q["json_path"] == "$.patch[0]"


def test_phoenix_dict_of_span_lists(tmp_path):
    res = run(REAL / "openinference" / "spans_by_project.json", tmp_path)
    s = res.summary
    assert (s.read, s.calls, s.skipped, s.quarantined) == (5, 3, 2, 0)


def test_data_flywheel_documents(tmp_path):
    """The Data Flywheel record of its quickstart: one pretty-printed object, a pretty-printed array, and
    pretty-printed records in a .jsonl file."""
    res = run(REAL / "openai", tmp_path)
    s = res.summary
    assert (s.read, s.calls, s.quarantined) == (5, 5, 0)
    by_file = {Path(k).name: v["calls"] for k, v in s.by_file.items()}
    assert by_file == {
        "flywheel_pretty.jsonl": 2,
        "flywheel_record.json": 1,
        "flywheel_records_array.json": 2,
    }
    assert set(res.calls["tool_name"]) == {"structured_rag"} and set(res.calls["task_label"]) == {"aiva_1"}
    args = [parse_tool_calls(t)[0]["arguments"] for t in res.calls["response_tool_calls"]]
    assert json.loads(args[0]) == {"query": "account bill processed", "user_id": "4165"}
    assert res.calls["source_line"].to_list()[:2] == [1, 63]  # a pretty-printed value: the line it starts on


def test_openai_batch_docs_examples(tmp_path):
    res = run(REAL / "openai_batch", tmp_path)
    s = res.summary
    assert (s.read, s.calls, s.quarantined) == (3, 3, 0)
    rows = {r["call_id"]: r for r in res.calls.iter_rows(named=True)}
    ok = rows["chatcmpl-123"]
    assert ok["response_text"] == "Hello." and ok["cost_estimated"]
    assert ok["cost_usd"] == pytest.approx((22 * 0.5 + 2 * 1.5) / 1e6 * 0.5)  # the Batch API's 50%
    expired = rows["batch:request-3"]
    assert expired["status"] == "error" and "completion window expired" in expired["error"]
    assert expired["cost_usd"] == 0.0


def test_openai_batch_gzipped_input_given_alone(tmp_path):
    d = tmp_path / "b"
    d.mkdir()
    src = REAL / "openai_batch" / "docs"
    (d / "batchinput.jsonl.gz").write_bytes(gzip.compress((src / "batchinput.jsonl").read_bytes()))
    shutil.copy(src / "batch_output.jsonl", d / "batch_output.jsonl")
    res = run(d / "batchinput.jsonl.gz", tmp_path)  # only the input: its output beside it is read
    s = res.summary
    assert (s.calls, s.quarantined) == (2, 0)
    assert s.by_file[str(d / "batch_output.jsonl")]["note"].startswith("found beside")
    assert set(res.calls["response_text"]) == {"Hello.", "Hello! How can I assist you today?"}


def test_langsmith_sdk_wrap_openai_batch_document(tmp_path):
    """langsmith-sdk's own test data: one `{"post", "patch"}` document of a wrap_openai run (o1-mini)."""
    res = run(REAL / "langsmith" / "wrap_openai_chat_complex_usage.json", tmp_path)
    assert (res.summary.calls, res.summary.skipped, res.summary.quarantined) == (1, 1, 0)
    row = res.calls.row(0, named=True)
    assert row["response_text"].startswith("Certainly! Below is a Bash script")
    assert (row["input_tokens"], row["output_tokens"], row["cached_input_tokens"]) == (43, 3171, 0)
    assert row["finish_reason"] == "stop" and row["latency_ms"] == pytest.approx(17725.938)


def test_openinference_spec_example_spans(tmp_path):
    """The two LLM spans of the OpenInference spec, pretty-printed one after the other."""
    res = run(REAL / "openinference" / "spec_llm_spans.json", tmp_path)
    assert (res.summary.read, res.summary.calls, res.summary.quarantined) == (2, 2, 0)
    call, synth = res.calls.iter_rows(named=True)
    assert parse_tool_calls(call["response_tool_calls"])[0]["name"] == "multiply"
    assert json.loads(parse_tool_calls(call["response_tool_calls"])[0]["arguments"]) == {"a": 23, "b": 87}
    assert synth["response_text"] == "The product of 23 times 87 is 2001."
    assert [m["role"] for m in parse_messages(synth["messages"])] == ["system", "user", "assistant", "tool"]
    assert (synth["input_tokens"], synth["source_line"]) == (259, 42)
    assert call["latency_ms"] == pytest.approx(534.781)
