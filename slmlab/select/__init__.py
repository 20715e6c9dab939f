"""Step 5, select: which small models could take over each cluster, on which GPU, and how they do untrained.

Three parts, each usable alone:

- **Catalog** (`load_catalog`): a CSV in the package (`resources/slm_catalog.csv`) of SLMs used for agents, one
  row each, with the architecture numbers a memory estimate needs and published benchmark figures with their
  source. Extend it with your own rows (`extra=`). `load_gpus` reads the GPU table (`resources/gpus.csv`).
- **Memory** (`estimate_memory`): weights + KV cache + LoRA adapters + optimizer + activations + overhead for
  inference, LoRA or QLoRA, checked against measurements in the tests (CPU: bitsandbytes fp32/int8/nf4
  footprints; CUDA: `max_memory_allocated` for a forward and a LoRA step).
- **Ranking** (`rank_models`): per cluster and candidate, whether it fits the GPU, the cluster's context, the
  licence filter and the tool-call shape, and a score that prefers the smallest model whose quality clears the
  cluster's difficulty. `zero_shot_probe` runs a candidate on a few of a cluster's calls before any training.

Usage:
    >>> from slmlab.select import estimate_memory
    >>> round(estimate_memory("smollm2-135m", quantization="bf16", context_tokens=2048).weights_gb, 2)
    0.27
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from slmlab.runs import RunStore
from slmlab.runtime.chat_format import (
    PromptBudget,
    count_prompt_tokens,
    fit_messages,
    render_target,
    tools_from_calls,
)
from slmlab.schema import TEXT_ACTION, parse_messages, parse_tool_calls

GB = 1e9  # decimal gigabytes, as GPU vendors and cloud price lists count them

# ---------------------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------------------

TOOL_CALLING = ("native", "prompted", "none")
BENCHMARKS = ("mmlu", "ifeval", "gsm8k", "bfcl")

# column -> (type, required). Types: str, int, float, bool. Optional columns may be empty.
CATALOG_COLUMNS: dict[str, tuple[str, bool]] = {
    "hub_id": ("str", True),  # Hugging Face hub id of the instruct checkpoint
    "local_name": ("str", False),  # slmlab short name for a bundled / offline copy ("smollm2-135m")
    "bundled": ("bool", True),  # ships with slmlab's dependencies: loads offline
    "family": ("str", True),
    "params_b": ("float", True),  # total parameters, billions
    "active_params_b": ("float", True),  # parameters used per token (== params_b for dense models)
    "context_length": ("int", True),  # native context window, tokens
    "license": ("str", True),  # SPDX-like id ("apache-2.0", "mit", "llama3.2", "gemma", "cc-by-nc-4.0", ...)
    "commercial_use": ("bool", True),  # the licence allows commercial use
    "tool_calling": ("str", True),  # native (tools in the chat template) / prompted / none
    "agent_tuned": ("bool", True),  # trained on multi-turn agent / function-calling trajectories
    "json_mode": ("bool", True),  # documented structured / JSON output training
    "chat_template": ("str", True),  # chatml / llama3 / gemma / phi3 / phi4 / nemotron / deepseek
    "n_layers": ("int", True),
    "hidden_size": ("int", True),
    "intermediate_size": ("int", True),
    "mlp_projections": ("int", False),  # 3 for a gated (SwiGLU/GeGLU) MLP, 2 for a plain one; empty = 3
    "n_heads": ("int", True),
    "n_kv_heads": ("int", True),
    "head_dim": ("int", True),
    "vocab_size": ("int", True),
    "sliding_window": ("int", False),  # local-attention window of the local layers, if any
    "n_global_layers": ("int", False),  # layers with full attention when others use the window
    "mmlu": ("float", False),  # benchmark figures, 0..100, as published (see bench_notes for the variant)
    "ifeval": ("float", False),
    "gsm8k": ("float", False),
    "bfcl": ("float", False),  # Berkeley function-calling leaderboard, overall accuracy
    "bench_notes": ("str", False),  # which variant / shot count / source each figure is
    "source": ("str", True),  # model card URL
    "date": ("str", True),  # release date, YYYY-MM
}

_PL_TYPES = {"str": pl.String, "int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean}


class CatalogError(ValueError):
    """A catalog (or GPU table) row is malformed; the message names the row and the column."""


def _parse_value(raw: Any, kind: str, where: str, column: str) -> Any:
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None
    if kind == "str":
        return str(raw).strip()
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise CatalogError(f"{where}: column {column!r} must be true/false, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise CatalogError(f"{where}: column {column!r} must be a number, got {raw!r}") from None
    if kind == "int":
        if value != int(value):
            raise CatalogError(f"{where}: column {column!r} must be a whole number, got {raw!r}")
        return int(value)
    return value


def _validate_catalog_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column, (kind, required) in CATALOG_COLUMNS.items():
        value = _parse_value(row.get(column), kind, where, column)
        if value is None and required:
            raise CatalogError(f"{where}: required column {column!r} is empty")
        out[column] = value
    where = f"{where} ({out['hub_id']})"
    if out["tool_calling"] not in TOOL_CALLING:
        raise CatalogError(
            f"{where}: tool_calling must be one of {TOOL_CALLING}, got {out['tool_calling']!r}"
        )
    for column in ("params_b", "active_params_b", "context_length", "n_layers", "hidden_size", "n_heads"):
        if out[column] <= 0:
            raise CatalogError(f"{where}: {column} must be positive, got {out[column]}")
    if out["active_params_b"] > out["params_b"] * 1.0001:
        raise CatalogError(f"{where}: active_params_b exceeds params_b")
    if out["n_heads"] % out["n_kv_heads"]:
        raise CatalogError(f"{where}: n_heads ({out['n_heads']}) is not a multiple of n_kv_heads")
    for column in BENCHMARKS:
        if out[column] is not None and not 0 <= out[column] <= 100:
            raise CatalogError(f"{where}: {column} must be a percentage in 0..100, got {out[column]}")
    if (out["sliding_window"] is None) != (out["n_global_layers"] is None):
        raise CatalogError(f"{where}: give both sliding_window and n_global_layers, or neither")
    if out["n_global_layers"] is not None and not 0 < out["n_global_layers"] <= out["n_layers"]:
        raise CatalogError(f"{where}: n_global_layers must be in 1..n_layers")
    if len(out["date"]) < 7 or out["date"][4] != "-" or not out["date"][:4].isdigit():
        raise CatalogError(f"{where}: date must look like YYYY-MM, got {out['date']!r}")
    if out["bundled"] and not out["local_name"]:
        raise CatalogError(f"{where}: a bundled model needs its local_name")
    return out


def _read_rows(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c, (_, req) in CATALOG_COLUMNS.items() if req and c not in (reader.fieldnames or [])]
        if missing and "memory_gb" not in (reader.fieldnames or []):
            raise CatalogError(f"{path}: missing columns {missing}")
        return list(reader)


def _resource_text(name: str) -> str:
    return resources.files("slmlab").joinpath("resources", name).read_text(encoding="utf-8")


def load_catalog(
    path: str | Path | None = None, extra: pl.DataFrame | list[dict[str, Any]] | str | Path | None = None
) -> pl.DataFrame:
    """Load the SLM catalog (the packaged CSV, or `path`), add `extra` rows, and validate every row.

    Args:
        path: a catalog CSV with the columns of `CATALOG_COLUMNS`; None reads the packaged one.
        extra: more rows (your own fine-tunes, new releases): a DataFrame, a list of dicts or a CSV path.

    Returns:
        One row per model, typed (`CATALOG_COLUMNS`), hub ids unique.

    Raises:
        CatalogError: naming the row, the model and the column of a malformed value.

    Example:
        >>> cat = load_catalog()
        >>> cat.filter(pl.col("bundled")).get_column("local_name").to_list()
        ['smollm2-135m']
    """
    if path is None:
        rows = list(csv.DictReader(io.StringIO(_resource_text("slm_catalog.csv"))))
        origin = "slm_catalog.csv"
    else:
        rows = _read_rows(Path(path))
        origin = str(path)
    if extra is not None:
        if isinstance(extra, (str, Path)):
            rows += _read_rows(Path(extra))
        elif isinstance(extra, pl.DataFrame):
            rows += extra.to_dicts()
        else:
            rows += list(extra)
    parsed = [_validate_catalog_row(r, f"{origin} row {i + 1}") for i, r in enumerate(rows)]
    seen: set[str] = set()
    for r in parsed:
        if r["hub_id"] in seen:
            raise CatalogError(f"{origin}: hub_id {r['hub_id']!r} appears twice")
        seen.add(r["hub_id"])
    schema = {c: _PL_TYPES[k] for c, (k, _) in CATALOG_COLUMNS.items()}
    return pl.DataFrame(parsed, schema=schema, orient="row")


def catalog_row(model: str | dict[str, Any], catalog: pl.DataFrame | None = None) -> dict[str, Any]:
    """One catalog row as a dict, found by hub id, local name or the id's last part (case-insensitive).

    Example:
        >>> catalog_row("smollm2-135m")["hub_id"]
        'HuggingFaceTB/SmolLM2-135M-Instruct'
    """
    if isinstance(model, dict):
        return model
    cat = catalog if catalog is not None else load_catalog()
    key = model.lower()
    for row in cat.iter_rows(named=True):
        names = {
            row["hub_id"].lower(),
            row["hub_id"].split("/")[-1].lower(),
            (row["local_name"] or "").lower(),
        }
        if key in names:
            return row
    raise KeyError(f"{model!r} is not in the catalog; add it with load_catalog(extra=...)")


@dataclass(frozen=True)
class GpuSpec:
    """One accelerator (or a CPU-only machine) from `resources/gpus.csv`.

    Attributes:
        name: "T4 16GB", "cpu-laptop", ...
        memory_gb: device memory (RAM for a CPU), decimal GB.
        bf16: supports bfloat16 (T4 runs fp16 instead; same bytes).
        bf16_tflops: dense bf16 tensor throughput, None where not published.
        hbm_gb_s: memory bandwidth.
        usd_per_hour: typical on-demand cloud price.
        train_params_budget_b: largest model worth training here (CPUs: time, not memory, is the limit).
        is_cpu: a CPU-only machine (fp32 compute, no CUDA context).
    """

    name: str
    memory_gb: float
    bf16: bool = True
    bf16_tflops: float | None = None
    hbm_gb_s: float | None = None
    usd_per_hour: float | None = None
    train_params_budget_b: float | None = None
    is_cpu: bool = False
    source: str = ""

    @property
    def usable_gb(self) -> float:
        """Memory a training or serving process can plan on.

        GPUs: 92% (the rest goes to the driver's reserve and allocator fragmentation).
        CPUs: half the RAM (the OS, the notebook server and the browser share it).
        """
        return self.memory_gb * (0.5 if self.is_cpu else 0.92)


def load_gpus(path: str | Path | None = None) -> pl.DataFrame:
    """The GPU table: name, memory_gb, bf16, bf16_tflops, hbm_gb_s, usd_per_hour, budget, source, date.

    Example:
        >>> "H100 80GB" in load_gpus().get_column("name").to_list()
        True
    """
    text = Path(path).read_text(encoding="utf-8") if path else _resource_text("gpus.csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    kinds = {"name": "str", "kind": "str", "memory_gb": "float", "bf16": "bool", "bf16_tflops": "float",
             "hbm_gb_s": "float", "usd_per_hour": "float", "train_params_budget_b": "float", "source": "str",
             "date": "str"}  # fmt: skip
    parsed = []
    for i, row in enumerate(rows):
        where = f"gpus row {i + 1}"
        out = {c: _parse_value(row.get(c), k, where, c) for c, k in kinds.items()}
        for c in ("name", "kind", "memory_gb", "bf16"):
            if out[c] is None:
                raise CatalogError(f"{where}: required column {c!r} is empty")
        if out["kind"] not in ("cpu", "gpu"):
            raise CatalogError(f"{where}: kind must be cpu or gpu, got {out['kind']!r}")
        parsed.append(out)
    return pl.DataFrame(parsed, schema={c: _PL_TYPES[k] for c, k in kinds.items()}, orient="row")


def get_gpu(gpu: str | GpuSpec, gpus: pl.DataFrame | None = None) -> GpuSpec:
    """A `GpuSpec` by name: exact ("T4 16GB"), or a unique part of it ("T4", "cpu", "H200").

    Example:
        >>> get_gpu("T4").memory_gb
        16.0
    """
    if isinstance(gpu, GpuSpec):
        return gpu
    table = gpus if gpus is not None else load_gpus()
    names = table.get_column("name").to_list()
    key = gpu.lower().replace(" ", "")
    exact = [n for n in names if n.lower().replace(" ", "") == key]
    matches = exact or [n for n in names if key in n.lower().replace(" ", "")]
    if len(matches) != 1:
        why = "matches several" if matches else "matches none"
        raise KeyError(f"GPU {gpu!r} {why} of: {', '.join(names)}")
    row = table.filter(pl.col("name") == matches[0]).row(0, named=True)
    return GpuSpec(
        name=row["name"],
        memory_gb=row["memory_gb"],
        bf16=row["bf16"],
        bf16_tflops=row["bf16_tflops"],
        hbm_gb_s=row["hbm_gb_s"],
        usd_per_hour=row["usd_per_hour"],
        train_params_budget_b=row["train_params_budget_b"],
        is_cpu=row["kind"] == "cpu",
        source=row["source"] or "",
    )


# ---------------------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------------------

DTYPE_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0}
QUANTIZATIONS = ("fp32", "bf16", "fp16", "int8", "nf4")
MODES = ("inference", "lora", "qlora", "full")
LORA_TARGETS = ("all-linear", "attention")

# Bytes per weight of a quantized linear layer, with its quantization constants:
# - int8 (LLM.int8, bitsandbytes): 1 byte + one fp32 scale per output row (counted exactly below).
# - nf4 (QLoRA): 4 bits + one absmax per 64-weight block. With double quantization the absmax is stored in
#   8 bits plus one fp32 constant per 256 blocks: 0.5 + 1/64 + 4/(64*256) = 0.5159 bytes. Without it the absmax
#   is fp32: 0.5 + 4/64 = 0.5625 bytes.
NF4_DQ_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
NF4_BYTES = 0.5 + 4 / 64


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak memory of one model in one mode, in decimal GB, with the assumptions that produced it.

    Attributes:
        weights_gb: base weights (quantized linears + embeddings and norms in the compute dtype).
        kv_cache_gb: K and V for every attention layer over `context_tokens * batch` (inference only; training
            recomputes attention and keeps no cache).
        adapters_gb: LoRA A and B matrices (fp32).
        optimizer_gb: AdamW first and second moments (fp32) plus the gradients of the trained parameters.
        activations_gb: saved activations (training) or the working set of one layer and the logits (inference).
        overhead_gb: CUDA context and allocator fragmentation (GPU) or runtime (CPU).
        total_gb: the sum.
        assumptions: the inputs and rules, readable.
    """

    model: str
    mode: str
    quantization: str
    context_tokens: int
    batch: int
    weights_gb: float
    kv_cache_gb: float
    adapters_gb: float
    optimizer_gb: float
    activations_gb: float
    overhead_gb: float
    total_gb: float
    trainable_params: int = 0
    assumptions: str = field(default="", repr=False)

    def as_row(self) -> dict[str, Any]:
        """The estimate as a flat dict (one row of a memory table)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "assumptions"}


def _mlp(row: dict[str, Any]) -> int:
    return row.get("mlp_projections") or 3


def linear_params(row: dict[str, Any]) -> int:
    """Parameters in the transformer blocks' linear layers (q, k, v, o, gate, up, down), from the config numbers."""
    h, hd = row["hidden_size"], row["head_dim"]
    q, kv = row["n_heads"] * hd, row["n_kv_heads"] * hd
    per_layer = h * q + 2 * h * kv + q * h + _mlp(row) * h * row["intermediate_size"]
    return int(row["n_layers"] * per_layer)


def lora_params(row: dict[str, Any], r: int = 16, targets: str = "all-linear") -> int:
    """LoRA parameters: r * (in + out) per targeted linear layer, over all layers.

    Example:
        >>> lora_params(catalog_row("smollm2-135m"), r=16)
        4884480
    """
    if targets not in LORA_TARGETS:
        raise ValueError(f"targets must be one of {LORA_TARGETS}, not {targets!r}")
    h, hd = row["hidden_size"], row["head_dim"]
    q, kv, inter = row["n_heads"] * hd, row["n_kv_heads"] * hd, row["intermediate_size"]
    shapes = [(h, q), (h, kv), (h, kv), (q, h)]
    if targets == "all-linear":
        shapes += [(h, inter)] * (_mlp(row) - 1) + [(inter, h)]
    return int(row["n_layers"] * sum(r * (i + o) for i, o in shapes))


def kv_cache_bytes(row: dict[str, Any], context_tokens: int, batch: int = 1, bytes_per: float = 2.0) -> float:
    """2 (K and V) x layers x kv_heads x head_dim x tokens x batch x bytes; local layers hold only their window."""
    per_token_layer = 2 * row["n_kv_heads"] * row["head_dim"] * bytes_per * batch
    layers, window, n_global = row["n_layers"], row.get("sliding_window"), row.get("n_global_layers")
    if window and n_global:
        return per_token_layer * (
            n_global * context_tokens + (layers - n_global) * min(context_tokens, window)
        )
    return per_token_layer * layers * context_tokens


def _layer_activation_bytes(row: dict[str, Any], tokens: int, bytes_per: float) -> float:
    # What one decoder layer saves for backward, per token (SDPA / flash attention, so no seq^2 term):
    # two norms' inputs (2h), q/k/v input (h), q, k, v outputs (q + 2kv), attention output and o-proj input
    # (2h), MLP input (h), gate and up outputs and the SiLU product (3 * intermediate; 2 for a plain MLP), residuals (2h):
    # 8h + q + 2kv + 3i values, after Korthikanti et al. 2022 ("Reducing activation recomputation") with a
    # SwiGLU MLP instead of 4h GELU.
    h, hd = row["hidden_size"], row["head_dim"]
    values = 8 * h + row["n_heads"] * hd + 2 * row["n_kv_heads"] * hd + _mlp(row) * row["intermediate_size"]
    return tokens * values * bytes_per


def estimate_memory(
    model: str | dict[str, Any],
    quantization: str = "bf16",
    context_tokens: int = 2048,
    batch: int = 1,
    mode: str = "inference",
    lora_r: int = 16,
    lora_targets: str = "all-linear",
    gradient_checkpointing: bool = True,
    compute_dtype: str | None = None,
    device: str = "cuda",
    catalog: pl.DataFrame | None = None,
) -> MemoryEstimate:
    """Estimate the peak memory to run or fine-tune one catalog model.

    Args:
        model: a catalog row (dict) or a hub id / local name in the catalog.
        quantization: storage of the linear weights: "fp32", "bf16"/"fp16", "int8" or "nf4". QLoRA implies nf4.
        context_tokens: tokens per sequence (prompt + answer).
        batch: sequences per step.
        mode: "inference" (KV cache for the context), "lora"/"qlora" (adapters + AdamW + activations) or
            "full" (every weight trained, AdamW on all of them).
        lora_r: LoRA rank.
        lora_targets: "all-linear" (q, k, v, o, gate, up, down; QLoRA paper default) or "attention" (q, k, v, o).
        gradient_checkpointing: keep only each layer's input and recompute the rest in backward.
        compute_dtype: dtype of non-quantized weights and activations; default bf16 on CUDA, fp32 on CPU.
        device: "cuda" (adds the CUDA context) or "cpu".

    Returns:
        A `MemoryEstimate` (decimal GB).

    Example:
        >>> est = estimate_memory("Qwen/Qwen2.5-1.5B-Instruct", quantization="nf4", mode="qlora", context_tokens=2048)
        >>> 1.5 < est.total_gb < 6
        True
    """
    row = catalog_row(model, catalog)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if mode == "qlora":
        quantization = "nf4"
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, not {quantization!r}")
    if mode == "full" and quantization in ("int8", "nf4"):
        raise ValueError("full fine-tuning needs unquantized weights; use mode='qlora' for a 4-bit base")
    if device not in ("cuda", "cpu"):
        raise ValueError(f"device must be 'cuda' or 'cpu', not {device!r}")
    compute = compute_dtype or ("fp32" if device == "cpu" or quantization == "fp32" else "bf16")
    cbytes = DTYPE_BYTES[compute]

    # Weights: bitsandbytes quantizes the blocks' linear layers only; embeddings, the (tied or untied) output
    # head and the norms stay in the compute dtype. Everything not in a block linear counts as "rest".
    total = row["params_b"] * 1e9
    lin = min(linear_params(row), total)
    rest = total - lin
    if quantization == "int8":
        h, hd = row["hidden_size"], row["head_dim"]
        # output rows of q, k, v, o, gate, up, down, one fp32 scale each
        rows_per_layer = (
            row["n_heads"] * hd
            + 2 * row["n_kv_heads"] * hd
            + h
            + (_mlp(row) - 1) * row["intermediate_size"]
            + h
        )
        weights = lin * 1.0 + row["n_layers"] * rows_per_layer * 4.0 + rest * cbytes
        wnote = "int8 linears (1 B + fp32 scale per output row)"
    elif quantization == "nf4":
        weights = lin * NF4_DQ_BYTES + rest * cbytes
        wnote = f"nf4 linears with double quant ({NF4_DQ_BYTES:.4f} B/param)"
    else:
        weights = total * DTYPE_BYTES[quantization]
        wnote = f"{quantization} ({DTYPE_BYTES[quantization]:.0f} B/param)"
    wnote += (
        f"; embeddings/norms/head ({rest / 1e9:.3f}B params) in {compute}"
        if quantization in ("int8", "nf4")
        else ""
    )

    tokens = context_tokens * batch
    kv = adapters = optimizer = acts = 0.0
    trainable = 0
    if mode == "inference":
        kv = kv_cache_bytes(row, context_tokens, batch, cbytes)
        # Prefill working set: one layer's activations over the prompt, plus the last position's logits.
        acts = _layer_activation_bytes(row, tokens, cbytes) + batch * row["vocab_size"] * 4
    else:
        trainable = int(total) if mode == "full" else lora_params(row, lora_r, lora_targets)
        if mode == "full":
            # Mixed precision: bf16 weights (counted above) + fp32 master copy + fp32 gradients + AdamW m, v.
            adapters = 0.0
            optimizer = trainable * (4 + 4 + 8)
        else:
            adapters = trainable * 4.0  # peft keeps LoRA weights in fp32
            optimizer = trainable * (4 + 8)  # fp32 gradients + AdamW m and v
        layer = _layer_activation_bytes(row, tokens, cbytes)
        if gradient_checkpointing:
            # each layer's input, plus the layer being recomputed and its gradients during backward
            saved = row["n_layers"] * tokens * row["hidden_size"] * cbytes + 2 * layer
        else:
            saved = row["n_layers"] * layer
        # Loss: logits in the compute dtype, then three fp32 tensors of the same shape alive at once in
        # backward (the upcast / log-softmax output and the gradients of both).
        logits = tokens * row["vocab_size"] * (cbytes + 12)
        acts = saved + logits
    if device == "cuda":
        # CUDA context + cuBLAS workspace (~0.4 GB, outside torch's allocator) and ~5% fragmentation.
        overhead = 0.4 * GB + 0.05 * (weights + kv + adapters + optimizer + acts)
        onote = "0.4 GB CUDA context + 5% fragmentation"
    else:
        overhead = 0.05 * (weights + kv + adapters + optimizer + acts)
        onote = "5% allocator slack (torch's own import, ~0.4 GB RSS, is not counted)"
    parts = (weights, kv, adapters, optimizer, acts, overhead)
    assumptions = (
        f"{row['hub_id']}: {row['params_b']}B params, mode={mode}, weights {wnote}; "
        f"context {context_tokens} x batch {batch}; compute dtype {compute}; "
        + ("KV cache for the full context; activations = one layer's prefill working set + last-token logits; "
           if mode == "inference" else
           f"{'LoRA r=' + str(lora_r) + ' on ' + lora_targets if mode != 'full' else 'full fine-tune'} "
           f"({trainable / 1e6:.1f}M trainable), fp32 adapters, AdamW (2 fp32 moments) + fp32 grads; "
           f"activations {'with' if gradient_checkpointing else 'without'} gradient checkpointing "
           "(per-layer inputs + one recomputed layer and its gradients; Korthikanti et al. 2022 with SwiGLU, flash/SDPA attention) "
           "+ logits in compute dtype and 3 fp32 logit-sized tensors in the loss backward; ")
        + f"overhead {onote}."
    )  # fmt: skip
    return MemoryEstimate(
        model=row["hub_id"],
        mode=mode,
        quantization=quantization,
        context_tokens=context_tokens,
        batch=batch,
        weights_gb=weights / GB,
        kv_cache_gb=kv / GB,
        adapters_gb=adapters / GB,
        optimizer_gb=optimizer / GB,
        activations_gb=acts / GB,
        overhead_gb=overhead / GB,
        total_gb=sum(parts) / GB,
        trainable_params=trainable,
        assumptions=assumptions,
    )


def memory_table(
    models: list[str] | pl.DataFrame,
    quantizations: tuple[str, ...] = ("bf16", "int8", "nf4"),
    context_tokens: int = 2048,
    mode: str = "inference",
    batch: int = 1,
    device: str = "cuda",
    catalog: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Memory estimates of several models at several quantizations, one row per (model, quantization).

    In a training mode, "nf4" rows are QLoRA and the others LoRA on that storage.

    Example:
        >>> memory_table(["smollm2-135m"], ("bf16", "nf4")).height
        2
    """
    ids = models.get_column("hub_id").to_list() if isinstance(models, pl.DataFrame) else list(models)
    rows = []
    for model in ids:
        for quant in quantizations:
            m = mode
            if mode in ("lora", "qlora"):
                m = "qlora" if quant == "nf4" else "lora"
            est = estimate_memory(model, quant, context_tokens, batch, m, device=device, catalog=catalog)
            rows.append(est.as_row())
    return pl.DataFrame(rows)


def plot_memory(table: pl.DataFrame, gpu: str | GpuSpec | None = None) -> Any:
    """Stacked bars of a `memory_table`: one bar per model and quantization, a line at the GPU's usable memory.

    Returns:
        plotly `go.Figure`.
    """
    import plotly.graph_objects as go

    x = [[m.split("/")[-1] for m in table.get_column("model")], table.get_column("quantization").to_list()]
    fig = go.Figure()
    for part in ("weights_gb", "kv_cache_gb", "adapters_gb", "optimizer_gb", "activations_gb", "overhead_gb"):
        fig.add_bar(x=x, y=table.get_column(part).to_list(), name=part.removesuffix("_gb").replace("_", " "))
    fig.update_layout(barmode="stack", yaxis_title="GB", title="Estimated peak memory", legend_title="part")
    if gpu is not None:
        spec = get_gpu(gpu)
        fig.add_hline(y=spec.usable_gb, line_dash="dash", annotation_text=f"{spec.name} usable")
    return fig


# ---------------------------------------------------------------------------------------------------------
# Ranking
# ---------------------------------------------------------------------------------------------------------

# Licence groups a `licenses_allowed` list may name instead of single licences.
LICENSE_GROUPS = {"permissive": ("apache-2.0", "mit"), "commercial": ()}

SIZE_WEIGHT = (
    0.35  # how much one decade of parameters (0.1B -> 1B) costs in score, relative to clearing the bar
)
TOOL_BONUS = {"native": 0.10, "prompted": 0.03, "none": -0.10}  # tool-call clusters only
AGENT_BONUS = 0.05  # tool-call clusters: trained on agent trajectories (xLAM, Nemotron-Mini)


def size_prior(params_b: float) -> float:
    """0 at 0.1B parameters, 1 at 10B, log scale: the capability one expects from size alone."""
    return min(1.0, max(0.0, math.log10(max(params_b, 1e-3) / 0.1) / 2))


def quality_prior(row: dict[str, Any], tool_call: bool = False) -> float:
    """0..1 prior of a model's capability: the mean of its size prior and its published benchmark figures.

    Benchmarks (MMLU, IFEval, GSM8K; BFCL counted twice for tool-call clusters) come from different setups, so
    they are averaged, never compared one by one; a model without figures gets its size prior alone.
    """
    marks = [row[b] / 100 for b in ("mmlu", "ifeval", "gsm8k") if row.get(b) is not None]
    if row.get("bfcl") is not None:
        marks += [row["bfcl"] / 100] * (2 if tool_call else 1)
    prior = size_prior(row["params_b"])
    return (prior + sum(marks) / len(marks)) / 2 if marks else prior


def difficulty_bar(suitability: float | None) -> float:
    """The quality a cluster needs: 0.2 for a perfectly repetitive cluster (suitability 1) up to 0.6 (0)."""
    s = 0.5 if suitability is None or math.isnan(suitability) else min(1.0, max(0.0, suitability))
    return 0.2 + 0.4 * (1 - s)


def _license_ok(row: dict[str, Any], allowed: list[str] | None) -> bool:
    if not allowed:
        return True
    names = {a.lower() for a in allowed}
    if "commercial" in names and row["commercial_use"]:
        return True
    for group, members in LICENSE_GROUPS.items():
        if group in names:
            names |= set(members)
    return row["license"].lower() in names


def rank_models(
    clusters: pl.DataFrame,
    gpu: str | GpuSpec = "cpu",
    catalog: pl.DataFrame | None = None,
    licenses_allowed: list[str] | None = None,
    mode: str = "qlora",
    max_params_b: float | None = None,
    prefer_local: bool | None = None,
    lora_r: int = 16,
    max_prompt_tokens: int | None = None,
) -> pl.DataFrame:
    """Rank catalog models for each cluster on one GPU.

    Per (cluster, model):
      - `context_need` = p90_input_tokens + mean_output_tokens; `context_ok` when the model's window holds it.
        With `max_prompt_tokens` (prompts trimmed by a `PromptBudget` before training and serving, as
        `slmlab.specialize` does) the prompt part is capped at that budget.
      - `train_gb` (the chosen `mode` at that sequence length, batch 1, gradient checkpointing) and `infer_gb`
        (same quantization, KV cache for that context); `fits` when both are within the GPU's usable memory
        and, on a CPU, the model is within its training budget (`train_params_budget_b`, time not memory).
      - `license_ok` against `licenses_allowed` (licence ids, or the groups "permissive" / "commercial").
      - `tool_ok`: the cluster answers with tool calls (`output_shape == "tool_call"`) and the model has tool
        calling. With fine-tuning the model learns the `<tool_call>` format from the LLM's own calls, so a
        model without it is penalised, not excluded; in "inference" mode it is excluded.
      - `eligible` = all hard checks pass; `reasons` lists the failing ones.
      - `score` = min(quality / bar, 1) - SIZE_WEIGHT * size + tool bonus, where quality is `quality_prior`,
        the bar `difficulty_bar(suitability)` and size `size_prior(params_b)`. Every model that clears the bar
        scores 1 before the size cost, so the smallest model that clears it wins; tool-call clusters add
        `TOOL_BONUS[tool_calling]` and `AGENT_BONUS` for agent-tuned models (xLAM, Nemotron-Mini).
      - `rank` 1.. among eligible models of the cluster (null for excluded ones). With `prefer_local` (default
        on a CPU) models that load offline (the bundled SmolLM2-135M) rank first, so the laptop path needs no
        download.

    Args:
        clusters: cluster table (`slmlab.schema.CLUSTER_SCHEMA`; needs cluster, p90_input_tokens,
            mean_output_tokens, output_shape, suitability; name optional).
        gpu: a `GpuSpec` or a name from `load_gpus()` ("cpu", "T4", "L4", "A10G", "4090", "A100 40GB", "H100").
        catalog: defaults to `load_catalog()`.
        licenses_allowed: None allows every licence.
        mode: "qlora", "lora", "full" or "inference".
        max_params_b: drop bigger models (a reason, not a silent filter).
        prefer_local: rank offline-loadable models first; None = only on a CPU.
        lora_r: LoRA rank for the training memory estimate.
        max_prompt_tokens: the prompt budget the SLM will see; None = the logged prompt length.

    Returns:
        One row per (cluster, model), sorted by cluster then rank.

    Example:
        >>> cl = pl.DataFrame({"cluster": [0], "p90_input_tokens": [900.0], "mean_output_tokens": [40.0],
        ...                    "output_shape": ["tool_call"], "suitability": [0.8]})
        >>> rank_models(cl, "cpu").filter(pl.col("rank") == 1).get_column("hub_id").item()
        'HuggingFaceTB/SmolLM2-135M-Instruct'
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    spec = get_gpu(gpu)
    cat = catalog if catalog is not None else load_catalog()
    prefer_local = spec.is_cpu if prefer_local is None else prefer_local
    device = "cpu" if spec.is_cpu else "cuda"
    quant = "nf4" if mode == "qlora" else ("bf16" if not spec.is_cpu else "fp32")
    needed = [c for c in ("cluster", "p90_input_tokens", "mean_output_tokens", "output_shape", "suitability")]
    missing = [c for c in needed if c not in clusters.columns]
    if missing:
        raise ValueError(f"the cluster table lacks {missing} (see slmlab.schema.CLUSTER_SCHEMA)")
    memo: dict[tuple[str, int], tuple[float, float]] = {}
    rows = []
    for cl in clusters.iter_rows(named=True):
        prompt = cl["p90_input_tokens"] or 0
        if max_prompt_tokens is not None:
            prompt = min(prompt, max_prompt_tokens)
        ctx = int(math.ceil(prompt + (cl["mean_output_tokens"] or 0))) or 1
        tool_call = cl["output_shape"] == "tool_call"
        bar = difficulty_bar(cl["suitability"])
        for m in cat.iter_rows(named=True):
            key = (m["hub_id"], ctx)
            if key not in memo:
                infer = estimate_memory(m, quant, ctx, 1, "inference", device=device)
                train = (
                    infer
                    if mode == "inference"
                    else estimate_memory(m, quant, ctx, 1, mode, lora_r, device=device)
                )
                memo[key] = (train.total_gb, infer.total_gb)
            train_gb, infer_gb = memo[key]
            reasons = []
            need_gb = max(train_gb, infer_gb)
            fits = need_gb <= spec.usable_gb
            if not fits:
                reasons.append(f"needs {need_gb:.1f} GB > {spec.usable_gb:.1f} GB usable on {spec.name}")
            budget = spec.train_params_budget_b
            if budget is not None and mode != "inference" and m["params_b"] > budget:
                fits = False
                reasons.append(
                    f"{m['params_b']:.2f}B params > {budget}B trainable in reasonable time on {spec.name}"
                )
            context_ok = m["context_length"] >= ctx
            if not context_ok:
                reasons.append(f"context {m['context_length']} < {ctx} tokens needed")
            license_ok = _license_ok(m, licenses_allowed)
            if not license_ok:
                reasons.append(f"licence {m['license']} not allowed")
            tool_ok = not tool_call or m["tool_calling"] != "none"
            if not tool_ok and mode == "inference":
                reasons.append("no tool calling (zero-shot use)")
            size_ok = max_params_b is None or m["params_b"] <= max_params_b
            if not size_ok:
                reasons.append(f"{m['params_b']:.2f}B > max_params_b {max_params_b}")
            quality = quality_prior(m, tool_call)
            score = min(quality / bar, 1.0) - SIZE_WEIGHT * size_prior(m["params_b"])
            if tool_call:
                score += TOOL_BONUS[m["tool_calling"]] + (AGENT_BONUS if m["agent_tuned"] else 0.0)
            rows.append(
                {
                    "cluster": cl["cluster"],
                    "cluster_name": cl.get("name"),
                    "hub_id": m["hub_id"],
                    "local_name": m["local_name"],
                    "family": m["family"],
                    "params_b": m["params_b"],
                    "license": m["license"],
                    "tool_calling": m["tool_calling"],
                    "local": bool(m["bundled"]),
                    "context_need": ctx,
                    "train_gb": round(train_gb, 3),
                    "infer_gb": round(infer_gb, 3),
                    "fits": fits,
                    "context_ok": context_ok,
                    "license_ok": license_ok,
                    "tool_ok": tool_ok,
                    "eligible": not reasons,
                    "quality": round(quality, 4),
                    "bar": round(bar, 4),
                    "score": round(score, 4),
                    "reasons": "; ".join(reasons),
                    "gpu": spec.name,
                    "mode": mode,
                }
            )
    df = pl.DataFrame(rows)
    local_key = pl.when(pl.lit(prefer_local) & pl.col("local")).then(0).otherwise(1)
    df = df.with_columns(
        _elig=pl.when(pl.col("eligible")).then(0).otherwise(1), _local=local_key, _neg=-pl.col("score")
    ).sort(["cluster", "_elig", "_local", "_neg", "params_b"])
    df = df.with_columns(
        rank=pl.when(pl.col("eligible")).then(pl.col("eligible").cum_sum().over("cluster")).otherwise(None)
    ).drop("_elig", "_local", "_neg")
    return df.with_columns(pl.col("rank").cast(pl.Int32))


def best_per_cluster(ranking: pl.DataFrame) -> pl.DataFrame:
    """The top-ranked eligible model of each cluster (one row per cluster)."""
    return ranking.filter(pl.col("rank") == 1).sort("cluster")


def best_model(ranking: pl.DataFrame, cluster: int) -> str:
    """The model reference to load for a cluster's top-ranked candidate: its local name if bundled, else hub id.

    Raises:
        ValueError: no model is eligible for that cluster (see the `reasons` column).
    """
    top = ranking.filter((pl.col("cluster") == cluster) & (pl.col("rank") == 1))
    if top.height == 0:
        raise ValueError(f"no eligible model for cluster {cluster}; see ranking['reasons']")
    row = top.row(0, named=True)
    return row["local_name"] or row["hub_id"]


# ---------------------------------------------------------------------------------------------------------
# Zero-shot probe
# ---------------------------------------------------------------------------------------------------------


def _logged_action(row: dict[str, Any]) -> str:
    return row.get("tool_name") or TEXT_ACTION


def zero_shot_probe(
    calls: pl.DataFrame,
    model: Any = "smollm2-135m",
    n: int = 20,
    budget: PromptBudget | None = None,
    max_new_tokens: int = 96,
    seed: int = 0,
    batch_size: int = 4,
) -> pl.DataFrame:
    """Run a candidate SLM, untrained, on a sample of a cluster's calls and compare with what the LLM did.

    Prompts are built exactly as training and evaluation build them (`fit_messages` with the logged tool
    schemas, or schemas inferred from the sample's logged tool calls when the log has none), so the probe shows
    the starting point fine-tuning improves on. Scoring is deliberately minimal; `slmlab.evaluate` has the
    full metrics.

    Args:
        calls: call table rows of one cluster (canonical schema).
        model: a model reference for `TransformersGenerator`, or a ready `slmlab.runtime.generate.Generator`.
        n: calls to sample (all when fewer).
        budget: prompt budget; default `PromptBudget()` (1024 tokens).
        max_new_tokens: generation limit.
        seed: sampling seed.

    Returns:
        One row per probed call: call_id, logged_action, generated_action, tool_match, json_valid (null when the
        model called no tool), args_match (same calls and arguments as the log, via
        `slmlab.evaluate.metrics.calls_exact_match`; null unless the first tool names agree), logged_output,
        generated_text, prompt_tokens, generated_tokens, latency_ms, model.

    Example:
        >>> probe = zero_shot_probe(cluster_calls, "smollm2-135m", n=5)  # doctest: +SKIP
        >>> probe.select(pl.col("tool_match").mean())  # doctest: +SKIP
    """
    from slmlab.evaluate.metrics import calls_exact_match
    from slmlab.runtime.generate import Generator, TransformersGenerator

    if calls.height == 0:
        raise ValueError("no calls to probe")
    budget = budget or PromptBudget()
    rows = calls.to_dicts()
    sample = random.Random(seed).sample(rows, min(n, len(rows)))
    gen = model if isinstance(model, Generator) else TransformersGenerator(model, batch_size=batch_size)
    inferred = tools_from_calls([r.get("response_tool_calls") for r in rows])
    prompts, tokens = [], []
    for r in sample:
        tools = json.loads(r["tools"]) if r.get("tools") else inferred
        msgs = fit_messages(parse_messages(r["messages"]), tools, budget, gen.tokenizer)
        prompts.append(msgs)
        tokens.append(count_prompt_tokens(msgs, gen.tokenizer))
    outs = gen.generate(prompts, max_new_tokens=max_new_tokens, progress=False)
    result = []
    for r, out, n_tok in zip(sample, outs, tokens, strict=True):
        logged_calls = parse_tool_calls(r.get("response_tool_calls"))
        logged = _logged_action(r)
        generated = (out.tool_calls[0].get("name") or "<invalid>") if out.tool_calls else TEXT_ACTION
        args_match = None
        if out.tool_calls and logged_calls and generated == logged:
            args_match = calls_exact_match(logged_calls, out.tool_calls)
        result.append(
            {
                "call_id": r["call_id"],
                "cluster": r.get("cluster"),
                "logged_action": logged,
                "generated_action": generated,
                "tool_match": generated == logged,
                "json_valid": (out.valid_json and all(c.get("name") for c in out.tool_calls))
                if out.tool_calls
                else None,
                "args_match": args_match,
                "logged_output": render_target(r.get("response_text"), logged_calls),
                "generated_text": out.text,
                "prompt_tokens": n_tok,
                "generated_tokens": out.output_tokens,
                "latency_ms": out.latency_ms,
                "model": gen.name,
            }
        )
    schema = {"cluster": pl.Int32, "json_valid": pl.Boolean, "args_match": pl.Boolean}
    return pl.DataFrame(result, schema_overrides=schema)


def probe_summary(probe: pl.DataFrame) -> pl.DataFrame:
    """One row: calls probed, tool-name match rate, JSON validity, argument match, mean tokens and latency."""
    return probe.group_by("model").agg(
        n=pl.len(),
        tool_match=pl.col("tool_match").mean(),
        json_valid=pl.col("json_valid").mean(),
        args_match=pl.col("args_match").cast(pl.Float64).fill_null(0.0).mean(),
        generated_tokens=pl.col("generated_tokens").mean(),
        latency_ms=pl.col("latency_ms").mean(),
    )


# ---------------------------------------------------------------------------------------------------------
# Inputs from earlier steps
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidates:
    """The clusters to find models for, and their calls (cluster ids after the labeller's merges/splits).

    Attributes:
        clusters: cluster table rows (`CLUSTER_SCHEMA`), best first.
        calls: the clustered call table with `cluster` mapped through the labels.
        source: "labels" (status "slm_candidate" in notebook 04's labels) or "suitability" (top clusters by
            suitability, when there are no labels or none is accepted).
    """

    clusters: pl.DataFrame
    calls: pl.DataFrame
    source: str


def load_candidates(run: str | RunStore = "demo", fallback_top: int = 3) -> Candidates:
    """Read step 3/4 artefacts of a run: the clusters accepted as SLM candidates and their calls.

    Reads the labelled state through `slmlab.label.load_labelled_calls` (the labeller's merges, splits
    and statuses); when no cluster is marked "slm_candidate", the `fallback_top` clusters with the highest
    suitability (noise -1 excluded).

    Example:
        >>> cands = load_candidates("demo")  # doctest: +SKIP
        >>> cands.clusters.get_column("cluster").to_list()  # doctest: +SKIP
    """
    from slmlab.label import load_labelled_clusters

    calls, clusters = load_labelled_clusters(run)
    accepted = clusters.filter(pl.col("status") == "slm_candidate")
    if accepted.height:
        return Candidates(accepted.sort("suitability", descending=True), calls, "labels")
    top = clusters.filter(pl.col("cluster") >= 0).sort("suitability", descending=True).head(fallback_top)
    return Candidates(top, calls, "suitability")
