"""Model loading: the bundled GGUF model converts once, loads offline, generates; quantized paths."""

import pytest

from slmlab.models import (
    LoadSpec,
    bundled_embedder_dir,
    bundled_slm_gguf,
    load_causal_lm,
    memory_footprint_mb,
    resolve_embedder,
    resolve_model,
)


def test_bundled_files_are_found():
    assert bundled_slm_gguf().suffix == ".gguf"
    assert (bundled_embedder_dir() / "config.json").exists()
    assert resolve_embedder("all-minilm-l6-v2") == str(bundled_embedder_dir())


def test_hub_ids_pass_through():
    assert resolve_model("org/other-model") == "org/other-model"


def test_loadspec_validates():
    with pytest.raises(ValueError, match="quantization"):
        LoadSpec(quantization="int3")


@pytest.fixture(scope="module")
def bundled():
    return load_causal_lm("smollm2-135m", LoadSpec(device="cpu"))


def test_bundled_model_loads_from_safetensors_cache_and_answers(bundled):
    model, tok = bundled
    path = resolve_model("smollm2-135m")
    assert path.endswith("SmolLM2-135M-Instruct.Q4_1")
    assert 400 < memory_footprint_mb(model) < 700  # 135M params in fp32
    from slmlab.generate import TransformersGenerator

    gen = TransformersGenerator(model, tok, batch_size=2)
    out = gen.generate(
        [[{"role": "user", "content": "What is the capital of France?"}]] * 2,
        max_new_tokens=12,
        progress=False,
    )
    assert "Paris" in out[0].text and out[0].text == out[1].text
    assert 0 < out[0].output_tokens <= 12 and out[0].mean_logprob < 0


def test_int8_on_cpu_loads():
    pytest.importorskip("bitsandbytes")
    model, _ = load_causal_lm("smollm2-135m", LoadSpec(device="cpu", quantization="int8"))
    assert memory_footprint_mb(model) < 300
