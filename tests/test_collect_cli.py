"""`slmlab ingest` / `slmlab profile`: one-line errors naming the file, per-file formats and counts, ignored
files listed, the table streamed to parquet, a traceback only with --debug."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from slmlab.pipeline.cli import app, error_line, fail

FIX = Path(__file__).resolve().parent / "fixtures" / "logs"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_ingest_reports_each_file_and_streams_parquet(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    (d / "calls.jsonl").write_bytes((FIX / "openai" / "calls.jsonl").read_bytes())
    (d / "empty.jsonl").write_text("")
    (d / "notes.json").write_text(json.dumps({"hello": "world"}))
    out = tmp_path / "calls.parquet"
    r = invoke("ingest", d, "--out", out)
    assert r.exit_code == 0, r.output
    assert f"{d / 'calls.jsonl'}: openai: 5 read, 5 ingested, 0 quarantined, 5 calls" in r.output
    assert f"{d / 'empty.jsonl'}: ignored: the file is empty" in r.output
    assert f"{d / 'notes.json'}: ignored: JSON, but no reader recognised its shape" in r.output
    assert pl.read_parquet(out).height == 5
    assert (tmp_path / "calls.quarantine.jsonl").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["ingest", "nothere.jsonl"], "nothere.jsonl: no such log file or folder"),
        (["ingest", "-f", "nope", str(FIX / "openai" / "calls.jsonl")], "--format nope: no such reader"),
        (["profile", "nothere.parquet"], "nothere.parquet: no such file"),
        (["profile", str(FIX / "openai" / "calls.jsonl")], "not a call table"),
    ],
)
def test_ordinary_mistakes_are_one_line(tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    r = invoke(*args)
    assert r.exit_code == 1
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("slmlab: error: ") and needle in lines[0], r.output


def test_empty_binary_and_looping_files_are_one_line(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "blob.json").write_bytes(bytes(range(256)))
    os.symlink("loop.jsonl", tmp_path / "loop.jsonl")
    for name, needle in [
        ("empty.jsonl", "the file is empty"),
        ("blob.json", "binary data"),
        ("loop.jsonl", "points to itself"),
    ]:
        r = invoke("ingest", tmp_path / name, "--out", tmp_path / "c.parquet")
        assert r.exit_code == 1 and needle in r.output and "Traceback" not in r.output, r.output


def test_profile_prints_the_sign_before_the_dollar(tmp_path):
    out = tmp_path / "calls.parquet"
    assert invoke("ingest", FIX / "openai" / "calls.jsonl", "--out", out).exit_code == 0
    df = pl.read_parquet(out).with_columns(
        pl.lit(-3.5).alias("cost_usd"), pl.lit(-470).cast(pl.Int64).alias("input_tokens")
    )
    df.write_parquet(out)
    r = invoke("profile", out)
    assert r.exit_code == 0, r.output
    assert "$-" not in r.output and "tokens: -" not in r.output
    assert "left out of the totals: 5 calls with a negative token count or cost" in r.output


def test_fail_and_error_line():
    with pytest.raises(Exception) as exc:
        fail("x.parquet", "not a parquet file", "pass the file slmlab ingest wrote")
    assert error_line(exc.value) == "x.parquet: not a parquet file (pass the file slmlab ingest wrote)"
    assert (
        error_line(PermissionError(13, "Permission denied", "/a/b"))
        == "/a/b: permission denied (check the file's owner and mode)"
    )


def test_console_script_one_line_and_debug_traceback(tmp_path):
    """The installed entry point (the app's own error handling, not CliRunner's)."""
    code = "from slmlab.pipeline.cli import app; app()"
    env = {**os.environ, "SLMLAB_DEBUG": ""}
    r = subprocess.run(
        [sys.executable, "-c", code, "ingest", "nothere.jsonl"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert (
        r.returncode == 1 and r.stderr.strip() == "slmlab: error: nothere.jsonl: no such log file or folder"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, "--debug", "ingest", "nothere.jsonl"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode != 0 and "Traceback" in r.stderr
