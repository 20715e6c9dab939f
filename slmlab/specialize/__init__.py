"""Step 6, specialize: SFT data from the LLM's answers, LoRA / QLoRA fine-tuning with resume, export.

Usage:
    >>> from slmlab.specialize import build_sft_dataset, FinetuneConfig, finetune, merge_and_save
    >>> data = build_sft_dataset(split_calls, tokenizer)  # doctest: +SKIP
    >>> result = finetune(data, config=FinetuneConfig(max_steps=50, output_dir="runs/c3"))  # doctest: +SKIP
"""

from slmlab.specialize.export import export_gguf, find_gguf_converter, merge_and_save
from slmlab.specialize.finetune import (
    FinetuneConfig,
    FinetuneResult,
    batch_schedule,
    evaluate_loss,
    finetune,
)
from slmlab.specialize.provenance import ADAPTER_CONFIG, budget_of, read_adapter_config
from slmlab.specialize.report import memory_stats, plot_history, side_by_side
from slmlab.specialize.sft_data import (
    DEFAULT_BUDGET,
    PackedRow,
    SFTDataset,
    SFTExample,
    build_sft_dataset,
    call_prompts,
    call_targets,
    collate_rows,
    fit_call,
    pack_examples,
    tools_for,
    unpacked_rows,
)
from slmlab.specialize.targets import TuneTarget, pick_targets

__all__ = [
    "ADAPTER_CONFIG",
    "DEFAULT_BUDGET",
    "FinetuneConfig",
    "FinetuneResult",
    "PackedRow",
    "SFTDataset",
    "SFTExample",
    "TuneTarget",
    "batch_schedule",
    "budget_of",
    "build_sft_dataset",
    "call_prompts",
    "call_targets",
    "collate_rows",
    "evaluate_loss",
    "export_gguf",
    "find_gguf_converter",
    "finetune",
    "fit_call",
    "memory_stats",
    "merge_and_save",
    "pack_examples",
    "pick_targets",
    "plot_history",
    "read_adapter_config",
    "side_by_side",
    "tools_for",
    "unpacked_rows",
]
