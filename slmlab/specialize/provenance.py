"""What an adapter was trained on, and the checks that keep evaluation honest about it.

An adapter folder records (in `slmlab_adapter.json` under "provenance") the run, the cluster id, the
fingerprint of that cluster's calls (the call ids in the saved split) and the fingerprint of the run's
split, and (in `training_calls.json`) the ids of every call it was trained and validated on.
Evaluation uses `check_adapter` to refuse an adapter made for another clustering, labelling or split, and
`assert_not_trained_on` to prove that no scored call is one of its training calls.

Usage:
    >>> from slmlab.specialize.provenance import adapter_provenance, check_adapter
    >>> prov = adapter_provenance(store, cluster=2, calls=split_calls)  # doctest: +SKIP
    >>> check_adapter(store.adapter_dir(2), 2, split_calls, store.split_fingerprint())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from slmlab.runs import RunStore, ids_fingerprint
from slmlab.specialize.splits import LeakageError

ADAPTER_CONFIG = "slmlab_adapter.json"
TRAINING_CALLS = "training_calls.json"  # ids of the calls an adapter was trained and validated on


class StaleAdapterError(RuntimeError):
    """An adapter was trained for other data than the run now holds; the message says what to re-run."""


def cluster_fingerprint(calls: pl.DataFrame, cluster: int) -> str:
    """Fingerprint of a cluster: the ids of its calls that are in the saved split (`split` not null).

    Example:
        >>> df = pl.DataFrame({"call_id": ["a", "b"], "cluster": [1, 1], "split": ["train", "test"]})
        >>> cluster_fingerprint(df, 1) == cluster_fingerprint(df.reverse(), 1)
        True
    """
    if "split" not in calls.columns:
        raise ValueError("calls need the saved split's `split` column (slmlab.specialize.splits.apply_split)")
    ids = calls.filter((pl.col("cluster") == cluster) & pl.col("split").is_not_null()).get_column("call_id")
    return ids_fingerprint(ids.to_list())


def adapter_provenance(store: RunStore, cluster: int, calls: pl.DataFrame) -> dict[str, Any]:
    """The provenance an adapter for `cluster` records: run, cluster id and fingerprint, split fingerprint."""
    return {
        "run": store.run,
        "cluster_id": int(cluster),
        "cluster_fingerprint": cluster_fingerprint(calls, cluster),
        "split_fingerprint": store.split_fingerprint(),
    }


def read_provenance(adapter_dir: str | Path) -> dict[str, Any]:
    path = Path(adapter_dir) / ADAPTER_CONFIG
    return (json.loads(path.read_text()).get("provenance") or {}) if path.exists() else {}


def training_call_ids(adapter_dir: str | Path) -> set[str]:
    """The ids of every call an adapter was trained or validated on (its `training_calls.json`).

    Raises:
        StaleAdapterError: the adapter has no `training_calls.json` (trained before slmlab recorded it).
    """
    path = Path(adapter_dir) / TRAINING_CALLS
    if not path.exists():
        raise StaleAdapterError(
            f"{adapter_dir} has no {TRAINING_CALLS}: it cannot be shown to be evaluated on unseen calls; "
            "re-train it (notebook 06)"
        )
    doc = json.loads(path.read_text())
    return set(doc.get("train", [])) | set(doc.get("val", []))


def check_adapter(
    adapter_dir: str | Path, cluster: int, calls: pl.DataFrame, split_fingerprint: str | None = None
) -> None:
    """Raise `StaleAdapterError` unless the adapter was trained for this cluster's calls and this split.

    Args:
        adapter_dir: the adapter folder.
        cluster: the cluster id it is about to be evaluated on.
        calls: the run's calls with labels applied and the saved split joined (`apply_split`).
        split_fingerprint: the run's split fingerprint (`RunStore.split_fingerprint()`); None skips that check.
    """
    prov = read_provenance(adapter_dir)
    hint = f"re-run notebook 06 for cluster {cluster}"
    if not prov:
        raise StaleAdapterError(f"{adapter_dir} records no provenance (cluster, split): {hint}")
    if prov.get("cluster_id") is not None and int(prov["cluster_id"]) != int(cluster):
        raise StaleAdapterError(
            f"{adapter_dir} was trained for cluster {prov['cluster_id']}, not {cluster}: {hint}"
        )
    now = cluster_fingerprint(calls, cluster)
    if prov.get("cluster_fingerprint") != now:
        raise StaleAdapterError(
            f"{adapter_dir} was trained on another cluster {cluster} (an earlier clustering or labelling: "
            f"fingerprint {prov.get('cluster_fingerprint')}, now {now}): {hint}"
        )
    if split_fingerprint is not None and prov.get("split_fingerprint") != split_fingerprint:
        raise StaleAdapterError(
            f"{adapter_dir} was trained on another split of the run (fingerprint {prov.get('split_fingerprint')}, "
            f"now {split_fingerprint}): {hint}"
        )


def assert_not_trained_on(adapter_dir: str | Path, scored_ids: Iterable[str]) -> None:
    """Raise `LeakageError` if any scored call is one of the adapter's training or validation calls."""
    seen = training_call_ids(adapter_dir)
    leaked = sorted(set(scored_ids) & seen)
    if leaked:
        raise LeakageError(
            f"{len(leaked)} scored call(s) were training calls of {adapter_dir} (e.g. {leaked[:3]}); "
            "scores must come from calls the model never trained on"
        )


# ------------------------------------------------------------------------------------------ the adapter files


def write_adapter_config(
    adapter_dir: Path,
    config: Any,
    data_hash: str,
    metrics: dict[str, Any],
    dataset: Any = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write `slmlab_adapter.json`: what the adapter was trained on and how, so it can be reproduced and
    evaluated with the same prompt budget and tool list."""
    import slmlab

    doc = {
        "slmlab_version": getattr(slmlab, "__version__", "unknown"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "base_model": config.base_model,
        "method": config.method,
        "cluster_id": config.cluster_id,
        "data_hash": data_hash,
        "hyperparameters": asdict(config),
        "prompt_budget": dataset.budget_dict() if dataset else None,
        "tools": dataset.tools if dataset else None,
        "max_len": dataset.max_len if dataset else config.max_len,
        "metrics": metrics,
        "provenance": provenance or {},
    }
    path = Path(adapter_dir) / ADAPTER_CONFIG
    path.write_text(json.dumps(doc, indent=2, default=str))
    return path


def write_training_calls(adapter_dir: Path, train: Sequence[Any], val: Sequence[Any] = ()) -> Path:
    """Write `training_calls.json`: the ids of the calls the adapter was trained on (and validated on), so
    evaluation can assert that none of them is scored."""
    doc = {"train": sorted({ex.call_id for ex in train}), "val": sorted({ex.call_id for ex in val})}
    path = Path(adapter_dir) / TRAINING_CALLS
    path.write_text(json.dumps(doc, indent=0))
    return path


def read_adapter_config(adapter_dir: str | os.PathLike) -> dict[str, Any]:
    """The `slmlab_adapter.json` of an adapter (or merged model) folder."""
    return json.loads((Path(adapter_dir) / ADAPTER_CONFIG).read_text())


def budget_of(adapter_dir: str | os.PathLike) -> Any:
    """The `PromptBudget` an adapter was trained with, to render evaluation prompts the same way.

    Example:
        >>> budget = budget_of(result.adapter_dir)  # doctest: +SKIP
    """
    from slmlab.runtime.chat_format import PromptBudget

    saved = read_adapter_config(adapter_dir).get("prompt_budget") or {}
    known = {f.name for f in fields(PromptBudget)}
    return PromptBudget(**{k: v for k, v in saved.items() if k in known})


__all__ = [
    "ADAPTER_CONFIG",
    "TRAINING_CALLS",
    "budget_of",
    "read_adapter_config",
    "write_adapter_config",
    "write_training_calls",
    "StaleAdapterError",
    "adapter_provenance",
    "assert_not_trained_on",
    "check_adapter",
    "cluster_fingerprint",
    "read_provenance",
    "training_call_ids",
]
