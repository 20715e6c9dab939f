"""Ship a trained adapter: merge it into the base weights, and optionally convert the result to GGUF.

Merging gives a plain transformers model folder (no peft needed at serving time, faster generation). GGUF
conversion uses llama.cpp's `convert_hf_to_gguf.py`, which is not on PyPI (the `gguf` package only reads
and writes the format); slmlab finds it through `LLAMA_CPP_DIR` or on `PATH`, and says how to get it.

Usage:
    >>> from slmlab.specialize import merge_and_save, export_gguf
    >>> merged = merge_and_save("runs/c3/adapter", "runs/c3/merged")  # doctest: +SKIP
    >>> export_gguf(merged, "runs/c3/model.gguf")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from slmlab.config import MissingDependencyError, require
from slmlab.specialize.provenance import ADAPTER_CONFIG, read_adapter_config

CONVERTER = "convert_hf_to_gguf.py"


def merge_and_save(
    adapter_dir: str | os.PathLike, out_dir: str | os.PathLike, dtype: str = "float32"
) -> Path:
    """Merge a LoRA adapter into its base model (full precision, also for QLoRA adapters) and save it.

    The base model is read from the adapter's `slmlab_adapter.json`; the tokenizer and that file are
    copied next to the merged weights.

    Example:
        >>> merged = merge_and_save(result.adapter_dir, "/tmp/merged")  # doctest: +SKIP
    """
    from slmlab.runtime.models import LoadSpec, load_causal_lm

    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    base = read_adapter_config(adapter_dir)["base_model"]
    # A QLoRA adapter merges into the de-quantized base: merging into nf4 weights would round the update away.
    model, tokenizer = load_causal_lm(
        base, LoadSpec(device="cpu", dtype=dtype), adapter=adapter_dir, merge_adapter=True
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    shutil.copy(adapter_dir / ADAPTER_CONFIG, out_dir / ADAPTER_CONFIG)
    return out_dir


def find_gguf_converter() -> Path | None:
    """llama.cpp's HF-to-GGUF converter: `$LLAMA_CPP_DIR/convert_hf_to_gguf.py` or one on PATH."""
    root = os.environ.get("LLAMA_CPP_DIR")
    if root and (Path(root) / CONVERTER).is_file():
        return Path(root) / CONVERTER
    found = shutil.which(CONVERTER) or shutil.which("convert-hf-to-gguf")
    return Path(found) if found else None


def export_gguf(merged_dir: str | os.PathLike, out_path: str | os.PathLike, outtype: str = "f16") -> Path:
    """Convert a merged model folder to one GGUF file for llama.cpp / Ollama / LM Studio.

    Args:
        merged_dir: output of `merge_and_save`.
        out_path: the `.gguf` file to write.
        outtype: "f32", "f16", "bf16" or "q8_0" (llama.cpp quantizes further with `llama-quantize`).

    Raises:
        MissingDependencyError: llama.cpp's converter or the `gguf` package is missing (the message says
            how to install them).

    Example:
        >>> export_gguf("/tmp/merged", "/tmp/model.gguf")  # doctest: +SKIP
    """
    converter = find_gguf_converter()
    if converter is None:
        raise MissingDependencyError(
            "GGUF export needs llama.cpp's convert_hf_to_gguf.py (the `gguf` package alone cannot convert a "
            "transformers model). Get it with: git clone https://github.com/ggml-org/llama.cpp && "
            'pip install -r llama.cpp/requirements/requirements-convert_hf_to_gguf.txt "slmlab[train]", '
            "then set LLAMA_CPP_DIR to the llama.cpp folder."
        )
    require("gguf", "train")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(converter), str(merged_dir), "--outfile", str(out_path), "--outtype", outtype]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not out_path.exists():
        raise RuntimeError(f"GGUF conversion failed ({' '.join(cmd)}):\n{proc.stderr[-2000:]}")
    return out_path
