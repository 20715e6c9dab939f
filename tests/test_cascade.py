"""The cascade: gate features from the SLM's own answer, calibration on validation, the router, its
cost model, constrained decoding and the export bundle."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from slmlab.route import (
    GATE_FEATURES,
    ROUTERS,
    CascadeGate,
    CascadeRouter,
    apgr,
    calibrate_threshold,
    cascade_sweep,
    gate_features,
    load_router,
    share_at_agreement,
    wilson_interval,
)
from slmlab.route.gate import binary_agreement, cross_fit_scores, text_agrees
from slmlab.runtime.generate import Generation

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_user_details",
            "parameters": {
                "type": "object",
                "properties": {"user_id": {"type": "string"}},
                "required": ["user_id"],
            },
        },
    }
]


def _tool_gen(user_id: str, lps: list[float]) -> Generation:
    call = json.dumps({"name": "get_user_details", "arguments": {"user_id": user_id}})
    text = f"<tool_call>\n{call}\n</tool_call>"
    # one "token" per 8 characters, so spans map onto known log-probabilities
    ends = list(range(8, len(text), 8)) + [len(text)]
    lps = (lps * len(ends))[: len(ends)]
    args = json.dumps({"user_id": user_id})
    return Generation(
        text=text, tool_calls=[{"name": "get_user_details", "arguments": args}], output_tokens=len(ends),
        token_logprobs=lps, token_ends=ends,
    )  # fmt: skip


def test_gate_features_read_the_answer():
    prompt = json.dumps([{"role": "user", "content": "I am mia_li_3668"}])
    calls = pl.DataFrame({"call_id": ["a", "b", "c"], "messages": [prompt, prompt, prompt]})
    gens = [
        _tool_gen("mia_li_3668", [-0.01]),
        _tool_gen("noah_kim_1234", [-2.0]),  # an id the prompt never mentions, low probability
        Generation(
            text="Sure, how can I help?", token_logprobs=[-0.5, -0.1], token_ends=[4, 21], output_tokens=2
        ),
    ]
    f = gate_features(calls, gens, TOOLS, max_new_tokens=64)
    assert f.columns == ["call_id", *GATE_FEATURES]
    rows = f.to_dicts()
    assert rows[0]["ids_in_prompt"] == 1.0 and rows[1]["ids_in_prompt"] == 0.0
    assert rows[0]["schema_valid"] == 1.0 and rows[0]["is_text"] == 0.0
    assert rows[0]["p_action"] > rows[1]["p_action"]
    assert rows[0]["lp_args_min"] > rows[1]["lp_args_min"]
    assert rows[2]["is_text"] == 1.0 and rows[2]["p_action"] == pytest.approx(np.exp(-0.5))


def test_schema_invalid_and_constrained_disagreement():
    prompt = json.dumps([{"role": "user", "content": "x"}])
    calls = pl.DataFrame({"call_id": ["a"], "messages": [prompt]})
    bad = Generation(
        text='<tool_call>\n{"name": "get_user_details", "arguments": {"uid": 3}}\n</tool_call>',
        tool_calls=[{"name": "get_user_details", "arguments": '{"uid": 3}'}], token_logprobs=[-0.1],
        token_ends=[10], output_tokens=1,
    )  # fmt: skip
    fixed = _tool_gen("u_1", [-0.1])
    f = gate_features(calls, [bad], TOOLS, 64, constrained=[fixed]).row(0, named=True)
    assert f["schema_valid"] == 0.0 and f["constrained_agrees"] == 0.0


def test_wilson_and_calibration_pick_the_lowest_safe_threshold():
    lo, hi = wilson_interval(45, 50)
    assert 0.78 < lo < 0.9 < hi
    rng = np.random.default_rng(0)
    s = rng.uniform(size=400)
    y = (rng.uniform(size=400) < s**0.1).astype(int)  # agreement rises with the score
    cal = calibrate_threshold(s, y, target=0.9)
    kept = s >= cal["threshold"]
    assert cal["kept"] == kept.sum() and cal["lower"] >= 0.9
    # any lower threshold (one more call) no longer has a lower bound at the target
    assert wilson_interval(int(y[kept].sum()), int(kept.sum()))[0] >= 0.9
    assert calibrate_threshold([0.5] * 10, [0] * 10)["threshold"] == float("inf")


def test_cascade_router_fits_calibrates_routes_and_reloads(tmp_path):
    rng = np.random.default_rng(1)
    n = 300
    signal = rng.uniform(size=n)
    y = (rng.uniform(size=n) < signal**0.3).astype(int)
    feats = {f: rng.normal(size=n) for f in GATE_FEATURES}
    feats["p_action"] = signal
    calls = pl.DataFrame({"call_id": [f"c{i}" for i in range(n)], **feats})
    router = CascadeRouter(target=0.9).fit(calls, agreed=y, groups=[i // 4 for i in range(n)])
    assert "cascade" in ROUTERS
    assert router.gate_.coef_[GATE_FEATURES.index("p_action")] > 0
    routed = router.route(calls)
    assert set(routed.get_column("routed_to").unique()) <= {"slm", "llm"}
    assert routed.get_column("route_cluster").unique().to_list() == [0]
    again = load_router(router.save(tmp_path / "cascade"))
    assert isinstance(again, CascadeRouter)
    np.testing.assert_allclose(again.score(calls), router.score(calls))
    assert again.threshold == router.threshold
    reasons = router.gate_.reasons(calls)
    assert len(reasons) == n and set(reasons) <= set(GATE_FEATURES)
    with pytest.raises(ValueError, match="gate_features"):
        router.score(calls.select("call_id"))


def test_cross_fit_scores_never_grade_their_own_fit():
    n = 60
    feats = pl.DataFrame({f: np.arange(n, dtype=float) for f in GATE_FEATURES})
    y = np.r_[np.zeros(30), np.ones(30)]
    oof = cross_fit_scores(CascadeGate(), feats, y, folds=3, groups=[i // 3 for i in range(n)])
    assert oof.shape == (n,) and np.all((0 <= oof) & (oof <= 1))


def test_cascade_sweep_shares_and_apgr():
    s = [0.9, 0.8, 0.7, 0.2, 0.1]
    y = [1, 1, 1, 0, 1]
    sw = cascade_sweep(s, y)
    top = sw.filter(pl.col("threshold") == 0.7).row(0, named=True)
    assert top["slm_share"] == pytest.approx(0.6) and top["slm_agreement"] == 1.0 and top["quality"] == 1.0
    assert share_at_agreement(sw, 0.9)["slm_share"] == pytest.approx(0.6)
    assert 0.0 <= apgr(sw) <= 1.0


def test_text_agreement_threshold_and_binary_agreement():
    assert text_agrees([0.95, 0.5, None]).tolist() == [True, False, False]
    sc = pl.DataFrame(
        {"name_args_exact": [True, None, None, False], "text_similarity": [None, 0.9, 0.3, None],
         "agreement": [1.0, 0.9, 0.3, 0.0]}
    )  # fmt: skip
    assert binary_agreement(sc).get_column("agreement").to_list() == [1.0, 1.0, 0.0, 0.0]


def test_text_metric_against_hand_judged_pairs():
    """The stated text metric (MiniLM cosine >= TEXT_AGREEMENT_THRESHOLD) agrees with the hand
    verdicts on most of the committed judged pairs (the benchmark reports the exact figures)."""
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "taubench_text_judged.jsonl"
    if not path.exists():
        pytest.skip("no hand-judged pairs committed yet")
    pairs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert len(pairs) >= 50
    verdict = text_agrees([p["similarity"] for p in pairs])
    human = np.array([bool(p["human_agrees"]) for p in pairs])
    assert (verdict == human).mean() >= 0.8


def test_cascade_costs_and_break_even():
    from slmlab.savings.cascade import (
        cascade_break_even_volume,
        cascade_costs,
        cascade_summary,
        max_escalation_share,
    )
    from slmlab.savings.model import SelfHostedSLM, slm_cost_per_call

    calls = pl.DataFrame(
        {"call_id": ["a", "b", "c", "d"], "input_tokens": [2000] * 4, "output_tokens": [40] * 4,
         "cost_usd": [0.01, 0.01, 0.01, None], "latency_ms": [1000.0] * 4}
    )  # fmt: skip
    spec = SelfHostedSLM()
    pc = cascade_costs(
        calls, [False, True, True, False], spec, reasons=[None, "p_action", "ids_in_prompt", None]
    )
    slm = float(slm_cost_per_call(2000, 40, spec))
    assert pc.get_column("cost_after_usd").to_list()[:3] == pytest.approx([slm, slm + 0.01, slm + 0.01])
    assert pc.get_column("cost_after_usd")[3] is None  # no logged cost: out of both sums
    lat = pc.get_column("latency_after_ms").to_list()
    assert lat[1] > 1000.0 > lat[0]  # escalated calls pay the SLM's latency on top
    s = cascade_summary(pc)
    assert s["priced_calls"] == 3 and s["escalated"] == 2
    assert s["cost_before_usd"] == pytest.approx(0.03)
    assert s["cost_after_usd"] == pytest.approx(3 * slm + 0.02)
    assert s["break_even_escalation_share"] == pytest.approx(max_escalation_share(slm, 0.01))
    assert cascade_break_even_volume(pc, SelfHostedSLM(engineering_usd_month=100.0)) > 0
    all_escalated = cascade_costs(calls, [True] * 4, spec)
    assert cascade_break_even_volume(all_escalated, spec) is None  # escalating everything never pays


def test_tool_call_schema_and_parser_accept_only_valid_calls():
    pytest.importorskip("lmformatenforcer")
    from slmlab.runtime.constrained import tool_call_parser, tool_call_schema

    schema = tool_call_schema(TOOLS)
    assert schema["anyOf"][0]["properties"]["name"]["enum"] == ["get_user_details"]

    def accepts(text: str) -> bool:
        parser = tool_call_parser(TOOLS)
        for ch in text:
            if ch not in parser.get_allowed_characters():
                return False
            parser = parser.add_character(ch)
        return parser.can_end()

    good = '<tool_call>\n{"name": "get_user_details", "arguments": {"user_id": "a_1"}}\n</tool_call>'
    assert accepts(good)
    assert not accepts(good.replace("get_user_details", "cancel_everything"))
    assert not accepts(good.replace('"user_id": "a_1"', '"user_id": 7'))


@pytest.mark.slow
def test_constrained_generation_with_the_bundled_model():
    pytest.importorskip("lmformatenforcer")
    from slmlab.runtime.constrained import tool_call_processor, tools_fingerprint
    from slmlab.runtime.generate import TransformersGenerator

    gen = TransformersGenerator(
        "smollm2-135m", logits_processor=tool_call_processor(TOOLS), constraint="t:" + tools_fingerprint(TOOLS)
    )  # fmt: skip
    prompt = [[{"role": "user", "content": "Look up the user mia_li_3668."}]]
    out = gen.generate(prompt, max_new_tokens=28, progress=False)[0]
    assert out.text.startswith("<tool_call>")
    assert '"get_user_details"' in out.text  # the only name the constraint allows
    assert len(out.token_logprobs) == len(out.token_ends) == out.output_tokens
    assert "|t:" in gen.cache_id  # constrained answers are cached apart from free ones


def test_bundle_carries_the_cascade_and_loads_in_a_fresh_process(tmp_path, monkeypatch):
    from slmlab.pipeline.bundle import export_bundle, load_cascade

    monkeypatch.setenv("SLMLAB_HOME", str(tmp_path / "home"))
    adapter = tmp_path / "ft-agent"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "smollm2-135m"}))
    n = 40
    calls = pl.DataFrame(
        {"call_id": [str(i) for i in range(n)], **{f: [0.0, 1.0] * (n // 2) for f in GATE_FEATURES}}
    )
    router = CascadeRouter(target=0.8, routes={0: str(adapter)}).fit(calls, agreed=[0, 1] * (n // 2))
    out = export_bundle("no-such-run", tmp_path / "bundle", cascade=router)
    manifest = json.loads((out / "bundle.json").read_text())
    assert manifest["cascade"]["adapters"] == ["cascade_ft-agent"]
    assert manifest["cascade"]["threshold"] == router.threshold
    assert "cascade_ft-agent=adapters/cascade_ft-agent" in manifest["serve"][0]
    assert (out / "adapters" / "cascade_ft-agent" / "adapter_config.json").exists()
    assert load_cascade(out).routes.get_column("adapter").to_list() == ["adapters/cascade_ft-agent"]
    code = (
        "import sys, polars as pl; from slmlab.pipeline.bundle import load_cascade; "
        "r = load_cascade(sys.argv[1]); from slmlab.route import GATE_FEATURES; "
        "x = pl.DataFrame({f: [0.0, 1.0] for f in GATE_FEATURES}).with_columns(pl.Series('call_id', ['a', 'b'])); "
        "print(r.route(x)['routed_to'].to_list())"
    )
    res = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "['llm', 'slm']"
