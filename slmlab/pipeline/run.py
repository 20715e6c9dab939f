"""The main job: run every notebook in order on one run folder, then write the HTML report.

The notebooks *are* the pipeline steps (each one calls a library module and writes its artefact into
the run folder, through `slmlab.runs.RunStore`), so `slmlab run` and a person clicking through JupyterLab do exactly the same work. A step
whose notebook already ran successfully for the same settings is skipped on the next run (its artefacts
are cached); `--from-step` re-runs from a given notebook on.

Usage:
    >>> from slmlab.pipeline.run import list_notebooks
    >>> [p.name for p in list_notebooks()][:1]  # doctest: +SKIP
    ['00_tour_environment.ipynb']
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from slmlab.config import REPO_ROOT, is_smoke, require, scale
from slmlab.runs import RunStore

NOTEBOOK_DIR = REPO_ROOT / "notebooks"


def list_notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The step notebooks `NN_*.ipynb` in execution order."""
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


@dataclass
class StepRun:
    """Outcome of one notebook execution."""

    notebook: str
    status: str  # "ran", "cached" or "failed"
    seconds: float
    error: str = ""


@dataclass
class PipelineResult:
    """What `run_pipeline` did and where the report is."""

    run: str
    steps: list[StepRun] = field(default_factory=list)
    report: Path | None = None

    @property
    def ok(self) -> bool:
        return all(s.status != "failed" for s in self.steps)


def _fingerprint(nb: Path, env: dict[str, str]) -> str:
    h = hashlib.sha256(nb.read_bytes())
    h.update(json.dumps(env, sort_keys=True).encode())
    return h.hexdigest()[:16]


def execute_notebook(
    path: Path, out_path: Path, env: dict[str, str] | None = None, timeout: int = 1800
) -> None:
    """Execute one notebook top to bottom with nbclient and save it with outputs to `out_path`.

    Raises:
        nbclient.exceptions.CellExecutionError: naming the failing cell, when a cell fails.
    """
    nbformat = require("nbformat", "dev")
    nbclient = require("nbclient", "dev")
    nb = nbformat.read(path, as_version=4)
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        client = nbclient.NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        )
        try:
            client.execute()
        finally:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, out_path)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_pipeline(
    run: str = "demo",
    from_step: str | None = None,
    until_step: str | None = None,
    force: bool = False,
    notebooks: list[Path] | None = None,
    report: bool = True,
) -> PipelineResult:
    """Execute the step notebooks in order for one run, skipping steps already done, then write the report.

    Args:
        run: run folder name (`SLMLAB_HOME/runs/<run>`); passed to notebooks as `SLMLAB_RUN`.
        from_step: re-run from this notebook prefix on (e.g. "05"), even if cached.
        until_step: stop after this notebook prefix.
        force: ignore the cache and run every notebook.
        notebooks: notebooks to run (default: every `notebooks/NN_*.ipynb`).
        report: write `report.html` at the end.
    """
    env = {"SLMLAB_RUN": run, "SLMLAB_SMOKE": "1" if is_smoke() else "0", "SLMLAB_SCALE": scale()}
    out_dir = RunStore(run).root / "executed"
    state_path = RunStore(run).root / "pipeline_state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    result = PipelineResult(run=run)
    rerun = force
    for nb in notebooks or list_notebooks():
        prefix = nb.name[:2]
        if from_step and prefix >= from_step[:2]:
            rerun = True
        fp = _fingerprint(nb, env)
        if not rerun and state.get(nb.name) == fp and (out_dir / nb.name).exists():
            result.steps.append(StepRun(nb.name, "cached", 0.0))
        else:
            rerun = True  # everything after a re-run step depends on it
            start = time.perf_counter()
            print(f"[slmlab run] executing {nb.name} ...", flush=True)
            try:
                execute_notebook(nb, out_dir / nb.name, env)
            except Exception as exc:  # noqa: BLE001 - reported, and the run stops here
                result.steps.append(StepRun(nb.name, "failed", time.perf_counter() - start, str(exc)[-2000:]))
                state.pop(nb.name, None)
                state_path.write_text(json.dumps(state, indent=1))
                break
            secs = time.perf_counter() - start
            print(f"[slmlab run] {nb.name} done in {secs:.0f} s", flush=True)
            result.steps.append(StepRun(nb.name, "ran", secs))
            state[nb.name] = fp
            state_path.write_text(json.dumps(state, indent=1))
        if until_step and prefix >= until_step[:2]:
            break
    if report:
        from slmlab.pipeline.report import write_report

        result.report = write_report(run, steps=result.steps, path=RunStore(run).report_path())
    return result
