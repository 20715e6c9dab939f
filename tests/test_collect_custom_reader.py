"""The README's "Bring your own format" example (examples/react_reader.py), through the API and the CLI."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from slmlab.collect import READERS, ingest, register_reader
from slmlab.pipeline.cli import app
from slmlab.schema import parse_tool_calls, validate_calls

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "react_reader.py"

TURNS = [
    {"run": "r-17", "turn": 0, "model": "gpt-4o-mini", "time": "2026-03-02T09:14:05Z", "ms": 812,
     "prompt": "Answer: who wrote Dune?\nTools: search(q)", "thought": "I should search.", "action": "search",
     "action_input": {"q": "Dune author"}, "final_answer": None, "tokens": {"prompt": 40, "completion": 12}},
    {"run": "r-17", "turn": 1, "model": "gpt-4o-mini", "time": "2026-03-02T09:14:07Z", "ms": 640,
     "prompt": "...Observation: Frank Herbert", "thought": "I know it.", "action": None,
     "final_answer": "Frank Herbert wrote Dune.", "tokens": {"prompt": 58, "completion": 9}},
    {"run": "r-18", "turn": 0, "model": "gpt-4o-mini", "prompt": "Say hi", "thought": "..."},
]  # fmt: skip


def _load():
    spec = importlib.util.spec_from_file_location("react_reader", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.ReActTurnsReader


@pytest.fixture
def turns(tmp_path):
    p = tmp_path / "turns.jsonl"
    p.write_text("".join(json.dumps(t) + "\n" for t in TURNS) + "not json\n")
    yield p
    READERS.pop("react_turns", None)


def test_example_reader_through_the_api(turns, tmp_path):
    register_reader(_load())
    res = ingest(turns, quarantine=tmp_path / "q.jsonl", tokenizer=lambda ts: [len(t.split()) for t in ts])
    s = res.summary
    assert (s.read, s.ingested, s.quarantined, s.calls) == (4, 2, 2, 2)
    assert s.formats == {"react_turns": 2}
    df = validate_calls(res.calls)
    first, second = df.iter_rows(named=True)
    assert parse_tool_calls(first["response_tool_calls"]) == [
        {"id": "r-17-0", "name": "search", "arguments": '{"q":"Dune author"}'}
    ]
    assert first["response_text"] == "I should search." and first["latency_ms"] == 812.0
    assert second["response_text"] == "Frank Herbert wrote Dune." and second["step"] == 1
    assert (second["input_tokens"], second["output_tokens"], second["tokens_estimated"]) == (58, 9, False)
    reasons = [e["reason"] for e in res.quarantined()]
    assert "an `action` or a `final_answer`" in reasons[0] and "invalid JSON" in reasons[1]


def test_example_reader_through_the_cli(turns, tmp_path):
    out = tmp_path / "calls.parquet"
    r = CliRunner().invoke(
        app, ["ingest", str(turns), "--out", str(out), "--reader", f"{EXAMPLE}:ReActTurnsReader"]
    )
    assert r.exit_code == 0, r.output
    assert f"{turns}: react_turns: 4 read, 2 ingested, 2 quarantined, 2 calls" in r.output
    assert "custom readers: react_turns" in r.output
    assert pl.read_parquet(out).height == 2


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("nomodule", "expected module:Class"),
        ("no_such_module_xyz:Reader", "cannot import no_such_module_xyz"),
        (f"{EXAMPLE}:Nope", "has no attribute 'Nope'"),
        ("json:JSONDecoder", "not a slmlab.collect.Reader subclass"),
    ],
)
def test_bad_reader_spec_is_one_line(turns, tmp_path, spec, needle):
    r = CliRunner().invoke(
        app, ["ingest", str(turns), "--out", str(tmp_path / "c.parquet"), "--reader", spec]
    )
    assert r.exit_code == 1
    assert needle in r.output and "Traceback" not in r.output


def test_entry_point_readers_are_loaded(turns, tmp_path, monkeypatch):
    from importlib.metadata import EntryPoint

    ep = EntryPoint(name="react", value="react_reader:ReActTurnsReader", group="slmlab.readers")
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))
    monkeypatch.setattr(
        "importlib.metadata.entry_points", lambda group=None: [ep] if group == "slmlab.readers" else []
    )
    out = tmp_path / "calls.parquet"
    r = CliRunner().invoke(app, ["ingest", str(turns), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "custom readers: react_turns" in r.output and pl.read_parquet(out).height == 2
