"""The hostile corpus (tests/hostile/corpus.py): exact counts, the good records survive, the summary adds up
per file and in total, every quarantined record names its file and line."""

from __future__ import annotations

import gzip
import importlib.util
import os
import sys
from pathlib import Path

import pytest

from slmlab.collect import ingest
from slmlab.schema import validate_calls

_spec = importlib.util.spec_from_file_location(
    "hostile_corpus", Path(__file__).parent / "hostile" / "corpus.py"
)
corpus = importlib.util.module_from_spec(_spec)
sys.modules["hostile_corpus"] = corpus  # dataclasses look their module up there
_spec.loader.exec_module(corpus)


def words(texts):
    return [len(t.split()) for t in texts]


def test_corpus_is_big_enough():
    assert len(corpus.CASES) >= 40
    assert len({c.name for c in corpus.CASES}) == len(corpus.CASES)


@pytest.mark.parametrize("case", corpus.CASES, ids=lambda c: c.name)
def test_hostile_case(tmp_path, case):
    d = corpus.write_case(case, tmp_path / "logs")
    res = ingest(d, format=case.fmt, quarantine=tmp_path / "q.jsonl", tokenizer=words, prices=False)
    s = res.summary
    got = (s.read, s.ingested, s.quarantined, s.calls)
    if case.expect is not None:
        assert got == case.expect, (s.report(), [e["reason"] for e in res.quarantined()])
    assert s.read == s.ingested + s.quarantined
    for st in s.by_file.values():
        assert st["read"] == st["ingested"] + st["quarantined"], st
    assert sum(st["calls"] for st in s.by_file.values()) == s.calls == res.calls.height
    validate_calls(res.calls)
    ids = set(res.calls["call_id"])
    assert set(case.survive) <= ids, (case.survive, sorted(ids)[:10])
    q = res.quarantined()
    assert len(q) == s.quarantined
    for e in q:
        assert e["reason"].startswith(f"{e['source_file']}:{e['line']}: ")
    reasons = [e["reason"] for e in q]
    for needle, reason in zip(case.reasons, reasons, strict=False):
        assert needle in reason, (needle, reasons)
    assert len(reasons) >= len(case.reasons)
    for name, needle in case.ignored.items():
        assert needle in s.ignored_reasons[str(d / name)], s.ignored_reasons
    if case.check is not None:
        case.check(res)


def test_truncated_gzip_keeps_the_lines_before_the_cut(tmp_path):
    """The gzip cut in half: every line decoded before the cut is ingested, the cut is one quarantined record."""
    (case,) = [c for c in corpus.CASES if c.name == "truncated_gzip"]
    d = corpus.write_case(case, tmp_path / "logs")
    res = ingest(d, quarantine=tmp_path / "q.jsonl", tokenizer=words, prices=False)
    st = res.summary.by_file[str(d / "a.jsonl.gz")]
    readable = 0
    with gzip.open(d / "a.jsonl.gz", "rb") as f:
        try:
            for raw in f:
                readable += raw.endswith(b"\n")
        except EOFError:
            pass
    assert st["calls"] == readable > 0 and st["quarantined"] == 1 and "truncated" in st["error"]
    assert res.summary.by_file[str(d / "b.jsonl")]["calls"] == 1


def test_permission_denied_is_reported_and_the_rest_is_read(tmp_path, monkeypatch):
    import slmlab.collect.files as files

    d = tmp_path / "logs"
    d.mkdir()
    (d / "a.jsonl").write_text(corpus.lines(1))
    (d / "locked.jsonl").write_text(corpus.lines(2))
    real_open = files.open_text_bytes

    def guarded(path):
        if Path(path).name == "locked.jsonl":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path)

    monkeypatch.setattr(files, "open_text_bytes", guarded)
    monkeypatch.setattr(
        "slmlab.collect.base.read_head_bytes", lambda p, n=files.HEAD_BYTES: _head(guarded, p, n)
    )
    res = ingest(d, quarantine=tmp_path / "q.jsonl", tokenizer=words, prices=False)
    s = res.summary
    assert (s.read, s.quarantined, s.calls) == (2, 1, 1)
    assert "Permission denied" in s.by_file[str(d / "locked.jsonl")]["error"]


def _head(opener, path, n):
    with opener(path) as f:
        return f.read(n)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_mode(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    (d / "a.jsonl").write_text(corpus.lines(1))
    locked = d / "locked.jsonl"
    locked.write_text(corpus.lines(2))
    locked.chmod(0)
    res = ingest(d, quarantine=tmp_path / "q.jsonl", tokenizer=words, prices=False)
    assert (res.summary.quarantined, res.summary.calls) == (1, 1)
