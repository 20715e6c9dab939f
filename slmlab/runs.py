"""The run store: the one module that knows a run's artefact names, paths and schemas, and their provenance.

Every step reads what earlier steps wrote through a `RunStore` and writes its own artefacts through it:

- each artefact has a fixed file name, the notebook (step) that writes it, the artefacts it is made from,
  and for tables a fixed schema (`ArtefactSpec`); a typed reader (`read_clustered()`, `read_split()`, ...)
  validates the schema on every read, so no later step guesses a column;
- every write records a provenance file (`provenance/<name>.json`): the step, a fingerprint of the
  artefact's content, and the fingerprints of its inputs at that moment. A read checks the whole chain
  upstream: if an input was rewritten since (e.g. step 3 re-ran), the read fails with `StaleArtefactError`
  naming the notebook to re-run. Files written by other code (the labeller's autosave) are fingerprinted
  by content, so those changes are seen too;
- the saved split (`split.parquet`, call_id -> train / val / test) is made once per run by step 6
  (`slmlab.specialize.splits.make_run_split`) and read by everything after it; nothing re-splits.

Usage:
    >>> from slmlab.runs import RunStore
    >>> store = RunStore("demo")                       # doctest: +SKIP
    >>> calls = store.read_clustered()                 # doctest: +SKIP
    >>> store.write_ranking(ranking)                   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from slmlab.config import default_run, home_dir
from slmlab.schema import CALL_SCHEMA, CLUSTER_SCHEMA, SchemaError

# ------------------------------------------------------------------------------------------ schemas

SPLITS = ("train", "val", "test")

SPLIT_SCHEMA: dict[str, pl.DataType] = {
    "call_id": pl.String(),  # a call of the curated table
    "session_id": pl.String(),  # its session: a whole session is on one side
    "split": pl.String(),  # "train", "val" or "test" (exact duplicate calls are left out of the split)
}

CLUSTERED_SCHEMA: dict[str, pl.DataType] = {
    **CALL_SCHEMA,
    "cluster": pl.Int32(),  # -1 = unassigned
}

RANKING_SCHEMA: dict[str, pl.DataType | None] = {
    "cluster": None,  # integer cluster id
    "hub_id": pl.String(),  # the candidate model (hub id or local path)
    "rank": None,  # 1 = best candidate of the cluster; null where excluded
    "score": None,
}

SCORES_SCHEMA: dict[str, pl.DataType | None] = {
    "call_id": pl.String(),
    "cluster": None,
    "model": pl.String(),
    "experiment": pl.String(),  # "base", "icl" or "tuned"
    "agreement": None,  # 0..1 agreement with the LLM's logged answer
}

REPLAY_SCHEMA: dict[str, pl.DataType | None] = {
    "call_id": pl.String(),
    "route_cluster": None,
    "routed_to": pl.String(),  # "slm" or "llm"
    "agreement": None,
    "measured": pl.Boolean(),
    "llm_cost_usd": None,
    "replay_cost_usd": None,
}

SAVINGS_SCHEMA: dict[str, pl.DataType | None] = {"call_id": pl.String()}


def conform_clusters(df: pl.DataFrame) -> pl.DataFrame:
    """A cluster table with every `CLUSTER_SCHEMA` column: missing ones get neutral defaults (name
    "cluster N", status "unreviewed", empty lists and template), present ones are cast.

    Example:
        >>> conform_clusters(pl.DataFrame({"cluster": [0]})).row(0, named=True)["status"]
        'unreviewed'
    """
    if "cluster" not in df.columns:
        raise SchemaError("a cluster table needs a 'cluster' column (see slmlab.schema.CLUSTER_SCHEMA)")
    defaults = {
        "name": pl.format("cluster {}", pl.col("cluster")),
        "status": pl.lit("unreviewed"),
        "keywords": pl.lit([], dtype=pl.List(pl.String())),
        "exemplars": pl.lit([], dtype=pl.List(pl.String())),
        "template": pl.lit(""),
    }
    cols = [
        (pl.col(n) if n in df.columns else defaults.get(n, pl.lit(None))).cast(t).alias(n)
        for n, t in CLUSTER_SCHEMA.items()
    ]
    return df.select(cols + [c for c in df.columns if c not in CLUSTER_SCHEMA])


@dataclass(frozen=True)
class ArtefactSpec:
    """What one artefact is: file name, the notebook that writes it, what it is made from, its schema."""

    name: str
    filename: str
    step: str  # the notebook that writes it (what to re-run when it is stale)
    inputs: tuple[str, ...]  # artefacts it is made from (recorded at write time where they exist)
    schema: dict[str, Any] | None  # required columns -> dtype (None = any dtype); None for non-tables
    doc: str


_SPECS = (
    ArtefactSpec("calls", "calls.parquet", "01_collect_profile", (), CALL_SCHEMA, "canonical call table"),
    ArtefactSpec("quarantine", "quarantine.jsonl", "01_collect_profile", (), None, "malformed records"),
    ArtefactSpec("curated", "curated.parquet", "02_curate_calls", ("calls",), CALL_SCHEMA, "redacted calls"),
    ArtefactSpec("audit", "audit.parquet", "02_curate_calls", ("calls",), None, "what was redacted, by rule"),
    ArtefactSpec(
        "clustered",
        "clustered.parquet",
        "03_cluster_tasks",
        ("curated",),
        CLUSTERED_SCHEMA,
        "calls + cluster",
    ),
    ArtefactSpec(
        "clusters", "clusters.parquet", "03_cluster_tasks", ("curated",), CLUSTER_SCHEMA, "clusters"
    ),
    ArtefactSpec(
        "labels", "labels.json", "04_label_clusters", ("clustered", "clusters"), None, "labeller state"
    ),
    ArtefactSpec(
        "ranking",
        "ranking.parquet",
        "05_select_models",
        ("clusters", "labels"),
        RANKING_SCHEMA,
        "SLM ranking",
    ),
    ArtefactSpec(
        "split", "split.parquet", "06_specialize_model", ("curated",), SPLIT_SCHEMA, "the saved split"
    ),
    ArtefactSpec(
        "adapters", "adapters", "06_specialize_model", ("split",), None, "one LoRA folder per cluster"
    ),
    ArtefactSpec(
        "scores",
        "eval.parquet",
        "07_evaluate_route",
        ("split", "clustered", "labels", "adapters"),
        SCORES_SCHEMA,
        "per-call scores of every experiment",
    ),
    ArtefactSpec("router", "router", "07_evaluate_route", ("split", "scores"), None, "the fitted router"),
    ArtefactSpec(
        "replay", "replay.parquet", "07_evaluate_route", ("router", "scores"), REPLAY_SCHEMA, "routed replay"
    ),
    ArtefactSpec(
        "savings", "savings.parquet", "08_savings_iterate", ("replay",), SAVINGS_SCHEMA, "costs per call"
    ),
    ArtefactSpec("savings_total", "savings.json", "08_savings_iterate", ("replay",), None, "savings totals"),
    ArtefactSpec("report", "report.html", "slmlab run", (), None, "the HTML report"),
)
ARTEFACTS: dict[str, ArtefactSpec] = {s.name: s for s in _SPECS}


class StaleArtefactError(RuntimeError):
    """An artefact was made from an earlier version of one of its inputs; the message names what to re-run."""


class MissingArtefactError(FileNotFoundError):
    """An artefact a step needs has not been written yet; the message names the notebook that writes it."""


# ------------------------------------------------------------------------------------------ fingerprints

_FP_CACHE: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: Path) -> str:
    """sha256 (16 hex) of a file's bytes, memoized by path, mtime and size."""
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _FP_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        _FP_CACHE[key] = digest.hexdigest()[:16]
    return _FP_CACHE[key]


def folder_fingerprint(path: Path) -> str:
    """A fingerprint of a folder: its files' relative names and content fingerprints (checkpoints skipped)."""
    digest = hashlib.sha256()
    files = (p for p in path.rglob("*") if p.is_file())
    for f in sorted(f for f in files if not any("checkpoint" in part for part in f.relative_to(path).parts)):
        digest.update(f"{f.relative_to(path)}={file_fingerprint(f)};".encode())
    return digest.hexdigest()[:16]


def ids_fingerprint(ids: Any) -> str:
    """A fingerprint of a set of ids (order-free): how an adapter records which calls made its cluster.

    Example:
        >>> ids_fingerprint(["b", "a"]) == ids_fingerprint(["a", "b"])
        True
    """
    digest = hashlib.sha256()
    for i in sorted(str(x) for x in ids):
        digest.update(i.encode() + b"\n")
    return digest.hexdigest()[:16]


def check_schema(df: pl.DataFrame, schema: dict[str, Any], where: str) -> pl.DataFrame:
    """Raise `SchemaError` naming `where` and the columns when `df` lacks a required column or dtype."""
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise SchemaError(f"{where}: missing column(s) {missing}; it was not written by this slmlab version")
    wrong = [
        f"{c} is {df.schema[c]}, expected {t}"
        for c, t in schema.items()
        if t is not None and df.schema[c] != t
    ]
    if wrong:
        raise SchemaError(f"{where}: {'; '.join(wrong)}")
    return df


# ------------------------------------------------------------------------------------------ the store


class RunStore:
    """One run folder (`SLMLAB_HOME/runs/<run>`): artefact paths, typed readers/writers and provenance.

    Args:
        run: run name (default: `SLMLAB_RUN`, else "demo"), or a folder path containing a `/`.

    Example:
        >>> import tempfile
        >>> store = RunStore(tempfile.mkdtemp() + "/r")
        >>> store.path("split").name
        'split.parquet'
    """

    def __init__(self, run: str | os.PathLike | None = None) -> None:
        run = default_run() if run is None else run
        self.root = (
            Path(run) if ("/" in str(run) or isinstance(run, Path)) else home_dir() / "runs" / str(run)
        )
        self.root.mkdir(parents=True, exist_ok=True)
        self.run = self.root.name

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # -------------------------------------------------------------- paths and provenance

    def path(self, name: str) -> Path:
        """The path of a named artefact (see `ARTEFACTS`)."""
        return self.root / _spec(name).filename

    def exists(self, name: str) -> bool:
        """True when the artefact has been written."""
        return self.path(name).exists()

    def _prov_path(self, name: str) -> Path:
        return self.root / "provenance" / f"{name}.json"

    def fingerprint(self, name: str) -> str | None:
        """The content fingerprint of an artefact as it is on disk now (None if absent)."""
        path = self.path(name)
        if not path.exists():
            return None
        return folder_fingerprint(path) if path.is_dir() else file_fingerprint(path)

    def provenance(self, name: str) -> dict[str, Any] | None:
        """The provenance record of an artefact (step, fingerprint, inputs' fingerprints), if recorded."""
        p = self._prov_path(name)
        return json.loads(p.read_text()) if p.exists() else None

    def record(self, name: str, **extra: Any) -> dict[str, Any]:
        """Record the provenance of an artefact just written at `path(name)` (by the store or by a step's
        own writer, e.g. an adapter folder or the router): step, content fingerprint, inputs' fingerprints."""
        spec = _spec(name)
        if not self.exists(name):
            raise MissingArtefactError(f"{self.path(name)} does not exist; nothing to record")
        doc = {
            "artefact": name,
            "file": spec.filename,
            "step": spec.step,
            "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "fingerprint": self.fingerprint(name),
            "inputs": {i: self.fingerprint(i) for i in spec.inputs if self.exists(i)},
            **extra,
        }
        p = self._prov_path(name)
        p.parent.mkdir(exist_ok=True)
        p.write_text(json.dumps(doc, indent=1))
        return doc

    def check_fresh(self, name: str, _seen: set[str] | None = None) -> None:
        """Raise `StaleArtefactError` if `name` or anything upstream was made from an older input."""
        seen = _seen if _seen is not None else set()
        if name in seen:
            return
        seen.add(name)
        prov = self.provenance(name)
        if prov is None:
            return  # written before provenance existed (or by hand): nothing to compare against
        for inp, recorded in prov.get("inputs", {}).items():
            now = self.fingerprint(inp)
            if now != recorded:
                what = "was deleted" if now is None else f"was rewritten (by {_spec(inp).step})"
                raise StaleArtefactError(
                    f"{self.path(name)} was made by {prov['step']} from an earlier {_spec(inp).filename}, which "
                    f"{what} since: re-run notebook {prov['step']} (and the notebooks after it)"
                )
            self.check_fresh(inp, seen)

    def require(self, name: str) -> Path:
        """The artefact's path after checking it exists and is fresh (else a one-line error naming the step)."""
        path = self.path(name)
        if not path.exists():
            raise MissingArtefactError(
                f"{path} is missing: run notebook {_spec(name).step} for this run first"
            )
        self.check_fresh(name)
        return path

    # -------------------------------------------------------------- generic table reads and writes

    def write_table(self, name: str, df: pl.DataFrame, **extra: Any) -> Path:
        """Validate `df` against the artefact's schema, write it as parquet and record its provenance."""
        spec = _spec(name)
        if spec.schema is not None:
            check_schema(df, spec.schema, f"{name} being written to {self.path(name)}")
        path = self.path(name)
        tmp = path.with_name(path.name + ".tmp")
        df.write_parquet(tmp)
        tmp.replace(path)
        self.record(name, rows=df.height, **extra)
        return path

    def read_table(self, name: str, check: bool = True, n_rows: int | None = None) -> pl.DataFrame:
        """Read a table artefact (its first `n_rows` if given), checking it exists, is fresh (`check`) and
        has its fixed schema."""
        path = self.require(name) if check else self.path(name)
        if not path.exists():
            raise MissingArtefactError(
                f"{path} is missing: run notebook {_spec(name).step} for this run first"
            )
        df = pl.read_parquet(path, n_rows=n_rows)
        spec = _spec(name)
        return check_schema(df, spec.schema, str(path)) if spec.schema is not None else df

    # -------------------------------------------------------------- typed readers and writers

    def read_calls(self, n_rows: int | None = None) -> pl.DataFrame:
        """Step 1's canonical call table (`schema.CALL_SCHEMA`); its first `n_rows` if given."""
        return self.read_table("calls", n_rows=n_rows)

    def write_calls(self, df: pl.DataFrame) -> Path:
        return self.write_table("calls", df)

    def read_curated(self, n_rows: int | None = None) -> pl.DataFrame:
        """Step 2's curated call table (`schema.CALL_SCHEMA`); its first `n_rows` if given."""
        return self.read_table("curated", n_rows=n_rows)

    def write_curated(self, df: pl.DataFrame) -> Path:
        return self.write_table("curated", df)

    def read_audit(self) -> pl.DataFrame:
        return self.read_table("audit")

    def write_audit(self, df: pl.DataFrame) -> Path:
        return self.write_table("audit", df)

    def read_clustered(self) -> pl.DataFrame:
        """Step 3's call table plus `cluster` (`CLUSTERED_SCHEMA`), as clustered (labels not applied)."""
        return self.read_table("clustered")

    def write_clustered(self, df: pl.DataFrame) -> Path:
        return self.write_table("clustered", df)

    def read_clusters(self) -> pl.DataFrame:
        """Step 3's cluster table (`schema.CLUSTER_SCHEMA`)."""
        return self.read_table("clusters")

    def write_clusters(self, df: pl.DataFrame) -> Path:
        return self.write_table("clusters", df)

    def read_ranking(self) -> pl.DataFrame:
        """Step 5's candidate SLMs per cluster (`RANKING_SCHEMA`)."""
        return self.read_table("ranking")

    def write_ranking(self, df: pl.DataFrame) -> Path:
        return self.write_table("ranking", df)

    def read_split(self) -> pl.DataFrame:
        """The run's saved split (`SPLIT_SCHEMA`), made once by step 6 (`specialize.splits.make_run_split`)."""
        return self.read_table("split")

    def write_split(self, df: pl.DataFrame, **settings: Any) -> Path:
        """Save the run's split; `settings` (seed, sizes) are recorded in its provenance."""
        bad = set(df.get_column("split").unique().to_list()) - set(SPLITS)
        if bad:
            raise SchemaError(f"split values must be {SPLITS}, got {sorted(map(str, bad))}")
        if df.get_column("call_id").is_duplicated().any():
            raise SchemaError("the split lists a call_id twice")
        return self.write_table("split", df.select(list(SPLIT_SCHEMA)), settings=settings)

    def split_fingerprint(self) -> str:
        """The fingerprint adapters record of the split they were trained on."""
        self.require("split")
        return str(self.fingerprint("split"))

    def read_scores(self) -> pl.DataFrame:
        """Step 7's per-call scores of every experiment (`SCORES_SCHEMA`)."""
        return self.read_table("scores")

    def write_scores(self, df: pl.DataFrame) -> Path:
        return self.write_table("scores", df)

    def read_replay(self) -> pl.DataFrame:
        """Step 7's routed replay of the held-out calls (`REPLAY_SCHEMA`)."""
        return self.read_table("replay")

    def write_replay(self, df: pl.DataFrame) -> Path:
        return self.write_table("replay", df)

    def read_savings(self) -> pl.DataFrame:
        return self.read_table("savings")

    def write_savings(self, df: pl.DataFrame, total: dict[str, Any]) -> tuple[Path, Path]:
        """Write step 8's per-call costs and its totals (`savings.json`)."""
        per_call = self.write_table("savings", df)
        path = self.path("savings_total")
        path.write_text(json.dumps(total, indent=2, default=str))
        self.record("savings_total")
        return per_call, path

    def read_savings_total(self) -> dict[str, Any]:
        return json.loads(self.require("savings_total").read_text())

    # -------------------------------------------------------------- folders and documents

    def labels_path(self) -> Path:
        """Where the labeller's state lives (`LabelSession.save` / `.load`)."""
        return self.path("labels")

    def adapters_dir(self) -> Path:
        path = self.path("adapters")
        path.mkdir(exist_ok=True)
        return path

    def adapter_dir(self, cluster: int) -> Path:
        """The LoRA adapter folder of one cluster."""
        return self.adapters_dir() / f"cluster_{int(cluster)}"

    def router_dir(self) -> Path:
        return self.path("router")

    def quarantine_path(self) -> Path:
        return self.path("quarantine")

    def report_path(self) -> Path:
        return self.path("report")


def _spec(name: str) -> ArtefactSpec:
    if name not in ARTEFACTS:
        raise KeyError(f"unknown artefact {name!r}; known: {', '.join(ARTEFACTS)}")
    return ARTEFACTS[name]


__all__ = [
    "ARTEFACTS",
    "ArtefactSpec",
    "CLUSTERED_SCHEMA",
    "MissingArtefactError",
    "REPLAY_SCHEMA",
    "RANKING_SCHEMA",
    "RunStore",
    "SCORES_SCHEMA",
    "SPLITS",
    "SPLIT_SCHEMA",
    "StaleArtefactError",
    "check_schema",
    "conform_clusters",
    "file_fingerprint",
    "folder_fingerprint",
    "ids_fingerprint",
]
