"""The openai reader's column-wise fast path gives the very table and quarantine of the per-record path."""

from __future__ import annotations

import gzip
import json
import math
import random
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest

import slmlab.collect.driver as base
from slmlab.collect import ingest
from slmlab.collect.base import Context, iter_jsonl, iter_jsonl_blocks, timestamp_column, to_datetime
from slmlab.collect.openai import OpenAIReader
from slmlab.schema import validate_calls

TOOLS = [
    {"type": "function", "function": {"name": "get_order", "description": "Look up an order.",
     "parameters": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}}},
    {"type": "function", "function": {"name": "refund", "description": "Refund, at most 0.5 of the price.",
     "parameters": {"type": "object", "properties": {"amount": {"type": "number", "minimum": 0.00001}}}}},
]  # fmt: skip
OTHER_TOOLS = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]


def words(texts):
    return [len(t.split()) for t in texts]


def _line(rng: random.Random, i: int) -> str:
    """One varied openai log line: most are the common shape, many carry one of the rarer features."""
    kind = rng.choice(["tool", "text", "text", "flywheel", "multi"])
    if kind in ("tool", "flywheel"):
        args: object = {"id": f"R{i}", "qty": rng.choice([1, 2.5, 1e-05, 10**20, -(2**63) - 1, 3e20])}
        if kind == "tool":
            args = json.dumps(args)
        msg = {"role": "assistant", "content": rng.choice([None, "", "Checking."]),
               "tool_calls": [{"id": f"call_{i}", "type": "function",
                               "function": {"name": rng.choice(["get_order", "refund"]), "arguments": args}}]}  # fmt: skip
    elif kind == "multi":
        msg = {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"a{i}", "type": "function", "function": {"name": "get_order", "arguments": "{}"}},
            {"id": i, "type": "function", "function": {"name": "refund", "arguments": None}}]}  # fmt: skip
    else:
        msg = {
            "role": "assistant",
            "content": rng.choice(["Done.", "Prix: 12 €", "tab\there", "nul \u0000 byte"]),
        }
    messages = [
        {"role": "system", "content": "You are a support agent."},
        {"role": "user", "content": f"Order {i}?"},
    ]
    if rng.random() < 0.2:
        messages.append(
            {"role": "user", "content": [{"type": "text", "text": "see image"}, {"type": "image_url"}]}
        )
    if rng.random() < 0.1:
        messages.append(
            {"role": "tool", "tool_call_id": "x", "content": "{}", "score": rng.choice([0.1, 2e-7, 7])}
        )
    usage = {"prompt_tokens": rng.randint(10, 500), "completion_tokens": rng.randint(1, 50)}
    if rng.random() < 0.3:
        usage["prompt_tokens_details"] = {"cached_tokens": rng.choice([0, 64, None])}
    if rng.random() < 0.1:
        usage = rng.choice(
            [
                {},
                {"input_tokens": 12, "output_tokens": 3},
                {"prompt_tokens": 12.0},
                None,
                {"prompt_tokens": -(2**63) - 1, "completion_tokens": 2**64 + 1},
            ]
        )
    request = {"model": "gpt-4o", "messages": messages}
    tools = rng.choice([TOOLS, TOOLS, TOOLS, OTHER_TOOLS, None])
    if tools:
        request["tools"] = tools
    if rng.random() < 0.5:
        request["temperature"] = rng.choice([0, 0.7, 1e-05])
    if rng.random() < 0.1:
        request["functions"] = OTHER_TOOLS
    response = {"id": rng.choice([f"chatcmpl-{i}", f"chatcmpl-{i}", f"chatcmpl-{i}", None, i, 10**21]),
                "created": 1793527200 + i, "model": rng.choice(["gpt-4o", "gpt-4o-2024-08-06"]),
                "choices": [{"index": 0, "message": msg,
                             "finish_reason": "tool_calls" if "tool_calls" in msg else "stop"}], "usage": usage}  # fmt: skip
    rec: dict = {"request": request, "response": response}
    meta = {"agent": rng.choice(["planner", "critic", "", None]), "session_id": rng.choice([f"s{i // 5}", None, 7]),
            "step": rng.choice([i % 5, None, "3", 2.0])}  # fmt: skip
    if rng.random() < 0.2:
        meta.update(parent_id=f"p{i}", tenant="acme", tools=TOOLS)  # a "tools" key before request.tools
    if rng.random() < 0.8:
        rec = {"metadata": meta, **rec} if rng.random() < 0.3 else {**rec, "metadata": meta}
    ts = rng.choice(["2026-11-01T10:00:00Z", "2026-11-01T10:00:02.250Z", "2026-11-01T12:00:00+02:00",
                     1793527200, 1793527200123, 1793527200.5, "2026-02-30T10:00:00Z", None])  # fmt: skip
    if ts is not None:
        rec["timestamp"] = ts
    extra = rng.random()
    if extra < 0.1:
        rec.update(workload_id="orders", client_id="shop", cost=0.002)  # Data Flywheel / logged cost
    elif extra < 0.15:
        rec.update(error={"message": "Rate limit"}, status=429)
    elif extra < 0.2:
        rec["status"] = rng.choice([200, "success", "failed", 500.0])
    elif extra < 0.25:
        rec.update(start_time="2026-11-01T10:00:00Z", end_time="2026-11-01T10:00:01.500Z")
    else:
        rec["latency_ms"] = rng.choice([812.5, 300, "120", 1e300, None])
    if kind == "flywheel":
        rec["workload_id"] = "orders"
    text = json.dumps(rec, ensure_ascii=rng.random() < 0.5, separators=rng.choice([None, (",", ":")]))
    return text


BAD_LINES = [
    '{"request": {"model": "gpt-4o", "messages": 3}, "response": {"id": "bad1", "choices": []}}',
    '{"request": {"model": "gpt-4o", "messages": []}}',  # no response, no error
    '{"request": {"model": "gpt-4o", "messages": [1]}, "response": {"id": "bad3"}}',
    "[1, 2]",
    '{"request": {"model": "gpt-4o", "messages": []}, "response": {"id": "x", "choices": [{"message": null}]}}',
    '{"request": {"model": "gpt-4o", "messages": []}, "response": {"id": "nan", "choices": [{"message": {"content": "x"}}]}, "latency_ms": NaN}',  # noqa: E501
    '{"request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "\\ud800"}]}, "response": {"id": "sur", "choices": [{"message": {"content": "x"}}]}}',  # noqa: E501
    '{"request": {"model": "gpt-4o", "messages": []}, "response": {"id": "fc", "choices": [{"message": {"content": null, "function_call": {"name": "f", "arguments": "{}"}}}]}}',  # noqa: E501
    '{"request": {"model": "gpt-4o", "messages": []}, "response": {"id": "tr", "choices": [',  # truncated
    "   ",
    "",
]


def _varied_file(path: Path, n: int = 400, seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines = [_line(rng, i) for i in range(n)]
    for bad in BAD_LINES:
        lines.insert(rng.randrange(len(lines)), bad)
    lines.insert(rng.randrange(len(lines)), lines[5])  # a duplicate call id
    data = "\n".join(lines).encode("utf-8")
    data = data.replace(b"\n", b"\r\n", 3)  # a few CRLF lines
    bad_utf8 = b'{"request": {"model": "gpt-4o", "messages": []}, "response": {"id": "\xff"}}'
    path.write_bytes(data + b"\n" + bad_utf8 + b"\n" + lines[1].encode())  # no newline at the end
    return path


def _both(path: Path, tmp_path: Path, **kw):
    fast = ingest(path, format="openai", quarantine=tmp_path / "fast.jsonl", tokenizer=words, **kw)
    slow = ingest(
        path, format="openai", quarantine=tmp_path / "slow.jsonl", tokenizer=words, fast=False, **kw
    )
    return fast, slow


def _assert_same(fast, slow):
    assert fast.summary == slow.summary
    s = fast.summary
    assert s.read == s.ingested + s.quarantined
    validate_calls(fast.calls)
    assert fast.calls.equals(slow.calls), [
        c for c in fast.calls.columns if not fast.calls[c].equals(slow.calls[c], null_equal=True)
    ]
    assert fast.quarantined() == slow.quarantined()


@pytest.mark.parametrize("block_bytes", [base.BLOCK_BYTES, 1500, 1])
def test_fast_path_equals_per_record_path(tmp_path, monkeypatch, block_bytes):
    path = _varied_file(tmp_path / "logs.jsonl")
    monkeypatch.setattr(base, "BLOCK_BYTES", block_bytes)
    fast, slow = _both(path, tmp_path, chunk_rows=37)
    _assert_same(fast, slow)
    s = fast.summary
    assert s.quarantined >= 10 and s.calls > 300
    q = fast.quarantined()
    assert all(e["reason"].startswith(f"{path}:{e['line']}: ") and e["raw"] for e in q)
    assert any("duplicate call_id" in e["reason"] for e in q)
    assert any("not valid UTF-8" in e["reason"] for e in q)
    # Exact integers beyond 64 bits survive (orjson would have read them as floats).
    args = "".join(fast.calls["response_tool_calls"].drop_nulls().to_list())
    assert str(10**20) in args and str(-(2**63) - 1) in args
    assert "1e-05" in "".join(fast.calls["metadata"].drop_nulls().to_list())  # json's float text


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_path_equals_per_record_path_other_seeds(tmp_path, seed):
    path = _varied_file(tmp_path / "logs.jsonl", n=300, seed=seed)
    _assert_same(*_both(path, tmp_path, out=None, prices=False))


def test_fast_path_gzip_and_parquet(tmp_path):
    plain = _varied_file(tmp_path / "logs.jsonl", n=200)
    gz = tmp_path / "logs.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    fast = ingest(
        gz, format="openai", quarantine=tmp_path / "f.jsonl", tokenizer=words, out=tmp_path / "f.parquet"
    )
    slow = ingest(gz, format="openai", quarantine=tmp_path / "s.jsonl", tokenizer=words, fast=False)
    _assert_same(fast, slow)


def test_fast_path_answers_the_common_shapes(tmp_path):
    """The fast path must not quietly send common lines to the slow path (that would only cost speed)."""
    common = {
        "request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "tools": TOOLS,
                    "temperature": 0},
        "response": {"id": "c1", "created": 1793527200, "model": "gpt-4o",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [
                         {"id": "t", "type": "function", "function": {"name": "get_order", "arguments": "{}"}}]},
                         "finish_reason": "tool_calls"}],
                     "usage": {"prompt_tokens": 5, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 0}}},
        "metadata": {"agent": "a", "session_id": "s", "step": 0}, "latency_ms": 10.5,
        "timestamp": "2026-11-01T10:00:00Z",
    }  # fmt: skip
    flywheel = {
        "timestamp": 1793527203, "workload_id": "w", "client_id": "c",
        "request": {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]},
        "response": {"id": "c2", "choices": [{"message": {"content": "", "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "f", "arguments": {"to": "Rome", "n": 2}}}]}}]},
    }  # fmt: skip
    path = tmp_path / "x.jsonl"
    lines = [json.dumps(common), json.dumps({**common, "response": {**common["response"], "id": "c3"}}),
             json.dumps(flywheel)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    reader = OpenAIReader()
    rows = reader.fast_rows(Context(path=path, all_paths=[path]))
    out = rows(path.read_bytes().rstrip(b"\n").split(b"\n"), 1)
    assert all(r is not None for r in out)
    _assert_same(*_both(path, tmp_path))


def test_iter_jsonl_blocks_numbers_lines_like_iter_jsonl(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n\n  \n{"b": "' + b"x" * 5000 + b'"}\r\n[1]\n{"c": 3}')
    expect = [(r.line, r.obj) for r in iter_jsonl(path)]
    for size in (1, 7, 100, 1 << 20):
        got = []
        for first, lines, _ in iter_jsonl_blocks(path, size):
            for i, line in enumerate(lines):
                if line.strip():
                    got.append((first + i, json.loads(line)))
        assert got == expect, size


def test_timestamp_column_equals_to_datetime():
    rng = random.Random(0)
    values: list = [None, True, "", "x", "0000-01-01T00:00:00Z", "2026-11-01T10:00:60Z", "+2026-11-01T10:00:00Z",
                    " 2026-11-01T10:00:00Z", "2026-11-01 10:00:00 UTC", "1793527200", "1793527200.5", -5, 0,
                    99_999_999_999, 100_000_000_000, 1793527200123456789, math.pi, "9999-12-31T23:59:59.999999Z",
                    "2026-11-01T10:00:00.1234567Z", "2026-11-01T10:00:00.25Z"]  # fmt: skip
    for _ in range(2000):
        dt = datetime(2000, 1, 1, tzinfo=timezone.utc).timestamp() + rng.uniform(0, 1e9)
        iso = datetime.fromtimestamp(round(dt, rng.choice([0, 3, 6])), tz=timezone.utc).isoformat()
        values.append(rng.choice([iso, iso.replace("+00:00", "Z"), iso.replace("+00:00", "+05:30"), int(dt),
                                  int(dt * 1000), dt, iso.replace("T", " ")]))  # fmt: skip
    got = timestamp_column(values)
    expect = pl.DataFrame(
        {"t": [to_datetime(v) for v in values]}, schema={"t": pl.Datetime("us", "UTC")}, strict=False
    ).to_series()
    assert got.dtype == pl.Datetime("us", "UTC") and got.len() == len(values)
    assert got.to_list() == expect.to_list()
    # Datetimes from a reader: naive ones are UTC, aware ones of any zone are converted (a mix is fine).
    aware = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    mixed = timestamp_column([datetime(2026, 1, 1, 12), aware.astimezone(), None]).to_list()
    assert mixed[:2] == [aware, aware] and mixed[2] is None
