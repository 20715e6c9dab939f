"""Training checkpoints: save (atomically) and restore adapter, optimizer, scheduler and RNG states, and the
loss history, so a resumed run continues exactly where an uninterrupted one would be.

Usage:
    >>> from slmlab.specialize.checkpoints import _checkpoints
    >>> _checkpoints(Path("/nonexistent"))
    []
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import polars as pl

from slmlab.config import require


def _checkpoints(run_dir: Path) -> list[Path]:
    ckpt = run_dir / "checkpoints"
    found = [p for p in ckpt.glob("step-*") if (p / "state.pt").exists()] if ckpt.is_dir() else []
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def _rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# Settings that must match for a checkpoint to be resumed (others, e.g. max_steps or save_every, may change).
_RESUME_KEYS = (
    "base_model",
    "method",
    "r",
    "alpha",
    "target_modules",
    "lr",
    "batch_size",
    "grad_accum",
    "max_len",
    "packing",
    "seed",
)


def _save_checkpoint(
    run_dir: Path, step: int, model: Any, optim: Any, sched: Any, meta: dict, keep: int
) -> Path:
    import torch

    final = run_dir / "checkpoints" / f"step-{step:06d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    torch.save(
        {
            "step": step,
            "optimizer": optim.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": _rng_state(),
            "meta": meta,
        },
        tmp / "state.pt",
    )
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)  # atomic: a crash while saving leaves the previous checkpoint intact
    for old in _checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _read_history(path: Path, up_to: int | None = None) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if up_to is None or r["step"] <= up_to]


def _history_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    schema = {
        "step": pl.Int64,
        "epoch": pl.Float64,
        "loss": pl.Float64,
        "eval_loss": pl.Float64,
        "lr": pl.Float64,
        "tokens": pl.Int64,
        "tokens_per_s": pl.Float64,
        "step_s": pl.Float64,
        "example_ids": pl.List(pl.String),
    }
    if not rows:
        return pl.DataFrame(schema=schema)
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)


def _restore(checkpoint: Path, model: Any, optim: Any, sched: Any, meta: dict[str, Any]) -> int:
    torch = require("torch", "train")
    peft = require("peft", "train")
    state = torch.load(checkpoint / "state.pt", weights_only=False)
    old = state["meta"]
    if old["data_hash"] != meta["data_hash"]:
        raise ValueError(
            f"checkpoint {checkpoint} was trained on other data ({old['data_hash']} != {meta['data_hash']}); use resume=False"
        )
    changed = [k for k in _RESUME_KEYS if old["config"].get(k) != meta["config"].get(k)]
    if changed:
        raise ValueError(
            f"checkpoint {checkpoint} used other settings for {changed}; use resume=False or another output_dir"
        )
    from safetensors.torch import load_file

    weights = load_file(str(checkpoint / "adapter_model.safetensors"))
    peft.set_peft_model_state_dict(model, weights)
    optim.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    return int(state["step"])
