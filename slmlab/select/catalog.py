"""The SLM catalog and the GPU table of step 5: packaged CSVs, validated row by row.

Usage:
    >>> from slmlab.select.catalog import load_catalog, get_gpu
    >>> get_gpu("T4").memory_gb
    16.0
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

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
