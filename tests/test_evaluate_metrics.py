"""Hand-checked per-call metrics, bootstrap summaries, the generation cache, the HTTP endpoint and judge."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import polars as pl
import pytest

from slmlab.evaluate import (
    LLMJudge,
    argument_f1,
    bootstrap_ci,
    calls_exact_match,
    canonical_call,
    normalize_json,
    schema_valid,
    score_calls,
    summarize_scores,
    text_similarity,
    token_f1,
)
from slmlab.runtime.endpoint import OpenAICompatibleGenerator
from slmlab.runtime.generate import Generation, GenerationCache

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_reservation_details",
            "parameters": {
                "type": "object",
                "properties": {"reservation_id": {"type": "string"}, "verbose": {"type": "boolean"}},
                "required": ["reservation_id"],
            },
        },
    }
]


def tc(name, args):
    return {"name": name, "arguments": json.dumps(args)}


def test_normalize_json_sorts_keys_ints_floats_and_whitespace():
    assert normalize_json({"b": 2.0, "a": [1.50, " x  y "]}) == {"a": [1.5, "x y"], "b": 2}
    assert list(normalize_json({"b": 1, "a": 2})) == ["a", "b"]
    assert normalize_json(True) is True  # bools are not numbers
    assert canonical_call(tc("f", {"b": 1.0, "a": "x"})) == canonical_call(
        {"name": "f", "arguments": {"a": "x", "b": 1}}
    )


def test_exact_match_ignores_order_of_parallel_calls_and_number_format():
    ref = [tc("f", {"x": 1}), tc("g", {"y": "a"})]
    assert calls_exact_match(ref, [tc("g", {"y": "a"}), {"name": "f", "arguments": '{ "x" : 1.0 }'}])
    assert not calls_exact_match(ref, [tc("f", {"x": 1})])  # a missing call
    assert not calls_exact_match([tc("f", {"x": 1})], [tc("f", {"x": "1"})])  # "1" is not 1


def test_argument_f1_by_hand():
    ref = [tc("f", {"a": 1, "b": 2, "c": 3})]
    # pred has a, b right, c wrong, plus extra d: precision 2/4, recall 2/3 -> F1 = 4/7
    assert argument_f1(ref, [tc("f", {"a": 1, "b": 2, "c": 4, "d": 0})]) == pytest.approx(4 / 7)
    assert argument_f1(ref, [tc("g", {"a": 1, "b": 2, "c": 3})]) == 0.0  # pairs carry the tool name
    assert argument_f1([tc("f", {})], [tc("f", {})]) == 1.0
    assert argument_f1([tc("f", {})], [tc("g", {})]) == 0.0


def test_schema_validity_with_logged_and_inferred_schemas():
    ok = [tc("get_reservation_details", {"reservation_id": "ABC123"})]
    assert schema_valid(ok, TOOLS)
    assert not schema_valid([tc("get_reservation_details", {"reservation_id": 5})], TOOLS)  # wrong type
    assert not schema_valid([tc("get_reservation_details", {})], TOOLS)  # required missing
    assert not schema_valid([tc("unknown_tool", {})], TOOLS)
    inferred = [
        {
            "function": {
                "name": "f",
                "parameters": {"properties": {"x": {"type": "string"}}, "required": ["x"]},
            }
        }
    ]
    assert schema_valid([tc("f", {"x": 3})], inferred, inferred=True)  # inferred types are not checked
    assert not schema_valid([tc("f", {"y": 3})], inferred, inferred=True)


def test_token_f1_and_text_similarity_by_hand():
    # "your flight is booked" vs "the flight is booked": 3 common of 4 and 4 tokens -> 0.75
    assert token_f1("Your flight is booked.", "the flight is booked") == pytest.approx(0.75)
    assert token_f1("", "") == 1.0 and token_f1("a", "") == 0.0
    sims = text_similarity(["book a flight", "hello", ""], ["book a flight", "goodbye", ""], embedder="tfidf")
    assert sims.tolist() == pytest.approx([1.0, 0.0, 1.0])


def _reference():
    rows = [
        # 0: tool call, model right (args as floats, other key order)
        {
            "response_tool_calls": json.dumps(
                [{"id": "1", **tc("get_reservation_details", {"reservation_id": "ABC123"})}]
            ),
            "response_text": None,
            "tools": json.dumps(TOOLS),
        },
        # 1: tool call, model picks the right tool with a wrong id
        {
            "response_tool_calls": json.dumps([tc("get_reservation_details", {"reservation_id": "ABC123"})]),
            "response_text": None,
            "tools": json.dumps(TOOLS),
        },
        # 2: tool call, model answers in text
        {
            "response_tool_calls": json.dumps([tc("get_reservation_details", {"reservation_id": "ABC123"})]),
            "response_text": None,
            "tools": None,
        },
        # 3: text turn, model answers the same text
        {"response_tool_calls": None, "response_text": "Your flight is booked.", "tools": None},
        # 4: text turn, model calls a tool
        {"response_tool_calls": None, "response_text": "Anything else?", "tools": None},
        # 5: tool call, model emits a broken <tool_call> block
        {
            "response_tool_calls": json.dumps([tc("get_reservation_details", {"reservation_id": "X"})]),
            "response_text": None,
            "tools": None,
        },
    ]
    df = pl.DataFrame(
        rows, schema={"response_tool_calls": pl.String, "response_text": pl.String, "tools": pl.String}
    )
    return df.with_columns(
        pl.Series("call_id", [f"c{i}" for i in range(6)]),
        pl.Series("session_id", ["s1", "s1", "s2", "s2", "s3", "s3"]),
        pl.Series("cluster", [0, 0, 0, 1, 1, 0], dtype=pl.Int32),
        pl.Series("reward", [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]),
    )


def _generations():
    return [
        Generation(
            text="",
            tool_calls=[{"name": "get_reservation_details", "arguments": '{"reservation_id": "ABC123"}'}],
            output_tokens=12,
            latency_ms=30.0,
        ),
        Generation(
            text="",
            tool_calls=[{"name": "get_reservation_details", "arguments": '{"reservation_id": "ZZZ"}'}],
        ),
        Generation(text="Let me check that for you."),
        Generation(text="Your flight is booked."),
        Generation(text="", tool_calls=[{"name": "get_reservation_details", "arguments": "{}"}]),
        Generation(
            text="", tool_calls=[{"name": None, "arguments": '{"name": "get_reserv'}], valid_json=False
        ),
    ]


def test_score_calls_by_hand():
    s = score_calls(_reference(), _generations(), model="m", experiment="base", embedder="tfidf")
    assert s.height == 6 and s["model"].unique().to_list() == ["m"]
    assert s["action_match"].to_list() == [1, 1, 0, 1, 0, 1]
    assert s["name_match"].to_list() == [1, 1, 0, 1, 0, 0]
    assert s["name_args_exact"].to_list() == [1, 0, 0, None, None, 0]
    assert s["arg_f1"].to_list() == [1, 0, 0, None, None, 0]
    assert s["json_valid"].to_list() == [1, 1, None, None, 1, 0]
    # row 4 has no logged tools: validated against schemas inferred from the reference calls
    # (get_reservation_details requires reservation_id) -> invalid
    assert s["schema_valid"].to_list() == [1, 1, None, None, 0, 0]  # a wrong id still fits the schema
    assert s["token_f1"].to_list() == [None, None, None, 1.0, 0.0, None]
    assert s["text_similarity"][3] == pytest.approx(1.0)
    assert s["agreement"].to_list() == pytest.approx([1, 0, 0, 1, 0, 0])
    assert s["pred_action"].to_list()[2] == "respond" and s["pred_action"][5] == "<invalid>"
    assert s["output_tokens"][0] == 12 and s["latency_ms"][0] == 30.0


def test_score_calls_needs_one_generation_per_call():
    with pytest.raises(ValueError, match="one per call"):
        score_calls(_reference(), _generations()[:2], embedder="tfidf")


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    v = np.array([1.0] * 30 + [0.0] * 10)
    lo, hi = bootstrap_ci(v, seed=3)
    assert (lo, hi) == bootstrap_ci(v, seed=3)
    assert lo < 0.75 < hi and hi - lo < 0.35
    assert bootstrap_ci(np.array([1.0, 1.0])) == (1.0, 1.0)
    assert all(np.isnan(bootstrap_ci(np.array([np.nan]))))


def test_summarize_scores_groups_with_intervals_and_success_agreement():
    s = score_calls(_reference(), _generations(), model="m", experiment="base", embedder="tfidf")
    summary = summarize_scores(s, n_boot=200)
    assert summary["cluster"].to_list() == [0, 1]
    row0 = summary.row(0, named=True)
    assert row0["n"] == 4 and row0["name_args_exact"] == pytest.approx(0.25)
    assert row0["name_args_exact_lo"] <= 0.25 <= row0["name_args_exact_hi"]
    assert row0["token_f1"] is None  # no text turns in cluster 0
    # successful sessions (reward 1) in cluster 0: c0 (1.0), c1 (0.0), c5 (0.0)
    assert row0["n_success"] == 3 and row0["agreement_success"] == pytest.approx(1 / 3)


# ------------------------------------------------------------------ HTTP endpoint, cache and judge


class _ChatHandler(BaseHTTPRequestHandler):
    """A tiny OpenAI-compatible server: answers with a tool call when asked about a reservation."""

    hits = 0

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).hits += 1
        last = body["messages"][-1]["content"]
        if "judge" in body["model"]:
            message = {"role": "assistant", "content": "score: 8"}
        elif "reservation" in last:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "x",
                        "type": "function",
                        "function": {
                            "name": "get_reservation_details",
                            "arguments": '{"reservation_id": "ABC123"}',
                        },
                    }
                ],
            }
        else:
            message = {"role": "assistant", "content": f"echo: {last}"}
        reply = {
            "choices": [
                {"message": message, "logprobs": {"content": [{"logprob": -0.5}, {"logprob": -1.5}]}}
            ],
            "usage": {"completion_tokens": 2, "prompt_tokens": 10},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_openai_compatible_generator_parses_native_tool_calls_and_logprobs(server):
    gen = OpenAICompatibleGenerator(server, "slm", concurrency=2)
    out = gen.generate(
        [[{"role": "user", "content": "my reservation please"}], [{"role": "user", "content": "hi"}]],
        progress=False,
    )
    assert out[0].tool_calls == [
        {"name": "get_reservation_details", "arguments": '{"reservation_id": "ABC123"}'}
    ]
    assert out[1].text == "echo: hi" and out[1].tool_calls == []
    assert out[0].output_tokens == 2 and out[0].mean_logprob == pytest.approx(-1.0)
    assert gen.with_adapter("/runs/demo/adapters/cluster_3").model == "cluster_3"


def test_generation_cache_makes_reruns_free(server, tmp_path):
    cache = GenerationCache(tmp_path / "g.sqlite")
    gen = OpenAICompatibleGenerator(server, "slm")
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(5)]
    before = _ChatHandler.hits
    first = gen.generate(prompts, max_new_tokens=8, cache=cache, progress=False)
    assert _ChatHandler.hits - before == 5 and len(cache) == 5
    again = gen.generate(prompts, max_new_tokens=8, cache=cache, progress=False)
    assert _ChatHandler.hits - before == 5  # nothing re-generated
    assert [g.text for g in again] == [g.text for g in first] and all(g.cached for g in again)
    gen.generate(prompts[:1], max_new_tokens=9, cache=cache, progress=False)  # another budget is another key
    assert _ChatHandler.hits - before == 6


def test_llm_judge_scores_text_turns(server):
    judge = LLMJudge(OpenAICompatibleGenerator(server, "judge-model"))
    ref = _reference().with_columns(pl.lit('[{"role": "user", "content": "book it"}]').alias("messages"))
    s = score_calls(ref, _generations(), embedder="tfidf", judge=judge)
    # only text turns answered in text are judged: row 3
    assert s["judge_score"].to_list() == [None, None, None, 0.8, None, None]
