"""What the evaluation step reads from a run: the labelled calls with the run's saved split, the cluster
table, the adapters (and what each was trained on), and which clusters to evaluate.

Usage:
    >>> from slmlab.evaluate.inputs import load_step_inputs
    >>> inputs = load_step_inputs("demo")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from slmlab.runs import RunStore
from slmlab.runtime.chat_format import PromptBudget


def clusters_from_task_label(calls: pl.DataFrame) -> pl.DataFrame:
    """Use the log's own task tags (`task_label`, e.g. Data Flywheel `workload_id`) as clusters.

    Replaces `cluster` with a dense integer code per label (sorted by label; unlabelled calls -> -1).

    Example:
        >>> clusters_from_task_label(pl.DataFrame({"task_label": ["b", "a", None]}))["cluster"].to_list()
        [1, 0, -1]
    """
    labels = sorted(calls.get_column("task_label").drop_nulls().unique().to_list())
    codes = {lab: i for i, lab in enumerate(labels)}
    return calls.with_columns(
        pl.col("task_label").replace_strict(codes, default=-1, return_dtype=pl.Int32).alias("cluster")
    )


def cluster_task_ari(calls: pl.DataFrame) -> float | None:
    """Adjusted Rand index of the clusters against the log's `task_label` tags (None without tags).

    Uses `slmlab.cluster.cluster_quality` when that module provides it, else scikit-learn.

    Example:
        >>> cluster_task_ari(pl.DataFrame({"cluster": [0, 0, 1, 1], "task_label": ["a", "a", "b", "b"]}))
        1.0
    """
    if "task_label" not in calls.columns or "cluster" not in calls.columns:
        return None
    tagged = calls.filter(pl.col("task_label").is_not_null())
    if tagged.height < 2:
        return None
    try:
        from slmlab.cluster import cluster_quality

        quality = cluster_quality(tagged)
        value = quality.get("ari") if isinstance(quality, dict) else getattr(quality, "ari", None)
        if value is not None:
            return float(value)
    except (ImportError, TypeError, ValueError, KeyError, AttributeError):
        pass
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(tagged["task_label"].to_list(), tagged["cluster"].to_list()))


def accepted_clusters(clusters: pl.DataFrame | Sequence[int] | None, calls: pl.DataFrame) -> list[int]:
    """Cluster ids to evaluate: `status == "slm_candidate"` rows of a cluster table, a list, or every cluster."""
    if clusters is None:
        return sorted(c for c in calls.get_column("cluster").unique().to_list() if c is not None and c >= 0)
    if isinstance(clusters, pl.DataFrame):
        if "status" in clusters.columns:
            acc = clusters.filter(pl.col("status") == "slm_candidate")
            if acc.height:
                return sorted(acc.get_column("cluster").to_list())
            print("no cluster is marked slm_candidate: evaluating every cluster")
        return sorted(c for c in clusters.get_column("cluster").to_list() if c >= 0)
    return sorted(int(c) for c in clusters)


def _require_split(calls: pl.DataFrame) -> pl.DataFrame:
    from slmlab.specialize.splits import check_leakage

    if "split" not in calls.columns:
        raise ValueError(
            "the calls have no `split` column: join the run's saved split first "
            "(`slmlab.specialize.splits.apply_split(calls, RunStore(run).read_split())`); evaluation never re-splits"
        )
    return check_leakage(calls)


def adapter_base_model(adapter_dir: str | Path) -> str | None:
    """The base model an adapter folder was trained on (its `slmlab_adapter.json`, else peft's config)."""
    folder = Path(adapter_dir)
    for name, keys in (
        ("slmlab_adapter.json", ("base_model", "model")),
        ("adapter_config.json", ("base_model_name_or_path",)),
    ):
        path = folder / name
        if path.exists():
            meta = json.loads(path.read_text())
            for k in keys:
                if meta.get(k):
                    return str(meta[k])
    return None


def adapter_prompt_setup(
    adapter_dir: str | Path, budget: PromptBudget, tools: list[dict[str, Any]] | None
) -> tuple[PromptBudget, list[dict[str, Any]] | None]:
    """The prompt budget and tool list an adapter was trained with (its `slmlab_adapter.json`), so the
    tuned model is evaluated on prompts rendered exactly like its training data; else the given ones."""
    path = Path(adapter_dir) / "slmlab_adapter.json"
    if not path.exists():
        return budget, tools
    meta = json.loads(path.read_text())
    saved = meta.get("prompt_budget") or {}
    known = set(PromptBudget.__dataclass_fields__)
    if saved:
        budget = PromptBudget(**{k: v for k, v in saved.items() if k in known})
    return budget, meta["tools"] if meta.get("tools") is not None else tools


def _adapter_fits(adapter_dir: str | Path, model: str) -> bool:
    base = adapter_base_model(adapter_dir)
    if base is None:
        return True
    from slmlab.runtime.models import resolve_model

    names = {model, Path(model).name}
    try:
        names |= {resolve_model(model), Path(resolve_model(model)).name}
    except (FileNotFoundError, OSError):
        pass
    return base in names or Path(base).name in names


def find_adapters(folder: str | Path) -> dict[int, Path]:
    """Adapter folders of a run (`artefact("adapters") / "cluster_<id>"`), by cluster id.

    Example:
        >>> find_adapters("/nonexistent")
        {}
    """
    root = Path(folder)
    out: dict[int, Path] = {}
    for sub in sorted(root.glob("cluster_*")) if root.is_dir() else []:
        tail = sub.name.removeprefix("cluster_")
        if tail.lstrip("-").isdigit() and any(
            (sub / f).exists() for f in ("slmlab_adapter.json", "adapter_config.json")
        ):
            out[int(tail)] = sub
    return out


@dataclass(frozen=True)
class StepInputs:
    """What notebook 07 needs from steps 3-6 of a run.

    Attributes:
        calls: the clustered calls with the labeller's merges applied and the run's saved split joined.
        clusters: the labeller's cluster table (with statuses), else step 3's.
        adapters: cluster id -> adapter folder (each is checked against `split_fingerprint` when used).
        split_fingerprint: the fingerprint of the run's split, which every adapter must have trained on.
    """

    calls: pl.DataFrame
    clusters: pl.DataFrame
    adapters: dict[int, Path]
    split_fingerprint: str


def load_step_inputs(run: str | RunStore = "demo") -> StepInputs:
    """Read a run's labelled calls, the saved split (made by notebook 06; nothing re-splits), the cluster
    table and the adapters.

    Raises:
        slmlab.runs.MissingArtefactError: the split or the clustered calls are missing (names the notebook).
        slmlab.specialize.splits.LeakageError: the split leaks (a session on both sides).
    """
    from slmlab.label import load_labelled_clusters
    from slmlab.specialize.splits import apply_split

    store = run if isinstance(run, RunStore) else RunStore(run)
    calls, clusters = load_labelled_clusters(store)
    calls = _require_split(apply_split(calls, store.read_split()))
    return StepInputs(calls, clusters, find_adapters(store.adapters_dir()), store.split_fingerprint())
