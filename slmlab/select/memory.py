"""Memory estimates of step 5: weights + KV cache + LoRA adapters + optimizer + activations + overhead.

Checked against measurements in the tests (CPU: bitsandbytes fp32/int8/nf4 footprints; CUDA:
`max_memory_allocated` for a forward and a LoRA step).

Usage:
    >>> from slmlab.select.memory import estimate_memory
    >>> round(estimate_memory("smollm2-135m", quantization="bf16", context_tokens=2048).weights_gb, 2)
    0.27
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from slmlab.select.catalog import GpuSpec, catalog_row, get_gpu

GB = 1e9  # decimal gigabytes, as GPU vendors and cloud price lists count them

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
        >>> round(est.total_gb, 1)  # 4.5 GB of it activations, most the logits of a 151k vocabulary
        6.7
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
        # Loss: the logits in the compute dtype, their fp32 upcast (none when computing in fp32), the
        # log-softmax output and its gradient, all alive at once at the start of backward.
        logits = tokens * row["vocab_size"] * (cbytes + (4 if cbytes < 4 else 0) + 8)
        if gradient_checkpointing:
            # Each layer's input stays saved; on top of it either the loss's logit tensors (start of backward)
            # or, once they are freed, the layer being recomputed and its gradients: whichever is larger.
            acts = row["n_layers"] * tokens * row["hidden_size"] * cbytes + max(logits, 2 * layer)
        else:
            acts = row["n_layers"] * layer + logits
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
           "(per-layer inputs + the larger of one recomputed layer with its gradients (Korthikanti et al. 2022 "
           "with SwiGLU, flash/SDPA attention) and the loss's logit tensors: logits in the compute dtype, their "
           "fp32 upcast unless computing in fp32, the log-softmax output and its gradient); an upper bound by the "
           "gradients' size, which are mostly allocated after the logit tensors are freed; ")
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
