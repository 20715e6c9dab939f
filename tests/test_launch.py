"""Multi-process fine-tuning: a real 2-process CPU `accelerate launch` (gloo) of `finetune` on a tiny random
Llama built from a config (no hub download): both ranks end on the same weights, a stopped launch resumes to
the weights of an uninterrupted one, and rank 0 alone writes the adapter."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slmlab.specialize.launch import config_from_args, launch_command, load_sft_dataset, save_sft_dataset
from slmlab.specialize.sft_data import SFTDataset, SFTExample

VOCAB = 128


def _data(n: int = 24, seed: int = 0) -> SFTDataset:
    rng = random.Random(seed)
    exs = []
    for i in range(n):
        n_prompt = rng.randint(6, 12)
        ids = tuple(rng.randrange(3, VOCAB) for _ in range(n_prompt + rng.randint(3, 6))) + (2,)
        exs.append(SFTExample(f"c{i}", ids, n_prompt))
    return SFTDataset(train=tuple(exs[:20]), val=tuple(exs[20:]), max_len=64, data_hash=f"synthetic-{seed}")


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random Llama and a word-level tokenizer, saved as a local model folder."""
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    import torch

    folder = tmp_path_factory.mktemp("tiny-llama")
    cfg = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(cfg).save_pretrained(folder)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2} | {f"t{i}": i for i in range(3, VOCAB)}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<pad>"
    )
    fast.save_pretrained(folder)
    return folder


def test_sft_dataset_round_trips(tmp_path):
    data = _data()
    back = load_sft_dataset(save_sft_dataset(data, tmp_path / "sft.parquet"))
    assert back.train == data.train and back.val == data.val and back.data_hash == data.data_hash
    with pytest.raises(FileNotFoundError, match="no SFT data file"):
        load_sft_dataset(tmp_path / "missing.parquet")


def test_config_from_args_checks_fields(tmp_path):
    cfg = config_from_args(None, ["max_steps=7", "lr=0.001", 'target_modules=["q_proj"]'], str(tmp_path))
    assert (cfg.max_steps, cfg.lr, cfg.target_modules, cfg.output_dir) == (
        7,
        0.001,
        ("q_proj",),
        str(tmp_path),
    )
    with pytest.raises(ValueError, match="unknown FinetuneConfig fields"):
        config_from_args(None, ["max_stpes=7"], None)


def test_launch_command_names_the_strategy():
    cmd = launch_command(
        "d.parquet", "out", 8, config_file="examples/accelerate/fsdp.yaml", sets={"max_steps": 5}
    )
    assert cmd[:4] == ["accelerate", "launch", "--config_file", "examples/accelerate/fsdp.yaml"]
    assert cmd[-2:] == ["--set", "max_steps=5"] and "slmlab.specialize.launch" in cmd


def _launch(tiny_llama: Path, data: Path, out: Path, dump: Path, *extra: str) -> subprocess.CompletedProcess:
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    sets = {
        "base_model": str(tiny_llama),
        "max_steps": 4,
        "save_every": 2,
        "batch_size": 2,
        "max_len": 64,
        "r": 4,
        "alpha": 8,
        "lr": 0.01,
        "warmup_steps": 0,
        "bf16": False,
        "device": "cpu",
    }
    cmd = launch_command(data, out, num_processes=2, cpu=True, sets=sets)
    cmd[0] = accelerate
    # Port 0 is not accepted by every launcher version; pick a free one.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd[2:2] = ["--main_process_port", str(port), "--num_machines", "1", "--mixed_precision", "no"]
    cmd += ["--dump-weights", str(dump), *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    env.pop("WORLD_SIZE", None)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


@pytest.mark.slow
def test_two_process_cpu_launch_same_weights_and_resume(tiny_llama, tmp_path):
    import torch

    data = save_sft_dataset(_data(), tmp_path / "sft.parquet")
    full = _launch(tiny_llama, data, tmp_path / "full", tmp_path / "w_full")
    assert full.returncode == 0, full.stderr[-3000:]
    a, b = (
        _weights(tmp_path / "w_full" / "rank0.safetensors"),
        _weights(tmp_path / "w_full" / "rank1.safetensors"),
    )
    assert a.keys() == b.keys() and len(a) > 0
    for k in a:
        assert torch.equal(a[k], b[k]), f"ranks disagree on {k}"
    # Training moved the adapter (LoRA B starts at zero).
    assert any(float(v.abs().sum()) > 0 for k, v in a.items() if "lora_B" in k)
    history = [json.loads(x) for x in (tmp_path / "full" / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history] == [1, 2, 3, 4]
    # One optimizer step sees both ranks' micro-batches: 2 processes x 2 packed rows.
    doc = json.loads((tmp_path / "full" / "slmlab_adapter.json").read_text())
    assert doc["metrics"]["world_size"] == 2 and (tmp_path / "full" / "adapter_model.safetensors").exists()

    stopped = _launch(tiny_llama, data, tmp_path / "resumed", tmp_path / "w_stop", "--stop-at", "2")
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    ckpt = tmp_path / "resumed" / "checkpoints" / "step-000002"
    assert (
        (ckpt / "state.pt").exists() and (ckpt / "rng-rank0.pt").exists() and (ckpt / "rng-rank1.pt").exists()
    )
    assert not (tmp_path / "resumed" / "adapter_model.safetensors").exists()
    resumed = _launch(tiny_llama, data, tmp_path / "resumed", tmp_path / "w_resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert '"resumed_from": 2' in resumed.stdout
    r0 = _weights(tmp_path / "w_resumed" / "rank0.safetensors")
    r1 = _weights(tmp_path / "w_resumed" / "rank1.safetensors")
    for k in a:
        assert torch.equal(r0[k], r1[k]), f"resumed ranks disagree on {k}"
        assert torch.allclose(r0[k], a[k], atol=1e-6), (
            f"resumed run differs from the uninterrupted one on {k}"
        )
    hist2 = [json.loads(x) for x in (tmp_path / "resumed" / "history.jsonl").read_text().splitlines()]
    assert [r["example_ids"] for r in hist2] == [r["example_ids"] for r in history]


@pytest.mark.parametrize(
    "name, kind, n",
    [
        ("ddp_cpu.yaml", "MULTI_GPU", 2),
        ("ddp_8gpu.yaml", "MULTI_GPU", 8),
        ("fsdp_8gpu.yaml", "FSDP", 8),
        ("deepspeed_zero2_8gpu.yaml", "DEEPSPEED", 8),
    ],
)
def test_example_accelerate_configs_load(name, kind, n):
    config_args = pytest.importorskip("accelerate.commands.config.config_args")
    path = Path(__file__).resolve().parents[1] / "examples" / "accelerate" / name
    cfg = config_args.load_config_from_file(str(path))
    assert str(cfg.distributed_type).split(".")[-1] == kind and cfg.num_processes == n
