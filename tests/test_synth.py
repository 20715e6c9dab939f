"""Tests for the generated demo logs: shape, determinism, ground truth, PII, errors, duplicates, speed."""

from __future__ import annotations

import json
import re
import time
from collections import Counter

import polars as pl
import pytest

from slmlab.config import REPO_ROOT
from slmlab.demo import synth


@pytest.fixture(scope="module")
def labelled():
    return list(synth.iter_labelled_logs(3000, seed=0))


@pytest.fixture(scope="module")
def ok_records(labelled):
    return [(r, lab) for r, lab in labelled if "error" not in r]


def test_every_line_has_the_proxy_shape(labelled):
    for rec, label in labelled:
        assert set(rec) >= {"request", "response", "metadata", "latency_ms", "timestamp"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["timestamp"])
        req = rec["request"]
        assert req["model"] in synth.MODELS and isinstance(req["messages"], list) and "temperature" in req
        assert req["messages"][0]["role"] == "system"
        assert set(rec["metadata"]) == {"agent", "session_id", "step"}
        assert synth.TASKS[label] == rec["metadata"]["agent"]
        assert "task_label" not in json.dumps(rec)  # the ground truth never leaks into the log
        if "error" in rec:
            assert rec["status"] == "error" and rec["response"]["error"]["code"] in (400, 429, 500, 504)
            continue
        resp = rec["response"]
        assert resp["object"] == "chat.completion" and resp["id"].startswith("chatcmpl-")
        msg = resp["choices"][0]["message"]
        if resp["choices"][0]["finish_reason"] == "tool_calls":
            assert msg["content"] is None and "tools" in req
            for tc in msg["tool_calls"]:
                assert tc["type"] == "function" and isinstance(json.loads(tc["function"]["arguments"]), dict)
        else:
            assert isinstance(msg["content"], str) and msg["content"]
        u = resp["usage"]
        assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
        assert 0 <= u["prompt_tokens_details"]["cached_tokens"] <= u["prompt_tokens"]


def test_deterministic_for_a_seed_and_different_across_seeds():
    a = synth.generate_agent_logs(200, seed=3)
    b = synth.generate_agent_logs(200, seed=3)
    c = synth.generate_agent_logs(200, seed=4)
    assert a == b
    assert a != c


def test_twelve_subtasks_over_six_agents_and_three_models(labelled):
    labels = Counter(lab for _, lab in labelled)
    assert set(labels) == set(synth.TASKS) and len(labels) == 12
    assert min(labels.values()) >= 50  # every sub-task recurs enough to be a cluster
    models = {r["request"]["model"] for r, _ in labelled}
    assert models == {"gpt-4o", "gpt-4o-mini", "gpt-4.1"}


def test_templates_are_shared_across_subtasks(ok_records):
    # The worker's five tool sub-tasks share one system prompt per version: a template is not a label.
    def head(rec):
        return re.sub(r"\d", "0", rec["request"]["messages"][0]["content"][:50])

    by_template: dict[str, set[str]] = {}
    for rec, lab in ok_records:
        by_template.setdefault(head(rec), set()).add(lab)
    assert max(len(v) for v in by_template.values()) >= 5
    assert 8 <= len(by_template) <= 14  # 6 agents x 2 prompt versions


def test_tokens_and_latency_follow_the_text(ok_records):
    for rec, _ in ok_records[:500]:
        chars = sum(len(m.get("content") or "") for m in rec["request"]["messages"])
        u = rec["response"]["usage"]
        assert chars / 4 * 0.9 <= u["prompt_tokens"] <= chars / 4 * 1.1 + 1200  # + tool schemas
    df = pl.DataFrame(
        {
            "out": [r["response"]["usage"]["completion_tokens"] for r, _ in ok_records],
            "lat": [r["latency_ms"] for r, _ in ok_records],
            "model": [r["request"]["model"] for r, _ in ok_records],
        }
    )
    assert df.select(pl.corr("out", "lat")).item() > 0.5
    prompt = [r["response"]["usage"]["prompt_tokens"] for r, _ in ok_records]
    assert min(prompt) >= 100 and max(prompt) >= 2000  # hundreds to a few thousand tokens


def test_errors_duplicates_and_time_span(labelled):
    n = len(labelled)
    errors = sum("error" in r for r, _ in labelled)
    assert 0.01 * n <= errors <= 0.05 * n
    keys = Counter(
        json.dumps(
            [r["request"]["messages"], r["response"]["choices"][0]["message"]["content"]], sort_keys=True
        )
        for r, _ in labelled
        if "error" not in r and r["response"]["choices"][0]["finish_reason"] == "stop"
    )
    dups = sum(c - 1 for c in keys.values())
    assert dups >= 0.005 * n
    assert len({r["response"]["id"] for r, _ in labelled}) == n  # duplicates get new ids
    stamps = sorted(r["timestamp"] for r, _ in labelled)
    assert stamps[0].startswith("2026-11-02") and stamps[-1] < "2026-11-10"


def test_seeded_pii_is_present_and_checksummed(labelled):
    text = "\n".join(json.dumps(r) for r, _ in labelled[:1500])
    assert re.search(r"[\w.]+@[\w.]+\.\w+", text)
    assert re.search(r"\(\d{3}\) \d{3}-\d{4}", text)
    assert re.search(r"\b\d{3}-\d{2}-\d{4}\b", text)
    assert re.search(r"sk-proj-\w{48}|AKIA[A-Z2-7]{16}|ghp_\w{36}", text)
    assert re.search(r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+", text)
    assert re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b", text)
    cards = re.findall(r"card (\d[\d -]{13,20}\d)", text)
    assert cards and all(synth.luhn_valid(c) for c in cards)
    ibans = re.findall(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,4})?\b", text)
    assert ibans and sum(synth.iban_valid(i) for i in ibans) == len(ibans)


def test_checksum_helpers():
    assert synth.luhn_valid("4539 1488 0343 6467") and not synth.luhn_valid("4539 1488 0343 6468")
    assert synth.iban_valid("GB82WEST12345698765432") and not synth.iban_valid("GB83WEST12345698765432")


def test_generation_is_fast_and_streams():
    t = time.perf_counter()
    synth.generate_agent_logs(3000, seed=1)
    assert time.perf_counter() - t < 4.0  # < 2 s on a quiet machine; margin for a shared CI box
    it = synth.iter_agent_logs(1_000_000, seed=0)
    first = [next(it) for _ in range(10)]  # lazily: nothing else is generated
    assert len(first) == 10


def test_write_demo_logs_and_labels(tmp_path):
    path = synth.write_demo_logs(tmp_path, n_calls=120, seed=2)
    lines = path.read_text().splitlines()
    labels = synth.load_demo_labels(tmp_path / synth.LABEL_FILE)
    assert len(lines) == 120 and labels.height == 120
    assert labels["call_id"].to_list() == [json.loads(x)["response"]["id"] for x in lines]
    assert [json.loads(x) for x in lines] == synth.generate_agent_logs(120, seed=2)


def test_bundled_demo_files_match_the_generator():
    path = synth.demo_logs_path()
    assert path == REPO_ROOT / "data" / "demo_agent_logs.jsonl"
    with path.open() as fh:
        head = [json.loads(next(fh)) for _ in range(50)]
    assert head == synth.generate_agent_logs(3000, seed=0)[:50]  # the committed file is regenerable
    labels = synth.load_demo_labels()
    assert labels.height == 3000 and labels["task_label"].n_unique() == 12


def test_bundled_demo_files_are_byte_identical_to_a_regeneration(tmp_path):
    # the generator's modules can be reorganised, never its output: the committed files are its seed-0 run
    synth.write_demo_logs(tmp_path, n_calls=3000, seed=0)
    for name in (synth.LOG_FILE, synth.LABEL_FILE):
        assert (tmp_path / name).read_bytes() == (REPO_ROOT / "data" / name).read_bytes(), name


def test_demo_logs_path_generates_into_the_cache_without_a_checkout(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "REPO_ROOT", tmp_path / "no-repo")
    monkeypatch.setenv("SLMLAB_CACHE", str(tmp_path / "cache"))
    path = synth.demo_logs_path()
    assert path == tmp_path / "cache" / "demo" / "demo_agent_logs.jsonl"
    assert synth.load_demo_labels().height == 3000
    mtime = path.stat().st_mtime_ns
    assert synth.demo_logs_path() == path and path.stat().st_mtime_ns == mtime  # generated once
