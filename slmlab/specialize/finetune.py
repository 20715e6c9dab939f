"""LoRA / QLoRA fine-tuning of a small model on SFT examples, with checkpoints and exact resume.

A small, readable training loop (torch + peft) instead of a framework trainer, so that what matters for
this project is plain to see and test: packed rows (no compute on padding), loss on the LLM's answer only,
a data order that is a pure function of (seed, step) so a resumed run sees exactly the batches an
uninterrupted one would, checkpoints every `save_every` steps (adapter, optimizer, scheduler, RNG states,
history), and an adapter folder with `slmlab_adapter.json` recording data hash, base model, cluster,
hyper-parameters, prompt budget and metrics.

Usage:
    >>> from slmlab.specialize import FinetuneConfig, finetune
    >>> result = finetune(data, config=FinetuneConfig(max_steps=100, output_dir="runs/c3"))  # doctest: +SKIP
    >>> result.history.tail(3)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from slmlab.config import home_dir, require, seed_everything
from slmlab.specialize.checkpoints import (
    _checkpoints,
    _history_frame,
    _read_history,
    _restore,
    _save_checkpoint,
)
from slmlab.specialize.provenance import (
    write_adapter_config,
    write_training_calls,
)
from slmlab.specialize.sft_data import (
    IGNORE_INDEX,
    SFTDataset,
    SFTExample,
    collate_rows,
    pack_examples,
    unpacked_rows,
)

HISTORY_FILE = "history.jsonl"


def _help(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass(frozen=True)
class FinetuneConfig:
    """Hyper-parameters of one fine-tuning run (see each field's `help` metadata)."""

    base_model: str = _help(
        "model to adapt: bundled short name, hub id, local folder or .gguf", default="smollm2-135m"
    )
    method: str = _help('"lora" (full-precision base) or "qlora" (nf4 base, bitsandbytes)', default="lora")
    r: int = _help("LoRA rank; 16 is plenty for one narrow sub-task", default=16)
    alpha: int = _help("LoRA scale numerator (scale = alpha / r); 2r is the usual choice", default=32)
    dropout: float = _help("dropout on the LoRA branch", default=0.05)
    target_modules: str | tuple[str, ...] = _help(
        '"all-linear" (every projection, as QLoRA) or a tuple of module names', default="all-linear"
    )
    lr: float = _help(
        "peak learning rate (linear warm-up, cosine decay); LoRA tolerates 1e-4..5e-4", default=2e-4
    )
    warmup_steps: int = _help("learning-rate warm-up steps", default=5)
    weight_decay: float = _help("AdamW weight decay on the adapter weights", default=0.0)
    epochs: float = _help("passes over the training rows, used when max_steps <= 0", default=1.0)
    max_steps: int = _help("optimizer steps; > 0 overrides epochs", default=-1)
    batch_size: int = _help("rows per micro-batch (a packed row holds several examples)", default=4)
    grad_accum: int = _help("micro-batches per optimizer step", default=1)
    max_len: int = _help("row length in tokens; examples longer than this must be cut before", default=1024)
    packing: bool = _help(
        "bin-pack examples into max_len rows (position ids restart per example)", default=True
    )
    eval_every: int = _help("steps between validation losses; 0 = once per epoch and at the end", default=0)
    save_every: int = _help("steps between checkpoints; 0 = only the final adapter", default=50)
    keep_checkpoints: int = _help("checkpoints kept on disk (oldest deleted)", default=2)
    seed: int = _help("seeds weights init, dropout and the data order", default=0)
    output_dir: str = _help(
        "run folder (checkpoints, history, adapter); default SLMLAB_HOME/finetune/<time>", default=""
    )
    gradient_checkpointing: bool = _help(
        "recompute activations in backward: less memory, ~30% slower", default=False
    )
    bf16: str | bool = _help(
        '"auto" = bf16 autocast on a bf16 GPU or a CPU with native bf16; True / False force it',
        default="auto",
    )
    optimizer: str = _help(
        '"auto" (paged AdamW on CUDA for qlora, else AdamW), "adamw", "paged_adamw"', default="auto"
    )
    device: str | None = _help("cpu, cuda or None (CUDA when available)", default=None)
    cluster_id: int | None = _help(
        "cluster the adapter serves, recorded in slmlab_adapter.json", default=None
    )
    max_grad_norm: float = _help("gradient clipping", default=1.0)

    def __post_init__(self) -> None:
        if self.method not in ("lora", "qlora"):
            raise ValueError(f"method must be 'lora' or 'qlora', not {self.method!r}")
        for name in ("r", "alpha", "batch_size", "grad_accum", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.max_steps <= 0 and self.epochs <= 0:
            raise ValueError("set max_steps > 0 or epochs > 0")
        if min(self.eval_every, self.save_every, self.warmup_steps) < 0:
            raise ValueError("eval_every, save_every and warmup_steps must be >= 0")
        if self.bf16 not in ("auto", True, False):
            raise ValueError(f"bf16 must be 'auto', True or False, not {self.bf16!r}")
        if self.optimizer not in ("auto", "adamw", "paged_adamw"):
            raise ValueError(f"optimizer must be 'auto', 'adamw' or 'paged_adamw', not {self.optimizer!r}")

    def run_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        return home_dir() / "finetune" / datetime.now().strftime("%Y%m%d-%H%M%S")


@dataclass(frozen=True)
class FinetuneResult:
    """What a run produced: the adapter folder, its per-step history and resource use."""

    adapter_dir: Path
    history: pl.DataFrame  # step, epoch, loss, eval_loss, lr, tokens, tokens_per_s, step_s, example_ids
    steps: int
    train_loss: float | None
    eval_loss: float | None
    wall_time_s: float
    peak_memory_mb: float  # CUDA: max_memory_allocated; CPU: peak RSS sampled each step
    memory_before_mb: float  # RSS (CPU) or allocated (CUDA) before loading the model
    model_memory_mb: float  # the adapted model's parameters and buffers
    resumed_from: int = 0


class _Run:
    """Resolved runtime objects of one run (device, precision)."""

    def __init__(self, config: FinetuneConfig) -> None:
        torch = require("torch", "train")
        from slmlab.runtime.models import pick_device

        self.device = pick_device(config.device)
        cuda = self.device.startswith("cuda")
        if config.bf16 != "auto":
            self.bf16 = bool(config.bf16)
        elif cuda:
            self.bf16 = bool(torch.cuda.is_bf16_supported())
        else:
            from slmlab.runtime.models import cpu_has_native_bf16

            # bf16 autocast is a speed-up only where the CPU computes bf16 natively; elsewhere it is
            # emulated and slower than fp32. The adapter weights and optimizer stay fp32 either way.
            self.bf16 = cpu_has_native_bf16()
        self.cuda = cuda
        self.autocast_device = "cuda" if cuda else "cpu"


def _memory_mb(cuda: bool) -> float:
    if cuda:
        import torch

        return torch.cuda.memory_allocated() / 2**20
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _load_model(config: FinetuneConfig, run: _Run) -> tuple[Any, Any]:
    torch = require("torch", "train")
    peft = require("peft", "train")
    from slmlab.runtime.models import LoadSpec, load_causal_lm

    quant = "nf4" if config.method == "qlora" else None
    dtype = None if run.cuda else "float32"
    model, tokenizer = load_causal_lm(
        config.base_model, LoadSpec(quantization=quant, device=run.device, dtype=dtype)
    )
    # Packed rows rely on restarting position ids with no KV cache (transformers builds a block mask then).
    model.config.use_cache = False
    if quant:
        model = peft.prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )
    elif config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    targets = config.target_modules if isinstance(config.target_modules, str) else list(config.target_modules)
    lora = peft.LoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(config.seed)
    model = peft.get_peft_model(model, lora)
    model.train()
    return model, tokenizer


def _optimizer(model: Any, config: FinetuneConfig, run: _Run) -> Any:
    torch = require("torch", "train")
    params = [p for p in model.parameters() if p.requires_grad]
    kind = config.optimizer
    if kind == "auto":
        kind = "paged_adamw" if (run.cuda and config.method == "qlora") else "adamw"
    if kind == "paged_adamw":
        if not run.cuda:
            raise ValueError("paged_adamw needs CUDA (bitsandbytes pages optimizer state to CPU memory)")
        bnb = require("bitsandbytes", "train")
        return bnb.optim.PagedAdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def _lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def batch_schedule(n_rows: int, batch_size: int, seed: int) -> Callable[[int], list[int]]:
    """The rows of micro-batch `i`: epoch `e` uses the permutation of seed `seed + e`, so the order is a pure
    function of (seed, micro-batch index) and a resumed run continues with exactly the same batches.

    Example:
        >>> f = batch_schedule(5, 2, seed=0)
        >>> sorted(f(0) + f(1) + f(2)) == [0, 1, 2, 3, 4]
        True
    """
    per_epoch = math.ceil(n_rows / batch_size)
    cache: dict[int, list[int]] = {}

    def rows_of(i: int) -> list[int]:
        epoch, j = divmod(i, per_epoch)
        if epoch not in cache:
            perm = list(range(n_rows))
            random.Random(seed * 1_000_003 + epoch).shuffle(perm)
            cache.clear()
            cache[epoch] = perm
        return cache[epoch][j * batch_size : (j + 1) * batch_size]

    return rows_of


def target_loss(model: Any, batch: dict[str, Any]) -> Any:
    """Mean next-token cross-entropy over the answer tokens, as `model(**batch).loss` computes it.

    Only the positions that predict an answer token go through the LM head (`logits_to_keep` as a boolean
    mask). In agent calls the answer is a small part of each example (demo: ~32 of ~180 tokens), and the
    head of a small model is a large share of its compute: SmolLM2-135M projects 576 dimensions onto a
    49k-token vocabulary at every position. A model whose forward does not take `logits_to_keep` gets the
    plain loss.

    Example:
        >>> loss = target_loss(model, collate_rows(rows, pad_id))  # doctest: +SKIP
    """
    torch = require("torch", "train")
    labels = batch["labels"]
    answer = labels[:, 1:] != IGNORE_INDEX  # position t predicts token t + 1
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = answer
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    try:
        logits = model(**inputs, logits_to_keep=keep).logits
    except TypeError:  # an architecture without logits_to_keep
        return model(**batch).loss
    if logits.dim() != 2 or logits.shape[0] != int(answer.sum()):
        return model(**batch).loss  # an older slicing rule (1-D positions only): keep the plain loss
    return torch.nn.functional.cross_entropy(logits.float(), labels[:, 1:][answer])


def evaluate_loss(
    model: Any, rows: Sequence[Any], batch_size: int, pad_id: int, device: str, bf16: bool = False
) -> float | None:
    """Token-weighted mean cross-entropy of the model on packed / unpacked rows (target tokens only)."""
    torch = require("torch", "train")
    if not rows:
        return None
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            batch = collate_rows(list(rows[start : start + batch_size]), pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            n = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
            with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
                loss = target_loss(model, batch)
            total += float(loss) * n
            count += n
    if was_training:
        model.train()
    return total / max(count, 1)


def finetune(
    train: SFTDataset | Sequence[SFTExample],
    val: Sequence[SFTExample] | None = None,
    config: FinetuneConfig | None = None,
    resume: bool = True,
    data_hash: str | None = None,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
    progress: bool = True,
    provenance: dict[str, Any] | None = None,
) -> FinetuneResult:
    """Fine-tune `config.base_model` with LoRA / QLoRA on SFT examples; resume from the last checkpoint.

    Args:
        train: an `SFTDataset` (its train/val examples, data hash, tools and prompt budget are used) or a
            sequence of training examples.
        val: validation examples (default: the dataset's).
        config: hyper-parameters; `config.output_dir` holds checkpoints, `history.jsonl` and the final adapter.
        resume: continue from the newest checkpoint in `output_dir` (same data order, same final step).
            False starts over and deletes old checkpoints.
        data_hash: recorded with the adapter (default: the dataset's).
        on_step: called as `on_step(step, history_row)` after every optimizer step (after a checkpoint
            is written), e.g. for live plots; an exception raised there stops training like a crash.
        progress: show a progress bar.
        provenance: where the data came from (run, cluster and split fingerprints:
            `slmlab.specialize.provenance.adapter_provenance`), recorded in `slmlab_adapter.json`.

    Returns:
        A `FinetuneResult`; the adapter is in `result.adapter_dir` with `slmlab_adapter.json` and
        `training_calls.json` (the ids of every call it was trained and validated on).

    Example:
        >>> cfg = FinetuneConfig(max_steps=20, save_every=10, output_dir="/tmp/ft")  # doctest: +SKIP
        >>> finetune(data, config=cfg).history.select("step", "loss")  # doctest: +SKIP
    """
    torch = require("torch", "train")
    from tqdm.auto import tqdm

    from slmlab.runtime.models import memory_footprint_mb

    config = config or FinetuneConfig()
    dataset = train if isinstance(train, SFTDataset) else None
    train_examples = list(dataset.train if dataset else train)
    val_examples = list(val if val is not None else (dataset.val if dataset else ()))
    data_hash = data_hash or (dataset.data_hash if dataset else _examples_hash(train_examples, val_examples))
    if not train_examples:
        raise ValueError("no training examples")
    run_dir = config.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    history_path = run_dir / HISTORY_FILE

    run = _Run(config)
    from slmlab.specialize.launch import distributed_context

    # Under `accelerate launch` / torchrun with > 1 process (see slmlab.specialize.launch); else None.
    dist = distributed_context()
    if dist is not None:
        run.device = str(dist.device)
    world, rank = (dist.world_size, dist.rank) if dist is not None else (1, 0)
    if run.cuda:
        torch.cuda.reset_peak_memory_stats()
    memory_before = _memory_mb(run.cuda)
    seed_everything(config.seed)
    t0 = time.perf_counter()
    model, tokenizer = _load_model(config, run)
    model_mb = memory_footprint_mb(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    build = (lambda exs: pack_examples(exs, config.max_len, config.seed)) if config.packing else unpacked_rows
    too_long = [ex.call_id for ex in train_examples + val_examples if len(ex) > config.max_len]
    if too_long:
        raise ValueError(
            f"{len(too_long)} examples exceed max_len={config.max_len} (e.g. {too_long[0]}); build the data with max_len"
        )
    train_rows, val_rows = build(train_examples), build(val_examples)
    per_epoch = math.ceil(math.ceil(len(train_rows) / config.batch_size) / (config.grad_accum * world))
    total_steps = config.max_steps if config.max_steps > 0 else max(1, math.ceil(config.epochs * per_epoch))
    eval_every = config.eval_every or per_epoch
    rows_of = batch_schedule(len(train_rows), config.batch_size, config.seed)

    optim = _optimizer(model, config, run)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, _lr_lambda(config.warmup_steps, total_steps))
    meta = {"config": asdict(config), "data_hash": data_hash, "n_train_rows": len(train_rows)}

    start_step = 0
    checkpoints = _checkpoints(run_dir)
    if checkpoints and resume:
        start_step = _restore(checkpoints[-1], model, optim, sched, meta)
    elif not resume and rank == 0:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    history = _read_history(history_path, up_to=start_step) if start_step else []
    if rank == 0:
        history_path.write_text("".join(json.dumps(r) + "\n" for r in history))
    if dist is not None:
        model, optim = dist.prepare(model, optim, config, checkpoints[-1] if start_step else None)

    peak_rss = _memory_mb(run.cuda)
    bar = tqdm(
        total=total_steps,
        initial=start_step,
        desc=f"finetune [{config.method} r={config.r}]",
        disable=not progress or rank > 0,
    )
    model.train()
    for step in range(start_step + 1, total_steps + 1):
        step_start = time.perf_counter()
        micro = [
            [train_rows[j] for j in rows_of(((step - 1) * config.grad_accum + k) * world + rank)]
            for k in range(config.grad_accum)
        ]
        micro = [m for m in micro if m]
        n_target = sum(sum(1 for lab in r.labels[1:] if lab != IGNORE_INDEX) for m in micro for r in m)
        tokens = sum(r.n_tokens for m in micro for r in m)
        if dist is not None:  # the global batch: every rank's answer tokens
            n_target, tokens = dist.sum(n_target), dist.sum(tokens)
        loss_sum = 0.0
        for rows in micro:
            batch = {k: v.to(run.device) for k, v in collate_rows(rows, pad_id, padding_free=True).items()}
            n = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
            with torch.autocast(run.autocast_device, dtype=torch.bfloat16, enabled=run.bf16):
                loss = target_loss(model, batch)
            # Weight each micro-batch by its target tokens so accumulation equals one big batch's mean.
            # DDP averages gradients over the ranks, hence the factor `world`.
            scaled = loss * n * world / max(n_target, 1)
            scaled.backward() if dist is None else dist.backward(scaled)
            loss_sum += float(loss.detach()) * n
        if dist is not None:
            loss_sum = dist.sum(loss_sum)
        (torch.nn.utils.clip_grad_norm_ if dist is None else dist.clip_grad_norm_)(
            [p for p in model.parameters() if p.requires_grad], config.max_grad_norm
        )
        lr = sched.get_last_lr()[0]
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        step_s = time.perf_counter() - step_start
        row: dict[str, Any] = {
            "step": step,
            "epoch": step / per_epoch,
            "loss": loss_sum / max(n_target, 1),
            "eval_loss": None,
            "lr": lr,
            "tokens": tokens,
            "tokens_per_s": tokens / step_s,
            "step_s": step_s,
            "example_ids": [cid for m in micro for r in m for cid in r.example_ids],
        }
        if dist is not None:
            row["example_ids"] = dist.gather_lists(row["example_ids"])
        if step % eval_every == 0 or step == total_steps:
            row["eval_loss"] = evaluate_loss(model, val_rows, config.batch_size, pad_id, run.device, run.bf16)
        if rank == 0:
            with history_path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
        history.append(row)
        peak_rss = max(peak_rss, _memory_mb(run.cuda))
        if config.save_every and step % config.save_every == 0 and step < total_steps:
            if dist is None:
                _save_checkpoint(run_dir, step, model, optim, sched, meta, config.keep_checkpoints)
            else:
                dist.save_checkpoint(
                    _save_checkpoint, run_dir, step, model, optim, sched, meta, config.keep_checkpoints
                )
        bar.update(1)
        bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:.0f}")
        if on_step is not None:
            on_step(step, row)
    bar.close()

    wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if run.cuda else peak_rss
    frame = _history_frame(history)
    train_loss = float(frame.get_column("loss").tail(min(10, frame.height)).mean()) if frame.height else None
    evals = frame.get_column("eval_loss").drop_nulls()
    eval_loss = float(evals[-1]) if len(evals) else None
    # The run folder itself is the adapter (adapter_config.json + weights next to checkpoints/ and history),
    # so `artefact("adapters", run) / "cluster_3"` loads with peft directly.
    adapter_dir = run_dir
    if dist is not None:
        dist.save_model(model, adapter_dir)
    else:
        model.save_pretrained(adapter_dir)
    if rank == 0:
        tokenizer.save_pretrained(adapter_dir)
    metrics = {
        "steps": total_steps,
        "train_loss_last10": train_loss,
        "eval_loss": eval_loss,
        "train_examples": len(train_examples),
        "val_examples": len(val_examples),
        "train_rows": len(train_rows),
        "wall_time_s": wall,
        "peak_memory_mb": peak,
        "model_memory_mb": model_mb,
        "mean_tokens_per_s": float(frame.get_column("tokens_per_s").mean()) if frame.height else None,
        "resumed_from": start_step,
    }
    metrics["world_size"] = world
    if rank == 0:
        write_adapter_config(adapter_dir, config, data_hash, metrics, dataset, provenance)
        write_training_calls(adapter_dir, train_examples, val_examples)
    if dist is not None:
        dist.end()
    return FinetuneResult(
        adapter_dir=adapter_dir,
        history=frame,
        steps=total_steps,
        train_loss=train_loss,
        eval_loss=eval_loss,
        wall_time_s=wall,
        peak_memory_mb=peak,
        memory_before_mb=memory_before,
        model_memory_mb=model_mb,
        resumed_from=start_step,
    )


def _examples_hash(train: Sequence[SFTExample], val: Sequence[SFTExample]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for ex in list(train) + [None] + list(val):
        digest.update(b"|" if ex is None else f"{ex.call_id}:{ex.n_prompt}:{ex.input_ids}".encode())
    return digest.hexdigest()[:16]
