"""Multi-process fine-tuning: `finetune` under `accelerate launch` (DDP; FSDP / DeepSpeed via accelerate).

`finetune` itself is the trainer. When it runs in a process group (`accelerate launch`, `torchrun`: the
`WORLD_SIZE` environment variable is > 1) it asks `distributed_context()` for a `DistributedRun` and then:

- each rank trains on its own micro-batches of the one global data order (`batch_schedule`): micro-batch
  `i` of rank `r` is global micro-batch `i * world_size + r`, so `batch_size` is *per process* and one
  optimizer step sees `batch_size * grad_accum * world_size` rows;
- the loss of each micro-batch is weighted by its answer tokens over the answer tokens of the whole global
  batch (an all-reduced count), so the averaged DDP gradient equals the gradient of one big batch;
- the model is wrapped by `accelerate.Accelerator.prepare` (DDP on CPU / gloo and on GPUs / NCCL; FSDP or
  DeepSpeed when the launch config says so), LoRA weights start identical on every rank (same seed, and
  DDP broadcasts rank 0's at wrap time) and stay identical (averaged gradients, same optimizer);
- only rank 0 writes the history, checkpoints and the adapter; every rank also saves its own RNG state into
  the checkpoint (`rng-rank<r>.pt`: dropout masks differ per rank), so a resumed run continues exactly.

This module also holds the command line run by the launcher (`python -m slmlab.specialize.launch`), the
on-disk form of an `SFTDataset` it reads, and `launch_command`, which writes the launch line for you.

Usage:
    >>> from slmlab.specialize.launch import launch_command
    >>> " ".join(launch_command("sft.parquet", "runs/ft", num_processes=2, cpu=True))  # doctest: +ELLIPSIS
    'accelerate launch --num_processes 2 --multi_gpu -m slmlab.specialize.launch --data sft.parquet --output-dir runs/ft'

    $ accelerate launch --config_file examples/accelerate/ddp_cpu.yaml -m slmlab.specialize.launch \\
        --data runs/demo/sft.parquet --output-dir runs/demo/adapters/cluster_3 --set max_steps=200
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import polars as pl

from slmlab.config import require

RANK_RNG = "rng-rank{rank}.pt"
ACCELERATE_STATE = "accelerate_state"  # sharded model / optimizer state under FSDP or DeepSpeed
# Where every rank writes its own final LoRA weights (`rank<r>.safetensors`), to check they agree.
RANK_WEIGHTS_ENV = "SLMLAB_RANK_WEIGHTS_DIR"


def world_size() -> int:
    """Processes in this job, from the launcher's environment (1 when not launched)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


class DistributedRun:
    """One rank of a multi-process `finetune`: the accelerate `Accelerator` plus the few collectives the
    trainer needs (sums of counts, a gather of example ids, barriers around rank-0 writes)."""

    def __init__(self, cpu: bool | None = None) -> None:
        accelerate = require("accelerate", "train")
        torch = require("torch", "train")
        if cpu is None:
            cpu = not torch.cuda.is_available()
        # No gradient accumulation inside accelerate: finetune weights its micro-batches itself.
        self.accelerator = accelerate.Accelerator(cpu=cpu)
        self.rank = self.accelerator.process_index
        self.world_size = self.accelerator.num_processes
        dev = self.accelerator.device
        # "cuda:<local rank>" on GPUs; plain "cpu" on CPU (slmlab's LoadSpec knows no "cpu:0").
        self.device = "cpu" if dev.type == "cpu" else str(dev)
        self.kind = str(self.accelerator.distributed_type).split(".")[-1]  # MULTI_CPU, MULTI_GPU, FSDP, ...

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        """FSDP / DeepSpeed: parameters or optimizer state are split across ranks."""
        return self.kind in ("FSDP", "DEEPSPEED")

    def barrier(self) -> None:
        self.accelerator.wait_for_everyone()

    def sum(self, value: float | int) -> float | int:
        """The sum of `value` over all ranks (same type back)."""
        import torch

        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        total = self.accelerator.reduce(t, reduction="sum").item()
        return int(round(total)) if isinstance(value, int) else float(total)

    def gather_lists(self, items: list[Any]) -> list[Any]:
        """The concatenation, in rank order, of every rank's `items`."""
        import torch.distributed as tdist

        out: list[Any] = [None] * self.world_size
        tdist.all_gather_object(out, items)
        return [x for part in out for x in part]

    def prepare(self, model: Any, optim: Any, config: Any, checkpoint: Path | None = None) -> tuple[Any, Any]:
        """Wrap model and optimizer for the launch's strategy (`config`: the `FinetuneConfig`); give each rank
        its own dropout RNG stream (restored from `checkpoint` when resuming)."""
        import torch

        seed = config.seed
        if self.kind == "DEEPSPEED":
            # No dataloader goes through accelerate, so DeepSpeed is told the micro-batch size here. finetune
            # weights its micro-batches itself: DeepSpeed must step once per backward call.
            if config.grad_accum != 1:
                raise ValueError("under DeepSpeed use grad_accum=1 (raise batch_size or processes instead)")
            ds = self.accelerator.state.deepspeed_plugin.deepspeed_config
            ds["train_micro_batch_size_per_gpu"] = config.batch_size
            ds["gradient_accumulation_steps"] = 1
        model, optim = self.accelerator.prepare(model, optim)
        if checkpoint is not None and self.sharded and (checkpoint / ACCELERATE_STATE).is_dir():
            self.accelerator.load_state(str(checkpoint / ACCELERATE_STATE))
        rng = checkpoint / RANK_RNG.format(rank=self.rank) if checkpoint is not None else None
        if rng is not None and rng.exists():
            from slmlab.specialize.checkpoints import _set_rng_state

            _set_rng_state(torch.load(rng, weights_only=False))
        elif checkpoint is None and self.rank > 0:
            torch.manual_seed(seed + 7919 * self.rank)
        self.barrier()  # rank 0 may have just cleared old checkpoints
        return model, optim

    def backward(self, loss: Any) -> None:
        self.accelerator.backward(loss)

    def clip_grad_norm_(self, params: Any, max_norm: float) -> Any:
        return self.accelerator.clip_grad_norm_(params, max_norm)

    def _saveable(self, model: Any) -> Any:
        """A stand-in whose `save_pretrained` writes the full (gathered) adapter; collective."""
        state = self.accelerator.get_state_dict(model)
        inner = self.accelerator.unwrap_model(model)

        class _Full:
            def save_pretrained(self, path: Any) -> None:
                inner.save_pretrained(path, state_dict=state)

        return _Full()

    def save_checkpoint(
        self, save: Any, run_dir: Path, step: int, model: Any, optim: Any, *args: Any
    ) -> None:
        """`finetune._save_checkpoint` on rank 0 (with the gathered adapter), then every rank's RNG state
        (and, under FSDP / DeepSpeed, accelerate's sharded state) into the same folder."""
        import torch

        from slmlab.specialize.checkpoints import _rng_state

        full = self._saveable(model)
        final = None
        if self.is_main:
            inner_optim = getattr(optim, "optimizer", optim)
            final = save(run_dir, step, full, inner_optim, *args)
        self.barrier()
        final = run_dir / "checkpoints" / f"step-{step:06d}"
        if self.sharded:
            self.accelerator.save_state(str(final / ACCELERATE_STATE))
        torch.save(_rng_state(), final / RANK_RNG.format(rank=self.rank))
        self.barrier()

    def save_model(self, model: Any, adapter_dir: Path) -> None:
        """The final adapter, written by rank 0 (collective). With `SLMLAB_RANK_WEIGHTS_DIR` set, every rank
        also writes the LoRA weights it holds itself, as `rank<r>.safetensors` (DDP: each rank's own copy)."""
        full = self._saveable(model)
        if self.is_main:
            full.save_pretrained(adapter_dir)
        dump = os.environ.get(RANK_WEIGHTS_ENV)
        if dump:
            peft = require("peft", "train")
            from safetensors.torch import save_file

            inner = self.accelerator.unwrap_model(model)
            own = peft.get_peft_model_state_dict(inner)
            Path(dump).mkdir(parents=True, exist_ok=True)
            weights = {k: v.detach().cpu().contiguous() for k, v in own.items()}
            save_file(weights, str(Path(dump) / f"rank{self.rank}.safetensors"))
        self.barrier()

    def end(self) -> None:
        self.barrier()
        self.accelerator.end_training()


def distributed_context() -> DistributedRun | None:
    """A `DistributedRun` when this process is one of several (`WORLD_SIZE` > 1), else None."""
    return DistributedRun() if world_size() > 1 else None


# ------------------------------------------------------------------------------- the data on disk

SFT_META = ".meta.json"


def save_sft_dataset(data: Any, path: str | os.PathLike) -> Path:
    """Write an `SFTDataset` as parquet (one row per example) plus `<path>.meta.json` (tools, budget, hash),
    for `python -m slmlab.specialize.launch --data <path>`.

    Example:
        >>> save_sft_dataset(data, "runs/demo/sft.parquet")  # doctest: +SKIP
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"call_id": ex.call_id, "split": split, "n_prompt": ex.n_prompt, "input_ids": list(ex.input_ids)}
        for split, exs in (("train", data.train), ("val", data.val))
        for ex in exs
    ]
    schema = {"call_id": pl.String, "split": pl.String, "n_prompt": pl.Int64, "input_ids": pl.List(pl.Int64)}
    pl.DataFrame(rows, schema=schema).write_parquet(path)
    meta = {
        "tools": data.tools,
        "budget": asdict(data.budget),
        "max_len": data.max_len,
        "n_dropped": data.n_dropped,
        "n_target_cut": data.n_target_cut,
        "data_hash": data.data_hash,
    }
    Path(str(path) + SFT_META).write_text(json.dumps(meta, indent=1))
    return path


def load_sft_dataset(path: str | os.PathLike) -> Any:
    """Read what `save_sft_dataset` wrote back into the same `SFTDataset` (same examples, same hash)."""
    from slmlab.runtime.chat_format import PromptBudget
    from slmlab.specialize.sft_data import SFTDataset, SFTExample

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no SFT data file (write one with save_sft_dataset)")
    meta_path = Path(str(path) + SFT_META)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    frame = pl.read_parquet(path)
    missing = {"call_id", "split", "n_prompt", "input_ids"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: not an SFT data file (missing columns {sorted(missing)})")
    split: dict[str, list[Any]] = {"train": [], "val": []}
    for cid, part, n_prompt, ids in frame.select("call_id", "split", "n_prompt", "input_ids").iter_rows():
        split.setdefault(part, []).append(SFTExample(cid, tuple(ids), int(n_prompt)))
    known = {f.name for f in fields(PromptBudget)}
    kwargs: dict[str, Any] = {
        k: meta[k] for k in ("tools", "max_len", "n_dropped", "n_target_cut", "data_hash") if k in meta
    }
    if "budget" in meta:
        kwargs["budget"] = PromptBudget(**{k: v for k, v in meta["budget"].items() if k in known})
    return SFTDataset(train=tuple(split["train"]), val=tuple(split["val"]), **kwargs)


# ------------------------------------------------------------------------------- the command line


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def config_from_args(config_json: str | None, sets: list[str], output_dir: str | None) -> Any:
    """A `FinetuneConfig` from an optional JSON file, `key=value` overrides and the output folder."""
    from slmlab.specialize.finetune import FinetuneConfig

    values: dict[str, Any] = {}
    if config_json:
        doc = json.loads(Path(config_json).read_text())
        values.update(doc.get("hyperparameters", doc))  # a slmlab_adapter.json works too
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--set wants key=value, got {item!r}")
        values[key.strip()] = _parse_value(raw)
    known = {f.name for f in fields(FinetuneConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown FinetuneConfig fields {unknown}; known: {sorted(known)}")
    if isinstance(values.get("target_modules"), list):
        values["target_modules"] = tuple(values["target_modules"])
    if output_dir:
        values["output_dir"] = output_dir
    return FinetuneConfig(**values)


class StopAtStep(Exception):
    """Raised from `on_step` to end this launch after a checkpoint (preemptible / time-sliced jobs)."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of `accelerate launch -m slmlab.specialize.launch`; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m slmlab.specialize.launch", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="SFT data written by save_sft_dataset (parquet)")
    p.add_argument("--output-dir", required=True, help="run folder: checkpoints, history.jsonl, the adapter")
    p.add_argument("--config", default=None, help="JSON of FinetuneConfig fields (or a slmlab_adapter.json)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one field")
    p.add_argument("--no-resume", action="store_true", help="start over (deletes old checkpoints)")
    p.add_argument(
        "--stop-at",
        type=int,
        default=0,
        help="end this launch after optimizer step N (a checkpoint must fall on N); a later launch resumes",
    )
    p.add_argument(
        "--dump-weights",
        default=None,
        help="each rank writes its final LoRA weights here as rank<r>.safetensors (checks, debugging)",
    )
    args = p.parse_args(argv)

    from slmlab.specialize.finetune import finetune

    data = load_sft_dataset(args.data)
    config = config_from_args(args.config, args.set, args.output_dir)
    if args.stop_at and (not config.save_every or args.stop_at % config.save_every):
        raise SystemExit(f"--stop-at {args.stop_at} must be a multiple of save_every={config.save_every}")

    def on_step(step: int, row: dict[str, Any]) -> None:
        if args.stop_at and step >= args.stop_at:
            raise StopAtStep(step)

    rank = int(os.environ.get("RANK", "0") or 0)
    if args.dump_weights:
        os.environ[RANK_WEIGHTS_ENV] = args.dump_weights
    try:
        result = finetune(data, config=config, resume=not args.no_resume, on_step=on_step, progress=rank == 0)
    except StopAtStep as stop:
        print(
            f"[rank {rank}] stopped after step {stop.args[0]}; resume with the same command", file=sys.stderr
        )
        return 0
    if rank == 0:
        print(
            json.dumps(
                {
                    "adapter_dir": str(result.adapter_dir),
                    "steps": result.steps,
                    "train_loss": result.train_loss,
                    "eval_loss": result.eval_loss,
                    "resumed_from": result.resumed_from,
                    "world_size": world_size(),
                }
            )
        )
    return 0


def launch_command(
    data: str | os.PathLike,
    output_dir: str | os.PathLike,
    num_processes: int = 2,
    config_file: str | os.PathLike | None = None,
    cpu: bool = False,
    sets: dict[str, Any] | None = None,
) -> list[str]:
    """The `accelerate launch` argv that trains on `data` with `num_processes` processes.

    Args:
        data: SFT data written by `save_sft_dataset`.
        output_dir: the run / adapter folder.
        num_processes: processes (GPUs, or CPU workers with `cpu=True`).
        config_file: an accelerate config (`examples/accelerate/*.yaml`: DDP, FSDP, DeepSpeed); it then
            decides the strategy.
        cpu: force CPU processes (gloo).
        sets: `FinetuneConfig` overrides, written as `--set key=value`.

    Example:
        >>> launch_command("d.parquet", "out", 8, config_file="examples/accelerate/fsdp.yaml")[:4]
        ['accelerate', 'launch', '--config_file', 'examples/accelerate/fsdp.yaml']
    """
    cmd = ["accelerate", "launch"]
    if config_file is not None:
        cmd += ["--config_file", str(config_file)]
    cmd += ["--num_processes", str(num_processes)]
    if cpu and config_file is None and num_processes > 1:
        # accelerate's `--cpu` launcher starts several processes only through mpirun; `--multi_gpu` starts
        # them with torchrun, and each process then finds no GPU and joins a gloo group on the CPU.
        cmd.append("--multi_gpu")
    elif cpu:
        cmd.append("--cpu")
    cmd += ["-m", "slmlab.specialize.launch", "--data", str(data), "--output-dir", str(output_dir)]
    for k, v in (sets or {}).items():
        cmd += ["--set", f"{k}={json.dumps(v) if not isinstance(v, str) else v}"]
    return cmd


if __name__ == "__main__":
    raise SystemExit(main())
