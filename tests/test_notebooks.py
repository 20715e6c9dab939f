"""Every notebook runs top to bottom under the smoke switch, via `slmlab run` (the main job) itself.

A notebook that is not in NOTEBOOKS fails `test_every_notebook_is_tested`, so a new notebook cannot be
added without being executed here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NB_DIR = REPO / "notebooks"

NOTEBOOKS = [
    "00_tour_environment.ipynb",
    "01_collect_profile.ipynb",
    "02_curate_calls.ipynb",
    "03_cluster_tasks.ipynb",
    "04_label_clusters.ipynb",
    "05_select_models.ipynb",
    "06_specialize_model.ipynb",
    "07_evaluate_route.ipynb",
    "08_savings_iterate.ipynb",
]


def test_every_notebook_is_tested():
    on_disk = sorted(p.name for p in NB_DIR.glob("*.ipynb"))
    assert on_disk == sorted(NOTEBOOKS), "add new notebooks to NOTEBOOKS (and remove deleted ones)"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_follows_the_style(name):
    nb = nbformat.read(NB_DIR / name, as_version=4)
    assert (NB_DIR / name).with_suffix(".py").exists(), "pair each notebook with a jupytext .py"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), "first code cell must be tagged parameters"
    for cell in code:
        assert not cell.get("outputs"), "commit notebooks without outputs"
        lines = cell.source.splitlines()
        assert not any(line.startswith(("def ", "class ")) for line in lines), "logic belongs in the library"
        assert not any(line.startswith("for ") for line in lines), "row loops belong in the library"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_holds_the_same_code_as_its_py_pair(name):
    import jupytext

    ipynb = nbformat.read(NB_DIR / name, as_version=4)
    paired = jupytext.read(NB_DIR / name.replace(".ipynb", ".py"))
    cells = [(c.cell_type, c.source.strip()) for c in ipynb.cells]
    assert cells == [(c.cell_type, c.source.strip()) for c in paired.cells], (
        f"{name} and its .py differ: run `jupytext --sync notebooks/{name.replace('.ipynb', '.py')}`"
    )


def _assert_scores_come_from_unseen_calls(run_dir: Path) -> None:
    """Every call scored with a tuned adapter is outside that adapter's recorded training calls, and every
    scored call is in the test side of the run's one saved split."""
    import polars as pl

    scores = pl.read_parquet(run_dir / "eval.parquet")
    split = pl.read_parquet(run_dir / "split.parquet")
    assert set(scores["call_id"]) <= set(split.filter(pl.col("split") == "test")["call_id"])
    tuned = scores.filter(pl.col("experiment") == "tuned")
    assert tuned.height, "the smoke run scored no call with a tuned adapter"
    for adapter, ids in tuned.group_by("adapter").agg("call_id").iter_rows():
        seen = json.loads((Path(adapter) / "training_calls.json").read_text())
        assert seen["train"] and not set(ids) & (set(seen["train"]) | set(seen["val"])), adapter


@pytest.mark.slow
def test_slmlab_run_smoke_executes_every_notebook_and_writes_report(tmp_path):
    env = {**os.environ, "SLMLAB_SMOKE": "1", "SLMLAB_HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "slmlab.pipeline.cli", "run", "--run", "nbtest", "--smoke"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=1500)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    run_dir = tmp_path / "home" / "runs" / "nbtest"
    for name in NOTEBOOKS:
        assert (run_dir / "executed" / name).exists(), f"{name} was not executed"
    report = (run_dir / "report.html").read_text()
    assert "Headline" in report and "LLM calls in the logs" in report
    state = json.loads((run_dir / "pipeline_state.json").read_text())
    assert set(state) == set(NOTEBOOKS)
    _assert_scores_come_from_unseen_calls(run_dir)
    # A second run finds every step cached and only rewrites the report.
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert again.returncode == 0 and again.stdout.count(" cached ") == len(NOTEBOOKS), again.stdout
