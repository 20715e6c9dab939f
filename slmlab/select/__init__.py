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

Modules: `catalog` (catalog, GPUs), `memory` (estimator, table, plot), `ranking` (priors, `rank_models`,
`best_per_cluster`/`best_model`, `load_candidates`), `probe` (`zero_shot_probe`, `probe_summary`).

Usage:
    >>> from slmlab.select import estimate_memory
    >>> round(estimate_memory("smollm2-135m", quantization="bf16", context_tokens=2048).weights_gb, 2)
    0.27
"""

from __future__ import annotations

from slmlab.select.catalog import (
    BENCHMARKS,
    CATALOG_COLUMNS,
    TOOL_CALLING,
    CatalogError,
    GpuSpec,
    catalog_row,
    get_gpu,
    load_catalog,
    load_gpus,
)
from slmlab.select.memory import (
    DTYPE_BYTES,
    GB,
    LORA_TARGETS,
    MODES,
    NF4_BYTES,
    NF4_DQ_BYTES,
    QUANTIZATIONS,
    MemoryEstimate,
    estimate_memory,
    kv_cache_bytes,
    linear_params,
    lora_params,
    memory_table,
    plot_memory,
)
from slmlab.select.probe import (
    probe_summary,
    zero_shot_probe,
)
from slmlab.select.ranking import (
    AGENT_BONUS,
    LICENSE_GROUPS,
    SIZE_WEIGHT,
    TOOL_BONUS,
    Candidates,
    best_model,
    best_per_cluster,
    difficulty_bar,
    load_candidates,
    quality_prior,
    rank_models,
    size_prior,
)

__all__ = [
    "AGENT_BONUS",
    "BENCHMARKS",
    "CATALOG_COLUMNS",
    "Candidates",
    "CatalogError",
    "DTYPE_BYTES",
    "GB",
    "GpuSpec",
    "LICENSE_GROUPS",
    "LORA_TARGETS",
    "MODES",
    "MemoryEstimate",
    "NF4_BYTES",
    "NF4_DQ_BYTES",
    "QUANTIZATIONS",
    "SIZE_WEIGHT",
    "TOOL_BONUS",
    "TOOL_CALLING",
    "best_model",
    "best_per_cluster",
    "catalog_row",
    "difficulty_bar",
    "estimate_memory",
    "get_gpu",
    "kv_cache_bytes",
    "linear_params",
    "load_candidates",
    "load_catalog",
    "load_gpus",
    "lora_params",
    "memory_table",
    "plot_memory",
    "probe_summary",
    "quality_prior",
    "rank_models",
    "size_prior",
    "zero_shot_probe",
]
