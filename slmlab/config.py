"""Shared settings: where runs and caches live, the smoke switch, seeding, and optional-dependency errors.

Usage:
    >>> from slmlab.config import home_dir, is_smoke
    >>> home_dir().name != ""
    True
"""

from __future__ import annotations

import importlib
import os
import random
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

# The repository root when slmlab runs from a checkout (notebooks, tests), used to find bundled data.
REPO_ROOT = Path(__file__).resolve().parent.parent


def home_dir() -> Path:
    """Where caches (converted models, embeddings) and run outputs go.

    `SLMLAB_HOME` if set, else `./.slmlab` inside a checkout (git-ignored), else `~/.cache/slmlab`.
    """
    env = os.environ.get("SLMLAB_HOME")
    if env:
        path = Path(env).expanduser()
    elif (REPO_ROOT / "pyproject.toml").exists():
        path = REPO_ROOT / ".slmlab"
    else:
        path = Path("~/.cache/slmlab").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(kind: str) -> Path:
    """A sub-folder of the cache for one kind of artefact (`models`, `embeddings`, `generations`).

    The cache lives in `SLMLAB_CACHE` if set, else `SLMLAB_HOME/cache`; keeping it separate lets many
    run homes (tests, experiments) share converted models and embeddings.
    """
    root = (
        Path(os.environ["SLMLAB_CACHE"]).expanduser()
        if os.environ.get("SLMLAB_CACHE")
        else home_dir() / "cache"
    )
    path = root / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_smoke() -> bool:
    """True under the smoke switch (`SLMLAB_SMOKE=1`): tiny models, few steps, few hundred calls."""
    return os.environ.get("SLMLAB_SMOKE", "0").lower() in ("1", "true", "yes")


SCALES = ("smoke", "cpu", "gpu")


def scale() -> str:
    """How big the notebooks' default knobs are: "smoke" (tests), "cpu" (a laptop) or "gpu" (one GPU).

    `SLMLAB_SCALE` chooses; else the smoke switch gives "smoke", a visible CUDA device "gpu", anything
    else "cpu". The "cpu" sizes keep the whole main job (`slmlab run`) within about 15 minutes on 2 cores.
    """
    chosen = os.environ.get("SLMLAB_SCALE", "").strip().lower()
    if chosen:
        if chosen not in SCALES:
            raise ValueError(f"SLMLAB_SCALE must be one of {SCALES}, not {chosen!r}")
        return chosen
    if is_smoke():
        return "smoke"
    try:
        import torch
    except ImportError:
        return "cpu"
    return "gpu" if torch.cuda.is_available() else "cpu"


def by_scale(smoke: Any, cpu: Any, gpu: Any) -> Any:
    """The knob value for the current `scale()`: `STEPS = by_scale(smoke=3, cpu=40, gpu=300)`.

    Example:
        >>> os.environ["SLMLAB_SCALE"] = "cpu"; by_scale(smoke=3, cpu=40, gpu=300)
        40
        >>> del os.environ["SLMLAB_SCALE"]
    """
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[scale()]


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and (if imported or installed) torch, for repeatable runs."""
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        import torch
    except ImportError:
        return
    torch.manual_seed(seed)


class MissingDependencyError(ImportError):
    """An optional dependency is missing; the message names the exact install command."""


def require(module: str, extra: str) -> ModuleType:
    """Import `module` or raise an error naming `pip install "slmlab[extra]"`.

    Example:
        >>> require("json", "core").__name__
        'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f'{module!r} is not installed; it is needed here. Install it with: pip install "slmlab[{extra}]"'
        ) from exc


def default_run() -> str:
    """The run name notebooks use: `SLMLAB_RUN` (set by `slmlab run`), else "demo"."""
    return os.environ.get("SLMLAB_RUN", "demo")
