"""Serving an export bundle: the vLLM multi-LoRA command and the LiteLLM route config are generated from
real peft adapters and checked; what vLLM would reject (DoRA, modules_to_save, missing weights, a rank
above its largest) is caught before any GPU is involved."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from slmlab.pipeline.serving import (
    ServingError,
    check_adapters,
    check_route_config,
    check_serve_command,
    plan_serving,
    route_config,
    write_serving,
)

TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}<|assistant|>"


def _adapter(folder: Path, r: int, base: str, **lora_kw) -> Path:
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    cfg = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    model = peft.get_peft_model(
        transformers.LlamaForCausalLM(cfg),
        peft.LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"], **lora_kw),
    )
    model.save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(TEMPLATE)
    (folder / "slmlab_adapter.json").write_text(json.dumps({"base_model": base}))
    return folder


@pytest.fixture()
def bundle(tmp_path) -> Path:
    b = tmp_path / "bundle"
    _adapter(b / "adapters" / "cluster_1", 8, "org/base-a")
    _adapter(b / "adapters" / "cluster_4", 24, "org/base-a")
    _adapter(b / "adapters" / "cluster_7", 16, "org/base-b")
    return b


def test_plans_one_server_per_base_with_every_adapter(bundle):
    plans = plan_serving(bundle, port=9000)
    assert [p.base_model for p in plans] == ["org/base-a", "org/base-b"]
    a, b = plans
    assert list(a.adapters) == ["cluster_1", "cluster_4"] and list(b.adapters) == ["cluster_7"]
    assert a.max_lora_rank == 32 and b.max_lora_rank == 16  # smallest vLLM rank >= the largest r
    assert (a.port, b.port) == (9000, 9001)
    argv = a.argv
    assert argv[:3] == ["vllm", "serve", "org/base-a"] and "--enable-lora" in argv
    i = argv.index("--lora-modules")
    assert argv[i + 1] == f"cluster_1={(bundle / 'adapters' / 'cluster_1').resolve()}"
    assert argv[argv.index("--tool-call-parser") + 1] == "hermes"  # reads the adapters' <tool_call> blocks
    assert Path(argv[argv.index("--chat-template") + 1]).read_text() == TEMPLATE
    assert check_serve_command(argv) == []
    assert shlex.split(a.command()) == argv


def test_route_config_routes_every_adapter_and_falls_back(bundle):
    plans = plan_serving(bundle)
    cfg = route_config(plans, fallback_model="openai/gpt-4o")
    names = [m["model_name"] for m in cfg["model_list"]]
    assert names == ["cluster_1", "cluster_4", "base-base-a", "cluster_7", "base-base-b", "llm"]
    c1 = cfg["model_list"][0]["litellm_params"]
    assert c1 == {"model": "hosted_vllm/cluster_1", "api_base": "http://localhost:8000/v1", "api_key": "none"}
    assert cfg["model_list"][3]["litellm_params"]["api_base"] == "http://localhost:8001/v1"
    assert {"cluster_7": ["llm"]} in cfg["router_settings"]["fallbacks"]
    assert check_route_config(cfg, plans) == []
    broken = {
        "model_list": cfg["model_list"][:1] * 2,
        "router_settings": {"fallbacks": [{"cluster_1": ["gpt"]}]},
    }
    problems = " ".join(check_route_config(broken, plans))
    assert "duplicate model_name" in problems and "'gpt' is not in model_list" in problems
    assert "adapter cluster_7 has no route" in problems


def test_write_serving_writes_checked_files(bundle):
    info = write_serving(bundle, fallback_model="openai/gpt-4o-mini")
    script = (bundle / "serve_vllm.sh").read_text()
    assert script.startswith("#!/usr/bin/env bash") and script.count("vllm serve") == 2
    assert info["commands"][0] in script
    cfg = yaml.safe_load((bundle / "litellm_config.yaml").read_text())
    assert cfg["model_list"][-1]["litellm_params"]["model"] == "openai/gpt-4o-mini"
    saved = json.loads((bundle / "serving.json").read_text())
    assert saved["checked"]["adapters"] == "ok" and len(saved["plans"]) == 2


def test_what_vllm_would_reject_is_caught(tmp_path):
    b = tmp_path / "bad"
    _adapter(b / "adapters" / "dora", 8, "org/base", use_dora=True)
    _adapter(b / "adapters" / "saved_head", 8, "org/base", modules_to_save=["lm_head"])
    big = _adapter(b / "adapters" / "huge", 8, "org/base")
    cfg = json.loads((big / "adapter_config.json").read_text())
    (big / "adapter_config.json").write_text(json.dumps(cfg | {"r": 1024}))
    _adapter(b / "adapters" / "noweights", 8, "org/base")
    (b / "adapters" / "noweights" / "adapter_model.safetensors").unlink()
    problems = " | ".join(check_adapters(b))
    assert "DoRA" in problems and "modules_to_save" in problems and "r=1024" in problems
    assert "noweights: no adapter_model.safetensors" in problems
    with pytest.raises(ServingError, match="DoRA"):
        plan_serving(b)
    assert not (b / "serve_vllm.sh").exists()


def test_serve_command_checks(tmp_path):
    assert check_serve_command(["python", "x"]) == ["not a `vllm serve <model> ...` command"]
    bad = ["vllm", "serve", "m", "--lora-modules", "a=rel/path", "a", "--max-lora-rank", "24"]
    problems = " | ".join(check_serve_command(bad))
    assert "without --enable-lora" in problems and "is relative" in problems
    assert "'a' is not name=path" in problems and "24 is not one of" in problems


def test_no_adapters_is_a_one_line_error(tmp_path):
    with pytest.raises(ServingError, match="no adapters/ folder"):
        plan_serving(tmp_path)
