"""The environment check of notebook 00: package versions, CPU/GPU, bitsandbytes, the bundled models.

Everything is checked for real (bitsandbytes quantizes a small tensor and reads it back; the bundled
model files are looked up on disk), and nothing is downloaded.

Usage:
    >>> from slmlab.runtime.env import environment_report
    >>> environment_report().columns
    ['section', 'check', 'value', 'ok', 'note']
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
from pathlib import Path

import polars as pl

from slmlab.config import REPO_ROOT, cache_dir, home_dir, is_smoke

# (distribution name, import name, slmlab extra that installs it)
PACKAGES = [
    ("polars", "polars", "core"),
    ("numpy", "numpy", "core"),
    ("plotly", "plotly", "core"),
    ("ipywidgets", "ipywidgets", "core"),
    ("scikit-learn", "sklearn", "core"),
    ("datasketch", "datasketch", "core"),
    ("torch", "torch", "train"),
    ("transformers", "transformers", "train"),
    ("peft", "peft", "train"),
    ("accelerate", "accelerate", "train"),
    ("bitsandbytes", "bitsandbytes", "train"),
    ("gguf", "gguf", "train"),
    ("sentence-transformers", "sentence_transformers", "embed"),
    ("umap-learn", "umap", "embed"),
    ("hdbscan", "hdbscan", "embed"),
    ("bertopic", "bertopic", "bench"),
    ("nbclient", "nbclient", "dev"),
    ("jupytext", "jupytext", "dev"),
]


def _row(section: str, check: str, value: str, ok: bool, note: str = "") -> dict[str, object]:
    return {"section": section, "check": check, "value": value, "ok": ok, "note": note}


def _packages() -> list[dict[str, object]]:
    rows = []
    for dist, module, extra in PACKAGES:
        try:
            version = importlib.metadata.version(dist)
            ok = importlib.util.find_spec(module) is not None
            rows.append(
                _row("packages", dist, version, ok, "" if ok else "metadata found but module missing")
            )
        except importlib.metadata.PackageNotFoundError:
            rows.append(_row("packages", dist, "missing", False, f'pip install "slmlab[{extra}]"'))
    return rows


def _hardware() -> list[dict[str, object]]:
    import psutil

    mem = psutil.virtual_memory()
    rows = [
        _row("hardware", "python", platform.python_version(), True, platform.platform()),
        _row("hardware", "cpu cores", str(os.cpu_count()), True, "logical cores"),
        _row(
            "hardware",
            "memory",
            f"{mem.total / 2**30:.1f} GiB",
            True,
            f"{mem.available / 2**30:.1f} GiB free",
        ),
    ]
    if importlib.util.find_spec("torch") is None:
        rows.append(_row("hardware", "cuda", "no torch", False, 'pip install "slmlab[train]"'))
        return rows
    import torch

    rows.append(
        _row("hardware", "torch threads", str(torch.get_num_threads()), True, "CPU threads torch uses")
    )
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            rows.append(
                _row(
                    "hardware",
                    f"cuda:{i}",
                    props.name,
                    True,
                    f"{props.total_memory / 2**30:.0f} GiB, compute {props.major}.{props.minor}, "
                    f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}",
                )  # fmt: skip
            )
    else:
        rows.append(
            _row(
                "hardware",
                "cuda",
                "not available",
                False,
                "CPU only: notebooks use SmolLM2-135M and LoRA on CPU; QLoRA and bigger SLMs need a GPU",
            )  # fmt: skip
        )
    return rows


def bitsandbytes_check() -> tuple[bool, str]:
    """Quantize a small tensor to nf4 and back with bitsandbytes on the best device; report the error.

    Returns:
        `(usable, note)`: note gives the device and the mean absolute round-trip error, or why it failed.

    Example:
        >>> ok, note = bitsandbytes_check()  # doctest: +SKIP
    """
    if importlib.util.find_spec("bitsandbytes") is None or importlib.util.find_spec("torch") is None:
        return False, 'bitsandbytes or torch missing: pip install "slmlab[train]"'
    try:
        import bitsandbytes.functional as bnbf
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        gen = torch.Generator().manual_seed(0)
        w = torch.randn(64, 64, generator=gen).to(device)
        q, state = bnbf.quantize_4bit(w, quant_type="nf4")
        back = bnbf.dequantize_4bit(q, state)
        err = (back.float() - w).abs().mean().item()
    except Exception as exc:  # any failure here means "not usable", which is what we report
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    ok = err < 0.2  # nf4 on N(0, 1) weights: ~0.07 mean absolute error
    return ok, f"nf4 round trip on {device}: mean abs error {err:.3f}"


def _models() -> list[dict[str, object]]:
    from slmlab.runtime.models import BUNDLED_EMBEDDER, BUNDLED_SLM, bundled_embedder_dir, bundled_slm_gguf

    rows = []
    try:
        gguf = bundled_slm_gguf()
        converted = cache_dir("models") / gguf.stem
        cached = (converted / "config.json").exists()
        note = "converted and cached" if cached else "converted to safetensors on first load (~20 s)"
        rows.append(_row("models", BUNDLED_SLM, str(gguf), True, note))
    except FileNotFoundError as exc:
        rows.append(_row("models", BUNDLED_SLM, "missing", False, str(exc)))
    try:
        folder = bundled_embedder_dir()
        ok = folder.is_dir()
        rows.append(
            _row(
                "models",
                BUNDLED_EMBEDDER,
                str(folder),
                ok,
                "" if ok else "package found, model folder missing",
            )
        )
    except FileNotFoundError as exc:
        rows.append(_row("models", BUNDLED_EMBEDDER, "missing", False, str(exc)))
    return rows


def environment_report(check_bitsandbytes: bool = True) -> pl.DataFrame:
    """One row per check: packages, hardware (CPU, memory, CUDA), bitsandbytes, bundled models, settings.

    Args:
        check_bitsandbytes: run the nf4 round trip (imports torch; ~1 s).

    Returns:
        Columns `section`, `check`, `value`, `ok` (False marks what is missing or unusable), `note`
        (the install command or what it means).

    Example:
        >>> report = environment_report(check_bitsandbytes=False)
        >>> "polars" in report["check"].to_list()
        True
    """
    rows = _packages() + _hardware()
    if check_bitsandbytes:
        ok, note = bitsandbytes_check()
        rows.append(_row("hardware", "bitsandbytes nf4", "usable" if ok else "unusable", ok, note))
    rows += _models()
    rows += [
        _row("settings", "SLMLAB_HOME", str(home_dir()), True, "caches and run folders"),
        _row("settings", "smoke switch", "on" if is_smoke() else "off", True, "SLMLAB_SMOKE=1: tiny sizes"),
    ]
    return pl.DataFrame(rows, schema={"section": pl.String, "check": pl.String, "value": pl.String,
                                      "ok": pl.Boolean, "note": pl.String})  # fmt: skip


def notebook_guide(folder: str | Path | None = None) -> pl.DataFrame:
    """The step notebooks in order, read from their jupytext `.py` files: title, goal, what you need.

    The "what you need" text (CPU or GPU, minutes) is the one each notebook states in its first cell, so
    the guide stays in step with the notebooks.

    Example:
        >>> notebook_guide().columns
        ['notebook', 'title', 'goal', 'what_you_need']
    """
    folder = Path(folder) if folder is not None else REPO_ROOT / "notebooks"
    rows = []
    for path in sorted(folder.glob("[0-9][0-9]_*.py")):
        head = path.read_text(encoding="utf-8").split("# %% tags=", 1)[0]
        text = "\n".join(
            line[2:] if line.startswith("# ") else line.lstrip("#") for line in head.splitlines()
        )
        title = re.search(r"^# (.+)$", text, re.M)
        goal = re.search(r"^Goal: (.+?)(?:\n\n|\Z)", text, re.M | re.S)
        need = re.search(r"\*\*What you need:?\*\*:? (.+?)(?:\n\n|\Z)", text, re.S)
        rows.append(
            {
                "notebook": path.stem,
                "title": title.group(1).strip() if title else path.stem,
                "goal": " ".join(goal.group(1).split()) if goal else "",
                "what_you_need": " ".join(need.group(1).split()) if need else "",
            }
        )
    return pl.DataFrame(rows, schema={"notebook": pl.String, "title": pl.String, "goal": pl.String,
                                      "what_you_need": pl.String})  # fmt: skip
