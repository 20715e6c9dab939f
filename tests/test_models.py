"""Model loading: the bundled GGUF model converts once, loads offline, generates; quantized paths."""

import pytest

from slmlab.runtime.models import (
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
    from slmlab.runtime.generate import TransformersGenerator

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


def test_cpu_bf16_generation_answers_and_is_cached_apart():
    import torch

    from slmlab.runtime.generate import TransformersGenerator
    from slmlab.runtime.models import cpu_has_native_bf16

    assert isinstance(cpu_has_native_bf16(), bool)
    fp32 = TransformersGenerator("smollm2-135m", batch_size=2, cpu_bf16=False)
    bf16 = TransformersGenerator("smollm2-135m", batch_size=2, cpu_bf16=True)
    assert next(fp32.model.parameters()).dtype == torch.float32
    assert next(bf16.model.parameters()).dtype == torch.bfloat16
    assert fp32.cache_id != bf16.cache_id  # answers of the two precisions never mix in the cache
    prompt = [[{"role": "user", "content": "What is the capital of France?"}]]
    out = bf16.generate(prompt, max_new_tokens=12, progress=False)[0]
    assert "Paris" in out.text and out.mean_logprob < 0
    # int8 and explicit dtypes keep their own precision
    assert not TransformersGenerator("smollm2-135m", spec=LoadSpec(dtype="float32"), cpu_bf16=True).cpu_bf16
    with pytest.raises(ValueError, match="cpu_bf16"):
        TransformersGenerator("smollm2-135m", cpu_bf16="yes")


def test_scale_picks_knob_sizes(monkeypatch):
    from slmlab.config import by_scale, scale

    monkeypatch.setenv("SLMLAB_SCALE", "gpu")
    assert scale() == "gpu" and by_scale(smoke=1, cpu=2, gpu=3) == 3
    monkeypatch.delenv("SLMLAB_SCALE")
    monkeypatch.setenv("SLMLAB_SMOKE", "1")
    assert by_scale(smoke=1, cpu=2, gpu=3) == 1
    monkeypatch.setenv("SLMLAB_SMOKE", "0")
    import torch

    assert scale() == ("gpu" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("SLMLAB_SCALE", "tpu")
    with pytest.raises(ValueError, match="SLMLAB_SCALE"):
        scale()


def test_shared_prefix_cache_gives_the_plain_answers_in_fp32():
    from slmlab.runtime.generate import TransformersGenerator

    system = {
        "role": "system",
        "content": "You are an airline agent. Follow the policy. " * 12
        + "\nTools: get_user_details(user_id), get_reservation_details(reservation_id)",
    }
    asks = [
        "What is the capital of France?",
        "My user id is mia_li_3668.",
        "Hello",
        "Cancel reservation ABC123",
    ]
    prompts = [[system, {"role": "user", "content": a}] for a in asks]
    prompts.append([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    plain = TransformersGenerator("smollm2-135m", batch_size=8, cpu_bf16=False, prefix_cache=False)
    shared = TransformersGenerator("smollm2-135m", batch_size=8, cpu_bf16=False, prefix_cache=True)
    a = plain.generate(prompts, max_new_tokens=10, progress=False)
    b = shared.generate(prompts, max_new_tokens=10, progress=False)
    assert [g.text for g in a] == [g.text for g in b]
    assert [g.mean_logprob for g in b] == pytest.approx([g.mean_logprob for g in a], abs=1e-3)
    assert len(shared._prefixes) == 1  # the long system prompt was computed once; "Be brief." is too short
