"""Step 5, select: catalog validation, memory estimates checked against measurements, ranking, zero-shot probe."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import polars as pl
import pytest

from slmlab.select import (
    CatalogError,
    GpuSpec,
    best_model,
    catalog_row,
    estimate_memory,
    get_gpu,
    kv_cache_bytes,
    linear_params,
    load_candidates,
    load_catalog,
    load_gpus,
    lora_params,
    memory_table,
    plot_memory,
    probe_summary,
    rank_models,
    zero_shot_probe,
)

REQUIRED_MODELS = [
    "HuggingFaceTB/SmolLM2-135M-Instruct",
    "HuggingFaceTB/SmolLM2-360M-Instruct",
    "HuggingFaceTB/SmolLM2-1.7B-Instruct",
    "Qwen/Qwen2.5-0.5B-Instruct",
    "Qwen/Qwen2.5-1.5B-Instruct",
    "Qwen/Qwen2.5-3B-Instruct",
    "Qwen/Qwen2.5-7B-Instruct",
    "Qwen/Qwen3-0.6B",
    "Qwen/Qwen3-1.7B",
    "Qwen/Qwen3-4B",
    "Qwen/Qwen3-8B",
    "meta-llama/Llama-3.2-1B-Instruct",
    "meta-llama/Llama-3.2-3B-Instruct",
    "microsoft/Phi-3.5-mini-instruct",
    "microsoft/Phi-4-mini-instruct",
    "google/gemma-2-2b-it",
    "google/gemma-3-1b-it",
    "google/gemma-3-4b-it",
    "nvidia/Nemotron-Mini-4B-Instruct",
    "nvidia/Hymba-1.5B-Instruct",
    "Salesforce/xLAM-2-1b-fc-r",
    "Salesforce/xLAM-2-3b-fc-r",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
]


# ------------------------------------------------------------------------------------------------ catalog
@pytest.fixture(scope="module")
def catalog() -> pl.DataFrame:
    return load_catalog()


def test_catalog_has_the_agent_slms_with_sources(catalog):
    assert set(REQUIRED_MODELS) <= set(catalog.get_column("hub_id"))
    assert catalog.filter(pl.col("bundled")).get_column("local_name").to_list() == ["smollm2-135m"]
    assert catalog.get_column("source").str.starts_with("https://").all()
    assert catalog.get_column("date").str.contains(r"^20\d\d-\d\d$").all()
    # published figures only where known: at least most models carry one, none is invented for the NVIDIA pair
    with_bench = catalog.filter(
        pl.any_horizontal(pl.col(c).is_not_null() for c in ("mmlu", "ifeval", "gsm8k", "bfcl"))
    )
    assert with_bench.height >= 15
    assert catalog.filter(pl.col("tool_calling") == "native").height >= 10


def test_catalog_architecture_numbers_add_up_to_the_parameter_count(catalog):
    # block linears + input embedding never exceed the published total, and explain most of it (the rest is an
    # untied head, norms, Mamba heads (Hymba) or a vision tower (Gemma 3 4B)).
    for row in catalog.iter_rows(named=True):
        explained = linear_params(row) + row["vocab_size"] * row["hidden_size"]
        assert 0.7 <= explained / (row["params_b"] * 1e9) <= 1.01, row["hub_id"]


def _write(tmp_path, rows: list[dict]) -> str:
    path = tmp_path / "cat.csv"
    pl.DataFrame(rows).write_csv(path)
    return str(path)


def test_catalog_errors_name_the_row_and_column(tmp_path, catalog):
    good = catalog.filter(pl.col("bundled")).to_dicts()[0]
    bad_tool = {**good, "tool_calling": "sometimes"}
    with pytest.raises(CatalogError, match=r"row 1 \(HuggingFaceTB/SmolLM2-135M-Instruct\).*tool_calling"):
        load_catalog(_write(tmp_path, [bad_tool]))
    with pytest.raises(CatalogError, match="row 25: column 'params_b' must be a number"):
        load_catalog(extra=[{**good, "hub_id": "x/y", "params_b": "big"}])
    with pytest.raises(CatalogError, match="appears twice"):
        load_catalog(extra=[good])
    with pytest.raises(CatalogError, match="required column 'source' is empty"):
        load_catalog(extra=[{**good, "hub_id": "x/y", "source": ""}])
    with pytest.raises(CatalogError, match="0..100"):
        load_catalog(extra=[{**good, "hub_id": "x/y", "mmlu": 130}])


def test_catalog_extra_rows_extend_it(catalog):
    row = {**catalog.filter(pl.col("hub_id") == "Qwen/Qwen2.5-0.5B-Instruct").to_dicts()[0]}
    row.update(hub_id="acme/qwen-0.5b-ft", bundled=False, local_name=None)
    extended = load_catalog(extra=[row])
    assert extended.height == catalog.height + 1
    assert catalog_row("qwen-0.5b-ft", extended)["family"] == "qwen2.5"


def test_gpu_table_and_lookup():
    names = set(load_gpus().get_column("name"))
    for n in ("cpu-laptop", "T4 16GB", "L4 24GB", "A10G 24GB", "RTX 4090 24GB", "A100 40GB", "A100 80GB",
              "H100 80GB", "H200 141GB"):  # fmt: skip
        assert n in names
    assert get_gpu("cpu").is_cpu and get_gpu("T4").memory_gb == 16 and not get_gpu("T4").bf16
    assert get_gpu("h200").memory_gb == 141
    with pytest.raises(KeyError, match="matches several"):
        get_gpu("A100")


# ------------------------------------------------------------------------------------------------- memory
def test_memory_arithmetic():
    llama = catalog_row("meta-llama/Llama-3.2-1B-Instruct")
    # 2 (K,V) x 16 layers x 8 kv heads x 64 dims x 8192 tokens x 2 bytes
    assert kv_cache_bytes(llama, 8192) == 2 * 16 * 8 * 64 * 8192 * 2
    est = estimate_memory(llama, "bf16", 8192)
    assert est.kv_cache_gb == pytest.approx(0.268435456)
    assert est.weights_gb == pytest.approx(1.236 * 2)
    # Gemma 3: five of six layers keep only a 512-token window
    gemma = catalog_row("google/gemma-3-1b-it")
    assert kv_cache_bytes(gemma, 32768) < 0.2 * (2 * 26 * 1 * 256 * 32768 * 2)
    # LoRA r=16 on all seven linears of SmolLM2-135M: 30 * 16 * sum(in + out)
    smol = catalog_row("smollm2-135m")
    per_layer = (576 + 576) + 2 * (576 + 192) + (576 + 576) + 2 * (576 + 1536) + (1536 + 576)
    assert lora_params(smol, 16) == 30 * 16 * per_layer
    q = {k: estimate_memory("Qwen/Qwen2.5-7B-Instruct", k, 4096).weights_gb for k in ("bf16", "int8", "nf4")}
    assert q["nf4"] < q["int8"] < q["bf16"] and 4 < q["nf4"] < 6 and 14 < q["bf16"] < 16
    qlora = estimate_memory("Qwen/Qwen2.5-7B-Instruct", mode="qlora", context_tokens=2048)
    assert (
        qlora.quantization == "nf4"
        and qlora.adapters_gb > 0
        and qlora.optimizer_gb == pytest.approx(3 * qlora.adapters_gb)
    )
    assert 7 < qlora.total_gb < 14  # QLoRA of a 7B at 2k tokens: the "fits a 16 GB card" regime
    assert "AdamW" in qlora.assumptions and "nf4" in qlora.assumptions
    with pytest.raises(ValueError, match="mode"):
        estimate_memory(smol, mode="pretrain")
    with pytest.raises(ValueError, match="full fine-tuning"):
        estimate_memory(smol, "nf4", mode="full")


def test_memory_table_and_plot():
    table = memory_table(["smollm2-135m", "Qwen/Qwen3-0.6B"], ("bf16", "int8", "nf4"), 1024, mode="qlora")
    assert table.height == 6 and set(table.get_column("mode")) == {"lora", "qlora"}
    fig = plot_memory(table, "T4")
    assert type(fig).__name__ == "Figure" and len(fig.data) == 6


@pytest.fixture(scope="module")
def bundled_fp32():
    from slmlab.runtime.models import LoadSpec, load_causal_lm

    return load_causal_lm("smollm2-135m", LoadSpec(device="cpu"))


def test_weights_estimate_matches_transformers_footprint_fp32(bundled_fp32):
    model, _ = bundled_fp32
    est = estimate_memory("smollm2-135m", "fp32", 512, device="cpu")
    # Same parameter count, 4 bytes each: only the catalog's rounding of params_b (0.135 vs 0.1345) differs.
    assert model.get_memory_footprint() / 1e9 == pytest.approx(est.weights_gb, rel=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["int8", "nf4"])
def test_weights_estimate_matches_bitsandbytes_footprint_on_cpu(quant):
    pytest.importorskip("bitsandbytes")
    from slmlab.runtime.models import LoadSpec, load_causal_lm

    model, _ = load_causal_lm("smollm2-135m", LoadSpec(device="cpu", quantization=quant))
    est = estimate_memory("smollm2-135m", quant, 512, device="cpu")
    # Measured 0.2196 GB (int8) and 0.1665 GB (nf4) vs 0.2221 / 0.1701 estimated: quantized linears plus
    # fp32 embeddings (CPU compute dtype). 5% covers the catalog's rounded params_b (0.4%) and bnb's
    # per-tensor metadata.
    assert model.get_memory_footprint() / 1e9 == pytest.approx(est.weights_gb, rel=0.05)


def _run_isolated(code: str) -> dict:
    """Run `code` in a fresh interpreter (torch already imported before the baseline) and parse its JSON."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


LORA_STEP_TOKENS = (128, 512)


@pytest.fixture(scope="module")
def cpu_measurements() -> dict:
    """Memory of the bundled model on CPU, in a fresh interpreter so that torch's import and other tests' objects
    are outside the deltas. Inference: RSS after loading + a 512-token forward. Training: torch's own allocator
    peak (the profiler's running total of live tensor bytes) over two LoRA steps per length, so that AdamW's
    moments exist during the second backward as in a real run. RSS is too coarse for that part: glibc reuses
    freed blocks, and CI once measured 0.17 GB of RSS where the allocator's exact peak was 0.21 GB."""
    return _run_isolated(
        f"""
        import gc, json, os, psutil, tempfile, torch, peft
        from torch.profiler import ProfilerActivity, profile
        from slmlab.runtime.models import LoadSpec, load_causal_lm
        torch.set_num_threads(1)
        proc = psutil.Process(); gc.collect(); before = proc.memory_info().rss
        model, _ = load_causal_lm("smollm2-135m", LoadSpec(device="cpu"))
        with torch.inference_mode():
            model(input_ids=torch.randint(0, 49152, (1, 512)))
        infer = proc.memory_info().rss - before
        model.train(); model.gradient_checkpointing_enable(); model.enable_input_require_grads()
        model = peft.get_peft_model(model, peft.LoraConfig(r=16, target_modules="all-linear", task_type="CAUSAL_LM"))
        train = {{}}
        for n in {LORA_STEP_TOKENS}:
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
            ids = torch.randint(0, 49152, (1, n))
            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                for _ in range(2):
                    model(input_ids=ids, labels=ids).loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
            # the chrome trace's "[memory]" events carry the allocator's running total of live bytes
            with tempfile.TemporaryDirectory() as tmp:
                prof.export_chrome_trace(os.path.join(tmp, "trace.json"))
                events = json.load(open(os.path.join(tmp, "trace.json")))["traceEvents"]
            mem = sorted((e for e in events if e.get("name") == "[memory]"), key=lambda e: e["ts"])
            base = mem[0]["args"]["Total Allocated"] - mem[0]["args"]["Bytes"]  # live before the first step
            peak = max(e["args"]["Total Allocated"] for e in mem) - base
            train[n] = peak / 1e9
            del opt; gc.collect()
        print(json.dumps({{"infer_gb": infer / 1e9, "train_peak_gb": train}}))
        """
    )


def test_inference_rss_matches_estimate(cpu_measurements):
    est = estimate_memory("smollm2-135m", "fp32", 512, device="cpu")
    # Measured 0.63 GB vs 0.61 estimated. 20%: RSS also holds the tokenizer and allocator caches.
    assert cpu_measurements["infer_gb"] == pytest.approx(est.total_gb, rel=0.2)


@pytest.mark.parametrize("tokens", LORA_STEP_TOKENS)
def test_lora_step_allocator_peak_matches_estimate(cpu_measurements, tokens):
    est = estimate_memory("smollm2-135m", "fp32", tokens, mode="lora", device="cpu")
    training = est.optimizer_gb + est.activations_gb  # the adapters were allocated before the measurement
    measured = cpu_measurements["train_peak_gb"][str(tokens)]
    # Measured in fp32 (torch 2.13, transformers 5.25): 0.124 GB vs 0.143 at 128 tokens, 0.378 vs 0.396
    # at 512. The estimate is an upper bound by the gradients' size (they are allocated after the logits free).
    assert 0.8 * training <= measured <= 1.05 * training, (measured, training)


@pytest.mark.cuda
def test_estimates_match_cuda_peak_allocations():
    import torch

    from slmlab.runtime.models import LoadSpec, load_causal_lm

    peft = pytest.importorskip("peft")
    model, _ = load_causal_lm("smollm2-135m", LoadSpec(device="cuda", dtype="bfloat16"))
    ids = torch.randint(0, 49152, (1, 2048), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        model(input_ids=ids, use_cache=True, logits_to_keep=1)
    est = estimate_memory("smollm2-135m", "bf16", 2048, device="cuda")
    context = 0.4  # the estimate's CUDA context is outside torch's allocator
    assert torch.cuda.max_memory_allocated() / 1e9 == pytest.approx(est.total_gb - context, rel=0.35)

    model.train()
    model.gradient_checkpointing_enable()
    model.enable_input_require_grads()
    model = peft.get_peft_model(
        model, peft.LoraConfig(r=16, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    torch.cuda.reset_peak_memory_stats()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    opt.step()
    est = estimate_memory("smollm2-135m", "bf16", 2048, mode="lora", device="cuda")
    assert torch.cuda.max_memory_allocated() / 1e9 == pytest.approx(est.total_gb - context, rel=0.35)


# ------------------------------------------------------------------------------------------------ ranking
@pytest.fixture(scope="module")
def clusters() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "cluster": pl.Series([0, 1, 2], dtype=pl.Int32),
            "name": ["get_reservation_details", "policy answers", "long reports"],
            "p90_input_tokens": [2900.0, 3500.0, 30000.0],
            "mean_output_tokens": [40.0, 120.0, 900.0],
            "output_shape": ["tool_call", "text", "text"],
            "suitability": [0.85, 0.4, 0.2],
        }
    )


def test_cpu_ranks_the_bundled_model_first(clusters):
    ranked = rank_models(clusters.head(2), "cpu")
    best = ranked.filter(pl.col("rank") == 1)
    assert best.get_column("local_name").to_list() == ["smollm2-135m", "smollm2-135m"]
    eligible = ranked.filter(pl.col("eligible"))
    assert eligible.get_column("params_b").max() <= 0.5  # the CPU training budget
    assert best_model(ranked, 0) == "smollm2-135m"
    # an 8.9k-token cluster overflows SmolLM2's 8k window at the logged length, not once prompts are trimmed
    long = clusters.head(1).with_columns(p90_input_tokens=pl.lit(8806.0))
    assert not rank_models(long, "cpu").filter(pl.col("local")).get_column("context_ok").item()
    trimmed = rank_models(long, "cpu", max_prompt_tokens=2048)
    assert best_model(trimmed, 0) == "smollm2-135m" and trimmed.get_column("context_need")[0] == 2088
    big = ranked.filter(pl.col("hub_id") == "Qwen/Qwen3-8B").row(0, named=True)
    assert not big["fits"] and "trainable in reasonable time" in big["reasons"] and big["rank"] is None


def test_gpu_ranking_trades_size_against_quality(clusters):
    ranked = rank_models(clusters, "H100", mode="qlora")
    # ranks are 1..k per cluster over eligible models
    for _cl, grp in ranked.filter(pl.col("eligible")).group_by("cluster"):
        assert sorted(grp.get_column("rank").to_list()) == list(range(1, grp.height + 1))
    best = {r["cluster"]: r for r in ranked.filter(pl.col("rank") == 1).iter_rows(named=True)}
    assert best[0]["tool_calling"] == "native"  # tool-call cluster: a tool-trained model
    assert best[0]["params_b"] < 1.0  # easy cluster: a small one clears the bar
    assert best[1]["quality"] >= best[1]["bar"]  # harder text cluster: the winner clears its bar
    # 30k-token cluster: 8k-context models are excluded with a reason
    smol = ranked.filter((pl.col("cluster") == 2) & (pl.col("family") == "smollm2"))
    assert (
        not smol.get_column("context_ok").any()
        and smol.get_column("reasons").str.contains("context 8192").all()
    )


def test_ranking_filters_by_memory_licence_tools_and_size(clusters):
    ranked = rank_models(clusters.head(1), "T4", mode="inference", licenses_allowed=["permissive"])
    row = {r["hub_id"]: r for r in ranked.iter_rows(named=True)}
    assert not row["Salesforce/xLAM-2-1b-fc-r"]["license_ok"]
    assert "licence cc-by-nc-4.0" in row["Salesforce/xLAM-2-1b-fc-r"]["reasons"]
    assert not row["deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"]["tool_ok"]  # no tool calling, zero-shot
    assert not row["Qwen/Qwen3-8B"]["fits"]  # 16.4 GB of bf16 weights on a 16 GB T4
    assert row["Qwen/Qwen2.5-0.5B-Instruct"]["eligible"]
    capped = rank_models(clusters.head(1), GpuSpec("my-gpu", 48.0), max_params_b=2)
    assert capped.filter(pl.col("eligible")).get_column("params_b").max() <= 2
    commercial = rank_models(clusters.head(1), "H100", licenses_allowed=["commercial"])
    assert not commercial.filter(pl.col("license") == "qwen-research").get_column("license_ok").any()
    assert commercial.filter(pl.col("license") == "llama3.2").get_column("license_ok").all()


# -------------------------------------------------------------------------------------------- candidates
def test_load_candidates_prefers_labels_then_suitability(clusters, tmp_path, monkeypatch):
    from slmlab.label import LabelSession
    from slmlab.runs import RunStore, conform_clusters
    from slmlab.schema import conform

    monkeypatch.setenv("SLMLAB_HOME", str(tmp_path))
    run = "test-select-candidates"
    store = RunStore(run)
    ids = clusters.get_column("cluster").to_list()
    calls = pl.DataFrame({"call_id": [f"c{c}" for c in ids], "session_id": ["s"] * len(ids)})
    store.write_clustered(conform(calls).with_columns(pl.Series("cluster", ids, dtype=pl.Int32)))
    store.write_clusters(conform_clusters(clusters.with_columns(pl.lit(1).alias("size"))))
    cands = load_candidates(run, fallback_top=2)
    assert cands.source == "suitability" and cands.clusters.get_column("cluster").to_list() == [0, 1]
    session = LabelSession(store.read_clusters(), store.read_clustered())
    session.set_status(2, "slm_candidate")
    session.save(store.labels_path())
    cands = load_candidates(run)
    assert cands.source == "labels" and cands.clusters.get_column("cluster").to_list() == [2]


# ------------------------------------------------------------------------------------------------- probe
@pytest.fixture(scope="module")
def tau_calls(shared_logs) -> pl.DataFrame:
    from slmlab.collect import ingest

    path = shared_logs / "tau-bench-airline" / "gpt-4o-airline.json"
    return ingest(path, format="tau_bench", prices=False, count_missing_tokens=False).calls


@pytest.mark.shared
def test_zero_shot_probe_runs_the_bundled_model_on_real_calls(tau_calls, bundled_fp32):
    import torch

    from slmlab.runtime.chat_format import PromptBudget
    from slmlab.runtime.generate import TransformersGenerator

    cluster = tau_calls.filter(pl.col("tool_name") == "get_reservation_details").head(40)
    gen = TransformersGenerator(*bundled_fp32, batch_size=3, name="smollm2-135m")
    # One intra-op thread: on a shared, oversubscribed 2-core box two spinning OpenMP threads made generation
    # 6x slower (197 s vs 33 s for this probe at 1k tokens); restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        probe = zero_shot_probe(cluster, gen, n=3, budget=PromptBudget(max_tokens=512), max_new_tokens=24)
    finally:
        torch.set_num_threads(threads)
    assert probe.height == 3
    assert set(probe.get_column("logged_action")) == {"get_reservation_details"}
    assert probe.get_column("call_id").is_in(cluster.get_column("call_id").implode()).all()
    assert (probe.get_column("generated_tokens") > 0).all() and (probe.get_column("latency_ms") > 0).all()
    # fit_messages drops old turns towards the 512-token budget but always keeps the system prompt, the tool
    # list and the latest turn, so a long latest turn can exceed it; the full tau-bench prompts are ~3k tokens.
    assert (probe.get_column("prompt_tokens") <= 1024).all()
    assert probe.get_column("logged_output").str.contains("<tool_call>").all()
    # tool_match is exactly "generated action == logged action", whatever the untrained model did
    assert (probe.get_column("tool_match") == (probe["generated_action"] == probe["logged_action"])).all()
    summary = probe_summary(probe).row(0, named=True)
    assert summary["n"] == 3 and 0 <= summary["tool_match"] <= 1
