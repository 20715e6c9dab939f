"""The export bundle: written from a run's router and adapters, loaded and used in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from slmlab.pipeline.bundle import export_bundle, serve_command


def _calls() -> pl.DataFrame:
    texts = ["cancel my flight", "cancel the flight please", "weather in paris", "weather in rome today"]
    return pl.DataFrame(
        {
            "call_id": ["a", "b", "c", "d"],
            "cluster": [0, 0, 1, 1],
            "messages": [json.dumps([{"role": "user", "content": t}]) for t in texts],
        }
    )


def test_serve_command_lists_every_adapter():
    cmd = serve_command({"cluster_0": "", "cluster_3": ""}, "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert cmd.startswith("vllm serve HuggingFaceTB/SmolLM2-135M-Instruct")
    assert "--enable-lora" in cmd and "cluster_0=adapters/cluster_0 cluster_3=adapters/cluster_3" in cmd


def test_export_without_router_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMLAB_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="fit the router"):
        export_bundle("empty", tmp_path / "bundle")


def test_bundle_round_trip_in_a_fresh_process(tmp_path, monkeypatch):
    monkeypatch.setenv("SLMLAB_HOME", str(tmp_path / "home"))
    from slmlab.route import ClusterRouter
    from slmlab.runs import RunStore
    from slmlab.runtime.models import LoadSpec, load_causal_lm

    ClusterRouter(threshold=0.1).fit(_calls(), routes={0: "adapters/cluster_0"}).save(
        RunStore("exp").router_dir()
    )
    peft = pytest.importorskip("peft")
    model, _ = load_causal_lm("smollm2-135m", LoadSpec(device="cpu"))
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    adapter_dir = RunStore("exp").adapter_dir(0)
    lora.save_pretrained(adapter_dir)
    (adapter_dir / "slmlab_adapter.json").write_text(json.dumps({"base_model": "smollm2-135m", "cluster": 0}))

    bundle = export_bundle("exp", tmp_path / "bundle")
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["adapters"]["cluster_0"]["base_model"] == "smollm2-135m"
    assert (bundle / "adapters" / "cluster_0" / "adapter_model.safetensors").exists()
    assert "--lora-modules cluster_0=adapters/cluster_0" in (bundle / "serve_vllm.sh").read_text()
    assert "Route a call" in (bundle / "README.md").read_text()

    _calls().drop("cluster").write_parquet(tmp_path / "live.parquet")
    code = (
        "import sys, polars as pl; from slmlab.pipeline.bundle import load_bundle; "
        f"m, r = load_bundle({str(bundle)!r}); "
        f"out = r.route(pl.read_parquet({str(tmp_path / 'live.parquet')!r})); "
        "print(','.join(out['routed_to'].to_list()))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "slm,slm,llm,llm"
